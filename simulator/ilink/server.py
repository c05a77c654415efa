"""The iLink HTTP API and CDN of a simulated world, on aiohttp.

Routes (``base_url`` is ``http://HOST:PORT/``; ``base_url_for(account)`` adds ``a/<id>/``,
whose QR codes log in that account):

- ``ilink/bot/get_bot_qrcode`` (GET or POST), ``ilink/bot/get_qrcode_status`` (GET,
  ``verify_code`` when the phone asked for its number): QR login, no token.
- ``ilink/bot/getupdates``, ``sendmessage``, ``getuploadurl``, ``getconfig``,
  ``sendtyping``, ``msg/notifystart``, ``msg/notifystop`` (POST, JSON): bot calls, with
  ``AuthorizationType: ilink_bot_token`` and ``Authorization: Bearer <bot_token>``.
- ``c2c/upload`` (POST ciphertext), ``c2c/download`` (GET): the CDN.
- ``sim/...``: the control API of the standalone server (:mod:`simulator.ilink.control`).

Answers as the real server gives them: HTTP 200 with ``ret`` 0, or ``ret``/``errcode``
and ``errmsg``: ``-14`` "session timeout" for a token that is not (or no longer) valid,
``-2`` "rate limited", and ``-2`` too for a send its reply window does not allow (the real
server gives both the same answer, its ``errmsg`` empty or "prepare failed"; the
simulator's says which limit: "reply window closed: ..."), ``-1`` for a request the server
refuses (the ``errmsg`` says why). A body that is not JSON is an
HTTP 400 with the same JSON shape; an unknown path is a 404. The CDN says why it refuses
in its answer's ``x-error-message`` header (as Tencent's CDN does: its client reads it).
An error of the simulator itself is an HTTP 500 and a log line with its traceback, never
an HTML page, and a body over :data:`MAX_UPLOAD_BYTES` an HTTP 413, each in the shape of
the part of the server asked: iLink's JSON (``ret`` -1, the error in ``errmsg``), the
CDN's ``x-error-message``, or the control API's ``{"error": ...}`` under ``sim/``.

Every answer carries a ``Date`` header read from the world's clock (virtual in tests), as
a real server's is read from its own: a client reads message times by it.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from simulator.ilink.cdn import CdnError, PendingUpload
from simulator.ilink.state import ILinkBot, ILinkState, wait_changed
from simulator.ilink.wire import (
    NotJson,
    WireError,
    inbound_message,
    json_text,
    read_json_object,
    read_outbound,
)
from wechat_sdk.config.integrations import host_port
from wechat_sdk.logtext import shown

if TYPE_CHECKING:
    from simulator.world import SimulatedWeChat

__all__ = [
    "LONGPOLL_TIMEOUT_MS",
    "POLL_HOLD_S",
    "QR_HOLD_S",
    "RATE_LIMITED",
    "REFUSED",
    "SESSION_EXPIRED",
    "ILinkServer",
    "start_ilink_server",
]

log = logging.getLogger("simulator.ilink")

SESSION_EXPIRED = -14
RATE_LIMITED = -2
REFUSED = -1
#: what getupdates suggests as the client's next long-poll timeout (at least the server's
#: own hold: a client waiting that long, and its margin, never gives up on a held poll)
LONGPOLL_TIMEOUT_MS = 35_000
#: how long getupdates holds a request with nothing to give (under the suggestion)
POLL_HOLD_S = 30.0
#: how long get_qrcode_status holds a request while the code is unchanged
QR_HOLD_S = 25.0
#: how many of a bot's last client_ids the server remembers (to answer a retry)
CLIENT_IDS_KEPT = 10_000
#: the largest CDN upload taken (bytes)
MAX_UPLOAD_BYTES = 110 * 1024 * 1024
#: where the control API's routes are
CONTROL_PATH = "/sim/"
#: where the CDN's routes are
CDN_PATH = "/c2c/"
#: the longest ``x-error-message`` the CDN writes
CDN_ERROR_CHARS = 500

Json = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _answer(body: Json, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=json_text)


def _error(ret: int, errmsg: str, status: int = 200) -> web.Response:
    return _answer({"ret": ret, "errcode": ret, "errmsg": errmsg}, status)


def _cdn_error(status: int, why: str) -> web.Response:
    """A CDN refusal: why, in the ``x-error-message`` header (its control characters
    escaped: a line break would break the header) and as the text."""
    return web.Response(
        status=status, text=why, headers={"x-error-message": shown(why, CDN_ERROR_CHARS)}
    )


def _failed(path: str, status: int, why: str) -> web.Response:
    """An error answered in the shape of the part of the server ``path`` is in: the
    control API's ``{"error": ...}``, the CDN's ``x-error-message``, else (an API call:
    ``/ilink/bot/...`` or ``/a/<account>/ilink/bot/...``) iLink's JSON."""
    if path.startswith(CONTROL_PATH):
        return _answer({"error": why}, status)
    if path.startswith(CDN_PATH):
        return _cdn_error(status, why)
    return _error(REFUSED, why, status)


