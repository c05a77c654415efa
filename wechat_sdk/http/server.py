"""The gateway's one HTTP server (aiohttp.web): the health endpoints, the API, media links.

What it serves depends on the config:

- ``health: {port}`` alone: ``/healthz`` and ``/readyz`` on 127.0.0.1:port.
- ``api: {port, token}``: the API under ``/v1`` (bearer token), ``/healthz`` and ``/readyz``
  (no token), and the signed media links (``/media/...``), on ``api.host`` (127.0.0.1 by
  default) and ``api.port``.
- both, on the same port: one listener serving everything; on two ports: the same server
  listens on both (the health port on 127.0.0.1), the API still behind its token.

Every answer is JSON; every error has the one shape ``{"error", "code"}``
(:class:`~wechat_sdk.http.models.ErrorBody`); a store that fails under a request (Redis
unreachable) is ``503 store_unavailable``, on every route. Request bodies are capped at
:data:`MAX_BODY_BYTES`. Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from wechat_sdk.config.integrations import ApiConfig, host_port
from wechat_sdk.gateway.health import HEALTH_HOST, readiness
from wechat_sdk.gateway.runner import as_no_account
from wechat_sdk.http.media_links import MediaLinks
from wechat_sdk.http.openapi import openapi_document
from wechat_sdk.http.routes import API_ROUTES, ApiError, ApiHandlers, store_unavailable
from wechat_sdk.inbound.media import SNIFF_BYTES, sniff_mime

if TYPE_CHECKING:
    from wechat_sdk.gateway.gateway import Gateway

__all__ = ["MAX_BODY_BYTES", "GatewayHttp", "Listen"]

log = logging.getLogger("wechat_sdk.gateway")

#: The largest request body accepted (a file sent as base64 data counts; send bigger
#: files by url).
MAX_BODY_BYTES = 16 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: an Authorization header's value: its scheme and one token
_BEARER = re.compile(r"[ \t]*([^ \t]+)[ \t]+([^ \t]+)[ \t]*")


@dataclass(frozen=True)
class Listen:
    """Where the server listens: the health port, the API port, or one port for both."""

    health_port: int | None
    api: ApiConfig | None


class GatewayHttp:
    """The HTTP server of one gateway. ``port`` is the health endpoints' port (the API's
    when only ``api`` is set), ``api_port`` the API's; both are known after :meth:`start`
    (``0`` asks the system for a free port)."""

    def __init__(self, gateway: Gateway, listen: Listen, media: MediaLinks) -> None:
        self.gateway = gateway
        self.listen = listen
        self.media = media
        self._runner: web.AppRunner | None = None
        self._api: ApiHandlers | None = None
        self.port: int | None = None
        self.api_port: int | None = None

    @property
    def url(self) -> str:
        """Base URL of the health endpoints."""
        host = HEALTH_HOST if self.listen.health_port is not None else self._api_host
        return f"http://{host_port(host, str(self.port))}"

    @property
    def api_url(self) -> str | None:
        """Base URL of the API (None without ``channels.wechat.api``)."""
        if self.listen.api is None or self.api_port is None:
            return None
        return f"http://{host_port(self._api_host, self.api_port)}"

    @property
    def _api_host(self) -> str:
        return self.listen.api.host if self.listen.api is not None else HEALTH_HOST

    # ------------------------------------------------------------ life

    async def start(self) -> None:
        """Listen. Raises :class:`PortError` (naming the config key) when a port cannot
        be used. The server's lines show no account (``-``), whichever task opened it."""
        await as_no_account(self._start())

    async def _start(self) -> None:
        runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await runner.setup()
        self._runner = runner
        try:
            api = self.listen.api
            if api is not None:
                self.api_port = await self._site(runner, api.host, api.port, "api.port")
                self.media.base_url = api.publicUrl or self.api_url
            health = self.listen.health_port
            if health is not None and not (api is not None and health == api.port != 0):
                self.port = await self._site(runner, HEALTH_HOST, health, "health.port")
            else:
                self.port = self.api_port
        except BaseException:
            await self.stop()
            raise
        log.info("health endpoints on %s/healthz and %s/readyz", self.url, self.url)
        if self.api_url is not None:
            log.info("HTTP API on %s/v1 (OpenAPI: %s/v1/openapi.json)", self.api_url, self.api_url)
            if self._api_host not in ("127.0.0.1", "::1", "localhost"):
                log.warning(
                    "the HTTP API listens on %s: other machines can reach it; anyone with "
                    "the token can send as the bot (put TLS in front of it: a reverse proxy)",
                    self._api_host,
                )

    async def _site(self, runner: web.AppRunner, host: str, port: int, key: str) -> int:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise PortError(key, host, port, exc) from None
        server = site._server  # the listening socket tells the port the system chose
        assert isinstance(server, asyncio.Server) and server.sockets
        return int(server.sockets[0].getsockname()[1])

    async def stop_sends(self, grace_s: float) -> None:
        """Refuse new API sends; those under way get ``grace_s``, then are cut and
        answered (see :meth:`ApiHandlers.stop_sends`)."""
        if self._api is not None:
            await self._api.stop_sends(grace_s)

    def accept_sends(self) -> None:
        """Take API sends again (the gateway started)."""
        if self._api is not None:
            self._api.accept_sends()

    async def stop(self) -> None:
        await self.stop_sends(0.0)  # (a send still going is answered, not left hanging)
        self.media.base_url = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------ the app

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._errors])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        if self.listen.api is not None:
            handlers = self._api = ApiHandlers(self.gateway)
            for route in API_ROUTES:
                app.router.add_route(route.method, route.path, handlers.handler(route))
            app.router.add_get("/v1/openapi.json", self._openapi)
            app.router.add_get("/media/{path:.+}", self._media)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The token check of ``/v1``, and every error in the one JSON shape."""
        try:
            if request.path.startswith("/v1/") or request.path == "/v1":
                self._check_token(request)
            return await handler(request)
        except ApiError as exc:
            return _error(exc)
        except web.HTTPException as exc:
            return _error(self._http_error(request, exc), exc.headers)
        except Exception as exc:
            unavailable = store_unavailable(exc, self.gateway)
            if unavailable is not None:
                # not a bug: no traceback (a Redis outage is logged by the cluster loop,
                # reason=redis_unreachable)
                return _error(unavailable)
            # a bug: answered, logged, the server goes on
            log.exception("HTTP %s %s failed", request.method, request.path)
            return _error(ApiError(500, "internal", "internal error (see the gateway's log)"))

    def _check_token(self, request: web.Request) -> None:
        api = self.listen.api
        assert api is not None
        # RFC 7235: the scheme in any case, then one token after spaces (or tabs), with
        # spaces or tabs around the whole value
        words = _BEARER.fullmatch(request.headers.get("Authorization", ""))
        scheme, given = words.groups() if words is not None else ("", "")
        # bytes as they came: a header that is not UTF-8 reaches us surrogate-escaped, and
        # is a wrong token (401), not an error
        given_bytes = given.encode("utf-8", "surrogateescape")
        # constant time: how much of a wrong token matched, or how long the token is (a
        # compare of unequal lengths returns at once), never shows in the answer's time
        given_digest = hashlib.sha256(given_bytes).digest()
        expected = hashlib.sha256(api.token.encode()).digest()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given_digest, expected):
            raise ApiError(
                401,
                "unauthorized",
                "send the API token as the header "
                "Authorization: Bearer <channels.wechat.api.token>",
            )

    def _http_error(self, request: web.Request, exc: web.HTTPException) -> ApiError:
        if exc.status == 404:
            where = "use /healthz or /readyz"
            if self.listen.api is not None:
                where += ", or the API under /v1 (its routes: GET /v1/openapi.json)"
            return ApiError(404, "not_found", f"no such endpoint {request.path!r}: {where}")
        if exc.status == 405:
            allowed = exc.headers.get("Allow", "")
            return ApiError(
                405, "method_not_allowed", f"{request.method} is not allowed: use {allowed}"
            )
        if exc.status == 413:
            return ApiError(
                413,
                "body_too_large",
                f"the request body is over {MAX_BODY_BYTES // (1024 * 1024)} MiB: send large "
                "files by url",
            )
        return ApiError(exc.status, "invalid_request", exc.reason)

    # ------------------------------------------------------------ health

    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        return _json({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.StreamResponse:
        gw = self.gateway
        ready, body = readiness(
            gw.status(),
            {a.id for a in gw.accounts.enabled},
            gw.runs(),
            cluster=gw.cluster is not None,
        )
        return _json(body, 200 if ready else 503)

    # ------------------------------------------------------------ the rest

    async def _openapi(self, request: web.Request) -> web.StreamResponse:
        return _json(openapi_document())

    async def _media(self, request: web.Request) -> web.StreamResponse:
        path = self.media.resolve(
            request.match_info["path"], request.query.get("exp", ""), request.query.get("sig", "")
        )
        if path is None:
            raise ApiError(
                404, "not_found", "no such media link, or it expired (links last 10 minutes)"
            )
        # the type sniffed from the bytes (MediaItem.mime's when they are known), never
        # the one of the name a peer chose: a "page.html" served as text/html, opened in
        # a browser, would run the peer's script on this origin
        mime = await asyncio.to_thread(_sniffed, path)
        headers = {
            "Cache-Control": "no-store",
            "Content-Type": mime,
            "X-Content-Type-Options": "nosniff",
        }
        return web.FileResponse(path, headers=headers)


def _sniffed(path: Path) -> str:
    """The MIME type of the file's first bytes (``application/octet-stream`` when unknown)."""
    with path.open("rb") as f:
        return sniff_mime(f.read(SNIFF_BYTES))


class PortError(OSError):
    """A port of ``channels.wechat.<key>`` could not be listened on."""

    def __init__(self, key: str, host: str, port: int, cause: OSError) -> None:
        # (asyncio's strerror repeats the address: the system's own words for the errno)
        why = os.strerror(cause.errno) if cause.errno else (cause.strerror or str(cause))
        super().__init__(f"cannot listen on {host_port(host, port)} ({why})")
        self.key = key


def _json(body: Any, status: int = 200, headers: Any = None) -> web.Response:
    response = web.json_response(body, status=status, headers=headers)
    response.headers["Cache-Control"] = "no-store"
    return response


def _error(exc: ApiError, headers: Any = None) -> web.Response:
    extra = {k: v for k, v in (headers or {}).items() if k in ("Allow",)}
    if exc.status == 401:
        extra["WWW-Authenticate"] = "Bearer"
    return _json(exc.body(), exc.status, extra)
