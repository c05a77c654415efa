"""wechat-sdk: the WeChat channel of a personal AI assistant gateway.

from wechat_sdk import Gateway, load_config

What an agent's module needs (`AgentTurn`, `Reply`, `HistoryEntry`, `MediaItem`,
`OutboundFile`, `ToolNotAllowed`, `CAPABILITIES`) and `WindowClosed` (what
``gateway.send`` raises when an iLink reply window is closed) are imported with the package:
plain dataclasses. The gateway and the configuration (`Gateway`, `AccountStatus`, `Config`,
`ConfigError`, `load_config`, `parse_config`) and `chunk_text` are imported the first time
one of them is asked for (a module ``__getattr__``, PEP 562): they bring asyncio, SQLite,
pydantic and regex, which made ``import wechat_sdk`` several times as slow, and the CLI's
``--help`` with it. ``from wechat_sdk import Gateway`` works as before and pays for them then.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from wechat_sdk.agent import AgentTurn, HistoryEntry, MediaItem, Reply, ToolNotAllowed
from wechat_sdk.capabilities import CAPABILITIES
from wechat_sdk.puppet import OutboundFile, WindowClosed

if TYPE_CHECKING:
    from wechat_sdk.config import Config, ConfigError, load_config, parse_config
    from wechat_sdk.gateway import AccountStatus, Gateway
    from wechat_sdk.outbound.chunking import chunk_text

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
    "WindowClosed",
    "chunk_text",
    "load_config",
    "parse_config",
]

#: the names imported when first asked for, and the module each comes from
_LAZY = {
    "AccountStatus": "wechat_sdk.gateway",
    "Config": "wechat_sdk.config",
    "ConfigError": "wechat_sdk.config",
    "Gateway": "wechat_sdk.gateway",
    "chunk_text": "wechat_sdk.outbound.chunking",
    "load_config": "wechat_sdk.config",
    "parse_config": "wechat_sdk.config",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wechat_sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # asked once: the next lookup finds it without this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
