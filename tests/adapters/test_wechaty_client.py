"""The Puppet Service client against a scripted in-process gRPC server.

The server here is written with the project's own generated stubs, so each test sets
exactly what goes over the wire: bad payloads, unknown types, replayed sessions, errors.
The real Node server is exercised by tests/e2e.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from local_http import Answer, serving
from waiting import until

from wechat_sdk.adapters.wechaty._proto import puppet_pb2 as pb
from wechat_sdk.adapters.wechaty._proto import puppet_pb2_grpc as pb_grpc
from wechat_sdk.adapters.wechaty.client import (
    MESSAGE_KINDS,
    PuppetServiceClient,
    ServiceConnection,
    ServiceUnavailable,
    message_kind,
)
from wechat_sdk.adapters.wechaty.filebox import FileBoxRef
from wechat_sdk.clock import RealClock
from wechat_sdk.inbound.media import MediaSaver
from wechat_sdk.puppet import (
    DirtyEvent,
    FileTooLarge,
    HeartbeatEvent,
    LoginEvent,
    LogoutEvent,
    MessageEvent,
    MessageKind,
    OutboundFile,
    PuppetError,
    PuppetEvent,
    ReadyEvent,
    ScanEvent,
    ScanStatus,
    SendError,
    SendOutcomeUnknown,
)

TOKEN = "insecure_test_token"


@dataclass
class Script:
    """What the fake server says; every call it gets is recorded."""

    replay: list[tuple[int, str]] = field(default_factory=list)  # sent on each new Event stream
    messages: dict[str, pb.MessagePayloadResponse] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    downloads: dict[str, bytes] = field(default_factory=dict)
    contacts: dict[str, str] = field(default_factory=dict)
    send_error: grpc.StatusCode | None = None
    gate: asyncio.Event | None = None  # when set, MessagePayload waits for it
    held: set[str] = field(default_factory=set)  # ids (or texts sent) never answered
    deadlines: dict[str, float | None] = field(default_factory=dict)  # per method, as seen
    calls: list[str] = field(default_factory=list)
    uploads: list[bytes] = field(default_factory=list)
    sent_files: list[dict[str, Any]] = field(default_factory=list)
    streams: list[asyncio.Queue[tuple[int, str] | None]] = field(default_factory=list)

    def push(self, event_type: int, payload: Any) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        self.streams[-1].put_nowait((event_type, text))

    def drop(self) -> None:
        self.streams[-1].put_nowait(None)


class FakeServer(pb_grpc.PuppetServicer):
    def __init__(self, script: Script) -> None:
        self.s = script

    def _auth(self, context: grpc.aio.ServicerContext) -> None:
        md = dict(context.invocation_metadata() or ())
        if md.get("authorization") != f"Wechaty {TOKEN}":
            raise _Abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")

    async def Event(self, request: Any, context: Any) -> AsyncIterator[pb.EventResponse]:
        try:
            self._auth(context)
        except _Abort as a:
            await context.abort(a.code, a.details)
        self.s.calls.append("Event")
        queue: asyncio.Queue[tuple[int, str] | None] = asyncio.Queue()
        self.s.streams.append(queue)
        yield pb.EventResponse(type=1, payload=json.dumps({"data": "connected"}))
        for event_type, payload in self.s.replay:
            yield pb.EventResponse(type=event_type, payload=payload)
        while (item := await queue.get()) is not None:
            yield pb.EventResponse(type=item[0], payload=item[1])

    async def Start(self, request: Any, context: Any) -> pb.StartResponse:
        self.s.calls.append("Start")
        return pb.StartResponse()

    async def Ding(self, request: Any, context: Any) -> pb.DingResponse:
        self.s.calls.append("Ding")
        self.s.push(3, {"data": request.data})
        return pb.DingResponse()

    async def Logout(self, request: Any, context: Any) -> pb.LogoutResponse:
        self.s.calls.append("Logout")
        return pb.LogoutResponse()

    async def _hold(self, method: str, key: str, context: Any) -> None:
        self.s.deadlines[method] = context.time_remaining()
        if key in self.s.held:
            await asyncio.Event().wait()  # never answered (until the client gives up)

    async def MessagePayload(self, request: Any, context: Any) -> Any:
        self.s.calls.append(f"MessagePayload:{request.id}")
        await self._hold("MessagePayload", request.id, context)
        if self.s.gate is not None:
            await self.s.gate.wait()
        if request.id not in self.s.messages:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such message")
        return self.s.messages[request.id]

    async def MessageFile(self, request: Any, context: Any) -> pb.MessageFileResponse:
        return pb.MessageFileResponse(file_box=self.s.files[request.id])

    async def Download(self, request: Any, context: Any) -> AsyncIterator[pb.DownloadResponse]:
        data = self.s.downloads[request.id]
        for i in range(0, len(data), 10_000):
            yield pb.DownloadResponse(chunk=data[i : i + 10_000])

    async def ContactPayload(self, request: Any, context: Any) -> Any:
        self.s.calls.append(f"ContactPayload:{request.id}")
        await self._hold("ContactPayload", request.id, context)
        return pb.ContactPayloadResponse(id=request.id, name=self.s.contacts.get(request.id, ""))

    async def MessageSendText(self, request: Any, context: Any) -> Any:
        mentions = ",".join(request.mentional_ids)
        self.s.calls.append(f"MessageSendText:{request.conversation_id}:{request.text}:{mentions}")
        await self._hold("MessageSendText", request.text, context)
        if self.s.send_error is not None:
            await context.abort(self.s.send_error, "scripted failure")
        return pb.MessageSendTextResponse(id="sent-1")

    async def Upload(self, request_iterator: Any, context: Any) -> pb.UploadResponse:
        chunks = [r.chunk async for r in request_iterator]
        self.s.uploads.append(b"".join(chunks))
        return pb.UploadResponse(id="uuid-up-1")

    async def MessageSendFile(self, request: Any, context: Any) -> Any:
        self.s.sent_files.append(json.loads(request.file_box))
        return pb.MessageSendFileResponse(id="")


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details


@pytest.fixture
async def server() -> AsyncIterator[tuple[Script, str]]:
    script = Script()
    srv = grpc.aio.server()
    pb_grpc.add_PuppetServicer_to_server(FakeServer(script), srv)  # type: ignore[no-untyped-call]
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    try:
        yield script, f"127.0.0.1:{port}"
    finally:
        await srv.stop(0)


def client_for(endpoint: str, token: str = TOKEN, **options: Any) -> PuppetServiceClient:
    options.setdefault("reattach_grace_s", 0.3)
    return PuppetServiceClient(
        ServiceConnection(endpoint=endpoint, token=token, tls=False), **options
    )


def add_texts(script: Script, count: int) -> None:
    """Text messages m0, m1... from wxid_a, saying t0, t1..."""
    for n in range(count):
        script.messages[f"m{n}"] = pb.MessagePayloadResponse(
            id=f"m{n}", talker_id="wxid_a", text=f"t{n}", type=7
        )


@dataclass
class Handled:
    message_id: str
    outcome: str  # the text, or the error
    at: float  # seconds after the consumer started


async def consume_like_the_gateway(
    client: PuppetServiceClient, messages: int, within: float = 10.0
) -> list[Handled]:
    """Take events one at a time and load each message's payload before the next event,
    as the gateway's consumer does; until ``messages`` message events were handled."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    handled: list[Handled] = []

    async def run() -> None:
        async for event in client.events():
            if not isinstance(event, MessageEvent):
                continue
            try:
                outcome = (await client.message(event.message_id)).text
            except PuppetError as exc:
                outcome = f"error: {exc}"
            handled.append(Handled(event.message_id, outcome, loop.time() - started))
            if len(handled) >= messages:
                return

    await asyncio.wait_for(run(), within)
    return handled


