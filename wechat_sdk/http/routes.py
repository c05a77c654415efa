"""The HTTP API's routes: a table (:data:`API_ROUTES`) the server and the OpenAPI document
are both made from, and the handlers (:class:`ApiHandlers`).

Every body is validated by its pydantic model; every error is an :class:`ApiError`, which
the server answers in the one JSON shape (:class:`~wechat_sdk.http.models.ErrorBody`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from wechat_sdk.agent import Reply
from wechat_sdk.config.accounts import asked_account_id
from wechat_sdk.config.loader import error_words
from wechat_sdk.file_data import file_data
from wechat_sdk.gateway.pairing_api import NOT_TOLD
from wechat_sdk.http.models import (
    Account,
    AccountList,
    Approved,
    ApproveRequest,
    Denied,
    DenyRequest,
    ErrorBody,
    MessageRequest,
    MessageSent,
    PairingList,
    PairingRequestOut,
    VerifyCodeAnswer,
    VerifyCodeRequest,
    WebhookEndpointOut,
    WebhookList,
)
from wechat_sdk.logtext import shown
from wechat_sdk.outbound.delivery import DeliveryFailed, SendCut, finish_or_cut
from wechat_sdk.outbound.message import OutboundMessage
from wechat_sdk.pairing.service import PairingError
from wechat_sdk.puppet import OutboundFile, WindowClosed
from wechat_sdk.stores.configured import store_failure

if TYPE_CHECKING:
    from wechat_sdk.gateway.gateway import Gateway

__all__ = [
    "API_ROUTES",
    "IDEMPOTENCY_TTL_S",
    "ApiError",
    "ApiHandlers",
    "Route",
    "store_unavailable",
]

#: Seconds an ``Idempotency-Key`` is remembered.
IDEMPOTENCY_TTL_S = 86_400.0
#: keys past their time are forgotten at most this often (on Redis a purge reads every
#: key: once per keyed request, a busy API read them all each time); one found past its
#: time before that is forgotten when it comes again
IDEMPOTENCY_PURGE_EVERY_S = 60.0
_MAX_KEY_CHARS = 255

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger("wechat_sdk.gateway")


class ApiError(Exception):
    """An error answer: HTTP ``status``, a ``code`` and a message saying what to change.

    On a send, ``sent`` and ``sent_files`` say what went out before the error, and
    ``maybe_sent`` that a message cut by a stop may or may not have gone out.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        sent: str | None = None,
        sent_files: list[str] | None = None,
        maybe_sent: bool = False,
        kept: int = 0,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.sent = sent or None
        self.sent_files = sent_files or None
        self.maybe_sent = maybe_sent
        #: messages of the send kept to go out later (a reply window's overflow)
        self.kept = kept

    @property
    def went_out(self) -> bool:
        """Something went out, may have, or will (kept for later): the send must never be
        made again."""
        return bool(self.sent or self.sent_files or self.maybe_sent or self.kept)

    def body(self) -> dict[str, Any]:
        return ErrorBody(
            error=str(self), code=self.code, sent=self.sent, sentFiles=self.sent_files
        ).model_dump(exclude_none=True)


def store_unavailable(
    exc: BaseException,
    gateway: Gateway,
    *,
    what: str = "",
    sent: str | None = None,
    sent_files: list[str] | None = None,
    kept: int = 0,
) -> ApiError | None:
    """The answer to a request whose store call raised ``exc``, when that is the store
    failing (Redis unreachable, say): 503 ``store_unavailable``, saying why and what to
    check (and ``what`` the request did, for a send: what went out). None for any other
    error (a bug: answered 500)."""
    words = store_failure(exc, gateway.config.channels.wechat.store.url)
    if words is None:
        return None
    did = f"; {what}" if what else ""
    # (a retry of a send that went out in part would send that part twice)
    then = "send what is missing" if sent or sent_files or kept else "try again"
    return ApiError(
        503,
        "store_unavailable",
        f"the store could not be used: {words}{did}; {then} once it is back",
        sent=sent,
        sent_files=sent_files,
        kept=kept,
    )


