"""wechat-sdk: the WeChat channel of a personal AI assistant gateway.

from wechat_sdk import Gateway, load_config
"""

from wechat_sdk.agent import AgentTurn, HistoryEntry, MediaItem, Reply, ToolNotAllowed
from wechat_sdk.capabilities import CAPABILITIES
from wechat_sdk.config import Config, ConfigError, load_config, parse_config
from wechat_sdk.gateway import AccountStatus, Gateway
from wechat_sdk.outbound.chunking import chunk_text
from wechat_sdk.puppet import OutboundFile

__all__ = [
    "CAPABILITIES",
    "AccountStatus",
    "AgentTurn",
    "Config",
    "ConfigError",
    "Gateway",
    "HistoryEntry",
    "MediaItem",
    "OutboundFile",
    "Reply",
    "ToolNotAllowed",
    "chunk_text",
    "load_config",
    "parse_config",
]