async def collect(client: PuppetServiceClient, n: int, within: float = 5.0) -> list[PuppetEvent]:
    got: list[PuppetEvent] = []

    async def read() -> None:
        async for event in client.events():
            got.append(event)
            if len(got) >= n:
                return

    await asyncio.wait_for(read(), within)
    return got


# ---------------------------------------------------------------- the TS enum trap


def test_message_kinds_are_the_typescript_enum_not_the_proto_enum() -> None:
    assert message_kind(7) == MessageKind.TEXT  # the proto enum would say VIDEO
    assert message_kind(6) == MessageKind.IMAGE
    assert message_kind(15) == MessageKind.VIDEO
    assert message_kind(1) == MessageKind.ATTACHMENT
    assert message_kind(2) == MessageKind.AUDIO
    assert message_kind(99) == MessageKind.UNKNOWN
    assert set(MESSAGE_KINDS.values()) == set(MessageKind)


# ---------------------------------------------------------------- connecting


async def test_fresh_server_gets_start_and_events_are_normalised(
    server: tuple[Script, str],
) -> None:
    script, endpoint = server
    client = client_for(endpoint)
    await client.start()
    assert script.calls == ["Event", "Start"]
    script.push(22, {"qrcode": "https://login.weixin.qq.com/l/abc", "status": 2})
    script.push(22, {"qrcode": "", "status": 3})
    script.push(25, {"contactId": "wxid_bot"})
    script.push(23, {"data": "ready"})
    script.push(2, {"messageId": "m1"})
    events = await collect(client, 6)
    assert events == [
        HeartbeatEvent(data="connected"),
        ScanEvent(status=ScanStatus.WAITING, qrcode="https://login.weixin.qq.com/l/abc"),
        ScanEvent(status=ScanStatus.SCANNED),
        LoginEvent(contact_id="wxid_bot"),
        ReadyEvent(),
        MessageEvent(message_id="m1"),
    ]
    assert client.self_id == "wxid_bot"
    # once started, event types are no longer queued for start() (that queue used to
    # grow by one entry per event for the stream's whole life)
    assert client._first is None
    await client.stop()


