"""A name a peer chose (a stranger's display name, a group's topic), as the owner and the
model are given it.

Any WeChat user sets their own name, and any member may rename a group: a line break, a
format character (a right-to-left override shows what follows backwards) or an escape
code in one could forge the lines it sits among (the id and code lines of a pairing
notice, a line of the system prompt, another sender's message line). :func:`one_line_name`
gives it as one line of plain text, cut to :data:`NAME_MAX_CHARS`.
"""

from __future__ import annotations

import unicodedata

__all__ = ["NAME_MAX_CHARS", "one_line_name"]

#: Characters of a name kept (the owner reads it beside the id; the model beside a message).
NAME_MAX_CHARS = 64


def one_line_name(name: str, fallback: str = "") -> str:
    """``name`` as one line of plain text: each line break, other control or format
    character and space of another kind is a space, runs of them one; cut to
    :data:`NAME_MAX_CHARS`; ``fallback`` (the peer's id) when nothing is left.

    >>> one_line_name("Mom\\n(wxid_mom)\\u202e", "wxid_x")
    'Mom (wxid_mom)'
    """
    plain = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in name)
    text = " ".join(plain.split()) or fallback
    return text if len(text) <= NAME_MAX_CHARS else text[: NAME_MAX_CHARS - 1] + "…"
