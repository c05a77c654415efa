"""``python -m wechat_sdk``."""

from wechat_sdk.cli import main

main()
