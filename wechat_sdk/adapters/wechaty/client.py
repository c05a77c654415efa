"""A Wechaty Puppet Service client: the :class:`~wechat_sdk.puppet.Puppet` port over gRPC.

One ``Event`` server stream per connection, opened without a deadline. After a drop the
stream is re-attached *without* calling ``Start``: a live server replays ``HEARTBEAT`` and
``LOGIN`` (or its last ``SCAN``), then ``READY``. Only when nothing of the kind comes back
within ``reattach_grace_s`` (a fresh or restarted server) is ``Start`` called.

A message's payload is asked for as its event is read, and the event is handed to the
gateway once the answer is in (:mod:`.prefetch`): in the order the events came, except that
an unanswered payload holds the events behind it for ``prefetch_patience_s`` at most. Every
other call has a gRPC deadline of ``call_timeout_s``; a payload that does not come in time
is an error for that one message, asked once.

:meth:`PuppetServiceClient.stop` detaches (the stream and the channel close); it does not
call the server's ``Stop``, which would log the account out: the puppet behind the service
stays logged in, so the next start needs no new scan. :meth:`logout` logs out.

Bad wire data (an unknown event type, a malformed JSON payload, a missing field, a number
out of range, an oversized text, an unknown message type) is logged and skipped, never
fatal: one event or message is lost, never the stream (see :mod:`.wire`). So are events
about another account than the one logged in.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import grpc

from wechat_sdk import media_fetch
from wechat_sdk.adapters.wechaty import wire
from wechat_sdk.adapters.wechaty._proto import puppet_pb2 as pb
from wechat_sdk.adapters.wechaty._proto import puppet_pb2_grpc as pb_grpc
from wechat_sdk.adapters.wechaty.filebox import (
    FileBoxRef,
    FileBoxType,
    parse_filebox,
    uuid_filebox_json,
)
from wechat_sdk.adapters.wechaty.prefetch import PrefetchWindow
from wechat_sdk.adapters.wechaty.wire import MESSAGE_KINDS, message_kind
from wechat_sdk.logtext import shown
from wechat_sdk.puppet import (
    Contact,
    DirtyEvent,
    FileInfo,
    FileTooLarge,
    LoginEvent,
    LogoutEvent,
    Message,
    MessageEvent,
    MessageKind,
    OutboundFile,
    PuppetError,
    PuppetEvent,
    Room,
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

#: Wechaty's public root certificate (from wechaty-puppet-service's auth/ca), which signs
#: the default "insecure" server certificate of every Puppet Service.
WECHATY_ROOT_CA = Path(__file__).with_name("wechaty-ca.pem")

CHUNK_BYTES = 64 * 1024
#: events whose payloads are fetched ahead of the gateway, at most (256 rather than 32:
#: in a burst of 3,000 DMs the gateway answered about a tenth faster; docs/benchmarks.md)
PREFETCH_WINDOW = 256
#: seconds an event waits for an earlier message's payload before it goes first
PREFETCH_PATIENCE_S = 2.0
MAX_CACHED_MESSAGES = 4096  # message payloads (and their FileBoxes) kept, oldest dropped first
MAX_TEXT_CHARS = 64 * 1024
#: seconds a unary call may go unanswered (its gRPC deadline)
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


class ServiceUnavailable(PuppetError):
    """The Puppet Service could not be reached or refused the connection."""


class _NoAnswer(PuppetError):
    """A call ended without an answer: its deadline passed, or a stop closed the channel."""


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


class PuppetServiceClient:
    """The Puppet port over one Wechaty Puppet Service connection.

    ``allow_private_hosts`` (config ``mediaFetchAllowPrivate``) lets a url FileBox be
    downloaded from a loopback, private or link-local address; by default only public
    addresses are fetched (see :mod:`wechat_sdk.media_fetch`).
    """

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
        prefetch_patience_s: float = PREFETCH_PATIENCE_S,
        call_timeout_s: float = CALL_TIMEOUT_S,
        allow_private_hosts: bool = False,
    ) -> None:
        if connection is None and resolver is None:
            raise ValueError("give a connection or a resolver")
        if prefetch_window < 1:
            raise ValueError("prefetch_window must be at least 1")
        self._connection = connection
        self.resolver = resolver
        self.account_id = account_id
        #: the module's logger, with the account on every record (``%(account)s``)
        self._log = logging.LoggerAdapter(log, {"account": account_id})
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.reattach_grace_s = reattach_grace_s
        self.connect_timeout_s = connect_timeout_s
        self.max_text_chars = max_text_chars
        self.prefetch_window = prefetch_window
        self.prefetch_patience_s = prefetch_patience_s
        self.call_timeout_s = call_timeout_s
        self.allow_private_hosts = allow_private_hosts
        #: the token, as every call's metadata (made once per connection)
        self._auth: grpc.aio.Metadata | None = None
        #: the event types read while start() waits for the greeting and a replay
        self._first: asyncio.Queue[object] | None = None
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.PuppetStub | None = None
        self._call: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._window: PrefetchWindow[object] | None = None
        self._self_id: str | None = None
        self._messages: OrderedDict[str, Message] = OrderedDict()
        #: payloads asked for as their events were read, until message() takes the answer
        #: (one that succeeded drops out at once: it is in _messages)
        self._loads: OrderedDict[str, asyncio.Task[Message | PuppetError]] = OrderedDict()
        self._files: OrderedDict[str, FileBoxRef] = OrderedDict()
        self._contacts: dict[str, Contact] = {}
        #: contact payloads being fetched (shared by every caller meanwhile)
        self._contact_fetches: dict[str, asyncio.Task[Contact | PuppetError]] = {}
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

    @property
    def self_id(self) -> str | None:
        return self._self_id

    @property
    def stub(self) -> pb_grpc.PuppetStub:
        if self._stub is None:
            raise PuppetError("the puppet is not started")
        return self._stub

    # ------------------------------------------------------------ connection

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

    def _metadata(self) -> grpc.aio.Metadata:
        if self._auth is None:
            raise PuppetError("the puppet is not started")
        return self._auth

    async def start(self) -> None:
        """Attach the event stream; call ``Start`` unless the server replays a session."""
        await self._detach()
        if self.resolver is not None:  # token discovery: the service may have moved
            self._connection = await self.resolver()
        self._auth = grpc.aio.Metadata(("authorization", f"Wechaty {self.connection.token}"))
        queue: asyncio.Queue[object] = asyncio.Queue()
        self._queue = queue
        self._window = window = PrefetchWindow[object](
            queue, size=self.prefetch_window, patience_s=self.prefetch_patience_s
        )
        self._channel = self._open_channel()
        self._stub = pb_grpc.PuppetStub(self._channel)  # type: ignore[no-untyped-call]
        self._call = self._stub.Event(pb.EventRequest(), metadata=self._metadata())
        first: asyncio.Queue[object] = asyncio.Queue()
        self._first = first  # fed until start() is done (not for the stream's lifetime)
        self._reader = asyncio.get_running_loop().create_task(
            self._read(self._call, first, window, queue), name=f"wechaty-events:{self.account_id}"
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
            if kind in (wire.EventType.LOGIN, wire.EventType.SCAN):
                return True
            if isinstance(kind, BaseException):
                return False

    async def stop(self) -> None:
        """Detach: close the event stream and the channel (the session stays logged in)."""
        await self._detach()

    async def _detach(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._channel is not None:
            await self._channel.close()  # the calls in flight end: each caller gets an error
            self._channel = None
            self._stub = None
        if self._window is not None:
            await self._window.close()  # every event read is handed over, fetched or not
            self._window = None
        self._loads.clear()
        self._queue.put_nowait(_STREAM_END)

    async def _read(
        self,
        call: Any,
        first: asyncio.Queue[object],
        window: PrefetchWindow[object],
        queue: asyncio.Queue[object],
    ) -> None:
        """Read the event stream into the window; ``first`` hears the first event types."""
        try:
            async for response in call:
                event_type = int(response.type)
                if self._first is first:
                    first.put_nowait(event_type)
                event = self._event(event_type, response.payload)
                if isinstance(event, MessageEvent):
                    await window.add(event, functools.partial(self._load_ahead, event.message_id))
                elif event is not None:
                    await window.add(event)
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                error = _service_error(exc, self.connection.endpoint)
                if self._first is first:
                    first.put_nowait(error)
                self._log.warning("event stream ended: %s", shown(error, 300))
        except Exception as exc:
            if self._first is first:
                first.put_nowait(PuppetError(str(exc)))
            self._log.warning("event stream failed: %s", shown(exc, 300))
        # the stream ended (not detached): what the server sent is handed over first
        await window.drain()
        queue.put_nowait(_STREAM_END)

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
                # quiet for half the watchdog time: ask for a DONG, so that a live service
                # says something; whether the link is dead is the gateway's one liveness
                # check to judge (no event at all for its heartbeat timeout)
                if not await self._ding():
                    return
                continue
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
            self._log.warning("Ding failed: %s", _service_error(exc, self.connection.endpoint))
            return False
        return True

    # ------------------------------------------------------------ events from the wire

    def _event(self, event_type: int, payload: str) -> PuppetEvent | None:
        """The event to hand over, after what it changes here; None to skip it."""
        try:
            event = wire.event_of(event_type, payload)
        except Exception as exc:  # bad data of any kind costs this event, never the stream
            reason = exc if isinstance(exc, wire.BadWireData) else repr(exc)
            self._log.warning("skipped event %d: %s", event_type, shown(reason, 200))
            return None
        if isinstance(event, wire.RoomChanged):
            self._forget("room", event.room_id)
            self._forget("room_member", event.room_id)
            return None
        if isinstance(event, LoginEvent):
            self._self_id = event.contact_id
        elif isinstance(event, LogoutEvent):
            me = self._self_id
            if me is not None and event.contact_id and event.contact_id != me:
                self._log.warning(
                    "skipped a LOGOUT of %s: the account is logged in as %s",
                    shown(event.contact_id),
                    shown(me),
                )
                return None
            self._self_id = None
            if not event.contact_id:
                event = LogoutEvent(contact_id=me or "", reason=event.reason)
        elif isinstance(event, DirtyEvent):
            self._forget(event.payload_type, event.payload_id)
        return event

    def _forget(self, kind: str, payload_id: str) -> None:
        if kind == "message":
            self._messages.pop(payload_id, None)
            self._files.pop(payload_id, None)
            self._loads.pop(payload_id, None)
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

    def _load_ahead(self, message_id: str) -> asyncio.Task[Message | PuppetError] | None:
        """The payload call of a message event just read: a new one, the one already
        running (a repeated event), or none (cached: the bot's own message, say)."""
        if message_id in self._messages:
            return None
        load = self._loads.get(message_id)
        if load is None:
            load = asyncio.get_running_loop().create_task(self._load(message_id))
            _remember(self._loads, message_id, load)
        return load

    async def _load(self, message_id: str) -> Message | PuppetError:
        """A payload fetched ahead; its error is kept for :meth:`message` to raise."""
        try:
            message = await self._fetch_message(message_id)
        except PuppetError as exc:
            return exc
        except Exception as exc:  # bad data of any kind costs this message only
            return wire.BadWireData(f"message {shown(message_id)}: {shown(repr(exc), 200)}")
        if self._loads.get(message_id) is asyncio.current_task():
            del self._loads[message_id]  # (in _messages now)
        return message

    async def message(self, message_id: str) -> Message:
        cached = self._messages.get(message_id)
        if cached is not None:
            return cached
        load = self._loads.get(message_id)
        if load is None:
            return await self._fetch_message(message_id)
        # fetched ahead: its answer, or its error (never asked twice: a payload that does
        # not come costs its call timeout once)
        result = await asyncio.shield(load)
        if self._loads.get(message_id) is load:
            del self._loads[message_id]
        if isinstance(result, PuppetError):
            raise result
        return result

    async def _fetch_message(self, message_id: str) -> Message:
        resp = await self._unary(self.stub.MessagePayload, pb.MessagePayloadRequest(id=message_id))
        message = wire.message_of(message_id, resp, self.max_text_chars, logger=self._log)
        if message.kind.has_file:
            ref = await self._filebox(message_id, resp.filename)
            if ref is not None:
                message = replace(message, file=wire.file_info_of(ref))
        _remember(self._messages, message_id, message)
        talker_id = message.talker_id
        if talker_id != self._self_id and talker_id not in self._contacts:
            # the gateway asks for the sender's name next: fetched now, alongside (in a
            # burst from 100 senders, latency fell from twice the floor's to within 15 %)
            self._contact_fetch(talker_id)
        return message

    async def _filebox(self, message_id: str, filename: str = "") -> FileBoxRef | None:
        cached = self._files.get(message_id)
        if cached is not None:
            return cached
        resp = await self._unary(self.stub.MessageFile, pb.MessageFileRequest(id=message_id))
        try:
            ref = parse_filebox(resp.file_box)
        except Exception as exc:  # BadFileBox, or a number it cannot hold (a size of 1e999)
            self._log.warning(
                "message %s: its file is skipped: %s", shown(message_id), shown(exc, 200)
            )
            return None
        if ref.name == "file" and filename:
            ref = replace(ref, name=filename)
        _remember(self._files, message_id, ref)
        return ref

    async def contact(self, contact_id: str) -> Contact:
        cached = self._contacts.get(contact_id)
        if cached is not None:
            return cached
        # (shielded: a caller cancelled does not cancel the fetch the others wait for)
        result = await asyncio.shield(self._contact_fetch(contact_id))
        if isinstance(result, PuppetError):
            raise result
        return result

    def _contact_fetch(self, contact_id: str) -> asyncio.Task[Contact | PuppetError]:
        """The fetch of a contact's payload: the one running, or a new one."""
        task = self._contact_fetches.get(contact_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch_contact(contact_id))
            self._contact_fetches[contact_id] = task
        return task

    async def _fetch_contact(self, contact_id: str) -> Contact | PuppetError:
        try:
            resp = await self._unary(
                self.stub.ContactPayload, pb.ContactPayloadRequest(id=contact_id)
            )
            contact = self._contacts[contact_id] = wire.contact_of(contact_id, resp)
            return contact
        except PuppetError as exc:  # (for every caller; the next call asks again)
            return exc
        finally:
            if self._contact_fetches.get(contact_id) is asyncio.current_task():
                del self._contact_fetches[contact_id]

    async def room(self, room_id: str) -> Room:
        cached = self._rooms.get(room_id)
        if cached is not None:
            return cached
        resp = await self._unary(self.stub.RoomPayload, pb.RoomPayloadRequest(id=room_id))
        room = self._rooms[room_id] = wire.room_of(room_id, resp)
        return room

    async def room_alias(self, room_id: str, contact_id: str) -> str | None:
        key = (room_id, contact_id)
        if key in self._aliases:
            return self._aliases[key]
        resp = await self._unary(
            self.stub.RoomMemberPayload,
            pb.RoomMemberPayloadRequest(id=room_id, member_id=contact_id),
        )
        alias = self._aliases[key] = resp.room_alias or None
        return alias

    async def _ask(self, method: Any, request: Any) -> Any:
        """One unary call, with the client's deadline; :class:`_NoAnswer` if it ends
        without an answer (a cancellation of the calling task itself stays one)."""
        try:
            return await method(request, metadata=self._metadata(), timeout=self.call_timeout_s)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise _NoAnswer(
                    f"the Puppet Service gave no answer within {self.call_timeout_s:g} s"
                ) from None
            raise
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # (gRPC cancels the calls of a channel that closes, not the task awaiting one)
            raise _NoAnswer("the call was cancelled: the client stopped") from None

    async def _unary(self, method: Any, request: Any) -> Any:
        try:
            return await self._ask(method, request)
        except grpc.aio.AioRpcError as exc:
            raise _service_error(exc, self.connection.endpoint) from exc

    # ------------------------------------------------------------ sending

    async def send_text(
        self, conversation_id: str, text: str, mention_ids: tuple[str, ...] = ()
    ) -> str | None:
        request = pb.MessageSendTextRequest(
            conversation_id=conversation_id, text=text, mentional_ids=list(mention_ids)
        )
        try:
            resp = await self._ask(self.stub.MessageSendText, request)
        except grpc.aio.AioRpcError as exc:
            raise _send_error(exc) from exc
        except _NoAnswer as exc:  # it may have gone out
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
        request = pb.MessageSendFileRequest(conversation_id=conversation_id, file_box=box)
        try:
            resp = await self._ask(self.stub.MessageSendFile, request)
        except grpc.aio.AioRpcError as exc:
            raise _send_error(exc) from exc
        except _NoAnswer as exc:  # it may have gone out
            raise SendOutcomeUnknown(str(exc)) from None
        info = FileInfo(name=file.name, size=file.size, mime=file.mime, duration_s=file.duration_s)
        self._remember_own(
            resp.id, conversation_id, MessageKind.from_media_word(file.kind), file=info
        )
        return resp.id or None

    # ------------------------------------------------------------ files in

    def download(self, message_id: str, max_bytes: int) -> AsyncIterator[bytes]:
        return self._download(message_id, max_bytes)

    async def _download(self, message_id: str, max_bytes: int) -> AsyncIterator[bytes]:
        ref = await self._filebox(message_id)
        if ref is None:
            raise PuppetError(f"message {shown(message_id)} has no usable file")
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
            data = await self._fetch_url(ref.url, max_bytes)
            for i in range(0, len(data), CHUNK_BYTES):
                yield data[i : i + CHUNK_BYTES]
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

    async def _fetch_url(self, url: str, max_bytes: int) -> bytes:
        """A url FileBox's bytes: a peer's URL, so only from a public address unless
        ``allow_private_hosts`` (see :mod:`wechat_sdk.media_fetch`)."""
        try:
            data, _mime = await asyncio.to_thread(
                media_fetch.fetch_url, url, max_bytes, allow_private=self.allow_private_hosts
            )
        except media_fetch.FetchFailed as exc:
            if exc.code == "too_large":
                raise FileTooLarge(max_bytes + 1, max_bytes) from exc
            raise PuppetError(str(exc)) from exc
        return data

    # ------------------------------------------------------------ session

    async def logout(self) -> None:
        await self._unary(self.stub.Logout, pb.LogoutRequest())


def _remember(cache: OrderedDict[str, Any], key: str, value: Any) -> None:
    """Put ``value`` in a cache of at most MAX_CACHED_MESSAGES entries (oldest dropped)."""
    cache[key] = value
    if len(cache) > MAX_CACHED_MESSAGES:
        cache.popitem(last=False)


def _file_chunks(file: OutboundFile) -> Iterable[bytes]:
    if file.path is not None and file.data is None:
        with file.path.open("rb") as fh:
            while chunk := fh.read(CHUNK_BYTES):
                yield chunk
        return
    data = file.read()
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
