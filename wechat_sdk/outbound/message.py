"""One WeChat message of a reply, ready to go."""

from __future__ import annotations

from dataclasses import dataclass

from wechat_sdk.puppet import OutboundFile

__all__ = ["OutboundMessage"]


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One WeChat message of a reply, ready to go: a text chunk (formatted and cut by
    ``chunk_text``, with the mention ids of a reply's first chunk) or a file."""

    text: str | None = None
    mention_ids: tuple[str, ...] = ()
    file: OutboundFile | None = None
