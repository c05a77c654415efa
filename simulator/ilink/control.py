"""The control API of the simulated iLink server, under ``/sim/``: what a test in any
language uses to play the world (the bot's owner and its users) around an iLink client.

JSON in and out; a request the world cannot do is a 4xx with ``{"error": "..."}`` saying
why (a bug of the simulator, a 500 with the same shape). See docs/simulator-server.md.

- ``GET /sim/`` this list.
- ``GET /sim/accounts``; ``POST /sim/accounts`` ``{"id": "bot", "name": "..."}``: iLink bot
  accounts (``bot_id`` is the ``ilink_bot_id``, ``owner`` the user who scans for it); an
  id the world has already is a 409.
- ``POST /sim/accounts/{id}/scan``, ``.../confirm``, ``.../cancel``, ``.../login`` (scan and
  confirm): the owner's phone, on the QR code a client asked for. ``confirm`` and ``login``
  take ``{"verify_code": true}``: the phone asks for the number it shows (the answer's
  ``phone_shows``) instead of logging in; the client must send it back.
- ``GET /sim/accounts/{id}/phone``: what the owner's phone shows (``shows``: the number
  the login asks for, or null).
- ``GET /sim/qrcodes``: the codes handed out and their status.
- ``POST /sim/messages`` ``{"from": "alice@im.wechat", "account": "bot", "text": "hi"}``,
  optional ``media`` (``{"kind": "image", "name": "a.png", "size": 40000}``), ``kind``
  (the message's own: ``text``, or its media's; iLink has no item for another),
  ``age_s`` (said that many seconds ago) and ``quote`` (the ``message_id`` of a message
  it quotes): a user writes to a bot. ``together``: more messages (``text``, ``media``,
  ``quote``) said with it, as one iLink message of all their items.
- ``GET /sim/sent?account=bot&to=alice@im.wechat``: what bots sent (transcript entries;
  ``since=N`` skips the first N, and ``wait_ms=M``, when there is none past N, waits
  up to M ms, at most 60 s, for the next one);
  ``GET /sim/transcript``: everything, in and out; ``GET /sim/files/{message_id}``: the
  bytes of a message's file (decrypted).
- ``POST /sim/faults`` ``{"kind": "rate_limit", "account": "bot", "count": 1}`` (and
  ``seconds``): see :meth:`SimulatedWeChat.fault`.
- ``GET /sim/events?since=N``: the world's event log from entry N (logins, faults,
  typing, refused sends, replaced polls), as ``{"events": [...], "next": M}``: ``next``
  is the ``since`` that reads only the entries after these.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from simulator.ilink.wire import NotJson, check_kind, json_text, read_json_object
from simulator.media import MAX_DURATION_S, MAX_MEDIA_BYTES
from simulator.messages import MAX_AGE_S
from simulator.validation import problems
from simulator.world import FAULT_KINDS
from wechat_sdk.puppet import MediaWord, MessageKind

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


# ---------------------------------------------------------------- what requests may say


class _Body(BaseModel):
    """A JSON body: its keys are these fields, of exactly these types."""

    model_config = ConfigDict(extra="forbid", strict=True)


class _Query(BaseModel):
    """A query string: these keys only (their values are text, read as numbers)."""

    model_config = ConfigDict(extra="forbid")


class _NewAccount(_Body):
    id: str = Field(min_length=1)
    name: str | None = None


class _Phone(_Body):
    verify_code: bool = False


class _Media(_Body):
    kind: MediaWord = "file"
    name: str | None = None
    size: int = Field(1024, ge=0, le=MAX_MEDIA_BYTES)
    duration: float | None = Field(None, ge=0, le=MAX_DURATION_S)
    mime: str | None = None


class _Also(_Body):
    """A message said together with another, in the same iLink message."""

    text: str = ""
    media: _Media | None = None
    quote: str | None = None


class _Say(_Body):
    sender: str = Field(alias="from", min_length=1)
    account: str
    text: str = ""
    media: _Media | None = None
    kind: Literal[tuple(k.value for k in MessageKind)] | None = None  # type: ignore[valid-type]
    age_s: float = Field(0.0, ge=0, le=MAX_AGE_S)
    quote: str | None = None
    room: str | None = None
    together: list[_Also] = []

    @field_validator("room")
    @classmethod
    def _direct_only(cls, room: str | None) -> str | None:
        if room is not None:
            raise ValueError(
                "iLink accounts are in direct chats only (iLink bots cannot be in groups): "
                "leave room out"
            )
        return room

    @field_validator("kind")
    @classmethod
    def _the_kind_it_is(cls, kind: str | None, info: ValidationInfo) -> str | None:
        """A kind the bot gets (:func:`~simulator.ilink.wire.check_kind`, the rule
        ``world.say`` keeps too), said here with the body's other problems."""
        if "media" in info.data:  # (media wrong: said on its own)
            media: _Media | None = info.data["media"]
            check_kind(kind, media.kind if media is not None else None)
        return kind