async def test_reattach_to_a_live_session_does_not_call_start(server: tuple[Script, str]) -> None:
    script, endpoint = server
    script.replay = [(25, json.dumps({"contactId": "wxid_bot"})), (23, "{}")]
    client = client_for(endpoint, reattach_grace_s=5.0)
    await client.start()
    assert "Start" not in script.calls
    assert client.self_id == "wxid_bot"
    # the link drops: events() ends; starting again re-attaches, still without Start
    script.drop()
    events = await collect(client, 10)
    assert events[-1] == ReadyEvent()
    await client.start()
    assert script.calls == ["Event", "Event"]
    await client.stop()


async def test_wrong_token_is_a_clear_error_naming_the_setting(
    server: tuple[Script, str],
) -> None:
    _script, endpoint = server
    client = client_for(endpoint, token="insecure_wrong")
    with pytest.raises(ServiceUnavailable, match=r"refused the token.*puppetOptions\.token"):
        await client.start()


async def test_unreachable_service_is_a_clear_error() -> None:
    client = client_for("127.0.0.1:1", connect_timeout_s=3.0)
    with pytest.raises(ServiceUnavailable, match=r"127\.0\.0\.1:1"):
        await client.start()


async def test_a_quiet_link_is_probed_with_ding(
    server: tuple[Script, str],
) -> None:
    script, endpoint = server
    client = client_for(endpoint, heartbeat_timeout_s=0.6)
    await client.start()
    events = await collect(client, 2, within=3.0)  # greeting, then the DONG of our Ding
    assert events == [HeartbeatEvent(data="connected"), HeartbeatEvent(data="wechat-sdk")]
    assert "Ding" in script.calls
    await client.stop()


async def test_stop_ends_events_and_does_not_log_out(server: tuple[Script, str]) -> None:
    script, endpoint = server
    client = client_for(endpoint)
    await client.start()
    reader = asyncio.ensure_future(collect(client, 99, within=5.0))
    await asyncio.sleep(0.1)
    await client.stop()
    events = await asyncio.wait_for(reader, 1.0)  # ended early: it wanted 99 events
    assert events == [HeartbeatEvent(data="connected")]
    assert "Stop" not in script.calls and "Logout" not in script.calls


# ---------------------------------------------------------------- bad wire data


async def test_bad_wire_data_is_logged_and_skipped(
    server: tuple[Script, str], caplog: pytest.LogCaptureFixture
) -> None:
    script, endpoint = server
    client = client_for(endpoint)
    await client.start()
    caplog.set_level(logging.WARNING, logger="wechat_sdk.adapters.wechaty")
    script.push(2, "{not json")  # malformed JSON
    script.push(2, {"other": 1})  # missing messageId
    script.push(2, "[1, 2]")  # not an object
    script.push(99, {"x": 1})  # unknown event type
    script.push(25, {"contactId": 42})  # wrong field type
    script.push(2, {"messageId": "good"})
    events = await collect(client, 2)
    assert events == [HeartbeatEvent(data="connected"), MessageEvent(message_id="good")]
    text = caplog.text
    assert "malformed JSON" in text
    assert "unknown type 99" in text
    assert text.count("skipped") >= 5
    await client.stop()


