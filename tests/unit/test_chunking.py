"""chunk_text: break preference, graphemes, code fences, newline mode, and properties."""

from __future__ import annotations

import sys

import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wechat_sdk.outbound import chunking
from wechat_sdk.outbound.chunking import chunk_text, find_break, text_length

FAMILY = "👨\u200d👩\u200d👧\u200d👦"  # one grapheme, seven code points
RAINBOW_FLAG = "🏳\ufe0f\u200d🌈"
THUMBS = "👍🏽"
E_ACUTE = "e\u0301"


def graphemes(text: str) -> list[str]:
    found: list[str] = regex.findall(r"\X", text)
    return found


def boundaries(text: str) -> set[int]:
    out = {0}
    pos = 0
    for g in graphemes(text):
        pos += len(g)
        out.add(pos)
    return out


# --- reference helpers used by the properties (independent of the implementation) ---


def is_fence_line(line: str) -> bool:
    return line.startswith("```") or line.startswith("~~~")


def fence_spans(text: str) -> list[tuple[int, int]]:
    """(first fence char, end of closing line) of every fence; inputs use plain ``` fences."""
    spans: list[tuple[int, int]] = []
    pos = 0
    opened: int | None = None
    for line in text.split("\n"):
        if line.startswith("```"):
            if opened is None:
                opened = pos
            elif not line[3:].strip():
                spans.append((opened, pos + len(line)))
                opened = None
        pos += len(line) + 1
    if opened is not None:
        spans.append((opened, len(text)))
    return spans


def locate(text: str, chunks: list[str]) -> list[tuple[int, int, str, str]]:
    """Find each chunk's body in ``text``, in order, allowing only whitespace in between.

    A chunk may carry an added reopening line (first) and closing line (last); those are
    peeled off when the chunk itself is not in the text. Returns (start, end, prefix, suffix).
    """
    spans: list[tuple[int, int, str, str]] = []
    pos = 0
    for chunk in chunks:
        lines = chunk.split("\n")
        variants = [(chunk, "", "")]
        if len(lines) > 1 and is_fence_line(lines[-1]):
            variants.append(("\n".join(lines[:-1]), "", "\n" + lines[-1]))
        if len(lines) > 1 and is_fence_line(lines[0]):
            variants.append(("\n".join(lines[1:]), lines[0] + "\n", ""))
        if len(lines) > 2 and is_fence_line(lines[0]) and is_fence_line(lines[-1]):
            variants.append(("\n".join(lines[1:-1]), lines[0] + "\n", "\n" + lines[-1]))
        for body, prefix, suffix in variants:
            at = text.find(body, pos)
            if body and at >= 0 and not text[pos:at].strip():
                spans.append((at, at + len(body), prefix, suffix))
                pos = at + len(body)
                break
        else:
            raise AssertionError(f"chunk not found in order after {pos}: {chunk!r}")
    assert not text[pos:].strip(), "text after the last chunk was lost"
    return spans


# --- examples ---


def test_short_text_comes_back_stripped_as_one_chunk() -> None:
    assert chunk_text("  hello world \n", 50) == ["hello world"]


def test_blank_text_gives_no_chunks() -> None:
    assert chunk_text(" \n\t ", 50) == []
    assert chunk_text("", 50) == []