class _Fault(_Body):
    kind: Literal[FAULT_KINDS]  # type: ignore[valid-type]
    account: str
    count: int = Field(1, ge=1)
    seconds: float | None = Field(None, ge=0)


class _Sent(_Query):
    account: str | None = None
    to: str | None = None
    since: int = Field(0, ge=0)
    wait_ms: int = Field(0, ge=0)


class _Events(_Query):
    since: int = Field(0, ge=0)


#: what to write for a required key left out
_REQUIRED = {
    "id": 'the account\'s name in the world, e.g. "bot"',
    "from": 'the user\'s id, e.g. "alice@im.wechat"',
    "account": 'the iLink account, e.g. "bot"',
    "kind": "the fault, one of " + ", ".join(FAULT_KINDS),
}

_M = TypeVar("_M", bound=BaseModel)


def _valid(model: type[_M], data: Any) -> _M:
    """``data`` as ``model``, else a 400 naming each problem's key (dotted) and the fix."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for line in problems(exc, model):
            key, _, message = line.partition(": ")
            if message == "required key is missing" and key in _REQUIRED:
                line = f"{line}: {_REQUIRED[key]}"
            lines.append(line)
        raise _error(400, "; ".join(lines)) from None


def _error(status: int, error: str) -> web.HTTPException:
    cls = web.HTTPNotFound if status == 404 else web.HTTPBadRequest
    return cls(text=json_text({"error": error}), content_type="application/json")


def _answer(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=json_text)


def _fail(status: int, error: str) -> web.Response:
    return _answer({"error": error}, status)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        return read_json_object(await request.read())
    except NotJson as exc:
        raise _error(400, str(exc)) from None


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
        return _answer(
            {"base_url": server.base_url, "cdn_base_url": server.cdn_base_url, "routes": ROUTES}
        )

    async def accounts(request: web.Request) -> web.Response:
        ids = [a.id for a in world.accounts.values() if a.transport == "ilink"]
        return _answer([account_json(i) for i in ids])

    async def add_account(request: web.Request) -> web.Response:
        body = _valid(_NewAccount, await _body(request))
        account_id, name = body.id, body.name
        known = world.accounts.get(account_id)
        if known is not None and known.transport != "ilink":
            return _fail(409, f"account {account_id!r} exists and is not an iLink account")
        if known is not None:
            return _fail(
                409,
                f"account {account_id!r} exists already (GET /sim/accounts shows it): "
                "give a new account another id",
            )
        world.add_account(account_id, name=name, transport="ilink")
        return _answer(account_json(account_id), status=201)

    async def phone(request: web.Request) -> web.Response:
        account_id, action = request.match_info["id"], request.match_info["action"]
        if not world._is_ilink(account_id):
            return _fail(404, f"no iLink account {account_id!r}")
        ask = _valid(_Phone, await _body(request) if request.can_read_body else {}).verify_code
        if ask and action not in ("confirm", "login"):
            return _fail(
                400,
                "verify_code: true on confirm or login only: true makes the phone ask for "
                "the number it shows",
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
        return _answer(account_json(account_id))

    async def phone_screen(request: web.Request) -> web.Response:
        account_id = request.match_info["id"]
        if not world._is_ilink(account_id):
            return _fail(404, f"no iLink account {account_id!r}")
        return _answer({"account": account_id, "shows": state.qr.shown(account_id)})

    async def qrcodes(request: web.Request) -> web.Response:
        codes = [state.qr.status(c) for c in list(state.qr.codes)]
        return _answer(
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
        body = _valid(_Say, await _body(request))
        if not world._is_ilink(body.account):
            return _fail(400, f"account: {_not_ilink(body.account)}")
        media = body.media.model_dump(exclude_none=True) if body.media is not None else None
        bot = world.ilink_state.bot(body.account)
        unknown = [a.quote for a in body.together if a.quote and a.quote not in world._messages]
        if unknown:  # (refused before any of them is said)
            return _fail(400, f"together: no message {unknown[0]!r} to quote")
        try:
            with bot.one_message() if body.together else contextlib.nullcontext():
                ids = await world.say(
                    body.sender,
                    body.text,
                    account=body.account,
                    media=media,
                    kind=body.kind,
                    age_s=body.age_s,
                    quote=body.quote,
                    settle=False,
                )
                for also in body.together:
                    ids += await world.say(
                        body.sender,
                        also.text,
                        account=body.account,
                        media=also.media.model_dump(exclude_none=True) if also.media else None,
                        quote=also.quote,
                        settle=False,
                    )
        except (ValueError, TypeError) as exc:
            return _fail(400, str(exc))
        except KeyError as exc:
            return _fail(400, str(exc.args[0]))
        return _answer({"message_ids": ids}, status=201)

    def _not_ilink(account_id: str) -> str:
        ilink = [a.id for a in world.accounts.values() if a.transport == "ilink"]
        what = "not an iLink account" if account_id in world.accounts else "no such account"
        return f"{account_id!r} is {what} (iLink accounts: {', '.join(ilink) or 'none'})"

    async def sent(request: web.Request) -> web.Response:
        query = _valid(_Sent, dict(request.query))
        to, account, since = query.to, query.account, query.since
        if account is not None and account not in world.accounts:
            names = ", ".join(world.accounts) or "none"
            return _fail(404, f"no account {account!r} in the world (accounts: {names})")
        entries = world.sent(to=to, account=account, since=since)
        deadline = asyncio.get_running_loop().time() + min(query.wait_ms, 60_000) / 1000
        while not entries:  # wait_ms: until a new one is sent, or the time is up
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.sent_changed.wait(), left)
            entries = world.sent(to=to, account=account, since=since)
        return _answer([_entry(e) for e in entries])

    async def transcript(request: web.Request) -> web.Response:
        return _answer([_entry(e) for e in world.transcript])

    async def file(request: web.Request) -> web.Response:
        try:
            data = world.message_data(request.match_info["message_id"])
        except KeyError:
            return _fail(404, "no such message")
        if data is None:
            return _fail(404, "that message has no file")
        return web.Response(body=data, content_type="application/octet-stream")

    async def fault(request: web.Request) -> web.Response:
        body = _valid(_Fault, await _body(request))
        if not world._is_ilink(body.account):
            why = _not_ilink(body.account)
            if body.kind == "slow_poll":
                why += ": slow_poll applies to iLink accounts only"
            return _fail(400, f"account: {why}")
        try:
            world.fault(body.kind, body.account, body.count, seconds=body.seconds)
        except ValueError as exc:
            return _fail(400, str(exc))
        return _answer({"ok": True})

    async def events(request: web.Request) -> web.Response:
        since = _valid(_Events, dict(request.query)).since
        return _answer({"events": world.events_log[since:], "next": len(world.events_log)})

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


def _entry(entry: Any) -> dict[str, Any]:
    data: dict[str, Any] = entry.to_json()
    data["message_id"] = entry.message_id
    return data