async def test_numbers_out_of_range_skip_their_event_and_the_stream_goes_on(
    server: tuple[Script, str], caplog: pytest.LogCaptureFixture
) -> None:
    # 1e999 is a valid JSON number that Python reads as infinity: int() of it used to
    # raise OverflowError, which tore the stream down; the reconnect lost what followed
    script, endpoint = server
    add_texts(script, 1)
    client = client_for(endpoint)
    await client.start()
    caplog.set_level(logging.WARNING, logger="wechat_sdk.adapters.wechaty")
    script.push(22, '{"qrcode": "https://login.weixin.qq.com/l/x", "status": 1e999}')
    script.push(27, '{"payloadType": 1e999, "payloadId": "wxid_a"}')
    script.push(27, '{"payloadType": NaN, "payloadId": "wxid_a"}')
    script.push(2, {"messageId": "m0"})
    events = await collect(client, 2)
    assert events == [HeartbeatEvent(data="connected"), MessageEvent(message_id="m0")]
    assert (await client.message("m0")).text == "t0"
    assert script.calls.count("Event") == 1  # the same stream: no reconnect
    assert caplog.text.count("skipped event") == 3
    assert '"status" is not an integer: inf' in caplog.text
    await client.stop()


async def test_events_read_before_the_stream_ends_are_all_handed_over(
    server: tuple[Script, str],
) -> None:
    script, endpoint = server
    add_texts(script, 3)
    client = client_for(endpoint)
    await client.start()
    script.gate = asyncio.Event()  # the payloads are not answered yet
    for n in range(3):
        script.push(2, {"messageId": f"m{n}"})
    script.drop()  # the server drops the stream right after sending them
    await asyncio.sleep(0.2)
    script.gate.set()
    handled = await consume_like_the_gateway(client, 3)
    assert [(h.message_id, h.outcome) for h in handled] == [
        ("m0", "t0"),
        ("m1", "t1"),
        ("m2", "t2"),
    ]
    events = await collect(client, 1, within=1.0)  # then the stream's end: events() stops
    assert events == []
    await client.stop()


async def test_oversized_text_and_unknown_message_types(server: tuple[Script, str]) -> None:
    script, endpoint = server
    script.messages["big"] = pb.MessagePayloadResponse(
        id="big", talker_id="wxid_a", text="x" * 70_000, type=7
    )
    script.messages["odd"] = pb.MessagePayloadResponse(
        id="odd", talker_id="wxid_a", text="?", type=42
    )
    script.messages["anon"] = pb.MessagePayloadResponse(id="anon", text="who?", type=7)
    client = client_for(endpoint)
    await client.start()
    with pytest.raises(PuppetError, match="over the limit"):
        await client.message("big")
    assert (await client.message("odd")).kind == MessageKind.UNKNOWN
    with pytest.raises(PuppetError, match="no talker"):
        await client.message("anon")
    await client.stop()


# ---------------------------------------------------------------- payloads and caches


async def test_message_payload_fields_and_dirty_invalidation(server: tuple[Script, str]) -> None:
    script, endpoint = server
    script.messages["m1"] = pb.MessagePayloadResponse(
        id="m1",
        talker_id="wxid_a",
        room_id="r1@chatroom",
        text="@bot hi",
        type=7,
        mention_ids=["wxid_bot"],
    )
    script.messages["m1"].receive_time.FromSeconds(1_700_000_000)
    script.contacts["wxid_a"] = "Alice"
    client = client_for(endpoint)
    await client.start()
    msg = await client.message("m1")
    assert (msg.kind, msg.room_id, msg.mention_ids, msg.timestamp) == (
        MessageKind.TEXT,
        "r1@chatroom",
        ("wxid_bot",),
        1_700_000_000.0,
    )
    assert msg.listener_id is None and msg.is_group
    assert (await client.contact("wxid_a")).name == "Alice"
    script.contacts["wxid_a"] = "Alice Renamed"
    assert (await client.contact("wxid_a")).name == "Alice"  # cached
    script.push(27, {"payloadType": 2, "payloadId": "wxid_a"})
    events = await collect(client, 2)
    assert events[-1] == DirtyEvent(payload_type="contact", payload_id="wxid_a")
    assert (await client.contact("wxid_a")).name == "Alice Renamed"
    await client.stop()


