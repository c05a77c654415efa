"""Find the line of a dotted path in JSON5 text, so errors can point into the file.

json5 gives no positions, so this walks the text's tokens (strings, comments,
identifiers, punctuation) keeping a stack of keys. Only positions are computed here;
values are parsed by json5.
"""

from __future__ import annotations

import re

__all__ = ["duplicate_keys", "key_lines"]

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<punct>[{}\[\]:,])
  | (?P<word>[^\s{}\[\]:,"'/]+|/)
    """,
    re.VERBOSE | re.DOTALL,
)


def key_lines(text: str) -> dict[str, int]:
    """Map each dotted path (keys and list indexes) to the 1-based line where it starts."""
    return _walk(text)[0]


def duplicate_keys(text: str) -> list[tuple[str, int, int]]:
    """Each key written twice in one object (json5 keeps the last, silently): its dotted
    path, the line of its first writing and of the next.

    >>> duplicate_keys("{a: {b: 1,\n b: 2}}")
    [('a.b', 1, 2)]
    """
    return _walk(text)[1]


def _walk(text: str) -> tuple[dict[str, int], list[tuple[str, int, int]]]:
    lines: dict[str, int] = {}
    twice: list[tuple[str, int, int]] = []
    stack: list[_Frame] = []
    path: list[str] = []
    line = 1
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # unparseable: json5 reports it; positions stop here
            break
        kind, tok, start_line = m.lastgroup, m.group(), line
        line += tok.count("\n")
        pos = m.end()
        if kind in ("ws", "comment"):
            continue
        top = stack[-1] if stack else None
        if tok in ("{", "["):
            entered = False
            if top is not None and top.is_list:
                _enter(path, lines, str(top.index), start_line)
                top.index += 1
                entered = True
            stack.append(_Frame(is_list=tok == "[", entered=entered))
        elif tok in ("}", "]"):
            if top is None:
                break
            stack.pop()
            if top.key is not None:
                path.pop()
            if top.entered:
                path.pop()
        elif tok == ",":
            if top is not None and not top.is_list and top.key is not None:
                path.pop()
                top.key = None
        elif tok == ":":
            continue
        elif top is not None and top.is_list:  # a scalar list item
            lines.setdefault(".".join([*path, str(top.index)]), start_line)
            top.index += 1
        elif top is not None and top.key is None:  # a key
            key = tok[1:-1] if kind == "string" else tok
            if key in top.keys:
                twice.append((".".join([*path, key]), top.keys[key], start_line))
            top.keys.setdefault(key, start_line)
            _enter(path, lines, key, start_line)
            top.key = key
        # else: a scalar value of the current key
    return lines, twice


class _Frame:
    __slots__ = ("entered", "index", "is_list", "key", "keys")

    def __init__(self, *, is_list: bool, entered: bool) -> None:
        self.is_list = is_list
        self.entered = entered  # pushed a list index onto the path
        self.index = 0
        self.key: str | None = None
        self.keys: dict[str, int] = {}  # (an object's keys so far, and their lines)


def _enter(path: list[str], lines: dict[str, int], key: str, line: int) -> None:
    path.append(key)
    lines.setdefault(".".join(path), line)
