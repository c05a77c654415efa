"""Fitting a reply into a reply window (wechat_sdk.outbound.window): packed first, what
does not fit waits, and the last message that goes out says so."""

from __future__ import annotations

from wechat_sdk.outbound.message import OutboundMessage
from wechat_sdk.outbound.window import MORE_NOTICE, NOTICE, fit_window, is_open, without_notice
from wechat_sdk.puppet import OutboundFile, ReplyWindow

NOW = 1_000.0


def window(remaining: int, *, closes_in: float = 3_600.0, max_chars: int = 100) -> ReplyWindow:
    return ReplyWindow(remaining=remaining, closes_at=NOW + closes_in, max_chars=max_chars)


def text(t: str, mentions: tuple[str, ...] = ()) -> OutboundMessage:
    return OutboundMessage(t, mentions)


def test_packing_counts_in_the_accounts_units() -> None:
    """iLink counts UTF-16 units: two chunks of 30 emoji (60 units each) are not packed
    into a message of 100, though they are 62 characters together."""
    messages = [text("👍" * 30) for _ in range(3)]
    assert fit_window(messages, window(2), NOW) == ([text("\n\n".join(["👍" * 30] * 3))], [])
    now, later = fit_window(messages, window(2), NOW, units="utf16")
    assert now == [text("👍" * 30), text("👍" * 30 + "\n\n" + MORE_NOTICE)]
    assert later == [text("👍" * 30)]


def test_a_reply_that_fits_goes_as_it_is() -> None:
    messages = [text("a"), text("b")]
    assert fit_window(messages, window(2), NOW) == (messages, [])


def test_short_chunks_are_packed_into_fewer_messages_when_they_would_overflow() -> None:
    messages = [text("a" * 40), text("b" * 40), text("c" * 40)]
    now, later = fit_window(messages, window(2), NOW)
    assert now == [text("a" * 40 + "\n\n" + "b" * 40), text("c" * 40)]
    assert later == []


def test_what_does_not_fit_waits_and_the_last_message_says_more_follows() -> None:
    messages = [text(c * 60) for c in "abcd"]  # no two fit together in 100
    now, later = fit_window(messages, window(2), NOW)
    assert now == [text("a" * 60), text("b" * 60 + "\n\n" + MORE_NOTICE)]
    assert later == [text("c" * 60), text("d" * 60)]


def test_a_full_last_message_gives_its_place_to_the_notice_and_waits() -> None:
    messages = [text(c * 90) for c in "abc"]
    now, later = fit_window(messages, window(2), NOW)
    assert now[0] == text("a" * 90) and now[1] is NOTICE
    assert later == [text("b" * 90), text("c" * 90)]


def test_files_are_never_packed_and_a_file_in_the_last_place_waits() -> None:
    f = OutboundMessage(file=OutboundFile(name="a.png", data=b"x"))
    now, later = fit_window([text("hi"), f, text("bye")], window(2), NOW)
    assert now == [text("hi"), NOTICE]
    assert later == [f, text("bye")]


def test_a_mention_starts_a_message_of_its_own() -> None:
    messages = [text("a"), text("b", ("wxid_x",)), text("c")]
    now, _ = fit_window(messages, window(2), NOW)
    assert now == [text("a"), text("b\n\nc", ("wxid_x",))]


def test_a_closed_window_sends_nothing_and_keeps_it_all_packed() -> None:
    messages = [text("a"), text("b")]
    assert fit_window(messages, window(0), NOW) == ([], [text("a\n\nb")])
    expired = window(10, closes_in=-1.0)  # 24 h since the user wrote
    assert not is_open(expired, NOW)
    assert fit_window(messages, expired, NOW) == ([], [text("a\n\nb")])


def test_unpacked_the_nth_that_goes_is_the_nth_given() -> None:
    messages = [text("a"), text("b"), text("c")]
    now, later = fit_window(messages, window(2), NOW, pack=False)
    assert now == [text("a"), text("b\n\n" + MORE_NOTICE)]
    assert later == [text("c")]


def test_the_message_the_notice_ends_is_marked_and_waits_without_it() -> None:
    """The notice is marked where it goes: a message that waits (it did not go) loses
    it, and the notice alone waits as nothing; the agent's own words that read like the
    notice are not the notice, and stay as written."""
    messages = [text(c * 60) for c in "abcd"]
    now, _ = fit_window(messages, window(2), NOW)
    assert [m.notice for m in now] == [False, True]
    assert without_notice(now) == [text("a" * 60), text("b" * 60)]
    assert not any(m.notice for m in without_notice(now))
    full = [text(c * 90) for c in "abc"]
    now, _ = fit_window(full, window(2), NOW)
    assert NOTICE.notice and now[1] is NOTICE
    assert without_notice(now) == [text("a" * 90)]
    own = [text("see below\n\n" + MORE_NOTICE), text(MORE_NOTICE)]  # (as the agent wrote)
    assert without_notice(own) == own