def went_out_words(
    sent: str | None,
    files: list[str] | None,
    maybe_sent: bool = False,
    *,
    before: str = "it failed",
) -> str:
    """What a failed send had sent, in words for its answer: ``"nothing was sent"``, or
    ``"sent before it failed: 40 characters of text, file a.txt"``."""
    parts = [f"{len(sent)} characters of text"] if sent else []
    if files:
        parts.append(f"file{'s' if len(files) > 1 else ''} {', '.join(files)}")
    words = f"sent before {before}: {', '.join(parts)}" if parts else "nothing was sent"
    if maybe_sent:
        words += " (and the message going out when it was cut may or may not have gone out)"
    return words


def _kept_words(kept: int) -> str:
    if not kept:
        return ""
    return (
        f"; {kept} message{'s' if kept > 1 else ''} kept, to go out after the user's next "
        "message (the reply window)"
    )


@dataclass(frozen=True)
class Route:
    """One API route: what the server routes and the OpenAPI document describes."""

    method: str
    path: str
    #: the handler's name on ApiHandlers, and the operationId
    name: str
    summary: str
    responses: dict[int, type[BaseModel]]
    request: type[BaseModel] | None = None
    request_optional: bool = False
    #: query parameters: name -> description
    query: dict[str, str] = field(default_factory=dict)
    #: request headers: name -> description
    headers: dict[str, str] = field(default_factory=dict)


API_ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/messages",
        "send_message",
        "Send text or files to a contact or a group (chunked and paced like a reply)",
        {200: MessageSent},
        request=MessageRequest,
        headers={
            "Idempotency-Key": "a key of your own (up to 255 characters): a retried request "
            "with the same key sends nothing again and gets the first answer"
        },
    ),
    Route("GET", "/v1/accounts", "list_accounts", "Every account's status", {200: AccountList}),
    Route(
        "POST",
        "/v1/accounts/{id}/login/verify-code",
        "verify_code",
        "Give an iLink login the number the phone shows (when the account's state asks for it)",
        {200: VerifyCodeAnswer},
        request=VerifyCodeRequest,
    ),
    Route(
        "GET",
        "/v1/webhooks",
        "list_webhooks",
        "Every webhook endpoint's state: delivering, retrying, failing or disabled, and its queue",
        {200: WebhookList},
    ),
    Route(
        "GET",
        "/v1/pairing",
        "list_pairing",
        "Pending pairing requests, oldest first",
        {200: PairingList},
        query={"account": "only this account's requests (any case)"},
    ),
    Route(
        "POST",
        "/v1/pairing/{code}/approve",
        "approve_pairing",
        "Approve a pairing code: its sender may DM the bot",
        {200: Approved},
        request=ApproveRequest,
        request_optional=True,
    ),
    Route(
        "POST",
        "/v1/pairing/{code}/deny",
        "deny_pairing",
        "Deny a pairing code",
        {200: Denied},
        request=DenyRequest,
        request_optional=True,
    ),
)


def asked_account(raw: str, where: str) -> str:
    """An account id from a request's path or query, by the rule its bodies' ids follow
    (:data:`~wechat_sdk.http.models.AskedAccountId`, the CLI's too)."""
    try:
        return asked_account_id(raw)
    except ValueError as exc:
        raise ApiError(400, "invalid_request", f"{where}: {exc}") from None


def query_value(request: web.Request, name: str) -> str | None:
    """The query parameter ``name`` (None: not given); given more than once, a 400 (which
    one was meant is not for the gateway to guess)."""
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise ApiError(
            400,
            "invalid_request",
            f"the query parameter {name} is given {len(values)} times: give it once (?{name}=...)",
        )
    return values[0] if values else None


def parse_body(model: type[M], raw: bytes, *, content_type: str = "", optional: bool = False) -> M:
    """``raw`` validated by ``model``; an empty body is ``{}`` when ``optional``.
    ``content_type`` (the request's header) is named when the body is no JSON object."""
    if optional and not raw.strip():
        raw = b"{}"
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            if not err["loc"] and err["type"] in ("json_invalid", "model_type"):
                # (the body as a whole is not JSON, or no object: a form, say)
                raise ApiError(400, "invalid_request", _not_an_object(err, content_type)) from None
            where = ".".join(str(p) for p in err["loc"]) or "body"
            problems.append(f"{where}: {error_words(err)}")
        raise ApiError(400, "invalid_request", "; ".join(problems)) from None