@pytest.mark.parametrize("limit", [0, -5])
def test_limit_below_one_is_rejected_with_a_hint(limit: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        chunk_text("abc", limit)


def test_unknown_mode_is_rejected_naming_the_valid_modes() -> None:
    with pytest.raises(ValueError, match="'length' or 'newline'"):
        chunk_text("abc", 10, "words")


def test_paragraph_break_beats_a_later_line_break() -> None:
    text = "alpha beta\n\ngamma delta\nepsilon zeta eta theta"
    assert chunk_text(text, 30) == ["alpha beta", "gamma delta", "epsilon zeta eta theta"]


def test_line_break_beats_a_later_sentence_end() -> None:
    text = "one two\nthree. four five six seven"
    assert chunk_text(text, 20)[0] == "one two"


def test_sentence_end_beats_a_later_space() -> None:
    text = "One two. Three four five six"
    assert chunk_text(text, 20) == ["One two.", "Three four five six"]


def test_the_last_break_of_the_best_class_is_chosen() -> None:
    text = "aa. bb. cc. dd ee ff gg hh"
    assert chunk_text(text, 15)[0] == "aa. bb. cc."


def test_dot_without_following_space_is_not_a_sentence_end() -> None:
    text = "see v1.2.3 and more words"
    assert chunk_text(text, 12) == ["see v1.2.3", "and more", "words"]


def test_cjk_sentence_punctuation_breaks_without_whitespace() -> None:
    text = "今天天气很好。我们去公园吧！你觉得呢？好的；走吧"
    assert chunk_text(text, 16) == ["今天天气很好。我们去公园吧！", "你觉得呢？好的；走吧"]


def test_cjk_comma_is_a_soft_break() -> None:
    text = "第一部分很长很长，第二部分、第三部分没有句号"
    assert chunk_text(text, 14) == ["第一部分很长很长，第二部分、", "第三部分没有句号"]


def test_hard_break_keeps_a_zwj_family_whole() -> None:
    text = "x" * 8 + FAMILY * 3
    chunks = chunk_text(text, 12)
    assert chunks == ["x" * 8, FAMILY, FAMILY, FAMILY]


def test_hard_break_keeps_flags_paired() -> None:
    flags = "🇨🇳🇺🇸🇬🇧🇫🇷🇯🇵"
    chunks = chunk_text(flags, 5)
    assert chunks == ["🇨🇳🇺🇸", "🇬🇧🇫🇷", "🇯🇵"]


def test_hard_break_keeps_combining_sequences_and_modifiers() -> None:
    text = (E_ACUTE * 5) + THUMBS + RAINBOW_FLAG
    chunks = chunk_text(text, 7)
    assert chunks == [E_ACUTE * 3, E_ACUTE * 2 + THUMBS, RAINBOW_FLAG]


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_utf16_units_count_an_emoji_beyond_the_bmp_as_two() -> None:
    """iLink's limit, as Tencent's client counts it (JavaScript's string length)."""
    assert text_length("好👍", "utf16") == 3
    assert text_length("好👍") == 2  # (code points: the default)
    assert text_length(FAMILY, "utf16") == 11
    with pytest.raises(ValueError, match="'code_points' or 'utf16'"):
        text_length("x", "bytes")
    with pytest.raises(ValueError, match="'code_points' or 'utf16'"):
        chunk_text("x" * 10, 5, units="bytes")


def test_a_text_that_fits_in_code_points_but_not_in_utf16_units_is_cut() -> None:
    text = "👍" * 3000  # 3,000 characters, 6,000 units
    assert chunk_text(text, 4000) == [text]
    assert chunk_text(text, 4000, units="utf16") == ["👍" * 2000, "👍" * 1000]


def test_a_cut_by_utf16_units_keeps_graphemes_whole() -> None:
    text = "x" * 9 + FAMILY * 3  # a family is 11 units
    assert chunk_text(text, 19, units="utf16") == ["x" * 9, FAMILY, FAMILY, FAMILY]
    assert chunk_text("🇨🇳🇺🇸🇬🇧", 9, units="utf16") == ["🇨🇳🇺🇸", "🇬🇧"]


def test_utf16_units_in_newline_mode_and_in_a_reopened_fence() -> None:
    paragraphs = "\n\n".join(["👍" * 30, "好" * 30, "👍" * 30])
    assert chunk_text(paragraphs, 100, "newline", "utf16") == [
        "👍" * 30 + "\n\n" + "好" * 30,
        "👍" * 30,
    ]
    code = "```\n" + "\n".join("👍" * 10 for _ in range(12)) + "\n```"
    chunks = chunk_text(code, 100, units="utf16")
    assert len(chunks) > 1 and all(utf16(c) <= 100 for c in chunks)
    assert all(c.startswith("```\n") and c.endswith("\n```") for c in chunks)


def test_an_emoji_wider_than_a_limit_of_one_unit_still_goes() -> None:
    # (no cut can fit: the chunker still moves on, one character a chunk)
    assert chunk_text("👍👍", 1, units="utf16") == ["👍", "👍"]


def test_leading_and_trailing_whitespace_at_breaks_is_dropped() -> None:
    text = "first line   \n     second line here"
    assert chunk_text(text, 15) == ["first line", "second line", "here"]


def test_fence_that_fits_is_moved_whole_to_the_next_chunk() -> None:
    fence = "```python\nprint(1)\n\nprint(2)\n```"
    text = "Intro sentence here.\n\n" + fence + "\n\nAfter."
    chunks = chunk_text(text, 40)
    assert chunks == ["Intro sentence here.", fence + "\n\nAfter."]


def test_no_break_inside_a_fence_when_a_break_outside_exists() -> None:
    # The blank line inside the fence is the last paragraph break in the window, but a
    # line break outside the fence exists, so that one wins.
    text = "Some words\n```\nline one\n\nline two\n```\n" + "tail " * 5
    chunks = chunk_text(text, 36)
    assert chunks[0] == "Some words"
    assert chunks[1] == "```\nline one\n\nline two\n```"


def test_long_fence_is_closed_and_reopened_with_its_language_tag() -> None:
    code = "\n".join(f"    value_{i} = compute({i})" for i in range(12))
    text = "Look:\n\n```python\n" + code + "\n```\n\nDone."
    chunks = chunk_text(text, 80)
    code_chunks = [c for c in chunks if "value_" in c]
    assert len(code_chunks) > 1
    for chunk in code_chunks:
        assert len(chunk) <= 80
        assert chunk.startswith("```python\n")
    for chunk in code_chunks[:-1]:
        assert chunk.endswith("\n```")
    # Indentation of the first code line in a continuation is kept (it is code).
    assert code_chunks[1].split("\n")[1].startswith("    value_")
    # The real closing fence and the tail fit with the last piece of code.
    assert code_chunks[-1].endswith("\n```\n\nDone.")
    body = [line for c in code_chunks for line in c.removesuffix("\n\nDone.").split("\n")[1:-1]]
    assert body == code.split("\n")


def test_long_tilde_fence_is_reopened_with_tildes() -> None:
    code = "\n".join(f"row {i} of the table" for i in range(10))
    chunks = chunk_text("~~~text\n" + code + "\n~~~", 60)
    assert len(chunks) > 1
    assert all(c.startswith("~~~text\n") and c.endswith("\n~~~") for c in chunks)


def test_unclosed_fence_is_still_reopened() -> None:
    code = "\n".join(f"x{i} = {i}" for i in range(20))
    chunks = chunk_text("```js\n" + code, 50)
    assert len(chunks) > 1  # continuations to reopen the fence in
    assert all(c.startswith("```js\n") for c in chunks)
    assert all(len(c) <= 50 for c in chunks)
    body = [line for c in chunks for line in c.split("\n") if not line.startswith("```")]
    assert body == code.split("\n")  # every line of code, once, in order


def test_newline_mode_packs_whole_paragraphs() -> None:
    paragraphs = ["First paragraph.", "Second one, a bit longer.", "Third.", "Fourth para."]
    text = "\n\n".join(paragraphs)
    assert chunk_text(text, 50, "newline") == [
        "First paragraph.\n\nSecond one, a bit longer.",
        "Third.\n\nFourth para.",
    ]


def test_newline_mode_length_splits_an_oversized_paragraph() -> None:
    text = "Short.\n\n" + "word " * 20 + "\n\nEnd."
    chunks = chunk_text(text, 30, "newline")
    assert chunks[0] == "Short."
    assert chunks[-1] == "End."
    assert all(len(c) <= 30 for c in chunks)
    assert "".join(chunks[1:-1]).replace(" ", "") == "word" * 20


def test_newline_mode_does_not_split_on_blank_lines_inside_code() -> None:
    fence = "```\na = 1\n\nb = 2\n```"
    chunks = chunk_text("Intro.\n\n" + fence + "\n\nOutro text that is long.", 30, "newline")
    assert chunks == ["Intro.\n\n" + fence, "Outro text that is long."]


def test_whitespace_class_matches_str_isspace() -> None:
    # The regexes must strip exactly what str.strip() strips, or chunks could start blank.
    matcher = regex.compile(f"[{chunking._WS}]")
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        if 0xD800 <= cp <= 0xDFFF:
            continue
        assert bool(matcher.fullmatch(ch)) == ch.isspace(), hex(cp)


def test_find_break_sentence_preference_treats_line_breaks_as_sentence_ends() -> None:
    text = "Heading without dot\nbody text goes on and on"
    assert find_break(text, 0, 30, "sentence") == text.index("\n")


def test_find_break_rejects_unknown_preference() -> None:
    with pytest.raises(ValueError, match="'paragraph', 'newline' or 'sentence'"):
        find_break("abc def", 0, 5, "word")


# --- properties ---

_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12)
_FRAGMENTS = st.one_of(
    _WORD,
    st.sampled_from(
        [
            " ",
            "  ",
            "\n",
            "\n\n",
            "\r\n",
            "\t",
            "\u3000",
            ". ",
            "! ",
            "? ",
            ".",
            "。",
            "！",
            "？",
            "；",
            "，",
            "、",
            "你好",
            "世界",
            "微信消息",
            FAMILY,
            RAINBOW_FLAG,
            THUMBS,
            E_ACUTE,
            "🇨🇳",
            "🇺",
            "🇸",
            "\u0915\u094d\u0937",
            "x" * 30,
            "中" * 25,
        ]
    ),
)
_PROSE = st.lists(_FRAGMENTS, max_size=40).map("".join)
_CODE_LINE = st.builds(
    lambda indent, body: indent + body,
    st.sampled_from(["", "  ", "    "]),
    st.lists(
        _FRAGMENTS.filter(lambda f: f.strip() and "\n" not in f and "\r" not in f),
        min_size=1,
        max_size=8,
    ).map("".join),
)
_FENCE = st.builds(
    lambda lang, lines: f"\n```{lang}\n" + "\n".join(lines) + "\n```\n",
    st.sampled_from(["", "python", "js"]),
    st.lists(_CODE_LINE, min_size=1, max_size=12),
)
_DOCUMENT = st.lists(st.one_of(_PROSE, _FENCE), min_size=1, max_size=8).map("".join)
_LIMIT = st.integers(min_value=40, max_value=300)
_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(_DOCUMENT, _LIMIT)
def test_every_chunk_fits_and_none_is_empty_or_padded(text: str, limit: int) -> None:
    for mode in ("length", "newline"):
        for chunk in chunk_text(text, limit, mode):
            assert 0 < len(chunk) <= limit
            assert chunk == chunk.strip()


