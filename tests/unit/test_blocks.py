"""BlockCoalescer: streaming pieces become blocks, driven by a VirtualClock."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wechat_sdk.clock import VirtualClock
from wechat_sdk.outbound.blocks import BlockCoalescer
from wechat_sdk.outbound.chunking import chunk_text

Script = list[tuple[float, str]]  # (pause in seconds before the piece, piece)


async def scripted(clock: VirtualClock, script: Script) -> AsyncIterator[str]:
    for pause, piece in script:
        if pause:
            await clock.sleep(pause)
        yield piece


async def run_blocks(
    clock: VirtualClock, coalescer: BlockCoalescer, source: AsyncIterator[str]
) -> list[tuple[float, str]]:
    """Run the coalescer to the end; each block with the virtual seconds it was sent at."""
    t0 = clock.now()
    sent: list[tuple[float, str]] = []

    async def emit(block: str) -> None:
        sent.append((round(clock.now() - t0, 3), block))

    task = asyncio.create_task(coalescer.run(source, emit))
    await clock.run_until_idle()
    await task
    return sent


def make(clock: VirtualClock, **overrides: object) -> BlockCoalescer:
    options: dict[str, object] = {"min_chars": 10, "max_chars": 100, "idle_ms": 1000}
    options.update(overrides)
    return BlockCoalescer(clock=clock, **options)  # type: ignore[arg-type]


async def test_idle_pause_flushes_a_buffer_of_at_least_min_chars() -> None:
    clock = VirtualClock()
    script = [(0, "Hello "), (0.2, "there, friend."), (3.0, " And then more."), (0.1, " End.")]
    sent = await run_blocks(clock, make(clock), scripted(clock, script))
    # Idle timer starts after the last piece (t=0.2) and fires 1 s later.
    assert sent == [(1.2, "Hello there, friend."), (3.3, "And then more. End.")]


async def test_idle_pause_does_not_flush_below_min_chars() -> None:
    clock = VirtualClock()
    script = [(0, "short"), (5.0, " and"), (5.0, " done")]
    sent = await run_blocks(clock, make(clock, min_chars=50), scripted(clock, script))
    assert sent == [(10.0, "short and done")]


async def test_min_chars_counts_the_characters_a_user_sees() -> None:
    # a thumbs-up with a skin tone, a family (ZWJ) and a flag: 3 characters on screen,
    # 2 + 5 + 2 code points; a pause with 3 buffered sends them, one with 2 does not
    clock = VirtualClock()
    script = [(0, "👍🏽👨\u200d👩\u200d👧"), (5.0, "🇨🇳"), (5.0, " ok")]
    sent = await run_blocks(clock, make(clock, min_chars=3), scripted(clock, script))
    assert sent == [(6.0, "👍🏽👨\u200d👩\u200d👧🇨🇳"), (10.0, "ok")]


async def test_pieces_faster_than_idle_ms_are_not_flushed_early() -> None:
    clock = VirtualClock()
    script = [(0.0, "one two three "), (0.9, "four five six "), (0.9, "seven eight nine")]
    sent = await run_blocks(clock, make(clock), scripted(clock, script))
    assert sent == [(1.8, "one two three four five six seven eight nine")]


async def test_buffer_over_max_chars_is_cut_at_a_paragraph_break() -> None:
    clock = VirtualClock()
    text = "First paragraph here.\n\nSecond paragraph, which is long enough to go over."
    pieces: Script = [(0, text[i : i + 5]) for i in range(0, len(text), 5)]
    sent = await run_blocks(clock, make(clock, max_chars=40), scripted(clock, pieces))
    blocks = [b for _, b in sent]
    assert blocks[0] == "First paragraph here."
    assert all(len(b) <= 40 for b in blocks)
    assert "".join(blocks).replace(" ", "") == text.replace(" ", "").replace("\n", "")
    assert sent[0][0] == 0.0  # cut as soon as the buffer passed max_chars, no waiting


async def test_max_chars_counted_in_utf16_units_cuts_an_emoji_stream_by_them() -> None:
    clock = VirtualClock()
    script = [(0, "👍" * 30 + " "), (0, "👍" * 30 + " "), (0, "👍" * 30)]
    coalescer = make(clock, max_chars=100, units="utf16")
    sent = await run_blocks(clock, coalescer, scripted(clock, script))
    assert [block for _, block in sent] == ["👍" * 30, "👍" * 30, "👍" * 30]


async def test_sentence_preference_cuts_at_the_last_sentence_end() -> None:
    text = "Para one.\n\nTwo sentences here. And more text follows on and on"
    clock = VirtualClock()
    by_paragraph = await run_blocks(clock, make(clock, max_chars=40), scripted(clock, [(0, text)]))
    clock = VirtualClock()
    by_sentence = await run_blocks(
        clock,
        make(clock, max_chars=40, break_preference="sentence"),
        scripted(clock, [(0, text)]),
    )
    assert by_paragraph[0][1] == "Para one."
    assert by_sentence[0][1] == "Para one.\n\nTwo sentences here."


async def test_source_error_flushes_the_buffer_then_reraises_the_same_exception() -> None:
    clock = VirtualClock()
    boom = RuntimeError("agent crashed")

    async def failing() -> AsyncIterator[str]:
        yield "partial "
        await clock.sleep(0.5)
        yield "answer"
        raise boom

    sent: list[str] = []

    async def emit(block: str) -> None:
        sent.append(block)

    task = asyncio.create_task(make(clock, min_chars=100).run(failing(), emit))
    await clock.run_until_idle()
    with pytest.raises(RuntimeError) as caught:
        await task
    assert caught.value is boom
    assert sent == ["partial answer"]


async def test_end_of_stream_flushes_the_rest_and_skips_blank_rest() -> None:
    clock = VirtualClock()
    sent = await run_blocks(clock, make(clock), scripted(clock, [(0, "tail"), (0, "  \n ")]))
    assert sent == [(0.0, "tail")]
    clock = VirtualClock()
    assert await run_blocks(clock, make(clock), scripted(clock, [(0, " \n\n ")])) == []


class CountingSource:
    """An async iterator that fails the test if __anext__ is ever entered twice at once."""

    def __init__(self, clock: VirtualClock, script: Script) -> None:
        self.clock = clock
        self.script = list(script)
        self.active = 0
        self.calls = 0

    def __aiter__(self) -> CountingSource:
        return self

    async def __anext__(self) -> str:
        self.calls += 1
        self.active += 1
        assert self.active == 1, "__anext__ called while another call was pending"
        try:
            if not self.script:
                raise StopAsyncIteration
            pause, piece = self.script.pop(0)
            await self.clock.sleep(pause)
            return piece
        finally:
            self.active -= 1


async def test_pending_anext_survives_idle_races_and_is_never_doubled() -> None:
    clock = VirtualClock()
    script = [(0, "abcdefghijkl "), (2.5, "mnopqrstuv "), (4.0, "wxyz")]
    source = CountingSource(clock, script)
    sent = await run_blocks(clock, make(clock), source)
    assert source.calls == len(script) + 1
    assert sent == [(1.0, "abcdefghijkl"), (3.5, "mnopqrstuv"), (6.5, "wxyz")]


async def test_emit_failure_stops_the_run_and_cancels_the_pending_read() -> None:
    clock = VirtualClock()

    async def emit(block: str) -> None:
        raise ConnectionError("send failed")

    source = CountingSource(clock, [(0, "x" * 30), (100.0, "never read")])
    task = asyncio.create_task(make(clock, max_chars=20).run(source, emit))
    await clock.run_until_idle()
    with pytest.raises(ConnectionError):
        await task
    assert clock.pending == 0  # no sleeper left behind by the cancelled read


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_chars": 0}, "max_chars"),
        ({"min_chars": 200, "max_chars": 100}, "min_chars"),
        ({"idle_ms": -1}, "idle_ms"),
        ({"break_preference": "word"}, "break_preference"),
    ],
)
def test_invalid_settings_are_rejected(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(VirtualClock(), **overrides)


_PIECE = st.lists(
    st.sampled_from([*"ab cd.\n，。", "👨\u200d👩\u200d👧", "🇨🇳", "你好", "word "]), max_size=12
).map("".join)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0.0, 0.3, 1.5]), _PIECE), max_size=20),
    st.integers(min_value=0, max_value=40),
    st.integers(min_value=10, max_value=60),
)
def test_blocks_lose_nothing_and_repeat_nothing(
    script: Script, min_chars: int, max_chars: int
) -> None:
    min_chars = min(min_chars, max_chars)

    async def go() -> list[tuple[float, str]]:
        clock = VirtualClock()
        coalescer = make(clock, min_chars=min_chars, max_chars=max_chars)
        return await run_blocks(clock, coalescer, scripted(clock, script))

    sent = asyncio.run(go())
    blocks = [b for _, b in sent]
    assert all(b and b == b.lstrip() and len(b) <= max_chars for b in blocks)
    assert "".join("".join(blocks).split()) == "".join("".join(p for _, p in script).split())
    times = [t for t, _ in sent]
    assert times == sorted(times)


# --- fenced code blocks: kept whole when they fit, else closed and reopened (as chunk_text)

CODE = "```python\n" + "\n".join(f"# step {i}\n    value_{i} = f({i})" for i in range(12)) + "\n```"


def fence_lines(block: str) -> list[str]:
    return [line for line in block.split("\n") if line.startswith(("```", "~~~"))]


def code_lines(blocks: list[str]) -> list[str]:
    """The lines between fence lines, block by block, in order."""
    lines: list[str] = []
    for block in blocks:
        inside = False
        for line in block.split("\n"):
            if line.startswith(("```", "~~~")):
                inside = not inside
            elif inside:
                lines.append(line)
    return lines


async def test_a_long_fence_is_closed_and_reopened_as_chunk_text_does() -> None:
    text = "Intro line.\n\n" + CODE + "\n\nAfter."
    clock = VirtualClock()
    pieces: Script = [(0, text[i : i + 7]) for i in range(0, len(text), 7)]
    sent = await run_blocks(clock, make(clock, max_chars=100), scripted(clock, pieces))
    blocks = [b for _, b in sent]
    assert blocks == chunk_text(text, 100)
    assert blocks[0] == "Intro line."  # cut before the fence opens, not inside it
    assert blocks[1].startswith("```python\n# step 0\n") and blocks[1].endswith("\n```")
    assert all(b.startswith("```python\n") for b in blocks[2:])  # reopened, tag kept
    assert all(len(fence_lines(b)) == 2 for b in blocks[1:])
    assert code_lines(blocks) == code_lines([CODE])


async def test_the_break_preference_applies_outside_fences_and_code_is_cut_at_lines() -> None:
    code = "```python\n" + "\n".join(f"print('step {i}. done')" for i in range(6)) + "\n```"
    text = "One. Two.\nThree and more words. Then a sentence that runs on and on.\n" + code
    clock = VirtualClock()
    coalescer = make(clock, max_chars=50, break_preference="sentence")
    sent = await run_blocks(clock, coalescer, scripted(clock, [(0, text)]))
    blocks = [b for _, b in sent]
    assert blocks[0] == "One. Two.\nThree and more words."  # the last sentence end
    assert all(len(fence_lines(b)) % 2 == 0 and len(b) <= 50 for b in blocks)
    # "1. " in the code is no sentence end: code lines arrive whole
    assert code_lines(blocks) == code_lines([code])


async def test_an_idle_pause_sends_the_text_before_an_open_fence_and_holds_the_fence() -> None:
    clock = VirtualClock()
    script: Script = [
        (0, "Here is the script you asked for:\n\n```python\nx = 1\n"),
        (3.0, "y = 2\n```\n"),
        (3.0, "Done."),
    ]
    sent = await run_blocks(clock, make(clock), scripted(clock, script))
    # t=1: the prose goes, the open fence waits; t=4: the fence closed, the pause sends it
    assert sent == [
        (1.0, "Here is the script you asked for:"),
        (4.0, "```python\nx = 1\ny = 2\n```"),
        (6.0, "Done."),
    ]


async def test_an_idle_pause_in_the_middle_of_a_fence_marker_holds_the_marker() -> None:
    clock = VirtualClock()
    script: Script = [
        (0, "Here is the script:\n``"),
        (1.5, "`python\n# step one\nx = 1\n```\nDone."),
    ]
    sent = await run_blocks(clock, make(clock), scripted(clock, script))
    assert [b for _, b in sent] == [
        "Here is the script:",
        "```python\n# step one\nx = 1\n```\nDone.",
    ]


async def test_an_idle_pause_sends_nothing_while_only_an_open_fence_is_buffered() -> None:
    clock = VirtualClock()
    script: Script = [(0, "```\nlong enough code line\n"), (5.0, "more\n"), (5.0, "```")]
    sent = await run_blocks(clock, make(clock), scripted(clock, script))
    assert sent == [(10.0, "```\nlong enough code line\nmore\n```")]


async def test_what_a_cancelled_run_leaves_reopens_the_fence_it_was_cut_in() -> None:
    clock = VirtualClock()
    coalescer = make(clock, max_chars=60)
    sent: list[str] = []
    hang = asyncio.Event()

    async def emit(block: str) -> None:
        sent.append(block)
        await hang.wait()  # the first block's send never finishes

    task = asyncio.create_task(coalescer.run(scripted(clock, [(0, CODE)]), emit))
    await clock.run_until_idle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(sent) == 1 and sent[0].endswith("\n```")
    assert coalescer.unsent_text.startswith("```python\n")
    assert [*sent, *chunk_text(coalescer.unsent_text, 60)] == chunk_text(CODE, 60)


_PROSE = st.lists(
    st.sampled_from(["word ", "Sentence. ", "\n", "\n\n", "你好。", "x" * 25]), max_size=10
).map("".join)
_FENCE = st.builds(
    lambda marker, lang, lines: f"\n{marker}{lang}\n" + "\n".join(lines) + f"\n{marker}\n",
    st.sampled_from(["```", "~~~", "````"]),
    st.sampled_from(["", "python", "js"]),
    st.lists(
        st.builds(
            lambda indent, body: indent + body,
            st.sampled_from(["", "    "]),
            st.sampled_from(["# a comment", "x = 1", "print('a. b')", "y" * 30, "**kw"]),
        ),
        min_size=1,
        max_size=15,
    ),
)
_DOCUMENT = st.lists(st.one_of(_PROSE, _FENCE), min_size=1, max_size=6).map("".join)


@settings(max_examples=150, deadline=None)
@given(_DOCUMENT, st.data(), st.integers(min_value=40, max_value=200))
def test_a_stream_without_pauses_is_cut_exactly_as_chunk_text_cuts_it(
    text: str, data: st.DataObject, max_chars: int
) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(text) - 1, 1)), max_size=30)))
    pieces = [text[a:b] for a, b in itertools.pairwise([0, *cuts, len(text)])]

    async def go() -> list[str]:
        clock = VirtualClock()
        coalescer = make(clock, min_chars=0, max_chars=max_chars)
        sent = await run_blocks(clock, coalescer, scripted(clock, [(0, p) for p in pieces]))
        return [b for _, b in sent]

    assert asyncio.run(go()) == chunk_text(text, max_chars)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0.0, 0.3, 1.5]), _DOCUMENT), min_size=1, max_size=6),
    st.integers(min_value=0, max_value=60),
    # room for the longest code line with its fence lines, so no code line is cut
    st.integers(min_value=60, max_value=120),
)
def test_pauses_never_leave_a_fence_open_in_a_block(
    script: Script, min_chars: int, max_chars: int
) -> None:
    text = "".join(p for _, p in script)

    async def go() -> list[str]:
        clock = VirtualClock()
        coalescer = make(clock, min_chars=min(min_chars, max_chars), max_chars=max_chars)
        return [b for _, b in await run_blocks(clock, coalescer, scripted(clock, script))]

    blocks = asyncio.run(go())
    assert all(0 < len(b) <= max_chars for b in blocks)
    assert all(len(fence_lines(b)) % 2 == 0 for b in blocks)
    assert code_lines(blocks) == code_lines([text])