#: what a JSON value that is no object is, by its Python type
_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number"}


def _not_an_object(err: Any, content_type: str) -> str:
    """What to send instead of a body that is not a JSON object (a form, say)."""
    if err["type"] == "json_invalid" and not bytes(err.get("input") or b"").strip():
        what = "this one is empty"
    elif err["type"] == "json_invalid":
        what = f"this one is not JSON: {err.get('ctx', {}).get('error', 'invalid')}"
    else:
        value = err.get("input")
        kind = "true or false" if isinstance(value, bool) else _JSON_KINDS.get(type(value))
        what = f"this one is {kind or 'null'}"
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        what += f"; it came as {shown(media_type, 100)}"
    return (
        f"the body must be a JSON object ({what}): send a JSON object, with the header "
        "Content-Type: application/json (curl: --json '{...}')"
    )


class ApiHandlers:
    """The API's handlers over a running gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        #: the sends under way, and their account (a stop waits for them, then cuts them)
        self._deliveries: dict[asyncio.Task[str], str] = {}
        #: a stop began: new sends are refused
        self._stopping = False
        #: when keys past IDEMPOTENCY_TTL_S were last forgotten (clock time)
        self._purged_at = -math.inf

    def accept_sends(self) -> None:
        """The gateway (re)started: sends are taken again."""
        self._stopping = False

    async def stop_sends(self, grace_s: float) -> None:
        """Refuse new sends; let those under way finish for up to ``grace_s`` (clock
        time), then cut the rest, each answered ``gateway_stopping`` with what went out.

        As for the accounts' replies (Turns.settle), a send the puppet already has is let
        land first, so that whether it went out is known.
        """
        self._stopping = True
        senders = [
            self.gateway.runners[a].outbound.sender
            for a in set(self._deliveries.values())
            if a in self.gateway.runners
        ]
        for sender in senders:
            sender.stop_began()
        try:
            await finish_or_cut(self._deliveries, grace_s, self.gateway.clock, senders)
        finally:
            for sender in senders:
                sender.stop_began(False)

    def handler(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        method: Callable[[web.Request], Awaitable[web.StreamResponse]] = getattr(self, route.name)
        return method

    # ------------------------------------------------------------ messages

    async def send_message(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        key = request.headers.get("Idempotency-Key")
        if key is None:
            status, body = await self._send(
                parse_body(MessageRequest, raw, content_type=_content_type(request))
            )
            return web.json_response(body, status=status)
        if not 0 < len(key) <= _MAX_KEY_CHARS:
            raise ApiError(
                400, "invalid_request", f"Idempotency-Key must be 1 to {_MAX_KEY_CHARS} characters"
            )
        if not key.isascii():
            try:  # (bytes that are not UTF-8 reach us surrogate-escaped: no store takes them)
                key.encode("utf-8")
            except UnicodeEncodeError:
                raise ApiError(
                    400,
                    "invalid_request",
                    "Idempotency-Key is not UTF-8: use ASCII letters, digits and dashes "
                    "(a UUID, say)",
                ) from None
        message = parse_body(
            MessageRequest, raw, content_type=_content_type(request)
        )  # (a bad body claims no key)
        store = self.gateway.store.idempotency
        now = self.gateway.clock.now()
        # what the request means, not its bytes: a retry whose JSON has its keys in another
        # order (or other spacing) is the same request
        fingerprint = _fingerprint(message.model_dump_json().encode())
        said_as = _fingerprint(raw)  # (how keys were told apart before: a retry across an upgrade)
        if now - self._purged_at >= IDEMPOTENCY_PURGE_EVERY_S:
            store.purge(now - IDEMPOTENCY_TTL_S)
            self._purged_at = now
        known = store.claim(key, fingerprint, now)
        if known is not None and known.created_at < now - IDEMPOTENCY_TTL_S:
            # past its time, not purged yet: purged now (by age, in one step: a key another
            # gateway has just claimed again is new, and stays), and the request is new
            store.purge(now - IDEMPOTENCY_TTL_S)
            self._purged_at = now
            known = store.claim(key, fingerprint, now)
        if known is not None:
            if known.fingerprint not in (fingerprint, said_as):
                raise ApiError(
                    422,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with another request: use a new key",
                )
            if known.status is None or known.response is None:
                raise ApiError(
                    409,
                    "request_in_progress",
                    "a request with this Idempotency-Key is under way (or was cut by a "
                    "restart, and whether it went out is unknown): it is not sent again",
                )
            response = web.json_response(text=known.response, status=known.status)
            response.headers["Idempotent-Replayed"] = "true"
            return response
        account = message.account or self.gateway.accounts.default_id
        try:
            status, body = await self._send(message)
        except ApiError as exc:
            # something went out: a retry gets this answer, nothing again; nothing went
            # out: a retry may try again
            answer = (exc.status, exc.body()) if exc.went_out else None
            if not self._keep_outcome(key, answer, account) and answer is None:
                # (the key stays claimed: a retry with it would be refused as under way)
                exc.args = (
                    f"{exc}; this Idempotency-Key could not be freed (the store failed): "
                    "retry with a new key",
                )
            raise
        # (cut by a stop, or a bug: whether it went out is unknown, so the key stays
        # claimed, and a retry is refused rather than sent twice)
        self._keep_outcome(key, (status, body), account)
        return web.json_response(body, status=status)

    def _keep_outcome(
        self, key: str, answer: tuple[int, dict[str, Any]] | None, account: str
    ) -> bool:
        """Keep a keyed send's ``answer`` for its retries (None: free the key); False when
        the store failed. A store that fails now leaves the key claimed (a retry is
        refused as under way, never sent again) and the send is answered all the same: its
        outcome is what its caller needs, and a store error in its place would invite a
        second send."""
        store = self.gateway.store.idempotency
        try:
            if answer is None:
                store.release(key)
            else:
                store.finish(key, answer[0], json.dumps(answer[1]))
        except Exception as exc:
            unavailable = store_unavailable(exc, self.gateway)
            if unavailable is None:
                raise
            log.warning(
                "the answer to an API send was not kept for its Idempotency-Key: %s (a "
                "retry with that key is answered 409 request_in_progress, never sent "
                "again) account=%s reason=store_unavailable",
                unavailable,
                account,
            )
            return False
        return True

    async def _send(self, message: MessageRequest) -> tuple[int, dict[str, Any]]:
        gateway = self.gateway
        if self._stopping:
            raise ApiError(
                503,
                "gateway_stopping",
                "the gateway is stopping: nothing was sent (try again once it is back)",
            )
        account_id = message.account or gateway.accounts.default_id
        runner = gateway.runners.get(account_id)
        if runner is None:
            running = ", ".join(gateway.runners) or "none"
            raise ApiError(
                404,
                "account_not_running",
                f"account {account_id!r} is not running (running: {running}); nothing was sent",
            )
        status = runner.status
        if status.lifecycle != "ready":
            raise ApiError(
                503,
                "account_not_ready",
                f"account {account_id!r} is {status.state}, not ready: nothing was sent "
                "(try again once GET /v1/accounts shows it ready)",
            )
        conversation = message.room or message.to
        reply_window = getattr(runner.puppet, "reply_window", None)  # (a puppet of old)
        window = reply_window(conversation) if reply_window is not None else None
        if window is not None and (
            window.remaining <= 0 or gateway.clock.now() >= window.closes_at
        ):
            raise ApiError(
                409,
                "window_closed",
                f"the reply window of {conversation} is closed: the bot may write again "
                "only after they write to it; nothing was sent",
            )
        files = [self._file(i, f) for i, f in enumerate(message.files)]
        reply = Reply(
            text=message.text,
            files=files,
            mention_ids=(message.to,) if message.room else (),
        )
        texts: list[str] = []
        names: list[str] = []
        waiting: list[OutboundMessage] = []  # (a reply window's overflow, kept for later)
        cut_uncertain: list[SendCut] = []

        async def deliver() -> str:
            try:
                return await gateway.send(
                    None,
                    reply,
                    account=account_id,
                    room=conversation,
                    sent=texts,
                    files_sent=names,
                    waiting=waiting,
                )
            except SendCut as cut:  # (a stop cut it: the message it had may have gone)
                if cut.outcome == "uncertain":
                    cut_uncertain.append(cut)
                raise

        delivery = asyncio.ensure_future(deliver())
        self._deliveries[delivery] = account_id
        try:
            text = await delivery
        except WindowClosed as exc:
            raise ApiError(409, "window_closed", f"{exc}; nothing was sent") from None
        except DeliveryFailed as exc:
            sent, went = exc.sent or None, exc.files
            # a reply window's overflow was kept before the failure: it goes out later
            kept = len(waiting)
            unknown = exc.code == "outcome_unknown"  # (it may have gone out)
            before = "the logout" if exc.code == "not_logged_in" else "it failed"
            what = went_out_words(sent, went, unknown, before=before) + _kept_words(kept)
            if exc.code == "window_closed":
                raise ApiError(
                    409, "window_closed", f"{exc}; {what}", sent=sent, sent_files=went, kept=kept
                ) from None
            if exc.code in ("store_unavailable", "store_failed"):
                # the store failed under the send (the account's lease could not be
                # confirmed, Redis unreachable; what a reply window left for the user's
                # next message could not be kept): worded by the store's rule, from the
                # store's own error under the refusal
                unavailable = store_unavailable(
                    _root(exc), gateway, what=what, sent=sent, sent_files=went, kept=kept
                )
                if unavailable is not None:
                    raise unavailable from None
            if exc.code == "not_logged_in":
                raise ApiError(
                    503,
                    "account_not_ready",
                    f"account {account_id!r} logged out while sending: {what} (try again "
                    "once GET /v1/accounts shows it ready)",
                    sent=sent,
                    sent_files=went,
                    kept=kept,
                ) from None
            raise ApiError(
                502,
                "delivery_failed",
                f"{exc} ({exc.code}); {what}",
                sent=sent,
                sent_files=went,
                maybe_sent=unknown,
                kept=kept,
            ) from None
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not delivery.cancelled() or (current is not None and current.cancelling()):
                raise  # this request itself was cancelled
            # cut by a stop (stop_sends): answered with what went out
            sent = "\n\n".join(texts) or None
            kept = len(waiting)
            what = went_out_words(sent, names, bool(cut_uncertain), before="the stop")
            what += _kept_words(kept)
            log.warning(
                "API send to %s cut by a stop: %s account=%s reason=gateway_stopping",
                shown(conversation),
                what,
                account_id,
            )
            raise ApiError(
                503,
                "gateway_stopping",
                f"the gateway is stopping: {what}; the rest was not sent",
                sent=sent,
                sent_files=names,
                maybe_sent=bool(cut_uncertain),
                kept=kept,
            ) from None
        finally:
            del self._deliveries[delivery]
        body = MessageSent(
            accountId=account_id,
            conversationId=conversation,
            text=text,
            files=len(names),
            waiting=len(waiting),
        )
        return 200, body.model_dump()

    @staticmethod
    def _file(index: int, f: Any) -> OutboundFile:
        data = None
        if f.data is not None:
            try:
                data = file_data(f.data)
            except ValueError as exc:
                raise ApiError(400, "invalid_request", f"files.{index}.data: {exc}") from None
        return OutboundFile(
            name=f.name, kind=f.kind, data=data, url=f.url, mime=f.mime, duration_s=f.durationS
        )

    # ------------------------------------------------------------ accounts

    async def list_accounts(self, request: web.Request) -> web.StreamResponse:
        enabled = {a.id for a in self.gateway.accounts.enabled}
        accounts = [
            Account(
                accountId=s.account,
                enabled=s.account in enabled,
                lifecycle=s.lifecycle,
                state=s.state,
                userId=s.user_id,
                userName=s.user_name,
                qrUrl=s.qr_url,
                lastInbound=s.last_inbound,
                lastOutbound=s.last_outbound,
                queueDepth=s.queue_depth,
                sent=s.sent,
                sendFailures=s.send_failures,
                pendingPairing=s.pending_pairing,
                lastError=s.last_error,
            )
            for s in self.gateway.status()
        ]
        return web.json_response(AccountList(accounts=accounts).model_dump())

    async def verify_code(self, request: web.Request) -> web.StreamResponse:
        from wechat_sdk.gateway.verify_code import (
            OUTCOME_WORDS,
            VerifyCodeProblem,
            submit_verify_code,
        )

        body = parse_body(
            VerifyCodeRequest, await request.read(), content_type=_content_type(request)
        )
        account = asked_account(request.match_info["id"], "id")
        try:
            outcome = await submit_verify_code(self.gateway, account, body.code)
        except VerifyCodeProblem as exc:
            status = {"account_not_running": 404, "invalid_request": 400}.get(exc.code, 409)
            raise ApiError(status, exc.code, str(exc)) from None
        answer = VerifyCodeAnswer(
            accountId=account, outcome=outcome, message=OUTCOME_WORDS[outcome]
        )
        return web.json_response(answer.model_dump())

    # ------------------------------------------------------------ webhooks

    async def list_webhooks(self, request: web.Request) -> web.StreamResponse:
        webhooks = [
            WebhookEndpointOut(
                index=w.index,
                endpoint=w.endpoint,
                state=w.state,
                queued=w.queued,
                lastFailure=w.last_failure,
                lastFailureAt=w.last_failure_at,
            )
            for w in self.gateway.webhook_status()
        ]
        return web.json_response(WebhookList(webhooks=webhooks).model_dump())

    # ------------------------------------------------------------ pairing

    async def list_pairing(self, request: web.Request) -> web.StreamResponse:
        account = query_value(request, "account")
        if account is not None:
            account = asked_account(account, "account")
        requests = [
            PairingRequestOut(
                code=r.code,
                accountId=r.account_id,
                senderId=r.sender_id,
                senderName=r.sender_name,
                createdAt=r.created_at,
                expiresAt=r.expires_at,
            )
            for r in self.gateway.pairing.list(account)
        ]
        return web.json_response(PairingList(requests=requests).model_dump())

    async def approve_pairing(self, request: web.Request) -> web.StreamResponse:
        body = parse_body(
            ApproveRequest, await request.read(), content_type=_content_type(request), optional=True
        )
        pairing = self.gateway.pairing
        try:
            approved, tell_through = pairing.approve_quietly(
                request.match_info["code"], account=body.account
            )
        except PairingError as exc:
            raise ApiError(404, "pairing_error", str(exc)) from None
        notified = False
        runner = self.gateway.runners.get(tell_through)  # (the account the sender wrote to)
        if body.notify and runner is not None and runner.status.lifecycle == "ready":
            with contextlib.suppress(*NOT_TOLD):  # (logged out meanwhile, refused: logged too)
                await pairing.notify_approved(tell_through, approved.sender_id)
                notified = True
        out = Approved(
            accountId=approved.account_id,
            senderId=approved.sender_id,
            approvedAt=approved.approved_at,
            notified=notified,
        )
        return web.json_response(out.model_dump())

    async def deny_pairing(self, request: web.Request) -> web.StreamResponse:
        body = parse_body(
            DenyRequest, await request.read(), content_type=_content_type(request), optional=True
        )
        try:
            denied = self.gateway.pairing.deny(request.match_info["code"], account=body.account)
        except PairingError as exc:
            raise ApiError(404, "pairing_error", str(exc)) from None
        out = Denied(code=denied.code, accountId=denied.account_id, senderId=denied.sender_id)
        return web.json_response(out.model_dump())


def _content_type(request: web.Request) -> str:
    return request.headers.get("Content-Type", "")


def _root(exc: BaseException) -> BaseException:
    """The first error of ``exc``'s chain of causes (``raise ... from``)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _fingerprint(body: bytes) -> str:
    """What an Idempotency-Key's request is recognised by (a digest of its body)."""
    return hashlib.sha256(b"POST /v1/messages\n" + body).hexdigest()