@_SETTINGS
@given(_DOCUMENT, _LIMIT)
def test_chunks_rejoin_to_the_input_up_to_dropped_whitespace_and_fence_lines(
    text: str, limit: int
) -> None:
    chunks = chunk_text(text, limit)
    spans = locate(text, chunks)
    for chunk, (start, end, prefix, suffix) in zip(chunks, spans, strict=True):
        assert chunk == prefix + text[start:end] + suffix


@_SETTINGS
@given(_DOCUMENT, _LIMIT)
def test_newline_mode_loses_nothing_but_whitespace(text: str, limit: int) -> None:
    def squash(s: str) -> str:
        kept = [line for line in s.split("\n") if not is_fence_line(line.strip())]
        return "".join("".join(kept).split())

    assert "".join(squash(c) for c in chunk_text(text, limit, "newline")) == squash(text)


@_SETTINGS
@given(_DOCUMENT, _LIMIT)
def test_chunk_boundaries_are_grapheme_boundaries(text: str, limit: int) -> None:
    cuts = boundaries(text)
    for start, end, _, _ in locate(text, chunk_text(text, limit)):
        assert start in cuts and end in cuts, (start, end)


@_SETTINGS
@given(_DOCUMENT, _LIMIT)
def test_a_fence_is_only_cut_when_no_break_outside_it_fits(text: str, limit: int) -> None:
    fences = fence_spans(text)
    chunks = chunk_text(text, limit)
    for chunk, (start, _end, prefix, suffix) in zip(chunks, locate(text, chunks), strict=True):
        # Every chunk is self-contained code-wise: its fence lines pair up.
        assert sum(is_fence_line(line) for line in chunk.split("\n")) % 2 == 0
        if not suffix:
            continue
        window_end = start + limit - len(prefix)
        # Cut inside a fence: the whole window must lie inside that one fence, so no
        # fence-free break (not even a hard one) was available.
        assert any(a <= start and b > window_end for a, b in fences), (start, window_end)


