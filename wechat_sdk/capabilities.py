"""The channel's capability matrix, exactly as the seed declares it.

The gateway reads it: no ``edit`` means partial streaming degrades to blocks; no
``reactions`` means no "seen" reaction.

A plain frozen dataclass, not a pydantic model: ``import wechat_sdk`` loads this module,
and pydantic would be the largest part of that import's time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

__all__ = ["CAPABILITIES", "ILINK_CAPABILITIES", "Capabilities"]

#: each field's key in the seed's ``capabilities`` block (camelCase), where it differs
_ALIASES = {
    "chat_types": "chatTypes",
    "group_management": "groupManagement",
    "native_commands": "nativeCommands",
    "block_streaming": "blockStreaming",
}


#: capabilities the seed's matrix does not have (left out of a dict when absent)
_BEYOND_THE_SEED = frozenset({"typing"})


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    """What WeChat can do through one transport (:data:`CAPABILITIES`: Wechaty, the seed's
    matrix; :data:`ILINK_CAPABILITIES`: Tencent's iLink bot API).

    ``typing`` is beyond the seed's matrix: the bot can show "typing..." to the peer.
    """

    chat_types: tuple[Literal["direct", "group"], ...]
    polls: bool
    reactions: bool
    edit: bool
    unsend: bool
    reply: bool
    effects: bool
    group_management: bool
    threads: bool
    media: bool
    native_commands: bool
    block_streaming: bool
    typing: bool = False

    def model_dump(self, *, by_alias: bool = False) -> dict[str, Any]:
        """The matrix as a dict (lists for sequences); ``by_alias`` gives the seed's keys.
        A capability beyond the seed's matrix (``typing``) is there only when the
        transport has it: :data:`CAPABILITIES`' dict is the seed's block, key for key.

        Named as pydantic names it (``Capabilities`` was a pydantic model), so callers of
        ``CAPABILITIES.model_dump(by_alias=True)`` are unchanged.
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _BEYOND_THE_SEED and not value:
                continue
            key = _ALIASES.get(f.name, f.name) if by_alias else f.name
            out[key] = list(value) if isinstance(value, tuple) else value
        return out


CAPABILITIES = Capabilities(
    chat_types=("direct", "group"),
    polls=False,
    reactions=False,
    edit=False,
    unsend=False,
    reply=True,
    effects=False,
    group_management=False,
    threads=False,
    media=True,
    native_commands=False,
    block_streaming=True,
)

#: Tencent's iLink bot API (``puppet: "ilink"``): direct chats only, with typing and media
ILINK_CAPABILITIES = Capabilities(
    chat_types=("direct",),
    polls=False,
    reactions=False,
    edit=False,
    unsend=False,
    reply=True,
    effects=False,
    group_management=False,
    threads=False,
    media=True,
    native_commands=False,
    block_streaming=True,
    typing=True,
)
