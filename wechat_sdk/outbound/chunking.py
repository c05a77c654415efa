"""Split long replies into chunks no longer than WeChat's text limit.

Break preference, best first: paragraph break (blank line) > line break > sentence end
(``.!?`` before whitespace, ``。！？；`` anywhere) > whitespace or CJK comma (``，、``) > a hard
break at a grapheme-cluster boundary. The LAST break of the best class inside the window
wins. Fenced code blocks are kept whole when they fit; a fence longer than the limit is
closed at the end of a chunk and reopened (same opening line) at the start of the next.

Lengths are code points, or UTF-16 code units for a transport that counts those
(``units="utf16"``: iLink, as Tencent's client counts JavaScript's string length, where an
emoji beyond the BMP is 2); either way a cut falls between two graphemes. The work is
linear in the text: fences are found with one regex pass, and every other search runs
backwards inside one window of at most ``limit`` characters, so no character is examined
more than a bounded number of times.
"""

from __future__ import annotations

import bisect
import re
from typing import Final, NamedTuple

import regex

__all__ = [
    "BREAK_PREFERENCES",
    "CHUNK_MODES",
    "TEXT_UNITS",
    "Chunk",
    "chunk_lines",
    "chunk_text",
    "cut_chunks",
    "find_break",
    "grapheme_count",
    "open_fence_start",
    "text_length",
]

#: Accepted values of ``mode`` for :func:`chunk_text`.
CHUNK_MODES: Final = ("length", "newline")
#: How a length is counted (``units`` of :func:`chunk_text` and :func:`text_length`):
#: characters (code points), or UTF-16 code units (JavaScript's string length).
TEXT_UNITS: Final = ("code_points", "utf16")
#: Accepted values of ``prefer`` for :func:`find_break`.
BREAK_PREFERENCES: Final = ("paragraph", "newline", "sentence")

# Exactly the characters ``str.isspace()`` accepts, so the regexes agree with str.strip()
# (the regex module's \s follows Unicode White_Space, which differs in a few code points).
_WS_NO_NL: Final = (
    "\t\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
)
_WS: Final = "\n" + _WS_NO_NL
# Characters that glue onto the previous one: cutting just before them splits a cluster.
_JOINS: Final = r"\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=SpacingMark}"

_SENTENCE: Final = rf"[.!?](?=[{_WS}])|[。！？；](?=[^{_JOINS}])"
_SOFT: Final = rf"[{_WS}]|[，、](?=[^{_JOINS}])"

# Searched with REVERSE so a search stops at the last match instead of listing the window.
_PARA_R: Final = regex.compile(rf"\n[{_WS_NO_NL}]*\n", regex.REVERSE)
_LINE_R: Final = regex.compile(r"\n", regex.REVERSE)
_SENT_R: Final = regex.compile(_SENTENCE, regex.REVERSE)
_SENT_LINE_R: Final = regex.compile(rf"\n|{_SENTENCE}", regex.REVERSE)
_SOFT_R: Final = regex.compile(_SOFT, regex.REVERSE)

_ORDER: Final[dict[str, tuple[regex.Pattern[str], ...]]] = {
    "paragraph": (_PARA_R, _LINE_R, _SENT_R, _SOFT_R),
    # A paragraph break is also a line break, so "newline" simply starts one class lower.
    "newline": (_LINE_R, _SENT_R, _SOFT_R),
    # A line break ends a sentence too; without it a heading line would be cut mid-word.
    "sentence": (_SENT_LINE_R, _SOFT_R),
}

# A character that always starts a new grapheme cluster (unless a Prepend precedes it):
# a safe place to restart cluster segmentation close to the end of a window.
_ANCHOR_R: Final = regex.compile(r"(?<!\p{GCB=Prepend})[A-Za-z0-9 \p{Han}]", regex.REVERSE)
_LAST_CLUSTER: Final = regex.compile(r"(?:\X)*(\X)")
_ONE_CLUSTER: Final = regex.compile(r"\X")

_WS_RUN: Final = re.compile(f"[{_WS}]*")
_PARA_FWD: Final = re.compile(rf"\n[{_WS_NO_NL}]*\n")
# Code points beyond the BMP: two UTF-16 code units each.
_ASTRAL: Final = re.compile("[\U00010000-\U0010ffff]")


def text_length(text: str, units: str = "code_points") -> int:
    """``text``'s length in ``units`` (one of :data:`TEXT_UNITS`)."""
    if units == "code_points":
        return len(text)
    if units == "utf16":
        # (surrogatepass: a lone surrogate, which a str may hold, is one unit)
        return len(text.encode("utf-16-le", "surrogatepass")) // 2
    raise ValueError(f"unknown text units {units!r}: use 'code_points' or 'utf16'")


