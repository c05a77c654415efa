"""The channel's capability matrix, exactly as the seed declares it.

The gateway reads it: no ``edit`` means partial streaming degrades to blocks; no
``reactions`` means no "seen" reaction.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CAPABILITIES", "Capabilities"]


class Capabilities(BaseModel):
    """What WeChat (through Wechaty) can do."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    chat_types: list[Literal["direct", "group"]] = Field(alias="chatTypes")
    polls: bool
    reactions: bool
    edit: bool
    unsend: bool
    reply: bool
    effects: bool
    group_management: bool = Field(alias="groupManagement")
    threads: bool
    media: bool
    native_commands: bool = Field(alias="nativeCommands")
    block_streaming: bool = Field(alias="blockStreaming")


CAPABILITIES = Capabilities(
    chat_types=["direct", "group"],
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
