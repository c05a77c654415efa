"""Markdown to readable plain text: WeChat shows markdown raw, asterisks and all.

Only markup that reads as noise is removed (emphasis, heading markers, link syntax,
inline-code backticks). Structure a reader needs is kept: list items (``-``/``*`` become
``•``), numbered items, blockquotes, and fenced code blocks, which pass through verbatim
with their fence lines so code stays recognisable.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from typing import Final

__all__ = ["MARKDOWN_MODES", "format_reply", "to_plain"]

#: Accepted values of ``markdown`` for :func:`format_reply`.
MARKDOWN_MODES: Final = ("plain", "keep")

_FENCE: Final = re.compile(r"^ {0,3}(?P<marker>`{3,}|~{3,})(?P<rest>.*)$")
_HR: Final = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_SETEXT: Final = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")
_HEADING: Final = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+(?P<text>.*?))?(?:[ \t]+#+)?[ \t]*$")
_BULLET: Final = re.compile(r"^(?P<indent>[ \t]*)[-*+][ \t]+(?=\S)")
_NUMBERED: Final = re.compile(r"^[ \t]*[0-9]{1,9}[.)][ \t]")
_QUOTE: Final = re.compile(r"^(?P<prefix>(?:[ \t]{0,3}>[ \t]?)+)")

# Spans that must not be touched by emphasis rules: inline code, escapes, links, URLs.
# Linear time on any text (a model's reply is not trusted): a span never runs on over the
# start of another one ("[", "<"), or each of many starts would scan the rest of the line.
_TICKS: Final = re.compile(r"`+")  # a run of backticks: code spans pair them (_code_spans)
_ESCAPE: Final = re.compile(r"\\(?P<char>[!-/:-@\[-`{-~])")
# a URL may hold brackets (ids[]=1, http://[::1]/), never a "[...](" that starts a link
_URL: Final = r"(?P<url>(?:[^)\s\[]|\[[^\[\]()\s]*\](?!\())+)"
_TITLE: Final = r"(?:[ \t]+\"[^\"]*\")?\)"
_IMAGE: Final = re.compile(r"!\[(?P<alt>[^\[\]]*)\]\(" + _URL + _TITLE)
_LINK: Final = re.compile(r"\[(?P<label>[^\[\]]+)\]\(" + _URL + _TITLE)
_AUTOLINK: Final = re.compile(r"<(?P<url>(?:https?|mailto):[^<>\s]+)>")
_BARE_URL: Final = re.compile(r"(?:https?://|www\.)[^\s<>()\[\]]+")

# Emphasis needs a non-space right after the opener and right before the closer, so
# "2 * 3 * 4" stays; underscores also need no word character outside, so snake_case stays,
# and no ".name" right after, so __init__.py stays (CommonMark would embolden it). A span
# never holds its own marker (it closes at the nearest one, as in CommonMark): an opener
# without a closer stops at the next marker, so the rules take linear time. Stars with an
# ASCII letter or digit on both sides, at the opener and at the closer, are arithmetic,
# not emphasis ("2*3*4", "x**2**y"), where CommonMark would emphasise inside the word;
# "**API**s" and "AI**很重要**" are emphasis (:func:`_unless_arithmetic`).
_STRIKE: Final = re.compile(r"~~(?=\S)(?P<x>(?:[^~]|~(?!~))+?)(?<=\S)~~")
_BOLD_STAR: Final = re.compile(r"\*\*(?=[^\s*])(?P<x>(?:[^*]|\*(?!\*))+?)(?<=[^\s*])\*\*")
_BOLD_UNDER: Final = re.compile(
    r"(?<![\w_])__(?=[^\s_])(?P<x>(?:[^_]|_(?!_))+?)(?<=[^\s_])__(?![\w_]|\.\w)"
)
_ITALIC_STAR: Final = re.compile(r"(?<!\*)\*(?=[^\s*])(?P<x>[^*]+?)(?<=[^\s*])\*(?!\*)")
_ITALIC_UNDER: Final = re.compile(r"(?<![\w_])_(?=[^\s_])(?P<x>[^_]+?)(?<=[^\s_])_(?![\w_]|\.\w)")

# Private-use characters mark protected spans while the emphasis rules run.
_HOLD_OPEN: Final = "\ue000"
_HOLD_CLOSE: Final = "\ue001"
_HELD: Final = re.compile(f"{_HOLD_OPEN}(?P<i>[0-9]+){_HOLD_CLOSE}")


def format_reply(text: str, markdown: str) -> str:
    """Format a reply for WeChat: ``markdown`` is "plain" (convert) or "keep" (as is)."""
    if markdown == "plain":
        return to_plain(text)
    if markdown == "keep":
        return text
    raise ValueError(f"unknown markdown mode {markdown!r}: use 'plain' or 'keep'")


#: Every character some rule below looks for: text with none of them is already plain.
_MARKUP_CHARS: Final = frozenset("`~-*_=#+>\\[<" + _HOLD_OPEN + _HOLD_CLOSE)


def to_plain(text: str) -> str:
    """Turn markdown into plain text that reads well without a renderer."""
    if _MARKUP_CHARS.isdisjoint(text):
        return text  # the common chat reply: no rule could change it
    return _to_plain(text)


def _to_plain(text: str) -> str:
    out: list[str] = []
    fence: str | None = None  # the opening marker while inside a fenced block
    previous = ""
    for line in text.split("\n"):
        if fence is not None:
            out.append(line)
            m = _FENCE.match(line)
            closes = m and m["marker"][0] == fence[0] and len(m["marker"]) >= len(fence)
            if closes and m and not m["rest"].strip():
                fence = None
            previous = ""
            continue
        m = _FENCE.match(line)
        if m and not (m["marker"][0] == "`" and "`" in m["rest"]):
            fence = m["marker"]
            out.append(line)
            previous = ""
            continue
        converted = _convert_line(line, previous)
        if converted is not None:
            out.append(converted)
        previous = line
    return "\n".join(out)


def _convert_line(line: str, previous: str) -> str | None:
    """One line outside code; ``None`` drops it (a setext heading underline)."""
    if _SETEXT.match(line) and _is_paragraph(previous):
        # CommonMark: "Title" followed by === or --- is a heading; keep only its text.
        return None
    if _HR.match(line):
        return "———"
    quote = _QUOTE.match(line)
    prefix = ""
    if quote:
        # Blockquotes are kept as they are; only their content is cleaned.
        prefix = quote["prefix"]
        line = line[quote.end() :]
    heading = _HEADING.match(line)
    if heading:
        return prefix + _inline(heading["text"] or "")
    bullet = _BULLET.match(line)
    if bullet:
        return prefix + bullet["indent"] + "• " + _inline(line[bullet.end() :])
    return prefix + _inline(line)


def _is_paragraph(line: str) -> bool:
    """Whether ``line`` is ordinary paragraph text (what a setext underline applies to)."""
    if not line.strip():
        return False
    return not any(
        p.match(line) for p in (_HR, _HEADING, _BULLET, _QUOTE, _NUMBERED, _SETEXT, _FENCE)
    )


def _inline(text: str) -> str:
    """Remove inline markup from one line, leaving code, URLs and escaped characters."""
    held: list[str] = []

    def hold(value: str) -> str:
        held.append(value)
        return f"{_HOLD_OPEN}{len(held) - 1}{_HOLD_CLOSE}"

    def protect(pattern: re.Pattern[str], render: Callable[[re.Match[str]], str]) -> None:
        nonlocal text
        text = pattern.sub(lambda m: hold(render(m)), text)

    spans = _code_spans(text)
    if spans:
        parts, at = [], 0
        for start, end, code in spans:
            parts += [text[at:start], hold(_render_code(code))]
            at = end
        text = "".join([*parts, text[at:]])
    protect(_ESCAPE, lambda m: m["char"])
    protect(_IMAGE, lambda m: _render_link(_emphasis(m["alt"]), m["url"]))
    protect(_LINK, lambda m: _render_link(_emphasis(m["label"]), m["url"]))
    protect(_AUTOLINK, lambda m: m["url"])
    protect(_BARE_URL, lambda m: m[0])
    text = _emphasis(text)
    # Held spans may hold other held spans (a link label with code); each pass expands
    # one level, so len(held) + 1 passes always suffice.
    for _ in range(len(held) + 1):
        if not _HELD.search(text):
            break
        text = _HELD.sub(lambda m: _unhold(held, m), text)
    return text


def _unhold(held: list[str], m: re.Match[str]) -> str:
    i = int(m["i"])
    # Text that already held these private-use characters is left alone.
    return held[i] if i < len(held) else m[0]


def _code_spans(text: str) -> list[tuple[int, int, str]]:
    """Each inline code span's start, end and code: a run of backticks up to the next run
    of the same length, as in CommonMark (a run with none is literal). Runs are paired by
    length, so the time is linear whatever runs the text holds."""
    runs = [(m.start(), m.end()) for m in _TICKS.finditer(text)]
    if len(runs) < 2:
        return []
    by_length: dict[int, list[int]] = {}
    for i, (start, end) in enumerate(runs):
        by_length.setdefault(end - start, []).append(i)
    spans: list[tuple[int, int, str]] = []
    i = 0
    while i < len(runs):
        start, end = runs[i]
        same = by_length[end - start]
        k = bisect.bisect_right(same, i)
        if k == len(same):
            i += 1  # no closer of its length: literal backticks
            continue
        close_start, close_end = runs[same[k]]
        spans.append((start, close_end, text[end:close_start]))
        i = same[k] + 1
    return spans


def _render_code(code: str) -> str:
    # CommonMark strips one space of padding on both sides (used to show a backtick).
    if len(code) > 2 and code[0] == " " and code[-1] == " " and code.strip():
        code = code[1:-1]
    return code


def _render_link(label: str, url: str) -> str:
    if not label.strip():
        return url
    return url if label == url else f"{label} ({url})"


#: Layers of the same marker peeled (``***x***`` needs two); deeper nesting is no one's
#: writing, and each layer is a pass over the line.
_EMPHASIS_LAYERS: Final = 3


def _inner(m: re.Match[str]) -> str:
    return m["x"]


def _between_ascii(text: str, before: int, after: int) -> bool:
    """Whether ``text[before]`` and ``text[after]`` are both ASCII letters or digits."""
    if before < 0 or after >= len(text):
        return False
    pair = text[before] + text[after]
    return pair.isascii() and pair.isalnum()


def _unless_arithmetic(m: re.Match[str]) -> str:
    """A star span's text, or the span as written when both its markers sit between
    ASCII letters or digits ("2*3*4", "x**2**y")."""
    text, start, end, size = m.string, m.start(), m.end(), m.start("x") - m.start()
    if _between_ascii(text, start - 1, start + size) and _between_ascii(text, end - size - 1, end):
        return m[0]
    return m["x"]


def _emphasis(text: str) -> str:
    for pattern in (_STRIKE, _BOLD_STAR, _BOLD_UNDER, _ITALIC_STAR, _ITALIC_UNDER):
        unmark = _unless_arithmetic if pattern in (_BOLD_STAR, _ITALIC_STAR) else _inner
        # Repeat so nested markers (***x***, **_x_**) are peeled one layer at a time.
        for _ in range(_EMPHASIS_LAYERS):
            new = pattern.sub(unmark, text)
            if new == text:
                break
            text = new
    return text