async def test_payloads_are_fetched_ahead_of_the_consumer_within_a_window(
    server: tuple[Script, str],
) -> None:
    script, endpoint = server
    add_texts(script, 10)  # m0.. from wxid_a, saying t0..
    script.messages["bad"] = pb.MessagePayloadResponse(id="bad", text="no talker", type=7)
    client = client_for(endpoint, prefetch_window=4)
    await client.start()
    script.gate = asyncio.Event()
    for n in range(10):
        script.push(2, {"messageId": f"m{n}"})
    script.push(2, {"messageId": "bad"})

    def payload_calls() -> list[str]:
        return [c for c in script.calls if c.startswith("MessagePayload:")]

    await until("four payloads asked for", lambda: len(payload_calls()) >= 4)
    await asyncio.sleep(0.2)  # (room for a fifth, were the window not full)
    # the window: the first four, each once (concurrent calls reach the server in any order)
    assert sorted(payload_calls()) == [f"MessagePayload:m{n}" for n in range(4)]
    script.gate.set()
    # nobody has consumed an event yet: the window still lets every payload be fetched
    await until("every payload asked for", lambda: len(payload_calls()) >= 11)
    await asyncio.sleep(0.2)  # (room for a payload asked twice to show)
    fetched = payload_calls()
    assert sorted(fetched) == sorted(
        [f"MessagePayload:m{n}" for n in range(10)] + ["MessagePayload:bad"]
    )  # every payload once, none asked twice
    events = await collect(client, 12)
    ids = [e.message_id for e in events if isinstance(e, MessageEvent)]
    assert ids == [f"m{n}" for n in range(10)] + ["bad"]  # in the order the events came
    assert [(await client.message(i)).text for i in ids[:10]] == [f"t{n}" for n in range(10)]
    with pytest.raises(PuppetError, match="no talker"):  # a failed prefetch is raised here
        await client.message("bad")
    await client.stop()


async def test_an_unanswered_payload_costs_its_timeout_once_and_the_others_flow_meanwhile(
    server: tuple[Script, str],
) -> None:
    # was: the payload fetched ahead was cut after 30-35 s, then asked again, one message
    # after the other; the account stood still 65 s for one (140 s for three)
    script, endpoint = server
    add_texts(script, 4)  # m0.. from wxid_a, saying t0..
    script.held.update({"m0", "m2"})  # never answered
    client = client_for(endpoint, call_timeout_s=1.0, prefetch_patience_s=0.1)
    await client.start()
    for n in range(4):
        script.push(2, {"messageId": f"m{n}"})
    handled = await consume_like_the_gateway(client, 4)
    outcomes = [(h.message_id, h.outcome) for h in handled]
    # the answered ones first: the others were not held behind the stuck ones (no timing
    # asserted; within each pair the order is the machine's)
    assert set(outcomes[:2]) == {("m1", "t1"), ("m3", "t3")}
    no_answer = "error: the Puppet Service gave no answer within 1 s"
    assert set(outcomes[2:]) == {("m0", no_answer), ("m2", no_answer)}
    assert script.calls.count("MessagePayload:m0") == script.calls.count("MessagePayload:m2") == 1
    await client.stop()


async def test_a_caller_waiting_for_a_payload_fetched_ahead_gets_an_error_on_stop(
    server: tuple[Script, str],
) -> None:
    script, endpoint = server
    script.messages["m0"] = pb.MessagePayloadResponse(id="m0", talker_id="wxid_a", type=7)
    script.held.add("m0")
    client = client_for(endpoint)
    await client.start()
    script.push(2, {"messageId": "m0"})
    await until("its payload asked for", lambda: "MessagePayload:m0" in script.calls)
    waiting = asyncio.ensure_future(client.message("m0"))
    await asyncio.sleep(0.1)
    await client.stop()
    with pytest.raises(PuppetError):  # an error to log and skip, not a stray cancellation
        await asyncio.wait_for(waiting, 2.0)