@_SETTINGS
@given(_DOCUMENT, _LIMIT)
def test_by_utf16_units_every_chunk_fits_and_nothing_is_lost_or_split(
    text: str, limit: int
) -> None:
    chunks = chunk_text(text, limit, units="utf16")
    assert all(0 < utf16(chunk) <= limit and chunk == chunk.strip() for chunk in chunks)
    cuts = boundaries(text)
    for chunk, (start, end, prefix, suffix) in zip(chunks, locate(text, chunks), strict=True):
        assert chunk == prefix + text[start:end] + suffix
        assert start in cuts and end in cuts, (start, end)
    for chunk in chunk_text(text, limit, "newline", "utf16"):
        assert 0 < utf16(chunk) <= limit


@_SETTINGS
@given(st.lists(st.one_of(_PROSE, _FENCE), min_size=1, max_size=8), _LIMIT)
def test_fences_that_fit_are_never_cut(parts: list[str], limit: int) -> None:
    text = "".join(parts)
    if any(b - a > limit for a, b in fence_spans(text)):
        return
    for chunk in chunk_text(text, limit):
        lines = chunk.split("\n")
        assert sum(is_fence_line(line) for line in lines) % 2 == 0
    # Every chunk is literally in the text: no fence line was added anywhere.
    assert all(not p and not s for _, _, p, s in locate(text, chunk_text(text, limit)))


def test_chunk_lines_keeps_lines_whole_and_cuts_only_a_line_over_the_longest() -> None:
    from wechat_sdk.outbound.chunking import chunk_lines

    text = "Pairing code: Q7MZ4KXP\n\nThey run:\nwechat-sdk pairing approve Q7MZ4KXP --account work"
    assert chunk_lines(text, 30, 2048) == [
        "Pairing code: Q7MZ4KXP",
        "They run:",
        "wechat-sdk pairing approve Q7MZ4KXP --account work",
    ]
    assert chunk_lines(text, 2048, 2048) == [text]
    assert chunk_lines("short\n" + "word " * 30, 10, 60) == [
        "short",
        *chunk_text(("word " * 30).strip(), 60),
    ]
