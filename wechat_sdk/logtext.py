"""What a log line shows of a string a peer chose (an id, a name, an error it sent).

A peer can send a 100 KB message id or a name with line breaks in it: :func:`shown` gives
at most ``limit`` characters, cut with an ellipsis, with control characters escaped, so
that one message can neither flood the log nor forge a line of it.

A library's own log text (the mcp SDK's, httpx's) may repeat a server's URL with its key,
or a request's headers: :func:`without_secrets` cuts URLs to their origin and masks
credentials, for the lines the gateway does not write itself. In a program that shows
those libraries' lines itself (``logging.basicConfig(level=logging.DEBUG)``),
:func:`hide_in_library_logs` masks the config's keys, and every URL's user part, in the
lines that name requests.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = [
    "as_httpx_writes",
    "hide_in_library_logs",
    "secret_forms",
    "shown",
    "url_secrets",
    "without_secrets",
]

# C0 and C1 controls (a newline, a carriage return, an escape sequence) and the Unicode
# line and paragraph separators: each would start a new line, or restyle one, in a log
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


#: a URL (its user part, path and query may hold a key), without a closing stop or comma
_URL = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'"<>]*[^\s'"<>.,;:!?)\]]""")
#: a URL's user part (``user:password@``, to the last ``@`` before its host), after the
#: ``://`` of its scheme: masked whatever its length (a URL's part, not a word of prose)
_USER_PART = re.compile(r"""(?<=://)[^\s/?#'"<>]+@""")
#: an authorization scheme and the word after it: ``Bearer sk-...``, ``Basic dXNl...``
_CREDENTIALS = re.compile(r"""(?i)\b(bearer|basic)(\s+)([^\s'",;]+)""")
#: what an issued credential holds and a word of prose does not ("a basic question"): a
#: digit, a symbol of base64 or of a token, or a capital after a small letter (asked only
#: after a scheme written in small letters: after ``Bearer``, as a header writes it, the
#: word is masked whatever it is)
_ISSUED = re.compile(r"[0-9+/=._~-]|[a-z][A-Z]")
_ISSUED_LENGTH = 20  # (or a run of letters longer than a word of prose)
#: a name's separator: ``: ``, ``=``, ``': '``
_SEPARATOR = r"""(['"]?[ \t]*[:=][ \t]*['"]?)"""
#: a name ending in authorization and its value, all of it whatever its scheme
#: (``Wechaty <token>``), over spaces
_AUTHORIZATION = re.compile(
    r"""(?i)(?<![\w-])([\w-]*authori[sz]ation)""" + _SEPARATOR + r"""[^\s'",;&}]+"""
    r"""(?:[ \t]+[^\s'",;&}]+)*"""
)
#: a name, its separator and its value's first word, after a scheme (``api-key: ...``,
#: ``'token': 'Bearer ...'``): a name is tried only where a word begins, so the time is
#: linear in the text's length, and the next name is tried after that word
_NAMED = re.compile(
    r"""(?<![\w-])([\w-]+)""" + _SEPARATOR + r"""((?i:(?:bearer|basic)[ \t]+)?[^\s'",;&}]+)"""
)
#: the words of a name: ``x-api-key``, ``api_key``, ``apiKey`` and ``APIKey`` end in ``key``
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+")
#: a word of a name that makes its value a secret: ``token``, ``client_secret``,
#: ``apikey``, ``api_keys``; not ``monkey``, ``author`` nor ``tokenizer``
_SECRET_WORD = re.compile(
    r"(?:api|access|auth|refresh|id|session|client|private|secret|master)?"
    r"(?:key|token|secret|passw(?:or)?d|passphrase|auth|credential)s?"
)
#: a name's last word that says its value is about a secret, not the secret:
#: ``token_count``, ``key_id``, ``auth_url``, ``password_policy``
_ABOUT_A_SECRET = re.compile(
    r"counts?|ids?|urls?|uri|polic(?:y|ies)|types?|names?|len(?:gth)?|size|limits?|path|file"
    r"|dir|kind|version|format|ttl|expiry|expires|usage|mode|enabled|required"
)
#: a scheme at the start of a secret's value: its name stays, the word after it is masked
_SCHEME = re.compile(r"(?i)(?:bearer|basic)[ \t]+")
#: the most of a line the rules read: they cut it to far less (:func:`without_secrets`)
_READ_MAX = 4000
#: the shortest value :func:`secret_forms` gives: a shorter one would mask common words
_SECRET_MIN_CHARS = 6


def _secret_name(name: str) -> bool:
    words = [w.lower() for w in _WORDS.findall(name)]
    if not words or _ABOUT_A_SECRET.fullmatch(words[-1]):
        return False
    return any(_SECRET_WORD.fullmatch(w) is not None for w in words)


def _masked(m: re.Match[str]) -> str:
    name, separator, value = m.groups()
    if not _secret_name(name):
        return m[0]
    scheme = _SCHEME.match(value)
    kept = scheme.end() if scheme else 0
    return f"{name}{separator}{value[:kept]}***"


def _scheme_masked(m: re.Match[str]) -> str:
    scheme, space, word = m.groups()
    if not scheme.islower() or _ISSUED.search(word) or len(word) >= _ISSUED_LENGTH:
        return f"{scheme}{space}***"
    return m[0]


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
    text = _AUTHORIZATION.sub(r"\1\2***", text)
    text = _NAMED.sub(_masked, text)
    return shown(_CREDENTIALS.sub(_scheme_masked, text), limit)