def grapheme_count(text: str) -> int:
    """How many characters a user sees in ``text``: grapheme clusters (an emoji with
    its skin tone, a ZWJ family, a flag, a letter with its accents are one each)."""
    return len(_ONE_CLUSTER.findall(text))


class _Measure:
    """Lengths of the pieces of one text in ``units``, by position (code points)."""

    def __init__(self, text: str, units: str) -> None:
        text_length("", units)  # (an unknown unit is refused here, before any work)
        self.units = units
        # where the two-unit characters are (none counted by code points)
        self._wide = [m.start() for m in _ASTRAL.finditer(text)] if units == "utf16" else []

    def size(self, piece: str) -> int:
        return text_length(piece, self.units)

    def width(self, start: int, end: int) -> int:
        """The length of ``text[start:end]``."""
        wide = self._wide
        return end - start + bisect.bisect_left(wide, end) - bisect.bisect_left(wide, start)

    def reach(self, start: int, room: int) -> int:
        """The furthest ``end`` with ``width(start, end) <= room`` (``start`` itself when
        even the first character is wider than the room)."""
        if not self._wide:
            return start + room
        lo, hi = start, start + max(room, 0)
        while lo < hi:  # the width grows with the end: the last end that fits
            mid = (lo + hi + 1) // 2
            if self.width(start, mid) <= room:
                lo = mid
            else:
                hi = mid - 1
        return lo


class _Fence(NamedTuple):
    """One fenced code block. Cutting strictly between ``start`` and ``end`` is in-fence."""

    start: int  # first fence character of the opening line
    end: int  # end of the closing line (len(text) when unclosed)
    first_code: int  # first non-whitespace character of the content
    code_end: int  # just after the last non-whitespace character of the content
    reopen: str  # opening line plus newline, put in front of a continuation chunk
    close: str  # newline plus closing marker, put after a chunk cut inside the fence
    closed: bool  # False: the text ends inside this fence


class _FenceLine(NamedTuple):
    """A line that starts (after up to three spaces) with three or more ` or ~."""

    line_start: int
    start: int  # first fence character
    end: int  # end of the line, before its newline
    marker: str  # the run of fence characters
    rest: str  # what follows the marker on the line (the info string when opening)


class Chunk(NamedTuple):
    """One chunk of :func:`cut_chunks`."""

    text: str  # the chunk as sent, with the fence lines added when cut inside a fence
    begin: int  # where its own text starts in the text that was cut (after ``reopen``)
    reopen: str  # the fence opening line put in front of it ("" unless it continues a fence)


