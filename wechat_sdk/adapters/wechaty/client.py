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

Here are the connection and its calls; the rest is in :mod:`.connection` (the address, TLS
and the channel), :mod:`.payloads` (the payload calls and what they keep), :mod:`.files`
(files up and down) and :mod:`.errors` (what a gRPC error means).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import grpc

from wechat_sdk.adapters.wechaty import files, wire
from wechat_sdk.adapters.wechaty._proto import puppet_pb2 as pb
from wechat_sdk.adapters.wechaty._proto import puppet_pb2_grpc as pb_grpc
from wechat_sdk.adapters.wechaty.connection import (
    WECHATY_ROOT_CA,
    ServiceConnection,
    auth_metadata,
    open_channel,
)
from wechat_sdk.adapters.wechaty.errors import (
    NoAnswer,
    ServiceUnavailable,
    send_error,
    service_error,
)
from wechat_sdk.adapters.wechaty.payloads import Payloads
from wechat_sdk.adapters.wechaty.prefetch import PrefetchWindow
from wechat_sdk.adapters.wechaty.wire import MESSAGE_KINDS, message_kind
from wechat_sdk.capabilities import CAPABILITIES, Capabilities
from wechat_sdk.logtext import shown
from wechat_sdk.puppet import (
    Contact,
    DirtyEvent,
    FileInfo,
    LoginEvent,
    LogoutEvent,
    Message,
    MessageEvent,
    MessageKind,
    OutboundFile,
    PuppetError,
    PuppetEvent,
    ReplyWindow,
    Room,
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

#: events whose payloads are fetched ahead of the gateway, at most (256 rather than 32:
#: in a burst of 3,000 DMs the gateway answered about a tenth faster; docs/benchmarks.md)
PREFETCH_WINDOW = 256
#: seconds an event waits for an earlier message's payload before it goes first
PREFETCH_PATIENCE_S = 2.0
MAX_TEXT_CHARS = 64 * 1024
#: seconds a unary call may go unanswered (its gRPC deadline)
CALL_TIMEOUT_S = 30.0

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
        self._payloads = Payloads(
            self._unary,
            self_id=lambda: self._self_id,
            max_text_chars=max_text_chars,
            log=self._log,
        )
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

    def _metadata(self) -> grpc.aio.Metadata:
        if self._auth is None:
            raise PuppetError("the puppet is not started")
        return self._auth

    async def start(self) -> None:
        """Attach the event stream; call ``Start`` unless the server replays a session."""
        await self._detach()
        if self.resolver is not None:  # token discovery: the service may have moved
            self._connection = await self.resolver()
        self._auth = auth_metadata(self.connection)
        queue: asyncio.Queue[object] = asyncio.Queue()
        self._queue = queue
        self._window = window = PrefetchWindow[object](
            queue, size=self.prefetch_window, patience_s=self.prefetch_patience_s
        )
        self._channel = open_channel(self.connection)
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
                raise service_error(exc, self.connection.endpoint) from exc

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

    def events_held_back(self) -> int:
        """See :class:`~wechat_sdk.puppet.HoldsEventsBack`: messages whose payload is
        still loading that later events overtook."""
        return self._window.overtaken() if self._window is not None else 0

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
        self._payloads.drop_loads()
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
                    await window.add(
                        event, functools.partial(self._payloads.load_ahead, event.message_id)
                    )
                elif event is not None:
                    await window.add(event)
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                error = service_error(exc, self.connection.endpoint)
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
            self._log.warning("Ding failed: %s", service_error(exc, self.connection.endpoint))
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
            self._payloads.forget("room", event.room_id)
            self._payloads.forget("room_member", event.room_id)
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
            self._payloads.forget(event.payload_type, event.payload_id)
        return event

    # ------------------------------------------------------------ payloads

    async def message(self, message_id: str) -> Message:
        return await self._payloads.message(message_id)

    async def contact(self, contact_id: str) -> Contact:
        return await self._payloads.contact(contact_id)

    async def room(self, room_id: str) -> Room:
        return await self._payloads.room(room_id)

    async def room_alias(self, room_id: str, contact_id: str) -> str | None:
        return await self._payloads.room_alias(room_id, contact_id)

    # ------------------------------------------------------------ calls

    async def _ask(self, rpc: str, request: Any) -> Any:
        """One unary call by its name, with the client's deadline; :class:`NoAnswer` if it
        ends without an answer (a cancellation of the calling task itself stays one)."""
        method = getattr(self.stub, rpc)
        try:
            return await method(request, metadata=self._metadata(), timeout=self.call_timeout_s)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise NoAnswer(
                    f"the Puppet Service gave no answer within {self.call_timeout_s:g} s"
                ) from None
            raise
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # (gRPC cancels the calls of a channel that closes, not the task awaiting one)
            raise NoAnswer("the call was cancelled: the client stopped") from None

    async def _unary(self, rpc: str, request: Any) -> Any:
        try:
            return await self._ask(rpc, request)
        except grpc.aio.AioRpcError as exc:
            raise service_error(exc, self.connection.endpoint) from exc

    # ------------------------------------------------------------ sending

    async def send_text(
        self, conversation_id: str, text: str, mention_ids: tuple[str, ...] = ()
    ) -> str | None:
        request = pb.MessageSendTextRequest(
            conversation_id=conversation_id, text=text, mentional_ids=list(mention_ids)
        )
        try:
            resp = await self._ask("MessageSendText", request)
        except grpc.aio.AioRpcError as exc:
            raise send_error(exc) from exc
        except NoAnswer as exc:  # it may have gone out
            raise SendOutcomeUnknown(str(exc)) from None
        self._payloads.remember_own(resp.id, conversation_id, MessageKind.TEXT, text, mention_ids)
        return resp.id or None

    async def send_file(self, conversation_id: str, file: OutboundFile) -> str | None:
        box = await files.upload(
            self.stub, file, metadata=self._metadata(), timeout_s=self.call_timeout_s * 4
        )
        request = pb.MessageSendFileRequest(conversation_id=conversation_id, file_box=box)
        try:
            resp = await self._ask("MessageSendFile", request)
        except grpc.aio.AioRpcError as exc:
            raise send_error(exc) from exc
        except NoAnswer as exc:  # it may have gone out
            raise SendOutcomeUnknown(str(exc)) from None
        info = FileInfo(name=file.name, size=file.size, mime=file.mime, duration_s=file.duration_s)
        self._payloads.remember_own(
            resp.id, conversation_id, MessageKind.from_media_word(file.kind), file=info
        )
        return resp.id or None

    # ------------------------------------------------------------ files in

    def download(self, message_id: str, max_bytes: int) -> AsyncIterator[bytes]:
        return self._download(message_id, max_bytes)

    async def _download(self, message_id: str, max_bytes: int) -> AsyncIterator[bytes]:
        ref = await self._payloads.filebox(message_id)
        if ref is None:
            raise PuppetError(f"message {shown(message_id)} has no usable file")
        chunks = files.download(
            ref, max_bytes, self._download_stream, allow_private_hosts=self.allow_private_hosts
        )
        async with contextlib.aclosing(chunks):
            try:
                async for chunk in chunks:
                    yield chunk
            except grpc.aio.AioRpcError as exc:
                raise service_error(exc, self.connection.endpoint) from exc

    def _download_stream(self, uuid: str) -> Any:
        return self.stub.Download(pb.DownloadRequest(id=uuid), metadata=self._metadata())

    # ------------------------------------------------------------ session

    async def logout(self) -> None:
        await self._unary("Logout", pb.LogoutRequest())

    # ------------------------------------------------------------ transport

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    async def set_typing(self, conversation_id: str, typing: bool) -> None:
        """Wechaty has no typing indicator: nothing to do."""

    def reply_window(self, conversation_id: str) -> ReplyWindow | None:
        return None  # Wechaty has no reply window
