"""The ``webhooks`` and ``api`` blocks of ``channels.wechat`` (gateway-wide, top level only).

- ``webhooks: [{url, secret, events}]``: endpoints the gateway POSTs its events to, signed
  per Standard Webhooks with the endpoint's ``whsec_...`` secret (docs/webhooks.md).
- ``api: {port, token}``: the HTTP API on 127.0.0.1 (docs/http-api.md), served by the same
  server as the health endpoints.

Secrets are checked for their form here; a message about one never repeats it.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator

from wechat_sdk.config.strict import StrictModel
from wechat_sdk.events import EVENT_TYPES

__all__ = [
    "API_HOST",
    "ApiConfig",
    "WebhookEndpoint",
    "WebhookEndpoints",
    "check_whsec",
    "host_port",
    "http_url",
    "origin_of",
    "without_credentials",
    "without_query",
]

#: where the API listens unless ``api.host`` says otherwise
API_HOST = "127.0.0.1"
#: the shortest API token accepted
MIN_TOKEN_CHARS = 16

_GENERATE = (
    "generate one with: python -c \"import base64, os; print('whsec_' + "
    'base64.b64encode(os.urandom(32)).decode())"'
)


def check_whsec(secret: str) -> str | None:
    """What is wrong with a Standard Webhooks secret (``whsec_`` and base64 of 24 to 64
    random bytes), or None. Never names the secret itself."""
    if not secret.startswith("whsec_"):
        return f"must be in the Standard Webhooks form whsec_<base64>: {_GENERATE}"
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return f"the part after whsec_ is not valid base64: {_GENERATE}"
    if not 24 <= len(key) <= 64:
        return f"must hold 24 to 64 random bytes (it holds {len(key)}): {_GENERATE}"
    return None


#: a host name, IDNA-encoded first (an IP address is judged apart): letters, digits,
#: hyphens, underscores (Docker's service names have them) and dots
_HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_-]+)*\.?")
#: a netloc's bracketed IPv6 literal, then at most a port
_BRACKETED = re.compile(r"(?:[^@]*@)?\[([^\]]*)\](?::[0-9]*)?")


def http_url(url: str) -> str:
    """``url`` if it is an http(s) URL an HTTP client can use: a valid host, a port from 1
    to 65535. The problem's words never repeat the URL (its query may hold a token)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # ("Invalid IPv6 URL": a bracket left open)
        raise ValueError(f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    try:
        port = parts.port  # (raises on a port that is not a number up to 65535)
    except ValueError:
        port = -1
    if port is not None and not 0 < port <= 65535:
        raise ValueError("has a port that is not a number from 1 to 65535")
    host = parts.hostname
    if "[" in parts.netloc:  # an IPv6 literal: an address, then nothing but a port
        literal = _BRACKETED.fullmatch(parts.netloc)
        try:
            ipaddress.IPv6Address((literal.group(1) if literal else "").split("%")[0])
        except ValueError:
            raise ValueError("has a bracketed host that is not an IPv6 address") from None
        return url
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            name = host.encode("idna").decode("ascii")  # (bücher.example: xn--bcher-kva...)
        except UnicodeError:
            name = ""
        if not _HOST_NAME.fullmatch(name):
            raise ValueError(
                "has a host that is not a valid name (letters, digits, hyphens, underscores "
                "and dots) or IP address"
            ) from None
    return url


def without_credentials(url: str) -> str:
    """``url`` if it holds no user name or password (``user:password@``): the gateway
    sends no credentials from a URL when it fetches a file (urllib would take them for
    part of the host's name). The words never repeat them.

    >>> without_credentials("https://files.example.com/a.pdf")
    'https://files.example.com/a.pdf'
    """
    _, netloc, _ = _scheme_netloc_path(url)
    if "@" in netloc:
        raise ValueError(
            "has a user name or password in it (user:password@): credentials in URLs are "
            "not supported; give a URL that needs none (a presigned URL, say), or the "
            "file's bytes as data (base64)"
        )
    return url


class WebhookEndpoint(StrictModel):
    """One endpoint the gateway POSTs events to."""

    url: str = Field(description="the endpoint (http or https)", repr=False)  # (a query key)
    secret: str = Field(
        description="its signing secret, whsec_ and base64 (a secret: never logged)", repr=False
    )
    events: list[str] = Field(
        default_factory=lambda: ["*"],
        description='the event types it gets ("*": all of them)',
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        problem = check_whsec(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('name at least one event type, or "*" for all of them')
        for name in value:
            if name != "*" and name not in EVENT_TYPES:
                raise ValueError(
                    f'unknown event type "{name}": use "*" or some of ' + ", ".join(EVENT_TYPES)
                )
        return value

    def wants(self, event_type: str) -> bool:
        """True when this endpoint subscribed to ``event_type``."""
        return "*" in self.events or event_type in self.events


class ApiConfig(StrictModel):
    """The HTTP API: sends in, account status, pairing (bearer token)."""

    port: int = Field(ge=0, le=65535, description="TCP port (0: a free port, named in the log)")
    token: str = Field(
        description=f"the bearer token clients send (at least {MIN_TOKEN_CHARS} characters; "
        "a secret: never logged)",
        repr=False,
    )
    host: str = Field(API_HOST, description="address to listen on (default 127.0.0.1)")
    publicUrl: str | None = Field(
        None,
        description="base URL others reach the API at, for the media links a webhook agent "
        "gets (default http://host:port)",
    )

    @field_validator("token")
    @classmethod
    def _long_token(cls, value: str) -> str:
        if len(value) < MIN_TOKEN_CHARS or value != value.strip():
            raise ValueError(
                f"must be at least {MIN_TOKEN_CHARS} characters, without surrounding spaces "
                '(generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))")'
            )
        return value

    @field_validator("publicUrl")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value).rstrip("/")


def _distinct_urls(endpoints: list[WebhookEndpoint]) -> list[WebhookEndpoint]:
    seen: set[str] = set()
    for endpoint in endpoints:
        if endpoint.url in seen:
            raise ValueError(
                f"{origin_of(endpoint.url)}... is listed twice: list each url once, with "
                "every event type it should get"
            )
        seen.add(endpoint.url)
    return endpoints


def host_port(host: str, port: int | str) -> str:
    """``host:port`` as a URL writes it (RFC 3986): an IPv6 address in brackets, what every
    URL or address the SDK and its simulator name is built with.

    >>> host_port("::1", 8790), host_port("127.0.0.1", 8790)
    ('[::1]:8790', '127.0.0.1:8790')
    """
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def origin_of(url: str) -> str:
    """A URL's scheme, host and port (what messages and logs name an endpoint by: its path
    and query may hold a token). Never raises (see :func:`without_query`)."""
    scheme, netloc, _path = _scheme_netloc_path(url)
    return f"{scheme}://{netloc.rpartition('@')[2]}"


def without_query(url: str) -> str:
    """A URL's origin and path, without its query or fragment (what messages name a
    fetched file by: a signed URL's query is its key, ``X-Amz-Signature`` say). Never
    raises: a URL a peer or an endpoint gave may be no URL at all (``http://[::1/x``),
    and naming it must not fail what was being done with it.

    >>> without_query("https://u:pw@s3.example.com/b/report.pdf?X-Amz-Signature=abc")
    'https://s3.example.com/b/report.pdf'
    >>> without_query("http://[::1/a.png?key=k")
    'http://[::1/a.png'
    """
    scheme, netloc, path = _scheme_netloc_path(url)
    return f"{scheme}://{netloc.rpartition('@')[2]}{path}"


#: a URL's scheme, authority and path, as RFC 3986 (appendix B) splits any string
_URL_PARTS = re.compile(r"(?:([^:/?#]*):)?(?://([^/?#]*))?([^?#]*)")


def _scheme_netloc_path(url: str) -> tuple[str, str, str]:
    try:
        parts = urlsplit(url)
    except ValueError:  # (urlsplit checks a bracketed host: split by the RFC's rule)
        match = _URL_PARTS.match(url)
        assert match is not None  # (every part is optional: any string matches)
        scheme, netloc, path = match.groups()
        return (scheme or "").lower(), netloc or "", path
    return parts.scheme, parts.netloc, parts.path


#: ``channels.wechat.webhooks``: each url once
WebhookEndpoints = Annotated[list[WebhookEndpoint], AfterValidator(_distinct_urls)]
