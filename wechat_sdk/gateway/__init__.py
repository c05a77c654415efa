"""The gateway: composition root, account runners, status.

The names below are imported the first time one is asked for (a module ``__getattr__``,
PEP 562), so that importing a light part of this package (``control``, which ``wechat-sdk
gateway status`` uses, or ``status``) does not load the whole gateway with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wechat_sdk.gateway.gateway import DEFAULT_STATE_DIR, Gateway, PuppetFactory
    from wechat_sdk.gateway.pairing_api import PairingAPI
    from wechat_sdk.gateway.status import AccountStatus

__all__ = ["DEFAULT_STATE_DIR", "AccountStatus", "Gateway", "PairingAPI", "PuppetFactory"]

_LAZY = {
    "DEFAULT_STATE_DIR": "wechat_sdk.gateway.gateway",
    "AccountStatus": "wechat_sdk.gateway.status",
    "Gateway": "wechat_sdk.gateway.gateway",
    "PairingAPI": "wechat_sdk.gateway.pairing_api",
    "PuppetFactory": "wechat_sdk.gateway.gateway",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wechat_sdk.gateway' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
