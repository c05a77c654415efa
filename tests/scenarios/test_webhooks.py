"""Webhooks out: the gateway's events POSTed to real HTTP endpoints (aiohttp servers on
127.0.0.1), each request verified with the ``standardwebhooks`` reference library; at least
once through endpoint outages and restarts."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from webhook_receiver import Receiver, eventually, whsec

from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.agent import AgentTurn
from wechat_sdk.clock import VirtualClock
from wechat_sdk.config import ConfigError, parse_config
from wechat_sdk.config.integrations import WebhookEndpoint
from wechat_sdk.stores import MemoryStore
from wechat_sdk.webhooks import RETRY_SCHEDULE_S, WebhookDispatcher

R1 = "r1@chatroom"


async def echo(turn: AgentTurn) -> str:
    return f"echo: {turn.text}"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver(whsec(1)).start()
    yield r
    await r.close()


def hooks(*receivers: Receiver, events: list[str] | None = None) -> dict[str, Any]:
    return {
        "webhooks": [
            {"url": r.url, "secret": r.secret, **({"events": events} if events else {})}
            for r in receivers
        ]
    }


async def test_a_conversation_arrives_signed_event_by_event(
    wechat: WeChatHarness, receiver: Receiver
) -> None:
    wechat.world.add_room(id=R1, topic="Team", members=["wxid_alice"])
    await wechat.gateway(echo, allowFrom=["wxid_alice"], **hooks(receiver))
    world = wechat.world
    await receiver.wait_for(1, "account.ready")

    await world.say("wxid_alice", "hello")
    await world.say("wxid_alice", "lunch?", room=R1)  # not mentioned: dropped
    await world.say("wxid_stranger", "hi bot")  # a pairing code
    await world.run_until_idle()
    await receiver.wait_for(1, "pairing.requested")
    await receiver.wait_for(1, "reply.sent")

    assert all(r.error is None for r in receiver.received)  # every signature held
    received = receiver.events("message.received")
    assert [
        (e["data"]["senderId"], e["data"]["decision"], e["data"]["reason"]) for e in received
    ] == [
        ("wxid_alice", "answered", None),
        ("wxid_alice", "dropped", "no_mention"),
        ("wxid_stranger", "dropped", "pairing_required"),
    ]
    (reply,) = receiver.events("reply.sent")
    assert reply["data"]["text"] == "echo: hello"
    assert reply["data"]["inReplyTo"] == received[0]["data"]["messageId"]
    (pairing,) = receiver.events("pairing.requested")
    assert pairing["data"]["senderId"] == "wxid_stranger"
    code = pairing["data"]["code"]
    assert code in world.texts(to="wxid_stranger")[0]  # the code the stranger was sent
    assert set(pairing) == {"type", "timestamp", "data"}  # the Standard Webhooks shape
    assert receiver.events("account.qr")[0]["data"]["qrUrl"].startswith("https://")


async def test_approving_through_the_gateway_is_an_event(
    wechat: WeChatHarness, receiver: Receiver
) -> None:
    gw = await wechat.gateway(
        echo, **hooks(receiver, events=["pairing.requested", "pairing.approved"])
    )
    await wechat.world.say("wxid_stranger", "hi bot")
    await wechat.world.run_until_idle()
    (requested,) = await receiver.wait_for(1, "pairing.requested")
    await gw.pairing.approve(requested["data"]["code"].lower())
    (approved,) = await receiver.wait_for(1, "pairing.approved")
    assert approved["data"] == {
        "accountId": "default",
        "code": requested["data"]["code"],
        "senderId": "wxid_stranger",
    }
    # only what it subscribed to
    assert {r.type for r in receiver.received} == {"pairing.requested", "pairing.approved"}


async def test_an_endpoint_down_gets_the_event_later_with_the_same_webhook_id(
    wechat: WeChatHarness, receiver: Receiver
) -> None:
    receiver.answers = [503, 500]  # down for two attempts
    await wechat.gateway(
        echo, dmPolicy="open", allowFrom=["*"], **hooks(receiver, events=["reply.sent"])
    )
    await wechat.world.say("wxid_alice", "hello")
    await wechat.world.run_until_idle()
    await receiver.wait_attempts(1)
    assert receiver.events() == []
    await wechat.world.advance(RETRY_SCHEDULE_S[1])  # the first retry: 503 again
    await wechat.world.advance(RETRY_SCHEDULE_S[2])  # the second: taken
    (event,) = await receiver.wait_for(1)
    assert event["data"]["text"] == "echo: hello"
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert len(receiver.received) == 3 and len(ids) == 1  # three attempts, one webhook-id
    stamps = [int(r.headers["webhook-timestamp"]) for r in receiver.received]
    assert stamps == sorted(stamps)  # each attempt signed anew


async def test_a_slow_endpoint_holds_up_neither_replies_nor_other_endpoints(
    wechat: WeChatHarness, receiver: Receiver
) -> None:
    slow = await Receiver(whsec(2)).start()
    slow.held = True  # takes each request and answers nothing until released
    try:
        await wechat.gateway(echo, dmPolicy="open", allowFrom=["*"], **hooks(slow, receiver))
        for n in range(3):
            await wechat.world.say("wxid_alice", f"message {n}")
        await wechat.world.run_until_idle()
        assert wechat.world.texts(to="wxid_alice") == [f"echo: message {n}" for n in range(3)]
        await receiver.wait_for(3, "reply.sent")
        assert slow.events() == []  # still holding the first one
        slow.release()
        await slow.wait_for(3, "reply.sent")
    finally:
        await slow.close()


async def test_events_queued_while_the_endpoint_is_down_arrive_after_a_restart(
    wechat: WeChatHarness, receiver: Receiver
) -> None:
    url, port = receiver.url, receiver.server.port
    await receiver.close()  # nothing listens: every attempt is refused
    config = hooks(receiver, events=["message.received", "reply.sent"])
    gw = await wechat.gateway(echo, dmPolicy="open", allowFrom=["*"], **config)
    await wechat.world.say("wxid_alice", "hello")
    await wechat.world.run_until_idle()
    # the first attempts fail
    await eventually(lambda: all(d.attempts for d in gw.store.webhooks.pending(url)))
    queued = gw.store.webhooks.pending(url)
    assert [d.event_type for d in queued] == ["message.received", "reply.sent"]
    await gw.close()

    back = await Receiver(receiver.secret, port=port).start()  # up again
    try:
        await wechat.gateway(echo, dmPolicy="open", allowFrom=["*"], **config)
        await wechat.world.advance(RETRY_SCHEDULE_S[2])  # (past any retry's wait so far)
        events = await back.wait_for(2)
        assert [e["type"] for e in events] == ["message.received", "reply.sent"]
        assert {r.headers["webhook-id"] for r in back.received} == {d.message_id for d in queued}
    finally:
        await back.close()


async def test_an_event_is_given_up_after_its_last_retry() -> None:
    clock = VirtualClock()
    store = MemoryStore()
    receiver = await Receiver(whsec(3)).start()
    receiver.answers = [500] * 3
    endpoint = WebhookEndpoint(url=receiver.url, secret=receiver.secret)
    dispatcher = WebhookDispatcher([endpoint], store.webhooks, clock, schedule=(0, 1, 1))
    dispatcher.start()
    try:
        dispatcher.publish("account.ready", {"accountId": "default"})
        for attempt in range(1, 4):
            await receiver.wait_attempts(attempt)
            await clock.advance(1)
        await eventually(lambda: not store.webhooks.pending())
        assert len(receiver.received) == 3  # three attempts, then no more
        await clock.advance(3600)
        assert len(receiver.received) == 3
    finally:
        await dispatcher.close()
        await receiver.close()


async def test_a_restart_with_a_new_endpoint_sends_to_it(
    wechat: WeChatHarness, receiver: Receiver
) -> None:
    gw = await wechat.gateway(echo, dmPolicy="open", allowFrom=["*"])
    assert gw.webhooks is None
    config = {"dmPolicy": "open", "allowFrom": ["*"], **hooks(receiver, events=["reply.sent"])}
    await gw.reload(parse_config(json.dumps({"channels": {"wechat": config}})))
    await wechat.world.login()
    await wechat.world.say("wxid_alice", "hello")
    await wechat.world.run_until_idle()
    (event,) = await receiver.wait_for(1, "reply.sent")
    assert event["data"]["text"] == "echo: hello"


async def test_the_logs_name_neither_the_secret_nor_the_endpoints_path(
    wechat: WeChatHarness, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.answers = [503]
    url = receiver.url + "?token=path-secret-123"
    config = {"webhooks": [{"url": url, "secret": receiver.secret, "events": ["reply.sent"]}]}
    await wechat.gateway(echo, dmPolicy="open", allowFrom=["*"], **config)
    await wechat.world.say("wxid_alice", "hello")
    await wechat.world.run_until_idle()
    await receiver.wait_attempts(1)
    await eventually(lambda: "reason=webhook_failed" in caplog.text)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("wechat_sdk"))
    assert "HTTP 503" in ours
    assert receiver.secret not in ours and receiver.secret.removeprefix("whsec_") not in ours
    assert "path-secret-123" not in ours and "/hook" not in ours


async def test_account_ready_is_told_once_per_login_not_per_reconnect(
    wechat: WeChatHarness, receiver: Receiver
) -> None:
    config = hooks(receiver, events=["account.ready", "reply.sent"])
    gw = await wechat.gateway(echo, dmPolicy="open", allowFrom=["*"], **config)
    wechat.world.fault("disconnect")  # the link drops; the session is kept
    await wechat.world.run_until_idle()
    assert gw.status()[0].lifecycle == "ready" and gw.status()[0].reconnects == 1
    await wechat.world.say("wxid_alice", "still there?")
    await wechat.world.run_until_idle()
    # an endpoint gets its events in order: once the reply's is in, any earlier one is
    await receiver.wait_for(1, "reply.sent")
    assert [e["type"] for e in receiver.events()] == ["account.ready", "reply.sent"]


def test_bad_webhook_config_names_its_key_and_never_the_secret() -> None:
    secret = whsec(4)
    good = {"url": "https://hooks.example.com/in?t=abc", "secret": secret}
    for webhooks, says in (
        ([good, good], "channels.wechat.webhooks: https://hooks.example.com... is listed twice"),
        ([{**good, "secret": "whsec_c2hvcnQ="}], "channels.wechat.webhooks.0.secret: must hold"),
        ([{**good, "events": ["message.recieved"]}], 'unknown event type "message.recieved"'),
        ([{**good, "url": "ftp://x"}], "channels.wechat.webhooks.0.url: must be an http"),
    ):
        with pytest.raises(ConfigError) as info:
            parse_config(json.dumps({"channels": {"wechat": {"webhooks": webhooks}}}))
        assert says in str(info.value)
        assert secret not in str(info.value) and "t=abc" not in str(info.value)


async def test_an_endpoint_answering_garbage_is_logged_without_its_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # aiohttp's error for an answer that is not HTTP repeats the whole URL, query and all
    caplog.set_level(logging.DEBUG)

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clock = VirtualClock()
    store = MemoryStore()
    url = f"http://127.0.0.1:{port}/hook?token=URL-SECRET-1"
    endpoint = WebhookEndpoint(url=url, secret=whsec(5))
    dispatcher = WebhookDispatcher([endpoint], store.webhooks, clock, schedule=(0, 1))
    dispatcher.start()
    try:
        dispatcher.publish("account.ready", {"accountId": "default"})
        await eventually(lambda: "reason=webhook_failed" in caplog.text)
        ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("wechat_sdk"))
        assert f"to http://127.0.0.1:{port} failed" in ours
        assert "URL-SECRET-1" not in ours and "/hook" not in ours
        (pending,) = store.webhooks.pending()
        assert "URL-SECRET-1" not in (pending.last_error or "")
    finally:
        await dispatcher.close()
        server.close()


def test_a_webhook_url_no_client_can_use_is_refused_at_load() -> None:
    for url, says in (
        ("http://127.0.0.1:99999/hook?token=URL-SECRET", "port that is not a number from 1"),
        ("http://exa mple.com/hook?token=URL-SECRET", "host that is not a valid name"),
        ("https://hooks.example.com:0/in?token=URL-SECRET", "port that is not a number from 1"),
        ("http://[::1]x/hook?token=URL-SECRET", "bracketed host that is not an IPv6 address"),
        ("http://[v1.fe]/hook?token=URL-SECRET", "bracketed host that is not an IPv6 address"),
    ):
        webhooks = [{"url": url, "secret": whsec(4)}]
        with pytest.raises(ConfigError) as info:
            parse_config(json.dumps({"channels": {"wechat": {"webhooks": webhooks}}}))
        assert f"channels.wechat.webhooks.0.url: has a {says}" in str(info.value)
        assert "URL-SECRET" not in str(info.value)
    for url in (
        "https://[::1]:8443/hook",
        "http://hooks.example.com./in",
        "https://10.0.0.7/x",
        "http://my_agent:8080/hook",  # (a Docker Compose service's name)
        "https://bücher.example/hook",  # (an internationalised name)
    ):
        parse_config(
            json.dumps({"channels": {"wechat": {"webhooks": [{"url": url, "secret": whsec(4)}]}}})
        )


async def test_an_event_with_half_an_emoji_goes_out_and_holds_up_nothing() -> None:
    # a lone surrogate (half an emoji, from a cut JSON escape) in a message's text; on a
    # store that keeps the text as it is, the event must still go out, and those after it
    clock = VirtualClock()
    store = MemoryStore()
    receiver = await Receiver(whsec(3)).start()
    endpoint = WebhookEndpoint(url=receiver.url, secret=receiver.secret)
    dispatcher = WebhookDispatcher([endpoint], store.webhooks, clock)
    dispatcher.start()
    try:
        dispatcher.publish("message.received", {"accountId": "default", "text": "half \ud83d"})
        dispatcher.publish("account.ready", {"accountId": "default"})
        events = await receiver.wait_for(2)
        assert [e["type"] for e in events] == ["message.received", "account.ready"]
        assert events[0]["data"]["text"] == "half ?"
        assert all(r.error is None for r in receiver.received)
    finally:
        await dispatcher.close()
        await receiver.close()


async def test_an_answer_with_retry_after_is_honoured() -> None:
    # the endpoint says when to come back: its event is retried then (not after the
    # schedule's 5 s), and nothing else goes to it meanwhile
    clock = VirtualClock()
    store = MemoryStore()
    receiver = await Receiver(whsec(3)).start()
    receiver.answers = [(503, {"Retry-After": "600"})]
    endpoint = WebhookEndpoint(url=receiver.url, secret=receiver.secret)
    # (attempts stamped on the virtual clock: the stamps say when each was made)
    dispatcher = WebhookDispatcher([endpoint], store.webhooks, clock, wall_time=clock.now)
    started = clock.now()
    dispatcher.publish("account.ready", {"accountId": "first"})
    dispatcher.publish("account.ready", {"accountId": "second"})
    dispatcher.start()
    try:
        await receiver.wait_attempts(1)
        await eventually(lambda: store.webhooks.pending()[0].attempts == 1)
        first = store.webhooks.pending()[0]
        assert first.next_attempt_at == started + 600
        await clock.advance(RETRY_SCHEDULE_S[1])
        await clock.advance(600)
        await receiver.wait_attempts(3)
        stamps = [int(r.headers["webhook-timestamp"]) for r in receiver.received]
        assert stamps[0] == started and min(stamps[1:]) >= started + 600
        assert receiver.received[2].headers["webhook-id"] == first.message_id
        # a date, and a wait longer than the schedule's longest (capped to it)
        receiver.answers = [(429, {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})]
        dispatcher.publish("account.ready", {"accountId": "third"})
        await receiver.wait_attempts(4)
        await eventually(lambda: store.webhooks.pending()[0].attempts == 1)
        (third,) = store.webhooks.pending()
        assert third.next_attempt_at == clock.now() + max(RETRY_SCHEDULE_S)
    finally:
        await dispatcher.close()
        await receiver.close()


async def test_an_endpoint_answering_410_gone_is_sent_nothing_more(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Standard Webhooks: 410 Gone is the consumer disabling the endpoint. That event is
    # not retried, the endpoint's other queued events are dropped with one error line,
    # and nothing more is queued for it; another endpoint gets everything as before
    caplog.set_level(logging.INFO)
    clock = VirtualClock()
    store = MemoryStore()
    gone = await Receiver(whsec(3)).start()
    other = await Receiver(whsec(4)).start()
    gone.answers = [410, 410]
    url = gone.url + "?token=URL-SECRET-2"  # (the logs name its origin only)
    endpoints = [
        WebhookEndpoint(url=url, secret=gone.secret),
        WebhookEndpoint(url=other.url, secret=other.secret),
    ]
    dispatcher = WebhookDispatcher(endpoints, store.webhooks, clock)
    started = clock.now()
    for n in range(3):
        dispatcher.publish("account.ready", {"accountId": f"a{n}"})
    dispatcher.start()
    try:
        await eventually(lambda: "reason=webhook_disabled" in caplog.text)
        assert store.webhooks.pending(url) == []
        assert dispatcher.gone == {url: started}
        (line,) = [r.getMessage() for r in caplog.records if "webhook_disabled" in r.getMessage()]
        first = gone.received[0].headers["webhook-id"]
        port = gone.server.port
        assert line == (
            f"webhook {first} (account.ready) to http://127.0.0.1:{port} answered 410 Gone: "
            "not retried, 2 other queued event(s) for it dropped, and nothing more is sent "
            "to it until the gateway restarts reason=webhook_disabled"
        )
        dispatcher.publish("account.ready", {"accountId": "later"})
        await other.wait_for(4)
        assert store.webhooks.pending(url) == []  # not queued for it
        await clock.advance(sum(RETRY_SCHEDULE_S))  # the whole retry schedule later
        assert len(gone.received) == 1
        assert [e["data"]["accountId"] for e in other.events()] == ["a0", "a1", "a2", "later"]
    finally:
        await dispatcher.close()
        await gone.close()
        await other.close()


async def test_a_reload_sends_again_to_an_endpoint_that_said_gone(
    wechat: WeChatHarness, receiver: Receiver
) -> None:
    receiver.answers = [410]
    gw = await wechat.gateway(
        echo, dmPolicy="open", allowFrom=["*"], **hooks(receiver, events=["reply.sent"])
    )
    await wechat.world.say("wxid_alice", "one")
    await wechat.world.run_until_idle()
    await receiver.wait_attempts(1)
    await eventually(lambda: not gw.store.webhooks.pending())
    await wechat.world.say("wxid_alice", "two")  # not queued: the endpoint said Gone
    await wechat.world.run_until_idle()
    assert gw.store.webhooks.pending() == []
    await wechat.world.advance(sum(RETRY_SCHEDULE_S))
    assert len(receiver.received) == 1
    # the user fixed the endpoint and reloads the same config (`gateway restart`)
    await gw.reload(gw.config)
    await wechat.world.login()
    await wechat.world.say("wxid_alice", "three")
    await wechat.world.run_until_idle()
    (event,) = await receiver.wait_for(1, "reply.sent")
    assert event["data"]["text"] == "echo: three"


async def test_the_next_start_sends_again_to_an_endpoint_that_said_gone(
    wechat: WeChatHarness, receiver: Receiver
) -> None:
    # what it said Gone to, and what was queued with it, stays dropped (the SQLite queue);
    # a new start with the same config sends the new events to it again
    receiver.answers = [410]
    config = hooks(receiver, events=["message.received", "reply.sent"])
    gw = await wechat.gateway(echo, dmPolicy="open", allowFrom=["*"], **config)
    await wechat.world.say("wxid_alice", "one")
    await wechat.world.run_until_idle()
    await receiver.wait_attempts(1)
    await eventually(lambda: not gw.store.webhooks.pending())
    await gw.close()

    gw = await wechat.gateway(echo, dmPolicy="open", allowFrom=["*"], **config)
    await wechat.world.say("wxid_alice", "two")
    await wechat.world.run_until_idle()
    events = await receiver.wait_for(2)
    assert [(e["type"], e["data"]["text"]) for e in events] == [
        ("message.received", "two"),
        ("reply.sent", "echo: two"),
    ]
    assert len(receiver.received) == 3  # the one Gone, then these two


async def test_a_reply_a_failure_cuts_partway_is_an_event_for_what_went(
    wechat: WeChatHarness, receiver: Receiver
) -> None:
    async def two_parts(turn: AgentTurn) -> str:
        return "first part\n\nsecond part"

    pacing = {"perSecond": 0.1, "burst": 1, "jitterMs": 0}  # (the second 10 s after)
    await wechat.gateway(
        two_parts,
        allowFrom=["wxid_alice"],
        pacing=pacing,
        textChunkLimit=12,
        chunkMode="newline",
        **hooks(receiver),
    )
    world = wechat.world
    await world.say("wxid_alice", "hello", settle=False)
    for _ in range(5):  # the first part goes (the clock alone: not on to idle)
        await world.clock.advance(1)
        if world.texts(to="wxid_alice"):
            break
    world.fault("send_fail_permanent")  # then the second's send is refused for good
    await world.run_until_idle()
    assert world.texts(to="wxid_alice") == ["first part"]
    await receiver.wait_for(1, "delivery.failed")
    await receiver.wait_for(1, "reply.sent")
    (reply,) = receiver.events("reply.sent")
    assert (reply["data"]["text"], reply["data"]["messages"]) == ("first part", 1)


async def test_reply_sent_counts_the_files_that_went_not_those_the_reply_had(
    wechat: WeChatHarness, receiver: Receiver
) -> None:
    from wechat_sdk.agent import Reply
    from wechat_sdk.puppet import OutboundFile

    async def text_and_file(turn: AgentTurn) -> Reply:
        file = OutboundFile(name="a.txt", kind="file", data=b"hi", mime="text/plain")
        return Reply(text="here it is", files=[file])

    pacing = {"perSecond": 0.1, "burst": 1, "jitterMs": 0}  # (the file 10 s after)
    await wechat.gateway(text_and_file, allowFrom=["wxid_alice"], pacing=pacing, **hooks(receiver))
    world = wechat.world
    await world.say("wxid_alice", "hello", settle=False)
    for _ in range(5):  # the text goes (the clock alone: not on to idle)
        await world.clock.advance(1)
        if world.texts(to="wxid_alice"):
            break
    world.fault("send_fail_permanent")  # then the file's send is refused for good
    await world.run_until_idle()
    assert [e.media for e in world.sent(to="wxid_alice")] == [None]
    await receiver.wait_for(1, "reply.sent")
    (reply,) = receiver.events("reply.sent")
    assert (reply["data"]["text"], reply["data"]["files"]) == ("here it is", 0)


async def test_a_line_of_an_endpoints_delivery_task_names_no_account(
    receiver: Receiver, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endpoint's delivery task is the gateway's, for every account: a line logged in
    it that names no account itself (its store's client, a library) shows ``-``. Started
    from an account's task (the gateway started or reloaded from there), it showed that
    account, as the task took the account of the task that created it."""
    from wechat_sdk.gateway.runner import ACCOUNT_OF_TASK
    from wechat_sdk.gateway.service import _AccountField

    caplog.handler.addFilter(_AccountField())  # (the gateway's log: each line's account)
    store = MemoryStore()
    claim_due = store.webhooks.claim_due

    def claim_due_said(*args: Any, **kwargs: Any) -> Any:
        logging.getLogger("redis").warning("the store's client retried")  # (as a library)
        return claim_due(*args, **kwargs)

    monkeypatch.setattr(store.webhooks, "claim_due", claim_due_said)
    endpoint = WebhookEndpoint(url=receiver.url, secret=receiver.secret)
    dispatcher = WebhookDispatcher([endpoint], store.webhooks, VirtualClock())

    async def in_an_account() -> None:
        ACCOUNT_OF_TASK.set("work")
        dispatcher.start()

    try:
        await asyncio.get_running_loop().create_task(in_an_account())
        await eventually(lambda: "the store's client retried" in caplog.text)
    finally:
        await dispatcher.close()
    said = [r for r in caplog.records if r.getMessage() == "the store's client retried"]
    assert {getattr(r, "account", None) for r in said} == {"-"}
