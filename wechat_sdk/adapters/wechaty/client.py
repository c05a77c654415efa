"""A Wechaty Puppet Service client: the :class:`~wechat_sdk.puppet.Puppet` port over gRPC.

One ``Event`` server stream per connection, opened without a deadline. After a drop the
stream is re-attached *without* calling ``Start``: a live server replays ``HEARTBEAT`` and
``LOGIN`` (or its last ``SCAN``), then ``READY``. Only when nothing of the kind comes back
within ``reattach_grace_s`` (a fresh or restarted server) is ``Start`` called.

:meth:`PuppetServiceClient.stop` detaches (the stream and the channel close); it does not
call the server's ``Stop``, which would log the account out: the puppet behind the service
stays logged in, so the next start needs no new scan. :meth:`logout` logs out.

Bad wire data (an unknown event type, a malformed JSON payload, a missing field, an
oversized text, an unknown message type) is logged and skipped, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, TypeVar, cast

import grpc

from wechat_sdk.adapters.wechaty._proto import puppet_pb2 as pb
from wechat_sdk.adapters.wechaty._proto import puppet_pb2_grpc as pb_grpc
from wechat_sdk.adapters.wechaty.filebox import (
    BadFileBox,
    FileBoxRef,
    FileBoxType,
    parse_filebox,
    uuid_filebox_json,
)
from wechat_sdk.puppet import (
    Contact,
    DirtyEvent,
    ErrorEvent,
    FileInfo,
    FileTooLarge,
    HeartbeatEvent,
    LoginEvent,
    LogoutEvent,
    Message,
    MessageEvent,
    MessageKind,
    OutboundFile,
    PuppetError,
    PuppetEvent,
    ReadyEvent,
    Room,
    ScanEvent,
    ScanStatus,
    SendError,
    SendOutcomeUnknown,
)

__all__ = [
    "MESSAGE_KINDS",
    "WECHATY_ROOT_CA",
    "PuppetServiceClient",
    "ServiceConnection",
    "ServiceUnavailable",
    "message_kind",
]

log = logging.getLogger("wechat_sdk.adapters.wechaty")

#: wechaty-puppet's TypeScript ``MessageType`` numbers, which servers put in the ``type``
#: field (not the proto enum of wechaty-grpc: read that way, a text message is a video).
MESSAGE_KINDS: dict[int, MessageKind] = {
    0: MessageKind.UNKNOWN,
    1: MessageKind.ATTACHMENT,
    2: MessageKind.AUDIO,
    3: MessageKind.CONTACT,
    4: MessageKind.CHAT_HISTORY,
    5: MessageKind.EMOTICON,
    6: MessageKind.IMAGE,
    7: MessageKind.TEXT,
    8: MessageKind.LOCATION,
    9: MessageKind.MINI_PROGRAM,
    10: MessageKind.GROUP_NOTE,
    11: MessageKind.TRANSFER,
    12: MessageKind.RED_ENVELOPE,
    13: MessageKind.RECALLED,
    14: MessageKind.URL,
    15: MessageKind.VIDEO,
    16: MessageKind.POST,
}

# event type numbers (EventResponse.type)
_HEARTBEAT, _MESSAGE, _DONG, _POST = 1, 2, 3, 4
_ERROR, _FRIENDSHIP, _ROOM_INVITE, _ROOM_JOIN, _ROOM_LEAVE, _ROOM_TOPIC = 16, 17, 18, 19, 20, 21
_SCAN, _READY, _RESET, _LOGIN, _LOGOUT, _DIRTY = 22, 23, 24, 25, 26, 27
_IGNORED_EVENTS = {_POST, _FRIENDSHIP, _ROOM_INVITE, _RESET}

# DIRTY payload types
_DIRTY_NAMES = {1: "message", 2: "contact", 3: "room", 4: "room_member", 5: "friendship"}

#: Wechaty's public root certificate (from wechaty-puppet-service's auth/ca), which signs
#: the default "insecure" server certificate of every Puppet Service.
WECHATY_ROOT_CA = Path(__file__).with_name("wechaty-ca.pem")

CHUNK_BYTES = 64 * 1024
#: message payloads fetched ahead of the consumer, at most (256 rather than 32: in a
#: burst of 3,000 DMs the gateway answered about a tenth faster, with less CPU per reply,
#: and its peak RSS stayed under 73 MiB; see docs/benchmarks.md)
PREFETCH_WINDOW = 256
MAX_CACHED_MESSAGES = 4096  # message payloads (and their FileBoxes) kept, oldest dropped first
MAX_TEXT_CHARS = 64 * 1024
#: seconds a unary call may go unanswered; then it is cut (see :class:`_CallWatch`)
CALL_TIMEOUT_S = 30.0
# gRPC status codes after which a send may or may not have happened
_OUTCOME_UNKNOWN = {
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNAVAILABLE,
}
_PERMANENT = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.FAILED_PRECONDITION,
}


def message_kind(number: int) -> MessageKind:
    """The message kind of a wechaty-puppet ``MessageType`` number (unknown: UNKNOWN)."""
    return MESSAGE_KINDS.get(number, MessageKind.UNKNOWN)


class ServiceUnavailable(PuppetError):
    """The Puppet Service could not be reached or refused the connection."""


@dataclass(frozen=True, slots=True)
class ServiceConnection:
    """How to reach one Puppet Service. ``token`` is a secret: it is never logged."""

    endpoint: str
    token: str
    tls: bool = True
    ca_file: Path | None = None
    server_name: str | None = None

    def __repr__(self) -> str:  # keep the token out of logs and tracebacks
        return (
            f"ServiceConnection(endpoint={self.endpoint!r}, token='***', tls={self.tls}, "
            f"ca_file={self.ca_file!r}, server_name={self.server_name!r})"
        )


_STREAM_END = object()

_T = TypeVar("_T")


def _tracked(
    tasks: dict[str, asyncio.Task[_T]], key: str, fetch: Coroutine[Any, Any, _T]
) -> asyncio.Task[_T]:
    """Run a fetch as a task listed in ``tasks`` under ``key`` while it runs, for callers
    meanwhile to share. Its error is marked seen here: whoever awaits it gets it (or
    fetches again), and nobody else needs to."""
    task = asyncio.get_running_loop().create_task(fetch)
    tasks[key] = task

    def done(t: asyncio.Task[_T]) -> None:
        if tasks.get(key) is t:
            del tasks[key]
        if not t.cancelled():
            t.exception()

    task.add_done_callback(done)
    return task


class _CallCut(Exception):
    """A call ended without an answer: cut by the watchdog (no answer within the
    client's ``call_timeout_s``), or cancelled by a stop closing the channel."""


class _CallWatch:
    """Cuts the unary calls that have had no answer for ``limit_s``: what a gRPC deadline
    on each call would do, for a fraction of its cost.

    A deadline is a timer per call in gRPC's core, a ``grpc-timeout`` header, and a timer
    per call in the server (Node's, for the sidecar): in a burst, a raw client with a
    30 s deadline on each call answered about 6 % fewer DMs per second than without
    (docs/benchmarks.md). Here a call is put in the current *generation*; one task per
    connection starts a new generation every ``limit_s / 6`` and cancels the calls of
    generations old enough, so a stuck call ends after ``limit_s`` to ``limit_s * 7/6``.
    """

    PERIODS = 6  # generations per limit_s

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.generation = 0
        #: calls in flight, with the generation each started in
        self.calls: dict[Any, int] = {}
        #: calls cut, until their caller has seen it
        self.cut: set[Any] = set()

    async def run(self) -> None:
        """The watchdog (one task per connection)."""
        while True:
            await asyncio.sleep(self.limit_s / self.PERIODS)
            self.generation += 1
            # a call of generation g started at most PERIODS + 1 periods ago, and at
            # least PERIODS ago (= limit_s) once g is that far behind
            oldest = self.generation - self.PERIODS - 1
            for call in [c for c, g in self.calls.items() if g <= oldest]:
                del self.calls[call]
                self.cut.add(call)
                call.cancel()

    def add(self, call: Any) -> None:
        self.calls[call] = self.generation

    def forget(self, call: Any) -> None:
        self.calls.pop(call, None)
        self.cut.discard(call)

    async def answer(self, call: Any) -> Any:
        """Await a call; :class:`_CallCut` if it ended without an answer (a cancellation
        of the awaiting task itself stays one)."""
        self.calls[call] = self.generation
        try:
            return await call
        except asyncio.CancelledError:
            if _cancelling():
                raise
            if call in self.cut:
                raise _CallCut(
                    f"the Puppet Service gave no answer within {self.limit_s:g} s"
                ) from None
            raise _CallCut("the call was cancelled: the client stopped") from None
        finally:
            self.forget(call)


class PuppetServiceClient:
    """The Puppet port over one Wechaty Puppet Service connection."""

    def __init__(
        self,
        connection: ServiceConnection | None,
        *,
        resolver: Callable[[], Awaitable[ServiceConnection]] | None = None,
        account_id: str = "default",
        heartbeat_timeout_s: float = 60.0,
        reattach_grace_s: float = 1.0,
        connect_timeout_s: float = 15.0,
        max_text_chars: int = MAX_TEXT_CHARS,
        prefetch_window: int = PREFETCH_WINDOW,
        call_timeout_s: float = CALL_TIMEOUT_S,
    ) -> None:
        if connection is None and resolver is None:
            raise ValueError("give a connection or a resolver")
        self._connection = connection
        self._metadata_for: ServiceConnection | None = None
        self._metadata_cached: Any = None
        self.resolver = resolver
        self.account_id = account_id
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.reattach_grace_s = reattach_grace_s
        self.connect_timeout_s = connect_timeout_s
        self.max_text_chars = max_text_chars
        self.prefetch_window = prefetch_window
        self.call_timeout_s = call_timeout_s
        #: the unary calls in flight, cut after call_timeout_s (one watchdog per connection)
        self._watch = _CallWatch(call_timeout_s)
        self._watchdog: asyncio.Task[None] | None = None
        #: payload calls started ahead of the consumer (the window), by message id, and
        #: their ids in event order: the resolver takes them in that order
        self._prefetching: dict[str, Any] = {}
        self._prefetch_order: deque[str] = deque()
        self._resolver: asyncio.Task[None] | None = None
        #: the resolver's wait for a call to be started, and the reader's for room
        self._resolver_wake: asyncio.Future[None] | None = None
        self._prefetch_slot: asyncio.Future[None] | None = None
        #: the event types read while start() waits for the greeting and a replay
        self._first: asyncio.Queue[object] | None = None
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.PuppetStub | None = None
        self._call: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._self_id: str | None = None
        self._messages: OrderedDict[str, Message] = OrderedDict()
        self._files: OrderedDict[str, FileBoxRef] = OrderedDict()
        self._contacts: dict[str, Contact] = {}
        #: contact payloads being fetched (shared by every caller meanwhile)
        self._contact_fetches: dict[str, asyncio.Task[Contact]] = {}
        self._rooms: dict[str, Room] = {}
        self._aliases: dict[tuple[str, str], str | None] = {}
        self.starts_called = 0  # how often Start was sent (tests read it)

    def __repr__(self) -> str:
        where = self._connection.endpoint if self._connection else "(discovery)"
        return f"PuppetServiceClient({where}, account={self.account_id})"

    @property
    def connection(self) -> ServiceConnection:
        if self._connection is None:
            raise PuppetError("the Puppet Service address is not resolved yet")
        return self._connection

    # ------------------------------------------------------------ connection

    @property
    def self_id(self) -> str | None:
        return self._self_id

    def _metadata(self) -> Any:
        """The token's metadata for every call: one ``grpc.aio.Metadata`` per connection.

        Given as a tuple, gRPC checks it against ``Sequence`` (an ABC) and builds a
        ``Metadata`` from it on every call: a few microseconds, three times per reply."""
        connection = self.connection
        if self._metadata_for is not connection:
            self._metadata_for = connection
            self._metadata_cached = grpc.aio.Metadata(
                ("authorization", f"Wechaty {connection.token}")
            )
        return self._metadata_cached

    def _open_channel(self) -> grpc.aio.Channel:
        c = self.connection
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.max_send_message_length", 8 * 1024 * 1024),
        ]
        if not c.tls:
            return grpc.aio.insecure_channel(c.endpoint, options=options)
        if c.ca_file is not None:
            root: bytes | None = c.ca_file.read_bytes()
        elif c.token.startswith("insecure_"):
            # Wechaty's own root CA signs the "insecure" server certificate that Puppet
            # Services use by default; Wechaty's clients trust it, and so does this one
            root = WECHATY_ROOT_CA.read_bytes()
        else:
            root = None  # the system's trusted CAs
        credentials = grpc.ssl_channel_credentials(root_certificates=root)
        options.append(("grpc.ssl_target_name_override", c.server_name or "insecure"))
        return grpc.aio.secure_channel(c.endpoint, credentials, options=options)

    @property
    def stub(self) -> pb_grpc.PuppetStub:
        if self._stub is None:
            raise PuppetError("the puppet is not started")
        return self._stub

    async def start(self) -> None:
        """Attach the event stream; call ``Start`` unless the server replays a session."""
        await self._detach()
        if self.resolver is not None:  # token discovery: the service may have moved
            self._connection = await self.resolver()
        self._queue = asyncio.Queue()
        self._channel = self._open_channel()
        self._stub = pb_grpc.PuppetStub(self._channel)  # type: ignore[no-untyped-call]
        self._call = self._stub.Event(pb.EventRequest(), metadata=self._metadata())
        first: asyncio.Queue[object] = asyncio.Queue()
        self._first = first  # fed until start() is done (not for the stream's lifetime)
        self._reader = asyncio.get_running_loop().create_task(
            self._read(first), name=f"wechaty-events:{self.account_id}"
        )
        self._watchdog = asyncio.get_running_loop().create_task(
            self._watch.run(), name=f"wechaty-calls:{self.account_id}"
        )
        try:
            await self._attach(first)
        finally:
            self._first = None

    async def _attach(self, first: asyncio.Queue[object]) -> None:
        # the server greets a new stream with a heartbeat: it proves the token is good
        try:
            greeting = await asyncio.wait_for(first.get(), self.connect_timeout_s)
        except TimeoutError:
            await self._detach()
            raise ServiceUnavailable(
                f"no answer from the Puppet Service at {self.connection.endpoint} "
                f"within {self.connect_timeout_s:.0f} s"
            ) from None
        if isinstance(greeting, BaseException):
            await self._detach()
            raise greeting
        # a live session replays LOGIN or SCAN right after the greeting
        replayed = await self._replayed_session(first)
        if not replayed:
            try:
                await self.stub.Start(
                    pb.StartRequest(), metadata=self._metadata(), timeout=self.call_timeout_s
                )
                self.starts_called += 1
            except grpc.aio.AioRpcError as exc:
                await self._detach()
                raise _service_error(exc, self.connection.endpoint) from exc

    async def _replayed_session(self, first: asyncio.Queue[object]) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reattach_grace_s
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                kind = await asyncio.wait_for(first.get(), left)
            except TimeoutError:
                return False
            if kind in (_LOGIN, _SCAN):
                return True
            if isinstance(kind, BaseException):
                return False

    async def stop(self) -> None:
        """Detach: close the event stream and the channel (the session stays logged in)."""
        await self._detach()

    async def _detach(self) -> None:
        for task in (self._resolver, self._watchdog):
            if task is not None:
                task.cancel()
        self._resolver = self._watchdog = None
        for call in self._prefetching.values():
            call.cancel()
            self._watch.forget(call)
        self._prefetching.clear()
        self._prefetch_order.clear()
        self._wake_reader()
        if self._call is not None:
            self._call.cancel()
            self._call = None
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub = None
        self._queue.put_nowait(_STREAM_END)

    async def _read(self, first: asyncio.Queue[object]) -> None:
        """Read the event stream into the queue; ``first`` hears the first event types."""
        call = self._call
        try:
            async for response in call:
                event_type = int(response.type)
                if self._first is first:
                    first.put_nowait(event_type)
                for event in self._parse_event(event_type, response.payload):
                    if isinstance(event, MessageEvent):
                        while (full := self._prefetch(event.message_id)) is not None:
                            await full
                    self._queue.put_nowait(event)
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                error = _service_error(exc, self.connection.endpoint)
                if self._first is first:
                    first.put_nowait(error)
                log.warning("event stream ended: %s", error)
        except Exception as exc:
            if self._first is first:
                first.put_nowait(PuppetError(str(exc)))
            log.warning("event stream failed: %s", exc)
        finally:
            self._queue.put_nowait(_STREAM_END)

    def events(self) -> AsyncIterator[PuppetEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[PuppetEvent]:
        queue = self._queue
        while True:
            try:
                # events already read are handed over at once; only an empty queue is timed
                if not queue.empty():
                    item = queue.get_nowait()
                else:
                    async with asyncio.timeout(self.heartbeat_timeout_s / 2):
                        item = await queue.get()
            except TimeoutError:
                # quiet for half the watchdog time: ask for a DONG; a dead link fails here
                if not await self._ding():
                    return
                try:
                    item = await asyncio.wait_for(queue.get(), self.heartbeat_timeout_s / 2)
                except TimeoutError:
                    log.warning(
                        "no heartbeat from the Puppet Service for %.0f s: the link is dead",
                        self.heartbeat_timeout_s,
                    )
                    await self._detach()
                    return
            if item is _STREAM_END:
                return
            yield cast(PuppetEvent, item)

    async def _ding(self) -> bool:
        if self._stub is None:
            return False
        try:
            await self._stub.Ding(
                pb.DingRequest(data="wechat-sdk"), metadata=self._metadata(), timeout=10.0
            )
        except grpc.aio.AioRpcError as exc:
            log.warning("Ding failed: %s", _service_error(exc, self.connection.endpoint))
            return False
        return True

    # ------------------------------------------------------------ events from the wire

    def _parse_event(self, event_type: int, payload: str) -> list[PuppetEvent]:
        try:
            data = json.loads(payload) if payload else {}
        except json.JSONDecodeError as exc:
            log.warning("skipped event %d with a malformed JSON payload: %s", event_type, exc)
            return []
        if not isinstance(data, dict):
            log.warning("skipped event %d: its payload is not a JSON object", event_type)
            return []
        try:
            return self._event(event_type, data)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("skipped event %d with a bad payload (%s): %.200s", event_type, exc, data)
            return []

    def _event(self, event_type: int, data: dict[str, Any]) -> list[PuppetEvent]:
        if event_type in (_HEARTBEAT, _DONG):
            return [HeartbeatEvent(data=str(data.get("data", "")))]
        if event_type == _MESSAGE:
            return [MessageEvent(message_id=_required_str(data, "messageId"))]
        if event_type == _SCAN:
            status = int(data.get("status", 0))
            try:
                scan = ScanStatus(status)
            except ValueError:
                scan = ScanStatus.UNKNOWN
            return [
                ScanEvent(
                    status=scan,
                    qrcode=str(data.get("qrcode") or ""),
                    data=str(data.get("data") or ""),
                )
            ]
        if event_type == _LOGIN:
            contact_id = _required_str(data, "contactId")
            self._self_id = contact_id
            return [LoginEvent(contact_id=contact_id)]
        if event_type == _LOGOUT:
            contact_id = str(data.get("contactId") or self._self_id or "")
            self._self_id = None
            return [LogoutEvent(contact_id=contact_id, reason=str(data.get("data") or ""))]
        if event_type == _READY:
            return [ReadyEvent()]
        if event_type == _ERROR:
            message = data.get("data") or data.get("gerror") or "error"
            return [ErrorEvent(message=str(message)[:500])]
        if event_type == _DIRTY:
            kind = _DIRTY_NAMES.get(int(data.get("payloadType", 0)), "unknown")
            payload_id = _required_str(data, "payloadId")
            self._forget(kind, payload_id)
            return [DirtyEvent(payload_type=kind, payload_id=payload_id)]
        if event_type in (_ROOM_JOIN, _ROOM_LEAVE, _ROOM_TOPIC):
            room_id = data.get("roomId")
            if isinstance(room_id, str):
                self._forget("room", room_id)
                self._forget("room_member", room_id)
            return []
        if event_type in _IGNORED_EVENTS:
            return []
        log.warning("skipped an event of unknown type %d", event_type)
        return []

    def _forget(self, kind: str, payload_id: str) -> None:
        if kind == "message":
            self._messages.pop(payload_id, None)
            self._files.pop(payload_id, None)
        elif kind == "contact":
            self._contacts.pop(payload_id, None)
            self._contact_fetches.pop(payload_id, None)  # (the next call asks again)
        elif kind == "room":
            self._rooms.pop(payload_id, None)
        elif kind == "room_member":
            # the id is a room's (all its members) or a member's (in every room)
            for key in [k for k in self._aliases if payload_id in k]:
                del self._aliases[key]

    # ------------------------------------------------------------ payloads

    def _prefetch(self, message_id: str) -> asyncio.Future[None] | None:
        """Start fetching a message's payload as its event arrives (a bounded window).

        The gateway takes events one at a time; without this, each one would wait a full
        round trip for its payload. At most ``prefetch_window`` calls run at once: with
        the window full this starts nothing and returns a future done when there is room
        (call again then); meanwhile reading the stream waits, so a backlog stays in
        gRPC, not in memory.

        The calls are gRPC's own call objects, with no task of ours around each: one
        resolver task (:meth:`_resolve`) takes them in event order as they are answered.
        """
        if (
            self.prefetch_window <= 0
            or message_id in self._messages
            or message_id in self._prefetching
        ):
            return None
        if len(self._prefetching) >= self.prefetch_window:
            slot = self._prefetch_slot
            if slot is None or slot.done():
                slot = self._prefetch_slot = asyncio.get_running_loop().create_future()
            return slot
        call = self.stub.MessagePayload(
            pb.MessagePayloadRequest(id=message_id), metadata=self._metadata()
        )
        self._watch.add(call)
        self._prefetching[message_id] = call
        self._prefetch_order.append(message_id)
        if self._resolver is None:
            self._resolver = asyncio.get_running_loop().create_task(
                self._resolve(), name=f"wechaty-payloads:{self.account_id}"
            )
        elif (wake := self._resolver_wake) is not None and not wake.done():
            wake.set_result(None)
        return None

    async def _resolve(self) -> None:
        """Take the payload calls of the window in event order, as each is answered: turn
        the answer into a :class:`Message` (cached for the consumer) and fetch a new
        sender's contact alongside. A call that failed is left to the consumer, which
        fetches again and gets the error. One task for the whole window: the calls are
        answered in about the order they were made, so waiting for the oldest costs
        nothing, and a task per call cost more than the parsing itself."""
        loop = asyncio.get_running_loop()
        order, calls = self._prefetch_order, self._prefetching
        while True:
            if not order:
                self._resolver_wake = wake = loop.create_future()
                await wake
                continue
            message_id = order[0]
            call = calls.get(message_id)
            if call is not None:
                try:
                    resp = await call
                    if message_id not in self._messages:  # (the consumer may have been first)
                        await self._message_of(message_id, resp)
                except asyncio.CancelledError:
                    if _cancelling():
                        raise  # detached
                except Exception:  # (the consumer fetches again and gets it)
                    pass
            # (detached meanwhile: the window was emptied)
            if order and order[0] == message_id:
                order.popleft()
                if call is not None:
                    self._watch.forget(call)
                    if calls.get(message_id) is call:
                        del calls[message_id]
                self._wake_reader()

    def _wake_reader(self) -> None:
        slot = self._prefetch_slot
        if slot is not None and not slot.done():
            slot.set_result(None)

    async def message(self, message_id: str) -> Message:
        cached = self._messages.get(message_id)
        if cached is not None:
            return cached
        call = self._prefetching.get(message_id)
        if call is not None:
            # its payload is on its way: wait for that answer (the resolver shares it)
            # rather than ask again; a failed call is asked again below, for its error
            try:
                resp = await call
                cached = self._messages.get(message_id)
                return cached if cached is not None else await self._message_of(message_id, resp)
            except asyncio.CancelledError:
                if _cancelling():
                    raise
            except Exception:  # (asked again below)
                pass
        return await self._fetch_message(message_id)

    async def _fetch_message(self, message_id: str) -> Message:
        resp = await self._unary(self.stub.MessagePayload, pb.MessagePayloadRequest(id=message_id))
        return await self._message_of(message_id, resp)

    async def _message_of(self, message_id: str, resp: Any) -> Message:
        """The :class:`Message` of a ``MessagePayload`` answer, cached; bad data raises
        :class:`PuppetError`."""
        if len(resp.text) > self.max_text_chars:
            raise PuppetError(
                f"message {message_id} has {len(resp.text)} characters of text, "
                f"over the limit of {self.max_text_chars}: skipped"
            )
        kind = message_kind(resp.type)
        if resp.type not in MESSAGE_KINDS:
            log.warning("message %s has an unknown type %d: read as unknown", message_id, resp.type)
        talker_id = resp.talker_id
        if not talker_id:
            raise PuppetError(f"message {message_id} has no talker: skipped")
        file_info: FileInfo | None = None
        if kind.has_file:
            ref = await self._filebox(message_id, resp.filename)
            if ref is not None:
                file_info = FileInfo(
                    name=ref.name, size=ref.size or 0, mime=ref.mime, duration_s=ref.duration_s
                )
        timestamp = 0.0
        if resp.HasField("receive_time"):
            timestamp = resp.receive_time.seconds + resp.receive_time.nanos / 1e9
        elif resp.timestamp_deprecated:
            ts = float(resp.timestamp_deprecated)
            timestamp = ts / 1000.0 if ts > 1e12 else ts
        mention_ids = resp.mention_ids
        message = Message(
            id=resp.id or message_id,
            kind=kind,
            talker_id=talker_id,
            text=resp.text,
            room_id=resp.room_id or None,
            listener_id=resp.listener_id or None,
            mention_ids=tuple(mention_ids) if mention_ids else (),
            timestamp=timestamp,
            file=file_info,
        )
        _remember(self._messages, message_id, message)
        if (
            self.prefetch_window > 0
            and talker_id != self._self_id
            and talker_id not in self._contacts
        ):
            # the gateway asks for the sender's name next: a new sender's payload is
            # fetched now, alongside, instead of one round trip after the other
            self._contact_fetch(talker_id)
        return message

    async def _filebox(self, message_id: str, filename: str = "") -> FileBoxRef | None:
        cached = self._files.get(message_id)
        if cached is not None:
            return cached
        resp = await self._unary(self.stub.MessageFile, pb.MessageFileRequest(id=message_id))
        try:
            ref = parse_filebox(resp.file_box)
        except BadFileBox as exc:
            log.warning("message %s: %s", message_id, exc)
            return None
        if ref.name == "file" and filename:
            ref = replace(ref, name=filename)
        _remember(self._files, message_id, ref)
        return ref

    async def contact(self, contact_id: str) -> Contact:
        cached = self._contacts.get(contact_id)
        if cached is not None:
            return cached
        # (shielded: a caller cancelled meanwhile does not cancel the others' fetch)
        return await asyncio.shield(self._contact_fetch(contact_id))

    def _contact_fetch(self, contact_id: str) -> asyncio.Task[Contact]:
        """The fetch of a contact's payload: the one running, or a new one."""
        task = self._contact_fetches.get(contact_id)
        if task is None:
            task = _tracked(self._contact_fetches, contact_id, self._fetch_contact(contact_id))
        return task

    async def _fetch_contact(self, contact_id: str) -> Contact:
        resp = await self._unary(self.stub.ContactPayload, pb.ContactPayloadRequest(id=contact_id))
        contact = Contact(id=resp.id or contact_id, name=resp.name, alias=resp.alias or None)
        self._contacts[contact_id] = contact
        return contact

    async def room(self, room_id: str) -> Room:
        cached = self._rooms.get(room_id)
        if cached is not None:
            return cached
        resp = await self._unary(self.stub.RoomPayload, pb.RoomPayloadRequest(id=room_id))
        room = Room(id=resp.id or room_id, topic=resp.topic, member_ids=tuple(resp.member_ids))
        self._rooms[room_id] = room
        return room

    async def room_alias(self, room_id: str, contact_id: str) -> str | None:
        key = (room_id, contact_id)
        if key in self._aliases:
            return self._aliases[key]
        resp = await self._unary(
            self.stub.RoomMemberPayload,
            pb.RoomMemberPayloadRequest(id=room_id, member_id=contact_id),
        )
        alias = resp.room_alias or None
        self._aliases[key] = alias
        return alias

    async def _unary(self, method: Any, request: Any) -> Any:
        try:
            return await self._watch.answer(method(request, metadata=self._metadata()))
        except grpc.aio.AioRpcError as exc:
            raise _service_error(exc, self.connection.endpoint) from exc
        except _CallCut as exc:
            raise PuppetError(str(exc)) from None

    # ------------------------------------------------------------ sending

    async def send_text(
        self, conversation_id: str, text: str, mention_ids: tuple[str, ...] = ()
    ) -> str | None:
        request = pb.MessageSendTextRequest(
            conversation_id=conversation_id, text=text, mentional_ids=list(mention_ids)
        )
        try:
            resp = await self._watch.answer(
                self.stub.MessageSendText(request, metadata=self._metadata())
            )
        except grpc.aio.AioRpcError as exc:
            raise _send_error(exc) from exc
        except _CallCut as exc:  # it may have gone out
            raise SendOutcomeUnknown(str(exc)) from None
        self._remember_own(resp.id, conversation_id, MessageKind.TEXT, text, mention_ids)
        return resp.id or None

    def _remember_own(
        self,
        message_id: str,
        conversation_id: str,
        kind: MessageKind,
        text: str = "",
        mention_ids: tuple[str, ...] = (),
        file: FileInfo | None = None,
    ) -> None:
        """Cache the payload of a message the bot just sent: the server reports it back as
        a MESSAGE event (the self-echo), and the gateway only needs to see it is its own,
        so that echo costs no ``MessagePayload`` round trip (a third of the calls per DM).
        """
        if not message_id or self._self_id is None or message_id in self._messages:
            return
        _remember(
            self._messages,
            message_id,
            Message(
                id=message_id,
                kind=kind,
                talker_id=self._self_id,
                text=text,
                listener_id=conversation_id,
                mention_ids=mention_ids,
                timestamp=time.time(),
                file=file,
            ),
        )

    async def send_file(self, conversation_id: str, file: OutboundFile) -> str | None:
        chunks = _file_chunks(file)
        try:
            uploaded = await self.stub.Upload(
                (pb.UploadRequest(chunk=c) for c in chunks),
                metadata=self._metadata(),
                timeout=self.call_timeout_s * 4,
            )
        except grpc.aio.AioRpcError as exc:
            # nothing was sent to the chat yet: an upload failure is always safe to retry
            raise SendError(
                f"upload failed: {exc.code().name}: {exc.details()}",
                transient=exc.code() not in _PERMANENT,
            ) from exc
        if not uploaded.id:
            raise SendError("upload failed: the server returned no file id")
        box = uuid_filebox_json(uploaded.id, file.name, file.size, file.mime, file.duration_s)
        try:
            resp = await self._watch.answer(
                self.stub.MessageSendFile(
                    pb.MessageSendFileRequest(conversation_id=conversation_id, file_box=box),
                    metadata=self._metadata(),
                )
            )
        except grpc.aio.AioRpcError as exc:
            raise _send_error(exc) from exc
        except _CallCut as exc:  # it may have gone out
            raise SendOutcomeUnknown(str(exc)) from None
        kind = {
            "image": MessageKind.IMAGE,
            "audio": MessageKind.AUDIO,
            "video": MessageKind.VIDEO,
        }.get(file.kind, MessageKind.ATTACHMENT)
        info = FileInfo(name=file.name, size=file.size, mime=file.mime, duration_s=file.duration_s)
        self._remember_own(resp.id, conversation_id, kind, file=info)
        return resp.id or None

    # ------------------------------------------------------------ files in

    def download(self, message_id: str, max_bytes: int) -> AsyncIterator[bytes]:
        return self._download(message_id, max_bytes)

    async def _download(self, message_id: str, max_bytes: int) -> AsyncIterator[bytes]:
        ref = await self._filebox(message_id)
        if ref is None:
            raise PuppetError(f"message {message_id} has no usable file")
        if ref.size is not None and ref.size > max_bytes:
            raise FileTooLarge(ref.size, max_bytes)
        if ref.type == FileBoxType.BASE64:
            data = ref.inline_bytes()
            if len(data) > max_bytes:
                raise FileTooLarge(len(data), max_bytes)
            for i in range(0, len(data), CHUNK_BYTES):
                yield data[i : i + CHUNK_BYTES]
            return
        if ref.type == FileBoxType.URL:
            assert ref.url is not None
            async for chunk in _fetch(ref.url, max_bytes):
                yield chunk
            return
        assert ref.uuid is not None
        call = self.stub.Download(pb.DownloadRequest(id=ref.uuid), metadata=self._metadata())
        total = 0
        try:
            async for response in call:
                chunk = response.chunk
                if not chunk:
                    continue
                if total + len(chunk) > max_bytes:
                    raise FileTooLarge(total + len(chunk), max_bytes)
                total += len(chunk)
                yield chunk
        except grpc.aio.AioRpcError as exc:
            raise _service_error(exc, self.connection.endpoint) from exc
        finally:
            call.cancel()

    # ------------------------------------------------------------ session

    async def logout(self) -> None:
        await self._unary(self.stub.Logout, pb.LogoutRequest())


_SENT_FILE_KINDS: Final = {
    "image": MessageKind.IMAGE,
    "audio": MessageKind.AUDIO,
    "video": MessageKind.VIDEO,
}


def _remember(cache: OrderedDict[str, Any], key: str, value: Any) -> None:
    """Put ``value`` in a cache of at most MAX_CACHED_MESSAGES entries (oldest dropped).

    An OrderedDict: dropping a plain dict's first key scans past every key deleted
    before it, which in a long run cost more than the rest of the bookkeeping."""
    cache[key] = value
    if len(cache) > MAX_CACHED_MESSAGES:
        cache.popitem(last=False)


def _cancelling() -> bool:
    """True when the running task itself is being cancelled (not just a call it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _required_str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise KeyError(f"missing {key}")
    return value


def _file_chunks(file: OutboundFile) -> Iterable[bytes]:
    if file.path is not None and file.data is None:
        with file.path.open("rb") as fh:
            while chunk := fh.read(CHUNK_BYTES):
                yield chunk
        return
    data = file.read()
    for i in range(0, len(data), CHUNK_BYTES):
        yield data[i : i + CHUNK_BYTES]


async def _fetch(url: str, max_bytes: int) -> AsyncIterator[bytes]:
    from wechat_sdk.outbound.delivery import DeliveryFailed
    from wechat_sdk.outbound.pipeline import fetch_url

    try:
        data, _mime = await asyncio.to_thread(fetch_url, url, max_bytes)
    except DeliveryFailed as exc:
        if exc.code == "too_large":
            raise FileTooLarge(max_bytes + 1, max_bytes) from exc
        raise PuppetError(str(exc)) from exc
    for i in range(0, len(data), CHUNK_BYTES):
        yield data[i : i + CHUNK_BYTES]


def _service_error(exc: grpc.aio.AioRpcError, endpoint: str) -> PuppetError:
    code = exc.code()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return ServiceUnavailable(
            f"the Puppet Service at {endpoint} refused the token (UNAUTHENTICATED): "
            "check channels.wechat.puppetOptions.token"
        )
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return ServiceUnavailable(
            f"the Puppet Service at {endpoint} already serves another client's event stream "
            "(ALREADY_EXISTS): only one gateway may use a token at a time"
        )
    if code == grpc.StatusCode.UNAVAILABLE:
        return ServiceUnavailable(
            f"the Puppet Service at {endpoint} is unavailable: {exc.details()}"
        )
    return PuppetError(f"{code.name}: {exc.details()}")


def _send_error(exc: grpc.aio.AioRpcError) -> PuppetError:
    code = exc.code()
    text = f"{code.name}: {exc.details()}"
    if code in _OUTCOME_UNKNOWN:
        return SendOutcomeUnknown(text)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return SendError(text, transient=True, code="rate_limited")
    return SendError(text, transient=code not in _PERMANENT)