async def test_unanswered_calls_end_at_their_deadline_with_an_error_that_says_so(
    server: tuple[Script, str],
) -> None:
    script, endpoint = server
    script.held.update({"m0", "wxid_slow", "stuck"})
    client = client_for(endpoint, call_timeout_s=0.6)
    await client.start()
    results = await asyncio.gather(
        client.message("m0"),
        client.contact("wxid_slow"),
        client.send_text("wxid_a", "stuck"),
        return_exceptions=True,
    )
    for result in results:
        assert isinstance(result, PuppetError)
        assert str(result) == "the Puppet Service gave no answer within 0.6 s"
    # the send may have reached WeChat: delivery looks for its echo before trying again
    assert isinstance(results[2], SendOutcomeUnknown)
    # a gRPC deadline on each call (the server sees it too)
    assert set(script.deadlines) == {"MessagePayload", "ContactPayload", "MessageSendText"}
    assert all(d is not None and 0 < d <= 0.61 for d in script.deadlines.values())
    assert await client.send_text("wxid_a", "fine") == "sent-1"  # the client goes on
    await client.stop()


async def test_a_message_event_repeated_while_its_payload_is_fetched_asks_once(
    server: tuple[Script, str],
) -> None:
    script, endpoint = server
    for n in (1, 2):
        script.messages[f"m{n}"] = pb.MessagePayloadResponse(
            id=f"m{n}", talker_id="wxid_a", text="hi", type=7
        )
    client = client_for(endpoint, prefetch_window=4)
    await client.start()
    script.gate = asyncio.Event()  # the payloads' answers are held
    for _ in range(3):  # a puppet redelivering the event (after a reconnect, say)
        script.push(2, {"messageId": "m1"})
    script.push(2, {"messageId": "m2"})  # events are read in order: m2 asked, m1 read thrice
    await until("the event after the repeats read", lambda: "MessagePayload:m2" in script.calls)
    script.gate.set()
    events = await collect(client, 5)
    assert [e.message_id for e in events if isinstance(e, MessageEvent)] == ["m1"] * 3 + ["m2"]
    assert (await client.message("m1")).text == "hi"
    assert script.calls.count("MessagePayload:m1") == 1  # one fetch, shared
    await client.stop()


async def test_a_new_senders_contact_is_fetched_alongside_its_message_and_once(
    server: tuple[Script, str],
) -> None:
    script, endpoint = server
    script.contacts["wxid_new"] = "New Person"
    for n in range(3):
        script.messages[f"n{n}"] = pb.MessagePayloadResponse(
            id=f"n{n}", talker_id="wxid_new", text=f"t{n}", type=7
        )
    client = client_for(endpoint)
    await client.start()
    for n in range(3):
        script.push(2, {"messageId": f"n{n}"})
    # read and prefetched; nobody asked for anything yet
    await until(
        "the three payloads and the contact asked for",
        lambda: "MessagePayload:n2" in script.calls and "ContactPayload:wxid_new" in script.calls,
    )
    await asyncio.sleep(0.2)  # (time for a second contact call, were there one)
    assert script.calls.count("ContactPayload:wxid_new") == 1  # fetched ahead, once
    names = await asyncio.gather(*(client.contact("wxid_new") for _ in range(3)))
    assert [c.name for c in names] == ["New Person"] * 3
    assert script.calls.count("ContactPayload:wxid_new") == 1  # cached since
    await client.stop()


async def test_callers_of_a_contact_share_one_fetch_and_a_cancelled_one_not_the_others(
    server: tuple[Script, str],
) -> None:
    script, endpoint = server
    script.contacts["wxid_c"] = "Carol"
    client = client_for(endpoint)
    await client.start()
    callers = [asyncio.ensure_future(client.contact("wxid_c")) for _ in range(3)]
    await asyncio.sleep(0)
    callers[0].cancel()
    assert [(await c).name for c in callers[1:]] == ["Carol", "Carol"]
    assert script.calls.count("ContactPayload:wxid_c") == 1
    await client.stop()


# ---------------------------------------------------------------- files


