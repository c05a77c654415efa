"""What a log line shows of a string a peer chose (an id, a name, an error it sent).

A peer can send a 100 KB message id or a name with line breaks in it: :func:`shown` gives
at most ``limit`` characters, cut with an ellipsis, with control characters escaped, so
that one message can neither flood the log nor forge a line of it.

A library's own log text (the mcp SDK's, httpx's) may repeat a server's URL with its key,
or a request's headers: :func:`without_secrets` cuts URLs to their origin and masks
credentials, for the lines the gateway does not write itself.
"""

from __future__ import annotations

import re

__all__ = ["shown", "without_secrets"]

# C0 and C1 controls (a newline, a carriage return, an escape sequence) and the Unicode
# line and paragraph separators: each would start a new line, or restyle one, in a log
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


#: a URL (its user part, path and query may hold a key), without a closing stop or comma
_URL = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'"<>]*[^\s'"<>.,;:!?)\]]""")
#: an authorization scheme's credentials: ``Bearer sk-...``
_CREDENTIALS = re.compile(r"""(?i)\b(bearer|basic)(\s+)[^\s'",;]+""")
#: a name, its separator and its value (``api-key: ...``, ``'token': '...'``): a name is
#: tried only where a word begins, so the time is linear in the text's length
_NAMED = re.compile(
    r"""(?<![\w-])([\w-]+)(['"]?[ \t]*[:=][ \t]*['"]?)([^\s'",;&}]+(?:[ \t]+[^\s'",;&}]+)*)"""
)
#: names whose value is a secret; an authorization's is all of it (``Wechaty <token>``)
_SECRET_NAME = re.compile(r"(?i)key|token|secret|passw(?:or)?d|auth")
_WHOLE_VALUE = re.compile(r"(?i)authori[sz]ation")
#: the most of a line the rules read: they cut it to far less (:func:`without_secrets`)
_READ_MAX = 4000


def _masked(m: re.Match[str]) -> str:
    name, separator, value = m.groups()
    if not _SECRET_NAME.search(name):
        return m[0]
    if _WHOLE_VALUE.search(name):
        return f"{name}{separator}***"
    first = value.split(maxsplit=1)[0]
    if first.lower() in ("bearer", "basic"):
        return m[0]  # (a scheme: _CREDENTIALS masks what follows it)
    return f"{name}{separator}***{value[len(first) :]}"


def _escaped(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]


def shown(text: object, limit: int = 80) -> str:
    """``text`` as a log line may show it: at most ``limit`` characters (the last one an
    ellipsis when it was cut), control characters escaped (``\\n``)."""
    s = str(text)[: limit + 1]  # never more than is shown: escaping only makes it longer
    s = _CONTROL.sub(_escaped, s)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def without_secrets(text: str, limit: int = 500) -> str:
    """``text`` (a library's log line) as the log may show it: each URL cut to its origin,
    credentials masked, then :func:`shown` (``limit`` characters, controls escaped).

    >>> without_secrets("401 for url 'https://u:pw@m.example/mcp?key=k1' Bearer sk-1")
    "401 for url 'https://m.example' Bearer ***"
    """
    from wechat_sdk.config.integrations import origin_of

    text = _URL.sub(lambda m: origin_of(m.group()), text[:_READ_MAX])
    text = _NAMED.sub(_masked, text)
    return shown(_CREDENTIALS.sub(r"\1\2***", text), limit)
