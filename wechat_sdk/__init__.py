"""wechat-sdk: the WeChat channel of a personal AI assistant gateway.

    from wechat_sdk import Gateway, load_config
"""

from wechat_sdk.agent import AgentTurn, Reply
from wechat_sdk.capabilities import CAPABILITIES
from wechat_sdk.config import Config, ConfigError, load_config, parse_config

__all__ = [
    "CAPABILITIES",
    "AgentTurn",
    "Config",
    "ConfigError",
    "Reply",
    "load_config",
    "parse_config",
]
