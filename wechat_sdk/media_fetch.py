"""Media files fetched from http(s) URLs, capped in size, and kept off internal addresses.

Two callers, two rules:

- A **peer's** URL (a Puppet Service's url FileBox) is fetched only from public addresses:
  every address of the host is checked (loopback, private, link-local, reserved,
  multicast and unspecified ranges are refused), the connection goes to the address that
  was checked (a second DNS answer cannot swap in an internal one), and each redirect is
  checked the same way. ``mediaFetchAllowPrivate: true`` lifts the rule, for a puppet on
  a private network. Environment proxies are not used here: a proxy would connect
  somewhere this module never checked.
- The **agent's** own URLs (``OutboundFile(url=...)`` in a reply of the user's Python
  agent, a file the HTTP API is asked to send) are the user's choice: fetched with
  ``allow_private=True``, through proxies as urllib finds them. A webhook agent's URLs
  are not: its answer may be steered by a peer, so they are a peer's
  (:mod:`wechat_sdk.assistants.webhook_agent`).

Messages name a URL by its origin and path only: the query of a signed URL is its key.

>>> data, mime = fetch_url("https://example.com/cat.png", max_bytes=5_000_000)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import ipaddress
import socket
import ssl
import threading
import urllib.error
import urllib.request
from http.client import HTTPMessage
from typing import IO, Any, Literal

from wechat_sdk.config.integrations import without_credentials, without_query

__all__ = [
    "FETCH_DEADLINE_S",
    "FETCH_TIMEOUT_S",
    "FetchFailed",
    "fetch_url",
    "is_public_address",
]

#: Seconds a media URL may take to connect or to send its next bytes.
FETCH_TIMEOUT_S = 30.0
#: Seconds a whole fetch may take, redirects included: a server dripping a byte now and
#: then (each within FETCH_TIMEOUT_S) would otherwise hold it, and its thread, for hours.
FETCH_DEADLINE_S = 300.0
_CHUNK = 64 * 1024

FetchCode = Literal["fetch_failed", "too_large", "private_address"]


class FetchFailed(Exception):
    """A URL could not be fetched. ``code``: ``fetch_failed``, ``too_large`` (over the
    cap), or ``private_address`` (the host is internal and private hosts are not allowed)."""

    def __init__(self, message: str, *, code: FetchCode = "fetch_failed") -> None:
        super().__init__(message)
        self.code: FetchCode = code


def is_public_address(address: str) -> bool:
    """Whether an IP address may be fetched from for a peer: not loopback, private,
    link-local, reserved, multicast, unspecified, an IETF protocol assignment
    (``192.0.0.0/24``) or IPv6 site-local. An IPv4 address inside IPv6 is judged as IPv4:
    mapped (``::ffff:10.0.0.1``), behind the NAT64 prefix (``64:ff9b::/96``), or
    in a 6to4 address (``2002::/16``, which a relay unwraps to its IPv4 address); Teredo
    addresses (``2001::/32``, tunnels) are refused.

    >>> [is_public_address(a) for a in ("93.184.216.34", "127.0.0.1", "::ffff:10.0.0.1")]
    [True, False, False]
    >>> [is_public_address(a) for a in ("64:ff9b::8.8.8.8", "2002:7f00:1::")]
    [True, False]
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # (an IPv6 scope id is no part)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.teredo is not None:
            return False
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or any(ip in network for network in _INTERNAL)
    )


#: the well-known NAT64 prefix: its addresses are IPv4 addresses, reached through a gateway
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
#: internal ranges Python's flags leave out: IETF protocol assignments, and IPv6
#: site-local addresses (deprecated, still routed inside some networks)
_INTERNAL = (ipaddress.IPv4Network("192.0.0.0/24"), ipaddress.IPv6Network("fec0::/10"))


def fetch_url(
    url: str,
    max_bytes: int,
    timeout: float = FETCH_TIMEOUT_S,
    *,
    allow_private: bool = False,
    total_s: float = FETCH_DEADLINE_S,
) -> tuple[bytes, str | None]:
    """Download ``url`` (http or https only), reading at most ``max_bytes``.

    Blocking: run it in a thread. Returns the bytes and the Content-Type (without
    parameters), or raises :class:`FetchFailed`. Nothing past the cap is read. Unless
    ``allow_private``, internal addresses are refused (see the module). ``timeout``
    bounds each wait (to connect, for the next bytes), ``total_s`` the whole fetch.
    """
    shown = without_query(url)
    if _scheme(url) not in ("http", "https"):
        raise FetchFailed(f"cannot fetch {shown!r}: only http and https URLs are allowed")
    try:
        without_credentials(url)
    except ValueError as exc:
        raise FetchFailed(f"cannot fetch {shown}: its URL {exc}") from None
    watch = _Deadline(total_s)
    handlers: list[urllib.request.BaseHandler] = [
        _HttpOnlyRedirects(),
        _WatchedHTTPHandler(watch, public_only=not allow_private),
        _WatchedHTTPSHandler(watch, public_only=not allow_private),
    ]
    if not allow_private:
        handlers.insert(0, urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    try:
        with watch:
            data, content_type = _read(opener, url, shown, max_bytes, timeout)
    except FetchFailed:
        if watch.expired:  # (it shut the connection: whatever broke, that is why)
            raise watch.failure(shown) from None
        raise
    if watch.expired:  # (a body without a length, cut by it, may look whole)
        raise watch.failure(shown)
    return data, content_type


def _read(
    opener: urllib.request.OpenerDirector, url: str, shown: str, max_bytes: int, timeout: float
) -> tuple[bytes, str | None]:
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "wechat-sdk"})
        with opener.open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > max_bytes:
                raise FetchFailed(
                    f"{shown} is {int(length)} bytes, over the cap of {max_bytes} bytes "
                    "(mediaMaxMb)",
                    code="too_large",
                )
            parts: list[bytes] = []
            total = 0
            while chunk := response.read(min(_CHUNK, max_bytes + 1 - total)):
                total += len(chunk)
                if total > max_bytes:
                    raise FetchFailed(
                        f"{shown} is over the cap of {max_bytes} bytes (mediaMaxMb); "
                        "download aborted",
                        code="too_large",
                    )
                parts.append(chunk)
            content_type: str | None = None
            if response.headers.get("Content-Type"):
                content_type = response.headers.get_content_type()
    except FetchFailed:
        raise
    except urllib.error.HTTPError as exc:
        # (a refused redirect's reason repeats its target, query and all)
        reason = "a redirect that is not allowed" if 300 <= exc.code < 400 else exc.reason
        raise FetchFailed(f"cannot fetch {shown}: HTTP {exc.code} {reason}") from None
    except urllib.error.URLError as exc:
        raise FetchFailed(f"cannot fetch {shown}: {exc.reason}") from None
    except (ValueError, http.client.HTTPException) as exc:
        # a malformed URL or response (a bad status line, a cut body; its text may repeat
        # the URL)
        raise FetchFailed(f"cannot fetch {shown}: {type(exc).__name__}") from None
    except OSError as exc:  # timeouts, resets
        raise FetchFailed(f"cannot fetch {shown}: {exc}") from None
    return b"".join(parts), content_type