async def test_files_inline_and_by_uuid_stream_with_the_cap(server: tuple[Script, str]) -> None:
    script, endpoint = server
    small, large = b"\x89PNG" + bytes(1000), bytes(range(256)) * 300
    script.messages["s"] = pb.MessagePayloadResponse(id="s", talker_id="a", type=6)
    script.files["s"] = json.dumps(
        {"type": 1, "name": "s.png", "base64": base64.b64encode(small).decode()}
    )
    script.messages["l"] = pb.MessagePayloadResponse(id="l", talker_id="a", type=1)
    script.files["l"] = json.dumps({"boxType": 7, "uuid": "u-1", "name": "l.bin"})
    script.downloads["u-1"] = large
    client = client_for(endpoint)
    await client.start()
    s = await client.message("s")
    assert s.file is not None and (s.file.name, s.file.size) == ("s.png", len(small))
    assert b"".join([c async for c in client.download("s", 10_000)]) == small
    assert b"".join([c async for c in client.download("l", len(large))]) == large
    got: list[bytes] = []
    with pytest.raises(FileTooLarge) as err:
        async for chunk in client.download("l", 25_000):
            got.append(chunk)
    assert err.value.cap == 25_000
    assert sum(map(len, got)) <= 25_000
    await client.stop()


async def test_an_inline_file_too_large_is_refused_before_it_is_decoded(
    server: tuple[Script, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An inline (base64) FileBox whose declared size is small but whose base64 holds
    far more than the cap: it was decoded whole (all of it in memory) before the cap was
    checked. Its base64 length says it cannot fit: refused as too large, undecoded."""
    script, endpoint = server
    body = base64.b64encode(bytes(300_000)).decode()
    script.messages["big"] = pb.MessagePayloadResponse(id="big", talker_id="a", type=1)
    script.files["big"] = json.dumps({"type": 1, "base64": body, "name": "b.bin", "size": 10})
    decoded: list[str] = []

    def spy(self: FileBoxRef) -> bytes:
        decoded.append(self.name)
        return base64.b64decode(self.base64 or "")

    monkeypatch.setattr(FileBoxRef, "inline_bytes", spy)
    client = client_for(endpoint)
    await client.start()
    try:
        with pytest.raises(FileTooLarge) as err:
            async for _chunk in client.download("big", 10_000):
                pass
        assert (err.value.size, err.value.cap) == (300_000, 10_000)
        assert decoded == []
    finally:
        await client.stop()


async def test_a_file_that_ends_before_its_declared_size_is_no_file(
    server: tuple[Script, str], tmp_path: Path
) -> None:
    """The Download stream ended after 10,000 of the 30,000 bytes its FileBox declared:
    the cut file was saved and handed to the agent as the file, without a word."""
    script, endpoint = server
    script.messages["f1"] = pb.MessagePayloadResponse(id="f1", talker_id="wxid_a", type=1)
    script.files["f1"] = json.dumps({"type": 7, "uuid": "u1", "name": "r.pdf", "size": 30_000})
    script.downloads["u1"] = b"%PDF" + b"x" * 9_996
    inline = base64.b64encode(b"short").decode()
    script.messages["f2"] = pb.MessagePayloadResponse(id="f2", talker_id="wxid_a", type=1)
    script.files["f2"] = json.dumps({"type": 1, "base64": inline, "name": "n.txt", "size": 9})
    client = client_for(endpoint)
    await client.start()
    try:
        saver = MediaSaver(tmp_path / "media", RealClock())
        for message_id in ("f1", "f2"):
            item = await saver.fetch(client, await client.message(message_id), 10**7)
            assert item.path is None and item.note is not None
            assert "ended after" in item.note
        assert not [p for p in (tmp_path / "media").rglob("*") if p.is_file()]
    finally:
        await client.stop()


async def test_a_url_filebox_on_an_internal_address_is_refused_unless_allowed(
    server: tuple[Script, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # was: a hostile Puppet Service got http://127.0.0.1/.../secret downloaded and handed
    # to the agent
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    script, endpoint = server
    with serving({"/internal/secret": Answer(b"the admin password")}) as internal:
        script.messages["u"] = pb.MessagePayloadResponse(id="u", talker_id="wxid_a", type=1)
        script.files["u"] = json.dumps(
            {"type": 2, "url": f"{internal.url}/internal/secret", "name": "secret.txt"}
        )
        refusing = client_for(endpoint)
        await refusing.start()
        with pytest.raises(PuppetError, match=r"refused.*127\.0\.0\.1.*mediaFetchAllowPrivate"):
            async for _chunk in refusing.download("u", 10_000):
                pass
        await refusing.stop()
        assert internal.asked == []  # not even connected to
        allowing = client_for(endpoint, allow_private_hosts=True)
        await allowing.start()
        got = b"".join([c async for c in allowing.download("u", 10_000)])
        assert got == b"the admin password"
        await allowing.stop()


async def test_send_file_uploads_then_sends_a_uuid_filebox(server: tuple[Script, str]) -> None:
    script, endpoint = server
    client = client_for(endpoint)
    await client.start()
    data = bytes(200_000)
    out = OutboundFile(name="voice.silk", kind="audio", data=data, duration_s=2.5)
    assert await client.send_file("wxid_a", out) is None  # an empty id is allowed
    assert script.uploads == [data]
    (box,) = script.sent_files
    assert box["type"] == 7 and box["uuid"] == "uuid-up-1" and box["name"] == "voice.silk"
    assert box["size"] == 200_000 and box["metadata"] == {"voiceLength": 2500}
    await client.stop()


# ---------------------------------------------------------------- send errors


@pytest.mark.parametrize(
    ("code", "raised", "transient"),
    [
        (grpc.StatusCode.UNAVAILABLE, SendOutcomeUnknown, None),
        (grpc.StatusCode.DEADLINE_EXCEEDED, SendOutcomeUnknown, None),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, SendError, True),
        (grpc.StatusCode.UNKNOWN, SendError, True),
        (grpc.StatusCode.INVALID_ARGUMENT, SendError, False),
        (grpc.StatusCode.NOT_FOUND, SendError, False),
    ],
)
async def test_send_errors_map_to_what_delivery_can_act_on(
    server: tuple[Script, str],
    code: grpc.StatusCode,
    raised: type[Exception],
    transient: bool | None,
) -> None:
    script, endpoint = server
    client = client_for(endpoint)
    await client.start()
    script.send_error = code
    with pytest.raises(raised) as err:
        await client.send_text("wxid_a", "hi")
    if transient is not None:
        assert isinstance(err.value, SendError) and err.value.transient is transient
    await client.stop()


async def test_send_text_returns_the_new_id_and_passes_mentions(
    server: tuple[Script, str],
) -> None:
    script, endpoint = server
    client = client_for(endpoint)
    await client.start()
    assert await client.send_text("r1@chatroom", "hello", ("wxid_b",)) == "sent-1"
    assert "MessageSendText:r1@chatroom:hello:wxid_b" in script.calls
    await client.logout()
    assert "Logout" in script.calls
    script.push(26, {"contactId": "wxid_bot", "data": "phone"})
    events = await collect(client, 2)
    assert events[-1] == LogoutEvent(contact_id="wxid_bot", reason="phone")
    await client.stop()


async def test_a_logout_naming_another_contact_is_skipped_and_the_bot_stays_itself(
    server: tuple[Script, str], caplog: pytest.LogCaptureFixture
) -> None:
    # was: it cleared the bot's own id, and the bot's own messages then reached the agent
    script, endpoint = server
    client = client_for(endpoint)
    await client.start()
    caplog.set_level(logging.WARNING, logger="wechat_sdk.adapters.wechaty")
    script.push(25, {"contactId": "wxid_bot"})
    script.push(26, {"contactId": "wxid_someone_else", "data": "kicked"})
    script.push(23, {})
    events = await collect(client, 3)
    assert events[1:] == [LoginEvent(contact_id="wxid_bot"), ReadyEvent()]
    assert client.self_id == "wxid_bot"
    assert "skipped a LOGOUT of wxid_someone_else" in caplog.text
    script.push(26, {"data": "phone"})  # no contact named: the account's own
    assert await collect(client, 1) == [LogoutEvent(contact_id="wxid_bot", reason="phone")]
    assert client.self_id is None
    await client.stop()


async def test_the_echo_of_a_sent_message_needs_no_payload_call(
    server: tuple[Script, str],
) -> None:
    script, endpoint = server
    client = client_for(endpoint)
    await client.start()
    script.push(25, {"contactId": "wxid_bot"})
    await collect(client, 2)  # the greeting and LOGIN
    assert await client.send_text("wxid_b", "hello") == "sent-1"
    script.push(2, {"messageId": "sent-1"})  # the server reports the bot's own message
    assert await collect(client, 1) == [MessageEvent(message_id="sent-1")]
    echo = await client.message("sent-1")
    assert (echo.talker_id, echo.listener_id, echo.text) == ("wxid_bot", "wxid_b", "hello")
    assert echo.kind == MessageKind.TEXT
    assert not any(c.startswith("MessagePayload") for c in script.calls)
    await client.stop()
