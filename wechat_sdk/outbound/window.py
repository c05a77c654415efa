"""Fitting a reply into a conversation's reply window (transports that have one: iLink).

iLink lets the bot send a limited number of messages after each user message, and nothing
once a day has passed since it (:class:`~wechat_sdk.puppet.ReplyWindow`). A reply that
would overflow the window is first packed into fewer, longer messages (adjacent text
chunks joined up to the transport's longest message); what still does not fit waits for
the user's next message, and the last message that goes out now says so
(:data:`MORE_NOTICE`). Files are never packed: each is a message of its own.

Example:
    ```python
    now, later = fit_window(messages, ReplyWindow(remaining=1, closes_at=t), t - 60)
    ```
"""

from __future__ import annotations

from collections.abc import Sequence

from wechat_sdk.outbound.chunking import text_length
from wechat_sdk.outbound.message import OutboundMessage
from wechat_sdk.puppet import ReplyWindow

__all__ = ["MORE_NOTICE", "NOTICE", "fit_window", "is_open", "without_notice"]

#: added to the last message that goes out when the rest of a reply waits for the user
MORE_NOTICE = "(more after your next message)"
#: the notice as a message of its own (when the last place's message cannot take it):
#: :func:`fit_window` gives this very object
NOTICE = OutboundMessage(MORE_NOTICE, notice=True)
#: between two text chunks packed into one message (it and the notice are ASCII: as long
#: in any units)
_JOIN = "\n\n"


def is_open(window: ReplyWindow, now: float) -> bool:
    """Whether anything may be sent in the window now."""
    return window.remaining > 0 and now < window.closes_at


def fit_window(
    messages: Sequence[OutboundMessage],
    window: ReplyWindow,
    now: float,
    *,
    pack: bool = True,
    units: str = "code_points",
) -> tuple[list[OutboundMessage], list[OutboundMessage]]:
    """Split a reply's messages into what goes out now and what waits for the user's next
    message, packing text first so that as much as possible goes out now, in order.

    What waits is packed too. Messages that go out now are those given (joined unless
    ``pack`` is false, when the n-th of them is the n-th given), in order; the last may
    carry :data:`MORE_NOTICE` (marked ``notice``), or be :data:`NOTICE` itself.
    ``window.max_chars`` is counted in ``units``, as the account's ``textChunkLimit`` is
    (:data:`~wechat_sdk.outbound.chunking.TEXT_UNITS`).
    """
    packed = _pack(messages, window.max_chars, units) if pack else list(messages)
    if not is_open(window, now):
        return [], packed
    if len(messages) <= window.remaining:
        return list(messages), []
    if len(packed) <= window.remaining:
        return packed, []
    now_part, later = packed[: window.remaining], packed[window.remaining :]
    last = now_part[-1]
    if last.text is not None and text_length(last.text, units) + len(_JOIN + MORE_NOTICE) <= (
        window.max_chars
    ):
        now_part[-1] = OutboundMessage(
            last.text + _JOIN + MORE_NOTICE, last.mention_ids, notice=True
        )
    else:  # a file, or a full message: the notice takes the last place, that one waits
        later.insert(0, last)
        now_part[-1] = NOTICE
    return now_part, later


def without_notice(messages: Sequence[OutboundMessage]) -> list[OutboundMessage]:
    """``messages`` without the notice that more follows, as they wait for the user's
    next message: one that :func:`fit_window` ended with it (marked ``notice``) loses it,
    and one that was only the notice (:data:`NOTICE`) is left out. They did not go (the
    reply window closed first), and wait with the rest, which they begin as the agent
    wrote it: the notice ends only a message that goes before more waits. A text that
    merely reads like the notice (the agent's own words) is left as it is."""
    bare: list[OutboundMessage] = []
    for message in messages:
        text = message.text
        if message.notice and text is not None:
            if text == MORE_NOTICE:
                continue
            message = OutboundMessage(text.removesuffix(_JOIN + MORE_NOTICE), message.mention_ids)
        bare.append(message)
    return bare


def _pack(messages: Sequence[OutboundMessage], max_chars: int, units: str) -> list[OutboundMessage]:
    """Adjacent text messages joined while they fit in ``max_chars``; files as they are."""
    packed: list[OutboundMessage] = []
    for message in messages:
        prev = packed[-1] if packed else None
        if (
            message.text is not None
            and prev is not None
            and prev.text is not None
            and not message.mention_ids
            and text_length(prev.text, units) + len(_JOIN) + text_length(message.text, units)
            <= max_chars
        ):
            packed[-1] = OutboundMessage(prev.text + _JOIN + message.text, prev.mention_ids)
        else:
            packed.append(message)
    return packed
