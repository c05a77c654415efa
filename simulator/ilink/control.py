"""The control API of the simulated iLink server, under ``/sim/``: what a test in any
language uses to play the world (the bot's owner and its users) around an iLink client.

JSON in and out; a request the world cannot do is a 4xx with ``{"error": "..."}`` saying
why. See docs/simulator-server.md.

- ``GET /sim/`` this list.
- ``GET /sim/accounts``; ``POST /sim/accounts`` ``{"id": "bot", "name": "..."}``: iLink bot
  accounts (``bot_id`` is the ``ilink_bot_id``, ``owner`` the user who scans for it).
- ``POST /sim/accounts/{id}/scan``, ``.../confirm``, ``.../cancel``, ``.../login`` (scan and
  confirm): the owner's phone, on the QR code a client asked for. ``confirm`` and ``login``
  take ``{"verify_code": true}``: the phone asks for the number it shows (the answer's
  ``phone_shows``) instead of logging in; the client must send it back.
- ``GET /sim/accounts/{id}/phone``: what the owner's phone shows (``shows``: the number
  the login asks for, or null).
- ``GET /sim/qrcodes``: the codes handed out and their status.
- ``POST /sim/messages`` ``{"from": "alice@im.wechat", "account": "bot", "text": "hi"}``,
  optional ``media`` (``{"kind": "image", "name": "a.png", "size": 40000}``), ``kind``,
  ``age_s`` (said that many seconds ago) and ``quote`` (the ``message_id`` of a message it
  quotes): a user writes to a bot.
- ``GET /sim/sent?account=bot&to=alice@im.wechat``: what bots sent (transcript entries;
  ``since=N`` skips the first N, and ``wait_ms=M`` waits up to M ms for one more);
  ``GET /sim/transcript``: everything, in and out; ``GET /sim/files/{message_id}``: the
  bytes of a message's file (decrypted).
- ``POST /sim/faults`` ``{"kind": "rate_limit", "account": "bot", "count": 1}`` (and
  ``seconds``): see :meth:`SimulatedWeChat.fault`.
- ``GET /sim/events?since=N``: the world's event log from entry N (logins, faults,
  typing, refused sends, replaced polls).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from simulator.ilink.server import ILinkServer

__all__ = ["ROUTES", "add_control_routes"]

ROUTES = [
    "GET /sim/accounts",
    "POST /sim/accounts",
    "POST /sim/accounts/{id}/scan|confirm|cancel|login",
    "GET /sim/accounts/{id}/phone",
    "GET /sim/qrcodes",
    "POST /sim/messages",
    "GET /sim/sent",
    "GET /sim/transcript",
    "GET /sim/files/{message_id}",
    "POST /sim/faults",
    "GET /sim/events",
]


def _fail(status: int, error: str) -> web.Response:
    return web.json_response({"error": error}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(
            text='{"error": "the body is not JSON"}', content_type="application/json"
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text='{"error": "the body must be a JSON object"}', content_type="application/json"
        )
    return body


def add_control_routes(server: ILinkServer) -> None:
    """Add the ``/sim/`` routes to ``server``'s application."""
    world, state = server.world, server.state

    def account_json(account_id: str) -> dict[str, Any]:
        sim = state.sim(account_id)
        bot = state.bot(account_id)
        return {
            "id": account_id,
            "bot_id": sim.wxid,
            "name": sim.name,
            "owner": sim.owner,
            "logged_in": bot.token is not None,
            "base_url": server.base_url_for(account_id),
            "phone_shows": state.qr.shown(account_id),
        }

    async def index(request: web.Request) -> web.Response:
        return web.json_response(
            {"base_url": server.base_url, "cdn_base_url": server.cdn_base_url, "routes": ROUTES}
        )

    async def accounts(request: web.Request) -> web.Response:
        ids = [a.id for a in world.accounts.values() if a.transport == "ilink"]
        return web.json_response([account_json(i) for i in ids])

    async def add_account(request: web.Request) -> web.Response:
        body = await _body(request)
        account_id, name = body.get("id"), body.get("name")
        if not isinstance(account_id, str) or not account_id:
            return _fail(400, '"id" is required: the account\'s name in the world, e.g. "bot"')
        if name is not None and not isinstance(name, str):
            return _fail(400, '"name" must be a string')
        known = world.accounts.get(account_id)
        if known is not None and known.transport != "ilink":
            return _fail(409, f"account {account_id!r} exists and is not an iLink account")
        world.add_account(account_id, name=name, transport="ilink")
        return web.json_response(account_json(account_id), status=201)

    async def phone(request: web.Request) -> web.Response:
        account_id, action = request.match_info["id"], request.match_info["action"]
        if not world._is_ilink(account_id):
            return _fail(404, f"no iLink account {account_id!r}")
        body = await _body(request) if request.can_read_body else {}
        ask = body.get("verify_code", False)
        if not isinstance(ask, bool) or (ask and action not in ("confirm", "login")):
            return _fail(
                400,
                '"verify_code" is true or false, on confirm or login only: true makes the '
                "phone ask for the number it shows",
            )
        try:
            if action == "login":
                world.scan(account_id)
                world.confirm(account_id, verify_code=ask)
            elif action == "confirm":
                world.confirm(account_id, verify_code=ask)
            else:
                getattr(world, action)(account_id)
        except RuntimeError as exc:
            return _fail(409, str(exc))
        return web.json_response(account_json(account_id))

    async def phone_screen(request: web.Request) -> web.Response:
        account_id = request.match_info["id"]
        if not world._is_ilink(account_id):
            return _fail(404, f"no iLink account {account_id!r}")
        return web.json_response({"account": account_id, "shows": state.qr.shown(account_id)})

    async def qrcodes(request: web.Request) -> web.Response:
        codes = [state.qr.status(c) for c in list(state.qr.codes)]
        return web.json_response(
            [
                {
                    "qrcode": q.code,
                    "status": q.status,
                    "account": q.account_id,
                    "wrong_codes": q.wrong_codes,
                }
                for q in codes
                if q is not None
            ]
        )

    async def say(request: web.Request) -> web.Response:
        body = await _body(request)
        sender, account = body.get("from"), body.get("account")
        text, media = body.get("text", ""), body.get("media")
        if not isinstance(sender, str) or not sender:
            return _fail(400, '"from" is required: the user\'s id, e.g. "alice@im.wechat"')
        if not isinstance(account, str) or not world._is_ilink(account):
            return _fail(400, f'"account" must name an iLink account; got {account!r}')
        if not isinstance(text, str):
            return _fail(400, '"text" must be a string')
        if media is not None and not isinstance(media, dict):
            return _fail(400, '"media" must be an object like {"kind": "image", "size": 1000}')
        quote = body.get("quote")
        if quote is not None and not isinstance(quote, str):
            return _fail(400, '"quote" must be the message_id of the message quoted')
        age = body.get("age_s", 0.0)
        if not _is_number(age) or age < 0:
            return _fail(400, '"age_s" must be a number of seconds, 0 or more')
        try:
            ids = await world.say(
                sender,
                text,
                account=account,
                media=media,
                kind=body.get("kind"),
                age_s=float(age),
                quote=quote,
                settle=False,
            )
        except (ValueError, TypeError) as exc:
            return _fail(400, str(exc))
        except KeyError as exc:
            return _fail(400, str(exc.args[0]))
        return web.json_response({"message_ids": ids}, status=201)

    async def sent(request: web.Request) -> web.Response:
        to, account = request.query.get("to"), request.query.get("account")
        try:
            since = int(request.query.get("since", "0"))
            wait_ms = int(request.query.get("wait_ms", "0"))
        except ValueError:
            return _fail(400, '"since" and "wait_ms" must be whole numbers')
        entries = world.sent(to=to, account=account, since=since)
        deadline = asyncio.get_running_loop().time() + min(wait_ms, 60_000) / 1000
        while not entries:  # wait_ms: until a new one is sent, or the time is up
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.sent_changed.wait(), left)
            entries = world.sent(to=to, account=account, since=since)
        return web.json_response([_entry(e) for e in entries])

    async def transcript(request: web.Request) -> web.Response:
        return web.json_response([_entry(e) for e in world.transcript])

    async def file(request: web.Request) -> web.Response:
        try:
            data = world.message_data(request.match_info["message_id"])
        except KeyError:
            return _fail(404, "no such message")
        if data is None:
            return _fail(404, "that message has no file")
        return web.Response(body=data, content_type="application/octet-stream")

    async def fault(request: web.Request) -> web.Response:
        body = await _body(request)
        kind, account = body.get("kind"), body.get("account")
        count, seconds = body.get("count", 1), body.get("seconds")
        if not isinstance(account, str) or not world._is_ilink(account):
            return _fail(400, f'"account" must name an iLink account; got {account!r}')
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            return _fail(400, '"count" must be a whole number, 1 or more')
        if seconds is not None and (
            isinstance(seconds, bool) or not isinstance(seconds, int | float)
        ):
            return _fail(400, '"seconds" must be a number')
        try:
            world.fault(str(kind), account, count, seconds=seconds)
        except ValueError as exc:
            return _fail(400, str(exc))
        return web.json_response({"ok": True})

    async def events(request: web.Request) -> web.Response:
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            return _fail(400, '"since" must be a whole number')
        return web.json_response(
            {"events": world.events_log[since:], "next": len(world.events_log)}
        )

    router = server.app.router
    router.add_get("/sim/", index)
    router.add_get("/sim/accounts", accounts)
    router.add_post("/sim/accounts", add_account)
    router.add_post("/sim/accounts/{id}/{action:scan|confirm|cancel|login}", phone)
    router.add_get("/sim/accounts/{id}/phone", phone_screen)
    router.add_get("/sim/qrcodes", qrcodes)
    router.add_post("/sim/messages", say)
    router.add_get("/sim/sent", sent)
    router.add_get("/sim/transcript", transcript)
    router.add_get("/sim/files/{message_id}", file)
    router.add_post("/sim/faults", fault)
    router.add_get("/sim/events", events)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _entry(entry: Any) -> dict[str, Any]:
    data: dict[str, Any] = entry.to_json()
    data["message_id"] = entry.message_id
    return data