class _Deadline:
    """The whole fetch's deadline: when it passes, every connection of the fetch is shut
    (a read waiting on one returns), and :attr:`expired` says why the fetch failed.

    It keeps a duplicate of each connection's socket: https wraps the socket it was given
    in TLS, which detaches that socket object (it no longer has a file descriptor), while
    the duplicate still names the same connection, and shutting it down shuts that
    connection, TLS handshake included. The duplicates are closed when the fetch ends."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._ended = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:  # (so no shutdown can meet a duplicate being closed)
            self._ended = True
            sockets, self._sockets = self._sockets, []
            for sock in sockets:
                sock.close()

    def _expire(self) -> None:
        with self._lock:
            if self._ended:  # (the fetch ended as the timer fired: it was in time)
                return
            self.expired = True
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def add(self, sock: socket.socket) -> None:
        """Watch a new connection (closed at once past the deadline)."""
        try:
            watched = sock.dup()
        except OSError:
            sock.close()
            raise
        with self._lock:
            if not self.expired:
                self._sockets.append(watched)
                return
        watched.close()
        sock.close()
        raise OSError("the fetch is out of time")

    def failure(self, shown: str) -> FetchFailed:
        return FetchFailed(f"cannot fetch {shown}: no whole answer within {self.seconds:g} s")


def _scheme(url: str) -> str:
    return url.split(":", 1)[0].lower() if ":" in url else ""


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http and https (urllib alone would also follow ftp)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if _scheme(newurl) not in ("http", "https"):
            raise FetchFailed(
                f"cannot fetch {without_query(req.full_url)}: redirected to "
                f"{without_query(newurl)!r}, which is not http or https"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _public_socket(host: str, port: int, timeout: float | None) -> socket.socket:
    """A connection to ``host`` after checking every address it resolves to; connects to
    those checked addresses, so the host is resolved once (no DNS rebinding)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchFailed(f"cannot resolve {host}: {exc}") from exc
    for *_, sockaddr in infos:
        if not is_public_address(str(sockaddr[0])):
            raise FetchFailed(
                f"refused to fetch from {host} ({sockaddr[0]}): a loopback, private or "
                "otherwise internal address; set mediaFetchAllowPrivate: true to allow it",
                code="private_address",
            )
    error: OSError = OSError(f"{host} has no address")
    for family, kind, proto, _name, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    raise error


class _WatchedConnection(http.client.HTTPConnection):
    """A connection watched by the fetch's deadline; with ``public_only``, made to a
    checked public address only (:func:`_public_socket`)."""

    def __init__(self, host: str, *, watch: _Deadline, public_only: bool, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self.watch = watch
        self.public_only = public_only
        # (http.client's own hook: the TLS of https, a proxy's tunnel, go over this socket)
        self._create_connection = self._watched_socket

    def _watched_socket(
        self,
        address: tuple[str, int],
        timeout: float | None = None,
        source_address: Any = None,
    ) -> socket.socket:
        if self.public_only:
            sock = _public_socket(address[0], address[1], timeout)
        else:
            sock = socket.create_connection(address, timeout, source_address)
        self.watch.add(sock)
        return sock


class _WatchedHTTPConnection(_WatchedConnection):
    pass


class _WatchedHTTPSConnection(_WatchedConnection, http.client.HTTPSConnection):
    pass


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, watch: _Deadline, *, public_only: bool) -> None:
        super().__init__()
        self.watch = watch
        self.public_only = public_only

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(
            _WatchedHTTPConnection, watch=self.watch, public_only=self.public_only
        )
        return self.do_open(connection, req)


class _WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, watch: _Deadline, *, public_only: bool) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(context=self.tls)
        self.watch = watch
        self.public_only = public_only

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(
            _WatchedHTTPSConnection, watch=self.watch, public_only=self.public_only
        )
        return self.do_open(connection, req, context=self.tls)