def secret_forms(values: Iterable[str]) -> list[str]:
    """The forms in which ``values`` (a key, header values) may come back in an error, to
    replace with ``***``: each value whole, and a header's credential without its scheme,
    whatever the scheme (``Bearer sk-1`` -> ``sk-1``: a server's 401 repeats the key it
    got). Longest first (a key inside a longer value is replaced with it), none under 6
    characters.

    >>> secret_forms(["Bearer sk-0123456789", "no"])
    ['Bearer sk-0123456789', 'sk-0123456789']
    """
    forms: set[str] = set()
    for value in values:
        forms.add(value)
        words = value.split(None, 1)
        if len(words) == 2:
            forms.add(words[1].strip())
    return sorted((f for f in forms if len(f) >= _SECRET_MIN_CHARS), key=len, reverse=True)


def url_secrets(url: str) -> list[str]:
    """What a URL may hold of a key: its user part (``user:password``) and its query."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    return [parts.netloc.rpartition("@")[0], parts.query]


#: the loggers that name each request, its URL or its headers, by the name each logs under
#: (a logger's filter sees only the records made on it, not those of the loggers below it)
_REQUEST_LOGGERS = (
    "httpx",  # INFO: "HTTP Request: POST <url>"
    "openai._base_client",  # DEBUG: "Request options: {... 'headers': ...}"
    "mcp.client.streamable_http",  # DEBUG: "Connecting to StreamableHTTP endpoint: <url>"
    "mcp.client.sse",
)


class _KnownSecrets(logging.Filter):
    """Masks the config's secrets, and every URL's user part (``https://***@host``), in a
    library's record, for whatever handler shows it."""

    def __init__(self) -> None:
        super().__init__()
        # each text to mask and what it becomes, the longest first (a tuple replaced
        # whole: a thread's record never sees it half updated)
        self.masks: tuple[tuple[str, str], ...] = ()

    def filter(self, record: logging.LogRecord) -> bool:
        # (a filter's error would be raised into the library's own call: never)
        try:
            text = record.getMessage()
        except Exception:
            return True
        masked = _USER_PART.sub("***@", text)
        for secret, shown_as in self.masks:
            masked = masked.replace(secret, shown_as)
        if masked != text:
            record.msg, record.args = masked, None
        return True


_KNOWN_SECRETS = _KnownSecrets()


def hide_in_library_logs(
    values: Iterable[str], *, urls: Iterable[str] = (), url_paths: Iterable[str] = ()
) -> None:
    """Mask ``values`` (in their :func:`secret_forms`), and the user part of every URL
    whatever its length (``https://***@host``), in the lines of the libraries that name
    each request (httpx's, the openai and mcp SDKs'), whatever shows those lines: a
    program's own ``logging.basicConfig(level=logging.DEBUG)`` shows them all. Called by
    each client the config builds, with its keys, headers' values and URLs' secrets.

    ``urls``: the URLs the config names: the query of each is masked where it follows
    that URL's host and path (``llm.example.com/v1?***``), whatever its length (a short
    query masked wherever it shows would mask common text). ``url_paths``: URLs whose path
    is a key too (a webhook's, ``/webhook/<uuid>``): the path is masked where it follows
    that URL's host (``n8n.example.com/***``), not elsewhere, so that a common path
    (``/api/chat``) in another server's line is shown. Each URL as written and as httpx
    writes it (:func:`as_httpx_writes`)."""
    masks = {form: "***" for form in secret_forms(values)}
    keyed = set(url_paths)
    for url in dict.fromkeys([*urls, *url_paths]):
        for form in dict.fromkeys((url, as_httpx_writes(url))):
            masks.update(_url_masks(form, path_is_key=url in keyed))
    if not masks.items() <= dict(_KNOWN_SECRETS.masks).items():
        joined = {**dict(_KNOWN_SECRETS.masks), **masks}
        by_length = sorted(joined.items(), key=lambda m: len(m[0]), reverse=True)
        _KNOWN_SECRETS.masks = tuple(by_length)
    for name in _REQUEST_LOGGERS:  # (a URL's user part is masked with no key given too)
        logger = logging.getLogger(name)
        if _KNOWN_SECRETS not in logger.filters:
            logger.addFilter(_KNOWN_SECRETS)


def _url_masks(url: str, *, path_is_key: bool) -> dict[str, str]:
    """What of ``url`` to mask after its host (as written, without a user part): its
    query (``{"host/path?query": "host/path?***"}``) and, when ``path_is_key``, its path
    (``{"host/path": "host/***"}``, when it has one beyond ``/``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return {}
    host = parts.netloc.rpartition("@")[2]
    if not host:
        return {}
    masks: dict[str, str] = {}
    path = shown_path = parts.path
    if path_is_key and len(path) > 1:
        shown_path = "/***"
        masks[f"{host}{path}"] = f"{host}{shown_path}"
    if parts.query:
        masks[f"{host}{path}?{parts.query}"] = f"{host}{shown_path}?***"
    return masks


def as_httpx_writes(url: str) -> str:
    """``url`` as httpx's messages write it (its host in small letters, no default port,
    the path percent-encoded); ``url`` itself when httpx takes it for no URL (config check
    said so)."""
    import httpx

    try:
        return str(httpx.URL(url))
    except (httpx.InvalidURL, TypeError, ValueError):
        return url