def chunk_text(
    text: str, limit: int = 2048, mode: str = "length", units: str = "code_points"
) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` ``units`` (``mode``: length|newline;
    ``units``: code_points|utf16, see :data:`TEXT_UNITS`)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an integer of at least 1, got {limit!r}; raise it")
    if mode not in CHUNK_MODES:
        raise ValueError(f"unknown chunk mode {mode!r}: use 'length' or 'newline'")
    if text_length(text, units) <= limit:
        stripped = text.strip()
        return [stripped] if stripped else []
    if mode == "newline":
        return _chunk_paragraphs(text, limit, units)
    return _chunk_length(text, limit, units)


def chunk_lines(text: str, limit: int, longest: int, units: str = "code_points") -> list[str]:
    """``text`` cut only between lines: each chunk holds as many whole lines as fit in
    ``limit`` ``units``; a line longer than that is a chunk of its own, whole, up to
    ``longest`` (only a line longer than ``longest`` is cut, as :func:`chunk_text` cuts).
    For a text whose lines must stay whole (a pairing code's: its code and the command
    that approves it). Blank lines between chunks are dropped.

    >>> chunk_lines("Code: Q7MZ\\n\\nRun: approve Q7MZ --account work", 12, 100)
    ['Code: Q7MZ', 'Run: approve Q7MZ --account work']
    """
    groups: list[str] = []
    current: str | None = None
    for line in text.split("\n"):
        joined = line if current is None else f"{current}\n{line}"
        if current is None or text_length(joined.strip(), units) <= limit:
            current = joined
        else:
            groups.append(current)
            current = line
    if current is not None:
        groups.append(current)
    chunks: list[str] = []
    for group in groups:
        group = group.strip()
        if text_length(group, units) > longest:
            chunks.extend(chunk_text(group, longest, units=units))
        elif group:
            chunks.append(group)
    return chunks


def cut_chunks(
    text: str, limit: int, prefer: str = "paragraph", units: str = "code_points"
) -> list[Chunk]:
    """``text`` cut as :func:`chunk_text` cuts it (length mode), trying ``prefer`` first
    outside fenced code.

    The last chunk is what was left once it fitted (its ``text`` is empty when only
    whitespace was left). For a text that is still growing (a stream), every chunk but the
    last is final, and ``last.reopen + text[last.begin:]`` is the rest to cut again once
    more text came: a fence is then closed and reopened exactly as in the whole text.
    ``limit`` is counted in ``units`` (see :data:`TEXT_UNITS`).
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit!r}; raise it")
    if prefer not in _ORDER:
        raise ValueError(
            f"unknown break preference {prefer!r}: use 'paragraph', 'newline' or 'sentence'"
        )
    measure = _Measure(text, units)
    fences = _scan_fences(text, limit, units)
    starts = [f.start for f in fences]
    end_text = len(text)
    while end_text > 0 and text[end_text - 1].isspace():
        end_text -= 1  # not text.rstrip(): that would copy the whole text
    chunks: list[Chunk] = []
    begin, solid = _next_start(text, 0, limit, fences, starts)
    prefix = ""  # the first chunk never continues a fence
    while solid < end_text:
        room = limit - measure.size(prefix)
        if measure.width(begin, end_text) <= room:
            chunks.append(Chunk(prefix + text[begin:end_text], begin, prefix))
            return chunks
        hi = measure.reach(begin, room)
        cut, close = _cut(text, fences, starts, begin, solid, hi, prefer)
        chunk = prefix + text[begin:cut].rstrip() + close
        if measure.size(chunk) > limit or not text[begin:cut].strip():
            # Safety net for degenerate inputs (a huge fence line, tiny limits): plain cut,
            # of one character at least (an emoji of 2 units under a limit of 1)
            cut = min(max(measure.reach(solid, limit), solid + 1), end_text)
            begin, prefix = solid, ""
            chunk = text[solid:cut].rstrip()
        chunks.append(Chunk(chunk, begin, prefix))
        begin, solid = _next_start(text, cut, limit, fences, starts)
        fence = _fence_at(fences, starts, solid)
        # Only a chunk that starts after a fence's opening line needs it repeated.
        prefix = fence.reopen if fence is not None and fence.start < begin else ""
    chunks.append(Chunk("", begin, ""))
    return chunks


def open_fence_start(text: str) -> int:
    """Where the fenced code block that ``text`` leaves open starts (``len(text)`` when
    every fence in it is closed): what comes before it can be sent without breaking code."""
    fences = _scan_fences(text, len(text), "code_points")
    if fences and not fences[-1].closed:
        return fences[-1].start
    return len(text)


def find_break(text: str, start: int, end: int, prefer: str = "paragraph") -> int:
    """Best cut ``p`` with ``start < p <= end`` for the piece ``text[start:p]``.

    ``prefer`` (paragraph|newline|sentence) is the best class tried; weaker classes and
    then a grapheme boundary follow. ``text[start]`` should not be whitespace.
    """
    if prefer not in _ORDER:
        raise ValueError(
            f"unknown break preference {prefer!r}: use 'paragraph', 'newline' or 'sentence'"
        )
    end = min(end, len(text))
    if end <= start + 1:
        return min(start + 1, len(text))
    found = _search(_ORDER[prefer], text, [(start + 1, end)])
    if found is not None:
        return found
    boundary = _last_boundary(text, start, end)
    # A single cluster longer than the room: the limit wins over the cluster.
    return boundary if boundary > start else end


def _search(
    order: tuple[regex.Pattern[str], ...], text: str, segments: list[tuple[int, int]]
) -> int | None:
    """Last cut of the best class found in ``segments`` (right to left, inclusive bounds)."""
    for pattern in order:
        for lo, hi in segments:
            found = _find_last(pattern, text, lo, hi)
            if found is not None:
                return found
    return None


def _find_last(pattern: regex.Pattern[str], text: str, lo: int, hi: int) -> int | None:
    """Largest cut ``p`` with ``lo <= p <= hi`` for one break class.

    A whitespace match cuts before itself, a punctuation match after itself; the search
    window reaches one character past ``hi`` so lookaheads can see what follows the cut.
    """
    if hi < lo:
        return None
    m = pattern.search(text, max(lo - 1, 0), min(hi + 1, len(text)))
    if m is None:
        return None
    at: int = m.start()
    cut: int = at if text[at].isspace() else m.end()
    # The rightmost match gives the rightmost cut; if even it is too far left, none fits.
    return cut if lo <= cut <= hi else None


def _last_boundary(text: str, known: int, hi: int) -> int:
    """Last grapheme-cluster boundary ``<= hi``; ``known`` must be a boundary itself."""
    if hi >= len(text):
        return len(text)
    if hi <= known:
        return known
    # Restart segmentation at a nearby anchor so the scan stays short in long windows.
    anchor = _ANCHOR_R.search(text, known, hi + 1)
    begin: int = anchor.start() if anchor is not None else known
    if begin == hi:
        return hi
    last = _LAST_CLUSTER.match(text, begin, hi)
    assert last is not None  # a non-empty range always holds one cluster
    cluster_start: int = last.start(1)
    whole = _ONE_CLUSTER.match(text, cluster_start)
    assert whole is not None
    # The window's last cluster may really continue past hi; then its start is the answer.
    whole_end: int = whole.end()
    return hi if whole_end <= hi else cluster_start


def _scan_fences(text: str, limit: int, units: str) -> list[_Fence]:
    """All fenced code blocks, in order, found with one pass over runs of fence characters."""
    fences: list[_Fence] = []
    opened: _FenceLine | None = None
    for at, run_end in _fence_runs(text):
        line_start = text.rfind("\n", 0, at) + 1
        if at - line_start > 3 or text[line_start:at].strip(" "):
            continue  # not at the start of a line: inline backticks, not a fence
        line_end = text.find("\n", run_end)
        if line_end < 0:
            line_end = len(text)
        line = _FenceLine(line_start, at, line_end, text[at:run_end], text[run_end:line_end])
        if opened is None:
            # CommonMark: a backtick fence's info string cannot contain backticks.
            if not (line.marker[0] == "`" and "`" in line.rest):
                opened = line
            continue
        if (
            line.marker[0] == opened.marker[0]
            and len(line.marker) >= len(opened.marker)
            and not line.rest.strip()
        ):
            fences.append(_make_fence(text, opened, line.line_start, line.end, limit, units, True))
            opened = None
    if opened is not None:
        fences.append(_make_fence(text, opened, len(text), len(text), limit, units, False))
    return fences


def _fence_runs(text: str) -> list[tuple[int, int]]:
    """Spans of every run of three or more ` or ~, in order.

    str.find is a fast C scan; a regex here (even a plain character class) walks the text
    an order of magnitude slower on non-ASCII strings.
    """
    runs: list[tuple[int, int]] = []
    for marker in ("```", "~~~"):
        char = marker[0]
        at = text.find(marker)
        while at >= 0:
            end = at + 3
            while end < len(text) and text[end] == char:
                end += 1
            runs.append((at, end))
            at = text.find(marker, end)
    runs.sort()
    return runs


def _make_fence(
    text: str,
    opened: _FenceLine,
    close_line: int,
    close_end: int,
    limit: int,
    units: str,
    closed: bool,
) -> _Fence:
    content_start = min(opened.end + 1, close_line)
    # Walk the whitespace at both ends instead of stripping a copy of the whole content.
    first_code = min(_skip_ws(text, content_start), close_line)
    code_end = close_line
    while code_end > first_code and text[code_end - 1].isspace():
        code_end -= 1
    reopen = (opened.marker + opened.rest).strip() + "\n"
    close = "\n" + opened.marker
    if text_length(reopen + close, units) > limit // 2:
        # Reopening would eat most of every chunk: treat the fence as plain text to cut.
        reopen, close = "", ""
    return _Fence(opened.start, close_end, first_code, code_end, reopen, close, closed)


def _fence_at(fences: list[_Fence], starts: list[int], pos: int) -> _Fence | None:
    """The fence with ``fence.start <= pos < fence.end``, if any."""
    i = bisect.bisect_right(starts, pos) - 1
    if i >= 0 and pos < fences[i].end:
        return fences[i]
    return None


def _free_segments(
    fences: list[_Fence], starts: list[int], lo: int, hi: int
) -> list[tuple[int, int]]:
    """Ranges of cuts in ``[lo, hi]`` outside every fence, right to left."""
    segments: list[tuple[int, int]] = []
    right = hi
    i = bisect.bisect_left(starts, hi) - 1  # fences opening before hi
    while right >= lo:
        if i < 0 or fences[i].end <= lo:
            segments.append((lo, right))
            break
        fence = fences[i]
        if fence.end <= right:
            segments.append((max(fence.end, lo), right))
        # A cut exactly at a fence's opening is outside it (it ends the previous chunk).
        right = fence.start
        i -= 1
    return segments


def _cut(
    text: str,
    fences: list[_Fence],
    starts: list[int],
    begin: int,
    solid: int,
    hi: int,
    prefer: str,
) -> tuple[int, str]:
    """Where to cut the chunk starting at ``begin`` (text[solid] is its first non-space),
    trying the break class ``prefer`` first outside fences (code is cut at its line breaks
    first, whatever ``prefer`` says).

    Returns the cut and the closing line to append when the cut falls inside a fence.
    (Its room is found by stepping back from ``hi`` as many characters as the closing line
    has: that line is ASCII, and any character stepped over is at least one unit.)
    """
    lo = solid + 1
    segments = _free_segments(fences, starts, lo, hi)
    found = _search(_ORDER[prefer], text, segments)
    if found is not None:
        return found, ""
    for seg_lo, seg_hi in segments:
        if seg_hi == hi:
            boundary = _last_boundary(text, begin, hi)
            if boundary >= seg_lo:
                return boundary, ""
        else:
            # The segment ends where a fence opens: just after a line break, a boundary.
            return seg_hi, ""
    # No fence-free break anywhere in the window: cut inside the fence we are in.
    fence = _fence_at(fences, starts, begin)
    close = fence.close if fence is not None else ""
    if fence is not None:
        code_lo = max(lo, fence.first_code + 1)
        # Stop before the last code character so the next chunk is not an empty fence.
        code_hi = min(hi - len(close), fence.code_end - 1)
        if code_lo <= code_hi:
            found = _search(_ORDER["paragraph"], text, [(code_lo, code_hi)])
            if found is not None:
                return found, close
            boundary = _last_boundary(text, begin, code_hi)
            if boundary >= code_lo:
                return boundary, close
    room_end = hi - len(close)
    boundary = _last_boundary(text, begin, room_end)
    return (boundary if boundary > solid else max(room_end, lo)), close


def _chunk_length(text: str, limit: int, units: str) -> list[str]:
    """Length mode: cut windows of ``limit`` at the best break, fence-aware."""
    return [chunk.text for chunk in cut_chunks(text, limit, units=units) if chunk.text]


def _skip_ws(text: str, pos: int) -> int:
    """First non-whitespace position at or after ``pos`` (``len(text)`` if none)."""
    m = _WS_RUN.match(text, pos)
    return m.end() if m is not None else pos


def _joins_next(text: str, pos: int) -> bool:
    """Whether the whitespace at ``pos`` forms one cluster with the character after it."""
    whole = _ONE_CLUSTER.match(text, pos)
    if whole is None:
        return False
    whole_end: int = whole.end()
    return whole_end > pos + 1


def _next_start(
    text: str, cut: int, limit: int, fences: list[_Fence], starts: list[int]
) -> tuple[int, int]:
    """Start of the next chunk and its first non-whitespace character."""
    solid = _skip_ws(text, cut)
    begin = solid
    if solid > cut and solid < len(text) and _joins_next(text, solid - 1):
        # " \u0301": the space carries a combining mark; dropping it would split a cluster.
        begin = solid - 1
    fence = _fence_at(fences, starts, solid)
    if fence is not None and fence.start < solid and fence.reopen:
        # Inside code, keep the indentation of the first line (it is part of the code).
        line = text.rfind("\n", cut, solid) + 1
        if line > 0 and solid - line <= limit // 4:
            begin = line
    return begin, solid


def _chunk_paragraphs(text: str, limit: int, units: str) -> list[str]:
    """Newline mode: pack whole paragraphs, length-split only an oversized one."""
    fences = _scan_fences(text, limit, units)
    paragraphs: list[str] = []
    last = 0
    i = 0
    for m in _PARA_FWD.finditer(text):
        at = m.start()
        while i < len(fences) and fences[i].end <= at:
            i += 1
        if i < len(fences) and fences[i].start < at:
            continue  # a blank line inside code is not a paragraph break
        paragraphs.append(text[last:at])
        last = m.end()
    paragraphs.append(text[last:])

    chunks: list[str] = []
    pack: list[str] = []
    size = 0
    for raw in paragraphs:
        para = raw.strip()
        if not para:
            continue
        length = text_length(para, units)
        if length > limit:
            if pack:
                chunks.append("\n\n".join(pack))
                pack, size = [], 0
            chunks.extend(_chunk_length(para, limit, units))
            continue
        extra = length + (2 if pack else 0)
        if pack and size + extra > limit:
            chunks.append("\n\n".join(pack))
            pack, size = [para], length
        else:
            pack.append(para)
            size += extra
    if pack:
        chunks.append("\n\n".join(pack))
    return chunks
