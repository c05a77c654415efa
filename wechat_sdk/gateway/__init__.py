"""The gateway: composition root, account runners, status."""

from wechat_sdk.gateway.gateway import DEFAULT_STATE_DIR, Gateway, PairingAPI, PuppetFactory
from wechat_sdk.gateway.status import AccountStatus

__all__ = ["DEFAULT_STATE_DIR", "AccountStatus", "Gateway", "PairingAPI", "PuppetFactory"]
