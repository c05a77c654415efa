"""What a log line shows of a string a peer chose (an id, a name, an error it sent).

A peer can send a 100 KB message id or a name with line breaks in it: :func:`shown` gives
at most ``limit`` characters, cut with an ellipsis, with control characters escaped, so
that one message can neither flood the log nor forge a line of it.
"""

from __future__ import annotations

import re

__all__ = ["shown"]

# C0 and C1 controls (a newline, a carriage return, an escape sequence) and the Unicode
# line and paragraph separators: each would start a new line, or restyle one, in a log
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escaped(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]


def shown(text: object, limit: int = 80) -> str:
    """``text`` as a log line may show it: at most ``limit`` characters (the last one an
    ellipsis when it was cut), control characters escaped (``\\n``)."""
    s = str(text)[: limit + 1]  # never more than is shown: escaping only makes it longer
    s = _CONTROL.sub(_escaped, s)
    return s if len(s) <= limit else s[: limit - 1] + "…"
