"""One WeChat message of a reply, ready to go."""

from __future__ import annotations

from dataclasses import dataclass, field

from wechat_sdk.puppet import OutboundFile

__all__ = ["OutboundMessage"]


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One WeChat message of a reply, ready to go: a text chunk (formatted and cut by
    ``chunk_text``, with the mention ids of a reply's first chunk) or a file.

    ``notice``: a reply window's packing ended its text with the notice that more follows
    (or it is that notice alone), which stays true only while it is the last message that
    goes before the rest waits (:func:`~wechat_sdk.outbound.window.without_notice` takes
    it off); not part of what the message is (equality), only where its end came from.
    """

    text: str | None = None
    mention_ids: tuple[str, ...] = ()
    file: OutboundFile | None = None
    notice: bool = field(default=False, compare=False)