def _no_route(request: web.Request, missing: web.HTTPException) -> web.Response:
    """aiohttp's 404 (no route has the path) or 405 (the route takes other methods), said
    in the shape of the part asked (:func:`_failed`) with what to call instead."""
    asked = f"{request.method} {request.path}"
    if isinstance(missing, web.HTTPMethodNotAllowed):
        allowed = sorted(missing.allowed_methods)
        response = _failed(request.path, 405, f"{asked}: the route takes {', '.join(allowed)}")
        response.headers["Allow"] = ",".join(allowed)
        return response
    if request.path.startswith(CDN_PATH):
        routes = f"the CDN's routes are POST {CDN_PATH}upload and GET {CDN_PATH}download"
    else:
        routes = f"GET {CONTROL_PATH} lists the routes"
    return _failed(request.path, missing.status, f"no route {asked}: {routes}")


class _Refused(Exception):
    """Answer this request with ``response`` (raised from the checks of a handler)."""

    def __init__(self, response: web.Response) -> None:
        self.response = response


class ILinkServer:
    """A world's iLink API and CDN on 127.0.0.1; see :mod:`simulator.ilink`.

    Example:
        ```python
        server = await world.ilink_server()
        # point the client at server.base_url and server.cdn_base_url
        await server.close()
        ```
    """

    def __init__(self, world: SimulatedWeChat, *, poll_hold_s: float = POLL_HOLD_S) -> None:
        self.world = world
        self.state: ILinkState = world.ilink_state
        self.poll_hold_s = poll_hold_s
        self.qr_hold_s = min(QR_HOLD_S, poll_hold_s)
        self.host = "127.0.0.1"
        self.port = 0
        self.closing = False
        self.app = web.Application(
            client_max_size=MAX_UPLOAD_BYTES, middlewares=[self._dated, self._caught]
        )
        self._runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None
        self._starting: asyncio.Task[None] | None = None  # start() run by start_soon()
        #: set (and replaced) at each message a bot sends: what ``/sim/sent?wait_ms=`` waits on
        self.sent_changed = asyncio.Event()
        for prefix in ("", "/a/{account}"):
            self._routes(prefix)
        self.app.router.add_post("/c2c/upload", self.cdn_upload)
        self.app.router.add_get("/c2c/download", self.cdn_download)
        from simulator.ilink.control import add_control_routes

        add_control_routes(self)

    def _routes(self, prefix: str) -> None:
        api = f"{prefix}/ilink/bot"
        add_get, add_post = self.app.router.add_get, self.app.router.add_post
        add_get(f"{api}/get_bot_qrcode", self.get_bot_qrcode)
        add_post(f"{api}/get_bot_qrcode", self.get_bot_qrcode)
        add_get(f"{api}/get_qrcode_status", self.get_qrcode_status)
        add_post(f"{api}/getupdates", self.getupdates)
        add_post(f"{api}/sendmessage", self.sendmessage)
        add_post(f"{api}/getuploadurl", self.getuploadurl)
        add_post(f"{api}/getconfig", self.getconfig)
        add_post(f"{api}/sendtyping", self.sendtyping)
        add_post(f"{api}/msg/notifystart", self.notify_start)
        add_post(f"{api}/msg/notifystop", self.notify_stop)

    # -------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        """The API base a client is given (``baseUrl``), with its trailing slash."""
        return f"http://{self._address}/"

    @property
    def cdn_base_url(self) -> str:
        """The CDN base a client is given (``cdnBaseUrl``), without a trailing slash."""
        return f"http://{self._address}/c2c"

    @property
    def _address(self) -> str:
        """``host:port`` as a URL writes it (an IPv6 address in brackets: ``[::1]:8710``)."""
        return host_port(self.host, self.port)

    def base_url_for(self, account_id: str) -> str:
        """An API base whose QR codes log in ``account_id`` (one per account of a gateway)."""
        self.state.sim(account_id)
        return f"{self.base_url}a/{quote(account_id, safe='')}/"

    def bind(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Take the address now (its port is known at once); :meth:`start` serves it.

        Connections made in between wait in the socket's backlog, so a puppet factory
        (which cannot await) can give its puppet the URL before the server runs.
        """
        family = socket.AF_INET6 if ":" in host else socket.AF_INET  # ("::1" is IPv6)
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._sock = sock
        self.host = host
        self.port = int(sock.getsockname()[1])
        self.state.base_url = self.base_url
        self.state.cdn_base_url = self.cdn_base_url
        self.state.server = self

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve (on the address :meth:`bind` took, else on ``host``:``port``)."""
        if self._sock is None:
            self.bind(host, port)
        assert self._sock is not None
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()

    async def close(self) -> None:
        """End the open long polls and stop serving."""
        self.closing = True
        for bot in self.state.bots.values():
            bot.notify()
        for qr in self.state.qr.codes.values():
            qr.set(qr.status)
        if self._starting is not None and not self._starting.done():
            await asyncio.wait({self._starting})
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        elif self._sock is not None:
            self._sock.close()
        self._sock = None
        if self.state.server is self:
            self.state.server = None

    def start_soon(self) -> None:
        """Bind now and serve from the next turn of the event loop (for code that cannot
        await, like a puppet factory)."""
        if self._sock is None:
            self.bind()
        self._starting = asyncio.get_running_loop().create_task(self.start())

    async def __aenter__(self) -> ILinkServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -------------------------------------------------------- every answer

    @web.middleware
    async def _dated(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The ``Date`` header from the world's clock (aiohttp would write the real time,
        which a world on a virtual clock is not at)."""
        response = await handler(request)
        response.headers["Date"] = email.utils.formatdate(self.world.time.now(), usegmt=True)
        return response

    @web.middleware
    async def _caught(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """A call the simulator fails to answer (a bug, or a request shaped in a way no
        check foresaw), whose body is over :data:`MAX_UPLOAD_BYTES`, or to a path of the
        control API or the CDN that no route has, is answered in the shape of the part of
        the server it asked (:func:`_failed`), for a client in any language, not with
        aiohttp's plain text."""
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge as too_large:
            return _failed(request.path, too_large.status, too_large.text or too_large.reason)
        except web.HTTPException as exc:
            # aiohttp's own 404 or 405 (no route) in the parts whose answers have a shape the
            # simulator chose; a route's own 404 is answered as raised, and an unknown path
            # of the iLink API as aiohttp does (what Tencent's server answers there is unknown)
            if exc is request.match_info.http_exception and request.path.startswith(
                (CONTROL_PATH, CDN_PATH)
            ):
                return _no_route(request, exc)
            raise
        except Exception as exc:
            log.exception("iLink %s failed: %s", request.path, exc)
            return _failed(request.path, 500, f"the simulator failed: {type(exc).__name__}: {exc}")

    # -------------------------------------------------------- request checks

    async def _json(self, request: web.Request) -> Json:
        try:
            return read_json_object(await request.read())
        except NotJson as exc:
            raise _Refused(_error(REFUSED, str(exc), 400)) from None

    def _bot(self, request: web.Request) -> tuple[ILinkBot, str]:
        if request.headers.get("AuthorizationType") != "ilink_bot_token":
            raise _Refused(_error(REFUSED, "AuthorizationType must be ilink_bot_token"))
        header = request.headers.get("Authorization", "")
        token = header[len("Bearer ") :].strip() if header.startswith("Bearer ") else ""
        if not token:
            raise _Refused(_error(REFUSED, "Authorization: Bearer <bot_token> is required"))
        bot = self.state.bot_for_token(token)
        if bot is None:
            raise _Refused(_error(SESSION_EXPIRED, "session timeout"))
        return bot, token

    async def _call(self, request: web.Request) -> tuple[ILinkBot, str, Json]:
        bot, token = self._bot(request)
        return bot, token, await self._json(request)

    # -------------------------------------------------------- QR login

    async def get_bot_qrcode(self, request: web.Request) -> web.Response:
        account = request.match_info.get("account")
        try:
            body = await self._json(request) if request.method == "POST" else {}
            if account is not None and account not in self.state.bots:
                self.state.bot(account)
        except _Refused as refused:
            return refused.response
        except KeyError as exc:
            return _error(REFUSED, str(exc.args[0]), 404)
        tokens = body.get("local_token_list") or []
        if not isinstance(tokens, list):
            return _error(REFUSED, "local_token_list must be a list of tokens")
        qr = self.state.qr.issue(account, tuple(t for t in tokens if isinstance(t, str)))
        qr.base_url = self.base_url_for(account) if account is not None else self.base_url
        self.state.auto_scan(qr)
        bot_type = request.query.get("bot_type", "3")
        link = f"https://liteapp.weixin.qq.com/q/7GiQu1?qrcode={qr.code}&bot_type={bot_type}"
        return _answer({"ret": 0, "qrcode": qr.code, "qrcode_img_content": link})

    async def get_qrcode_status(self, request: web.Request) -> web.Response:
        code = request.query.get("qrcode", "")
        qr = self.state.qr.status(code)
        if qr is None:
            return _answer({"ret": 0, "status": "expired"})
        number = request.query.get("verify_code")
        if number is not None:  # the number the phone shows, as the person typed it
            self.state.qr.enter(qr, number)
        clock = self.world.time
        deadline = clock.now() + self.qr_hold_s
        while qr.status == "wait" and not self.closing:
            expires = qr.issued_at + self.world.qr_ttl_s
            wait = min(deadline, expires) - clock.now()
            if wait <= 0 and clock.now() >= deadline:
                break
            await wait_changed(clock, qr.changed, max(wait, 0.0))
            self.state.qr.status(code)
            if clock.now() >= deadline:
                break
        answer: Json = {"ret": 0, "status": qr.status}
        if qr.status == "confirmed" and qr.account_id is not None:
            sim = self.state.sim(qr.account_id)
            answer.update(
                bot_token=qr.token,
                ilink_bot_id=sim.wxid,
                ilink_user_id=sim.owner,
                baseurl=qr.base_url or self.base_url,
            )
        return _answer(answer)

    # -------------------------------------------------------- messages

    async def getupdates(self, request: web.Request) -> web.Response:
        try:
            bot, token, body = await self._call(request)
        except _Refused as refused:
            return refused.response
        buf = body.get("get_updates_buf") or ""
        if not isinstance(buf, str):
            return _error(REFUSED, "get_updates_buf must be a string", 400)
        world, sim = self.world, bot.sim
        clock = world.time
        bot.poll_generation += 1
        generation = bot.poll_generation
        bot.notify()  # one poller per bot: an older poll still open ends now
        after = bot.read_cursor(buf)
        disconnects = bot.disconnects
        deadline = clock.now() + self.poll_hold_s
        if sim.faults and world._take_fault(sim, "slow_poll"):
            await wait_changed(clock, _never(), bot.slow_poll_s)
            deadline = clock.now()
        while True:
            changed = bot.changed
            if bot.token != token:
                return _error(SESSION_EXPIRED, "session timeout")
            if bot.disconnects != disconnects:
                return _error(REFUSED, "connection reset", 502)
            if generation != bot.poll_generation or self.closing:
                if not self.closing:
                    world._log(sim, "poll_replaced")
                return self._updates(bot, after, [])
            now = clock.now()
            silent = now < bot.silent_until
            ready = [] if silent else bot.ready(after, now)
            if ready:
                return self._updates(bot, after, ready)
            if now >= deadline:
                return self._updates(bot, after, [])
            until = deadline
            due = bot.silent_until if silent else bot.next_due(after)
            if due is not None and due > now:
                until = min(until, due)
            await wait_changed(clock, changed, until - now)

    @property
    def longpolling_timeout_ms(self) -> int:
        """What ``getupdates`` suggests as the client's next long-poll timeout: 35 s, or
        the hold when it is longer."""
        return max(LONGPOLL_TIMEOUT_MS, math.ceil(self.poll_hold_s * 1000))

    def _updates(self, bot: ILinkBot, after: int, ready: list[Any]) -> web.Response:
        msgs = [inbound_message(bot, q) for q in ready]
        last = ready[-1].seq if ready else after
        return _answer(
            {
                "ret": 0,
                "msgs": msgs,
                "get_updates_buf": bot.cursor(last),
                "longpolling_timeout_ms": self.longpolling_timeout_ms,
            }
        )

    async def sendmessage(self, request: web.Request) -> web.StreamResponse:
        try:
            bot, _, body = await self._call(request)
        except _Refused as refused:
            return refused.response
        world, sim = self.world, bot.sim
        if sim.faults:
            if world._take_fault(sim, "slow_send"):
                await world.time.sleep(sim.slow_send_s)
            if world._take_fault(sim, "send_fail"):  # unavailable: nothing taken
                return _error(REFUSED, "service unavailable", 503)
            if world._take_fault(sim, "rate_limit"):
                return _error(RATE_LIMITED, "rate limited")
            if world._take_fault(sim, "send_fail_permanent"):
                return _error(REFUSED, "the user cannot receive messages")
        try:
            to, items = read_outbound(bot, body.get("msg"))
        except WireError as exc:
            return _error(REFUSED, str(exc))
        client_id = str(body["msg"]["client_id"])
        if client_id in bot.client_ids:  # a retry: one message per client_id
            world._log(sim, "client_id_repeated", to=to)
            return _answer({"ret": 0, "message_id": bot.client_ids[client_id]})
        window = bot.window(to)
        refusal = window.refusal(world.time.now())
        if refusal is not None:  # (ret -2, as the real server: its rate limit's answer too)
            world._log(sim, "window_closed", to=to, reason=refusal)
            return _error(RATE_LIMITED, refusal)
        window.bot_sent()
        last = None
        for item in items:
            if item.voice:  # the real server accepts a bot's voice and never delivers it
                world._log(sim, "voice_dropped", to=to)
                continue
            last = world.record_out(sim, to, item.text, item.media, data=item.data)
        wire_id = self.state.wire_id(last) if last is not None else 0
        bot.client_ids[client_id] = wire_id
        if len(bot.client_ids) > CLIENT_IDS_KEPT:  # a retry comes within seconds
            del bot.client_ids[next(iter(bot.client_ids))]
        changed, self.sent_changed = self.sent_changed, asyncio.Event()
        changed.set()
        if sim.faults and world._take_fault(sim, "send_lost_reply"):
            return _unanswered(request)  # accepted, but the answer never arrives
        return _answer({"ret": 0, "message_id": wire_id})

    async def getconfig(self, request: web.Request) -> web.Response:
        try:
            bot, _, body = await self._call(request)
        except _Refused as refused:
            return refused.response
        user = body.get("ilink_user_id")
        if not isinstance(user, str) or not user:
            return _error(REFUSED, "ilink_user_id is required")
        return _answer({"ret": 0, "typing_ticket": bot.typing_ticket(user)})

    async def sendtyping(self, request: web.Request) -> web.Response:
        try:
            bot, _, body = await self._call(request)
        except _Refused as refused:
            return refused.response
        user, ticket = body.get("ilink_user_id"), body.get("typing_ticket")
        status = body.get("status", 1)
        if not isinstance(user, str) or not user:
            return _error(REFUSED, "ilink_user_id is required")
        if status not in (1, 2):
            return _error(REFUSED, "status must be 1 (typing) or 2 (cancel)")
        if ticket is None or ticket != bot.typing_tickets.get(user):
            return _error(REFUSED, "typing_ticket is not this user's: ask getconfig")
        bot.typing[user] = status
        self.world._log(bot.sim, "typing", to=user, status=status)
        return _answer({"ret": 0})

    async def notify_start(self, request: web.Request) -> web.Response:
        return await self._notify(request, "client_start")

    async def notify_stop(self, request: web.Request) -> web.Response:
        return await self._notify(request, "client_stop")

    async def _notify(self, request: web.Request, event: str) -> web.Response:
        try:
            bot, _, _ = await self._call(request)
        except _Refused as refused:
            return refused.response
        self.world._log(bot.sim, event)
        return _answer({"ret": 0})

    # -------------------------------------------------------- media

    async def getuploadurl(self, request: web.Request) -> web.Response:
        try:
            bot, _, body = await self._call(request)
        except _Refused as refused:
            return refused.response
        try:
            upload = PendingUpload.announced(bot.account_id, body)
            thumbnail = upload.thumbnail(body)
        except CdnError as exc:
            return _error(REFUSED, str(exc))
        param = self.state.cdn.announce(upload)
        full = (
            f"{self.cdn_base_url}/upload?encrypted_query_param={quote(param, safe='')}"
            f"&filekey={quote(upload.filekey, safe='')}"
        )
        answer: Json = {"ret": 0, "upload_param": param, "upload_full_url": full}
        if thumbnail is not None:
            answer["thumb_upload_param"] = self.state.cdn.announce(thumbnail)
        return _answer(answer)

    async def cdn_upload(self, request: web.Request) -> web.Response:
        param = request.query.get("encrypted_query_param", "")
        filekey = request.query.get("filekey", "")
        body = await request.read()
        try:
            download = self.state.cdn.receive(param, filekey, body)
        except CdnError as exc:
            return _cdn_error(400, str(exc))
        return web.Response(status=200, headers={"x-encrypted-param": download})

    async def cdn_download(self, request: web.Request) -> web.Response:
        data = self.state.cdn.ciphertext(request.query.get("encrypted_query_param", ""))
        if data is None:
            return _cdn_error(404, "no such file on the CDN")
        return web.Response(body=data, content_type="application/octet-stream")


def _unanswered(request: web.Request) -> web.StreamResponse:
    """No answer: the connection is closed before a byte of one, and the client sees it
    dropped, with no status. (A handler must return a response; aiohttp finds the
    connection closed and writes none of this one.)"""
    if request.transport is not None:
        request.transport.close()
    return web.StreamResponse()


def _never() -> asyncio.Event:
    return asyncio.Event()


async def start_ilink_server(
    world: SimulatedWeChat,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    poll_hold_s: float | None = None,
) -> ILinkServer:
    """Serve ``world``'s iLink accounts (``poll_hold_s``: ``None``, :data:`POLL_HOLD_S`);
    the running server if it has one already, on ``host`` and on ``port`` (``0``: any
    port), with ``poll_hold_s`` (``None``: any), else ValueError naming what it runs with.
    One server a world: its bots' logins and files name its address
    (:class:`ILinkState`)."""
    running = world.ilink_state.server
    if running is not None:
        differs = []
        if host != running.host or port not in (0, running.port):
            differs.append(f"on {host_port(host, port)}")
        if poll_hold_s is not None and poll_hold_s != running.poll_hold_s:
            differs.append(f"with poll_hold_s={poll_hold_s:g}")
        if differs:
            raise ValueError(
                f"the world's iLink server runs on {running._address} already, with "
                f"poll_hold_s={running.poll_hold_s:g}, not {' and '.join(differs)}: ask for "
                "what it runs with (port 0 and poll_hold_s left out: the running one's), or "
                "close it first (await world.close()); a world has one server"
            )
        return running
    hold = POLL_HOLD_S if poll_hold_s is None else poll_hold_s
    server = ILinkServer(world, poll_hold_s=hold)
    await server.start(host, port)
    log.info("iLink server of the simulated world at %s", server.base_url)
    return server
