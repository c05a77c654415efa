"""A gateway on the simulator with ``store: {kind: "redis"}`` (a real redis-server): the
pairing challenge approved with the CLI from another machine (another state directory,
the same config), and a second gateway on the same Redis taking up where the first
stopped (history kept, a message delivered again not answered twice)."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from simulator import Recorder, SimulatedWeChat
from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.pairing.codes import ALPHABET, CODE_LENGTH
from wechat_sdk.puppet import MessageEvent


def code_in(text: str) -> str:
    found = re.search(rf"Pairing code: ([{ALPHABET}]{{{CODE_LENGTH}}})\b", text)
    assert found is not None, f"no pairing code in {text!r}"
    return found.group(1)


@pytest.fixture
def wechat_world() -> SimulatedWeChat:
    # the CLI reads the wall clock: the virtual clock starts at real time, so that the
    # gateway's pairing requests are live for it
    world = SimulatedWeChat(seed=0, start=time.time())
    world.add_account("default")
    return world


async def replied(world: SimulatedWeChat, to: str, count: int) -> None:
    """Wait (in real time, up to 10 s) until ``to`` got ``count`` messages: each send
    checks the account's lease in Redis first, a round trip on a real socket that the
    virtual clock's settling does not wait for."""
    for _ in range(1000):
        if len(world.texts(to=to)) >= count:
            return
        await asyncio.sleep(0.01)
        await world.run_until_idle()
    raise AssertionError(f"{to} never got {count} message(s): {world.texts(to=to)}")


def redis_config(url: str, namespace: str, **wechat: Any) -> dict[str, Any]:
    store = {"kind": "redis", "url": url, "namespace": namespace}
    return {"channels": {"wechat": {"store": store, **wechat}}}


async def test_a_stranger_approved_from_another_machine_is_answered(
    wechat: WeChatHarness, redis_url: str, redis_namespace: str, tmp_path: Path
) -> None:
    from wechat_sdk.cli import cli

    agent = Recorder()
    await wechat.gateway(agent, redis_config(redis_url, redis_namespace))
    world = wechat.world
    await world.say("wxid_stranger", "hello")
    await replied(world, "wxid_stranger", 1)
    code = code_in(world.texts(to="wxid_stranger")[0])

    # another machine: the same config, its own (empty) state directory
    config = tmp_path / "elsewhere.json"
    config.write_text(
        '{"channels": {"wechat": {"store": {"kind": "redis", '
        f'"url": "{redis_url}", "namespace": "{redis_namespace}"}}}}}}}}'
    )
    elsewhere = ["--config", str(config), "--state-dir", str(tmp_path / "elsewhere")]
    listed = CliRunner().invoke(cli, ["pairing", "list", "--json", *elsewhere])
    assert listed.exit_code == 0, listed.output
    assert code in listed.output and "wxid_stranger" in listed.output
    approved = CliRunner().invoke(cli, ["pairing", "approve", code, *elsewhere])
    assert approved.exit_code == 0, approved.output

    await world.say("wxid_stranger", "now?")
    await replied(world, "wxid_stranger", 2)
    assert [t.text for t in agent.turns] == ["now?"]
    assert world.texts(to="wxid_stranger")[-1] == "echo: now?"


async def test_a_second_gateway_on_the_same_redis_takes_up_history_and_dedupe(
    wechat: WeChatHarness, redis_url: str, redis_namespace: str, tmp_path: Path
) -> None:
    config = redis_config(redis_url, redis_namespace, dmPolicy="open", allowFrom=["*"])
    world: SimulatedWeChat = wechat.world
    first = Recorder()
    gw = await wechat.gateway(first, config)
    (message,) = await world.say("wxid_alice", "remember me")
    await gw.close()

    # another gateway (another state directory): the same message delivered again, then a new one
    second = Recorder()
    wechat.state_dir = tmp_path / "second"
    await wechat.gateway(second, config)
    world.puppet("default").emit(MessageEvent(message))  # WeChat delivers it once more
    await world.run_until_idle()
    await world.say("wxid_alice", "and now?")

    assert [t.text for t in second.turns] == ["and now?"]
    assert [h.text for h in second.turns[0].history][:1] == ["remember me"]
    assert world.texts(to="wxid_alice").count("echo: remember me") == 1


async def test_a_message_said_while_the_account_moved_is_answered_not_taken_for_history(
    wechat: WeChatHarness, redis_url: str, redis_namespace: str, tmp_path: Path
) -> None:
    """When the account was first served is shared: the gateway taking it over (another
    machine) does not drop what was said meanwhile as history replayed at login."""
    config = redis_config(redis_url, redis_namespace, dmPolicy="open", allowFrom=["*"])
    world: SimulatedWeChat = wechat.world
    first = Recorder()
    gw = await wechat.gateway(first, config)
    await world.say("wxid_alice", "hello")
    await gw.close()
    await world.say("wxid_alice", "anyone there?")  # nobody runs the account
    await world.advance(300)  # the account moves for five minutes

    second = Recorder()
    wechat.state_dir = tmp_path / "elsewhere"
    await wechat.gateway(second, config)
    await world.run_until_idle()
    assert [t.text for t in second.turns] == ["anyone there?"]


async def test_accounts_limits_a_gateway_to_some_accounts(
    wechat: WeChatHarness, redis_url: str, redis_namespace: str, tmp_path: Path
) -> None:
    world: SimulatedWeChat = wechat.world
    world.add_account("work")
    config = redis_config(
        redis_url, redis_namespace, accounts={"default": {}, "work": {}}, dmPolicy="open"
    )
    with pytest.raises(ValueError, match="only_accounts names nope"):
        world.gateway(config, Recorder(), state_dir=tmp_path / "x", only_accounts=["nope"])
    gw = world.gateway(config, Recorder(), state_dir=tmp_path / "g", only_accounts=["work"])
    async with gw:
        assert list(gw.runners) == ["work"]
        assert gw.cluster is not None and list(gw.cluster.held) == ["work"]
        status = {s.account: s.lifecycle for s in gw.status()}
        assert status["default"] == "stopped"  # left for a gateway that may run it


async def test_a_message_with_half_an_emoji_is_answered_on_redis(
    wechat: WeChatHarness, redis_url: str, redis_namespace: str
) -> None:
    """Text UTF-8 cannot encode (a lone surrogate, as a cut JSON escape gives) is kept with
    "?" in its place, as on SQLite: it was refused at each write, and the message dropped
    after its tries."""
    config = redis_config(redis_url, redis_namespace, dmPolicy="open", allowFrom=["*"])
    agent = Recorder()
    await wechat.gateway(agent, config)
    world: SimulatedWeChat = wechat.world
    await world.say("wxid_alice", "half \ud83d emoji")
    await replied(world, "wxid_alice", 1)
    assert [t.text for t in agent.turns] == ["half \ud83d emoji"]


async def test_the_http_api_on_two_gateways_answers_for_the_accounts_each_holds(
    wechat: WeChatHarness, redis_url: str, redis_namespace: str, tmp_path: Path
) -> None:
    """docs/cluster.md, "The HTTP API on several gateways": a gateway answers a send about
    an account another gateway holds 404 account_not_running, nothing sent and its key
    freed; pairing and idempotency keys are shared; the accounts it does not hold show as
    stopped, and its /readyz counts only those it holds."""
    import aiohttp

    world: SimulatedWeChat = wechat.world
    world.add_account("work")
    token = "cluster-api-token-0123456789"
    config = redis_config(
        redis_url,
        redis_namespace,
        accounts={"default": {}, "work": {}},
        dmPolicy="pairing",
        api={"port": 0, "token": token},
    )
    here = world.gateway(config, Recorder(), state_dir=tmp_path / "a", only_accounts=["default"])
    there = world.gateway(config, Recorder(), state_dir=tmp_path / "b", only_accounts=["work"])
    wechat.gateways += [here, there]
    await here.start()
    await there.start()
    await world.login("default")
    await world.login("work")
    await world.say("wxid_bob", "hi", account="work")  # a pairing request of "work"
    auth = {"Authorization": f"Bearer {token}"}
    send = {"to": "wxid_bob", "text": "your order shipped", "account": "work"}
    keyed = {**auth, "Idempotency-Key": "order-7"}

    async with aiohttp.ClientSession() as http:

        async def call(gw: Any, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
            async def go() -> tuple[int, Any]:
                kwargs.setdefault("headers", auth)
                async with http.request(method, gw.http.api_url + path, **kwargs) as response:
                    return response.status, await response.json()

            return await world.drive(go())

        code, body = await call(here, "POST", "/v1/messages", json=send, headers=keyed)
        assert (code, body["code"]) == (404, "account_not_running")
        assert body["error"] == (
            "account 'work' is not running (running: default); nothing was sent"
        )
        code, body = await call(
            here, "POST", "/v1/accounts/work/login/verify-code", json={"code": "123456"}
        )
        assert (code, body["code"]) == (404, "account_not_running")
        # the key was freed: the same request, with the same key, goes from its holder
        assert (await call(there, "POST", "/v1/messages", json=send, headers=keyed))[0] == 200
        # and a retry landing on the other gateway gets the first answer, nothing again
        code, body = await call(here, "POST", "/v1/messages", json=send, headers=keyed)
        assert (code, body["text"]) == (200, "your order shipped")
        assert world.texts(to="wxid_bob")[1:] == ["your order shipped"]

        code, body = await call(here, "GET", "/v1/accounts")
        states = {a["accountId"]: (a["lifecycle"], a["state"]) for a in body["accounts"]}
        assert states == {"default": ("ready", "ready"), "work": ("stopped", "stopped")}
        code, body = await call(here, "GET", "/readyz")  # ready: "work" is not its own
        assert (code, body["ready"]) == (200, True)

        code, body = await call(here, "GET", "/v1/pairing")
        (request,) = body["requests"]
        assert request["accountId"] == "work"
        code, body = await call(
            here, "POST", f"/v1/pairing/{request['code']}/approve", json={"notify": True}
        )
        assert (code, body["senderId"], body["notified"]) == (200, "wxid_bob", False)
    await world.say("wxid_bob", "am I in?", account="work")
    await replied(world, "wxid_bob", 3)  # answered by the gateway holding "work"


async def test_gateway_send_while_redis_is_down_fails_within_the_lease_ttl(
    wechat: WeChatHarness, own_redis: Any, redis_namespace: str
) -> None:
    """docs/replies.md, "Proactive sends": its caller waits for the answer, so with Redis
    down it waits for the account's lease at most leaseTtlS, then raises DeliveryFailed
    (store_unavailable), nothing sent; before, it waited until Redis came back."""
    from wechat_sdk.outbound.delivery import DeliveryFailed

    config = redis_config(own_redis.url, redis_namespace)
    config["channels"]["wechat"]["store"]["leaseTtlS"] = 2
    gw = await wechat.gateway(Recorder(), config)
    own_redis.kill()
    sent: list[str] = []
    with pytest.raises(DeliveryFailed) as failed:
        await asyncio.wait_for(wechat.world.drive(gw.send("wxid_bob", "hi", sent=sent)), 17)
    assert failed.value.code == "store_unavailable"
    assert "the account's lease could not be confirmed in Redis within 2 s" in str(failed.value)
    assert "Error 111 connecting to" in str(failed.value), failed.value
    assert sent == [] and wechat.world.sent(to="wxid_bob") == []
    own_redis.restart()


async def test_two_accounts_on_two_gateways_in_one_group_never_answer_each_other(
    wechat: WeChatHarness, redis_url: str, redis_namespace: str, tmp_path: Path
) -> None:
    """docs/groups.md, "Several accounts in one group": a gateway knows the WeChat id of an
    account another gateway holds from the status it writes to Redis, and does not answer
    its messages (each bot answered the other's reply, for ever)."""
    world: SimulatedWeChat = wechat.world
    world.add_account("b")
    world.add_room("team@chatroom", "Team", ["wxid_alice", "wxid_bot_default", "wxid_bot_b"])
    config = redis_config(
        redis_url,
        redis_namespace,
        accounts={"default": {}, "b": {}},
        groups={"*": {"requireMention": False}},
    )
    agents = {"default": Recorder(), "b": Recorder()}
    gateways = [
        world.gateway(config, agents[a], state_dir=tmp_path / a, only_accounts=[a]) for a in agents
    ]
    wechat.gateways += gateways
    for gw in gateways:
        await gw.start()
    await world.login("default")
    await world.login("b")
    # each gateway's cluster loop writes its account's status every second, and reads
    # the other's
    here, there = gateways
    for _ in range(1500):
        if here.own_accounts.account_of("wxid_bot_b") and there.own_accounts.account_of(
            "wxid_bot_default"
        ):
            break
        await asyncio.sleep(0.01)
        await world.run_until_idle(limit=60)

    await world.say("wxid_alice", "hello bots", room="team@chatroom", settle=False)
    await replied_in(world, "team@chatroom", 2)
    for _ in range(100):  # a second more: any answer to the other bot would be out
        await asyncio.sleep(0.01)
        await world.run_until_idle(limit=60)
    assert sorted((e.account, e.text) for e in world.sent(room="team@chatroom")) == [
        ("b", "echo: hello bots"),
        ("default", "echo: hello bots"),
    ]
    assert [[t.sender_id for t in agent.turns] for agent in agents.values()] == [
        ["wxid_alice"],
        ["wxid_alice"],
    ]


async def replied_in(world: SimulatedWeChat, room: str, count: int) -> None:
    """Wait (in real time, up to 10 s) until ``room`` got ``count`` messages (see
    :func:`replied`)."""
    for _ in range(1000):
        if len(world.texts(room=room)) >= count:
            return
        await asyncio.sleep(0.01)
        await world.run_until_idle(limit=60)
    raise AssertionError(f"{room} never got {count} message(s): {world.texts(room=room)}")


async def test_a_reply_cut_by_a_redis_outage_goes_on_once_redis_answers_again(
    wechat: WeChatHarness, own_redis: Any, redis_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/cluster.md, "What happens when": with Redis unreachable for a moment (a restart
    that keeps its data, the account's lease still this gateway's), replies wait and go on
    when it answers again. They were given up "until a restart" instead: the rest of the
    reply under way was never sent while the gateway ran on. Now the account is handed
    over once Redis answers, and its next start (here) takes up what waited."""
    from wechat_sdk.agent import AgentTurn

    own_redis.keep_data()
    world: SimulatedWeChat = wechat.world
    go = asyncio.Event()
    asked: list[str] = []

    async def agent(turn: AgentTurn) -> str:
        asked.append(turn.text)
        if asked == ["one"]:
            await go.wait()
            own_redis.kill()  # Redis goes away as the reply is about to go out
        return f"{turn.text}: first part\n\n{turn.text}: second part"

    config = redis_config(
        own_redis.url, redis_namespace, dmPolicy="open", allowFrom=["*"], textChunkLimit=20
    )
    await wechat.gateway(agent, config)
    await world.say("wxid_alice", "one")
    await world.say("wxid_alice", "two")  # waits behind the reply to "one"
    go.set()
    for _ in range(10):  # a second of real time, the reply's pacing let happen meanwhile
        await asyncio.sleep(0.1)
        await world.run_until_idle()
    own_redis.restart()  # back, with its data: the lease (15 s) is still this gateway's
    await replied(world, "wxid_alice", 4)
    texts = world.texts(to="wxid_alice")
    # each part once, each reply in order ("two" may go first: it was not cut)
    assert sorted(texts) == [
        "one: first part",
        "one: second part",
        "two: first part",
        "two: second part",
    ]
    assert texts.index("one: first part") < texts.index("one: second part")
    assert texts.index("two: first part") < texts.index("two: second part")
    # the turn the outage broke (its history could not be written) says so, in the log
    failed = [r.getMessage() for r in caplog.records if "reason=turn_failed" in r.getMessage()]
    assert failed and "from wxid_alice failed: ConnectionError: Error 111" in failed[0], failed
    assert "kept in the store: taken up at the account's next start" in failed[0]


async def test_a_reply_cut_by_a_read_only_redis_goes_on_once_it_takes_writes_again(
    wechat: WeChatHarness, own_redis: Any, redis_namespace: str
) -> None:
    """A managed failover makes the old primary a replica for a moment: writes are refused
    with READONLY. That is an outage as much as a refused connection: the reply it cut
    goes on once Redis takes writes again (it waited for a restart, as a refusal)."""
    from redis import Redis

    from wechat_sdk.agent import AgentTurn

    world: SimulatedWeChat = wechat.world
    admin = Redis.from_url(own_redis.url)
    go = asyncio.Event()

    demoted: list[bool] = []

    async def agent(turn: AgentTurn) -> str:
        await go.wait()
        if not demoted:  # (the first time: a kept turn is asked again after the hand-over)
            demoted.append(True)
            admin.execute_command("REPLICAOF", "127.0.0.1", "9")  # (no primary there)
        return "one: first part\n\none: second part"

    config = redis_config(
        own_redis.url, redis_namespace, dmPolicy="open", allowFrom=["*"], textChunkLimit=20
    )
    await wechat.gateway(agent, config)
    await world.say("wxid_alice", "one")
    go.set()
    for _ in range(10):
        await asyncio.sleep(0.1)
        await world.run_until_idle()
    admin.execute_command("REPLICAOF", "NO", "ONE")
    try:
        await replied(world, "wxid_alice", 2)
    finally:
        admin.close()
    assert world.texts(to="wxid_alice") == ["one: first part", "one: second part"]


async def test_a_gateway_that_lost_the_lease_says_its_turns_are_the_new_holders(
    wechat: WeChatHarness, redis_url: str, redis_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/cluster.md: a gateway whose lease another took over (it was paused past it)
    stops the account. What it had in flight is in the store already, journaled as it
    went, and the new holder takes it up; the stop can write nothing more (refused). It
    said otherwise, at error level: "could not keep a kept turn in the store's outbox:
    ...: dropped", and "1 turn kept in the store, the agent is asked again after a
    restart", for each turn in flight. Now one line says what happened, and the turn is
    left in the store as it was, for the new holder."""
    import logging

    from redis.asyncio import Redis

    from wechat_sdk.agent import AgentTurn
    from wechat_sdk.cluster.leases import LeaseKeys, Leases
    from wechat_sdk.stores.redis.keys import Keys

    world: SimulatedWeChat = wechat.world
    asked = asyncio.Event()

    async def agent(turn: AgentTurn) -> str:
        asked.set()
        await asyncio.Event().wait()  # still thinking when the lease moves
        return "never"

    config = redis_config(redis_url, redis_namespace, dmPolicy="open", allowFrom=["*"])
    config["channels"]["wechat"]["store"]["leaseTtlS"] = 2  # renewed every 0.5 s
    gw = await wechat.gateway(agent, config)
    await world.say("wxid_alice", "hello?")
    await asyncio.wait_for(asked.wait(), 10)
    # another gateway took the account over (this one was paused past its lease)
    keys = LeaseKeys(Keys("wechat", redis_namespace))
    other = Redis.from_url(redis_url, decode_responses=True)
    await other.delete(keys.lease("default"))
    assert await Leases(other, keys, "gw-b", ttl_s=60).acquire("default") is not None
    await other.aclose()

    def stopped() -> bool:  # (the account's stop says so once it has ended its turns)
        return any("stopped without the account's lease" in r.getMessage() for r in caplog.records)

    for _ in range(500):  # (real time: the next renewal finds the lease gone)
        if gw.cluster is not None and "default" not in gw.cluster.held and stopped():
            break
        await asyncio.sleep(0.02)
    assert gw.cluster is not None and "default" not in gw.cluster.held
    lines = [r for r in caplog.records if r.name == "wechat_sdk.gateway"]
    assert [r.getMessage() for r in lines if r.levelno >= logging.ERROR] == []
    said = [r.getMessage() for r in lines if "reason=lease_lost" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("stopped without the account's lease"), said
    assert not any("asked again after a restart" in r.getMessage() for r in lines)
    # the turn stays in the store as it was written, for the gateway holding it now
    kept = [i for i in gw.store.outbox.items("default") if i.kind == "turn"]
    assert [i.state for i in kept] == ["pending"]


async def test_a_message_that_could_not_be_marked_as_being_sent_counts_as_a_send_failure(
    wechat: WeChatHarness,
    redis_url: str,
    redis_namespace: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a cluster every turn is journaled, and each message is marked as being sent in
    Redis before it goes. One whose mark fails is not sent now: `gateway status` counts
    it in the account's send failures and shows it as its last error, as any message not
    sent. It showed nothing (no failure, no error) while the log said it."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from wechat_sdk.stores.redis.queues import RedisOutboxStore

    real_set_state = RedisOutboxStore.set_state

    def set_state(self: RedisOutboxStore, item_id: int, state: Any) -> None:
        if state == "sending":
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")
        real_set_state(self, item_id, state)

    monkeypatch.setattr(RedisOutboxStore, "set_state", set_state)
    config = redis_config(redis_url, redis_namespace, dmPolicy="open", allowFrom=["*"])
    gw = await wechat.gateway(Recorder(), config)
    await wechat.world.say("wxid_alice", "hello")
    for _ in range(500):  # (real time: each send checks the lease in Redis first)
        if "could not mark a message of the reply" in caplog.text:
            break
        await asyncio.sleep(0.01)
        await wechat.world.run_until_idle()
    assert "could not mark a message of the reply to wxid_alice" in caplog.text
    assert wechat.world.texts(to="wxid_alice") == []
    (status,) = gw.status()
    assert status.send_failures == 1
    assert status.last_error is not None
    assert status.last_error.startswith("send to wxid_alice failed: not sent: ConnectionError")


def first_history_read_fails(monkeypatch: pytest.MonkeyPatch, error: Exception) -> list[str]:
    """The Redis history store's first read raises ``error`` (the rest read as ever);
    returns the keys of the reads that raised."""
    from wechat_sdk.stores.redis.history import RedisHistoryStore

    real_get = RedisHistoryStore.get
    failed: list[str] = []

    def get(self: RedisHistoryStore, account_id: str, key: str) -> Any:
        if not failed:
            failed.append(key)
            raise error
        return real_get(self, account_id, key)

    monkeypatch.setattr(RedisHistoryStore, "get", get)
    return failed


async def test_a_turn_broken_by_a_failed_redis_read_goes_on_once_redis_answers(
    wechat: WeChatHarness,
    redis_url: str,
    redis_namespace: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/cluster.md, "What happens when": a turn the outage broke waits in the store for
    the account's next start, which the hand-over brings once Redis answers. A turn broken
    by a read alone (its conversation's history, no write failed) was not handed over: it
    waited for a restart of the gateway."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    error = RedisConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")
    failed = first_history_read_fails(monkeypatch, error)  # (Redis out of reach a moment)
    config = redis_config(redis_url, redis_namespace, dmPolicy="open", allowFrom=["*"])
    await wechat.gateway(Recorder(), config)
    await wechat.world.say("wxid_alice", "hello")
    await replied(wechat.world, "wxid_alice", 1)
    assert failed and len(wechat.world.texts(to="wxid_alice")) == 1
    lines = [r.getMessage() for r in caplog.records]
    assert any("reason=turn_failed" in line for line in lines)
    assert any("reason=handover_after_outage" in line for line in lines)


async def test_a_turn_broken_by_an_error_not_redis_s_hands_nothing_over(
    wechat: WeChatHarness,
    redis_url: str,
    redis_namespace: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A turn broken by an error that is not Redis's own (Python's TimeoutError, an
    OSError, as a local file or an agent's call raises) is logged, and Redis answering
    all along, the account is not handed over (it was: a restart of the account, and of
    its puppet, for nothing)."""
    failed = first_history_read_fails(monkeypatch, TimeoutError("a local step timed out"))
    config = redis_config(redis_url, redis_namespace, dmPolicy="open", allowFrom=["*"])
    gw = await wechat.gateway(Recorder(), config)
    await wechat.world.say("wxid_alice", "hello")
    for _ in range(300):  # (three of the cluster's rounds, in real time: a hand-over is one)
        await asyncio.sleep(0.01)
        await wechat.world.run_until_idle()
    assert failed
    lines = [r.getMessage() for r in caplog.records]
    assert any("reason=turn_failed" in line for line in lines)
    assert not any("reason=handover_after_outage" in line for line in lines)
    assert gw.status()[0].state == "ready"


async def test_gateways_running_an_account_with_different_configs_say_so_once(
    wechat: WeChatHarness,
    redis_url: str,
    redis_namespace: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """docs/cluster.md, "One config for every gateway": an account behaves as the config
    of whichever gateway holds it, so two gateways that disagree (one config edited and
    restarted, the other not) made it answer some strangers and not others as it moved,
    and nothing said why. Each gateway now says once which account another gateway runs
    with another config; an account both run alike is not named."""
    import logging

    world: SimulatedWeChat = wechat.world
    world.add_account("b")

    def config(allow: list[str]) -> dict[str, Any]:
        accounts = {"default": {"allowFrom": allow}, "b": {}}
        return redis_config(redis_url, redis_namespace, accounts=accounts)

    here = world.gateway(config(["wxid_alice"]), Recorder(), state_dir=tmp_path / "here")
    there = world.gateway(config(["wxid_bob"]), Recorder(), state_dir=tmp_path / "there")
    wechat.gateways += [here, there]
    await here.start()
    await there.start()

    def said() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "reason=config_differs" in r.getMessage()]

    for _ in range(300):  # (real time: each gateway's cluster loop looks once a second)
        if len(said()) >= 2:
            break
        await asyncio.sleep(0.01)
        await world.run_until_idle(limit=60)
    for _ in range(150):  # a round or more of each: said once, not each round
        await asyncio.sleep(0.01)
        await world.run_until_idle(limit=60)
    assert [getattr(r, "account", None) for r in said()] == ["default", "default"]
    assert {r.levelno for r in said()} == {logging.WARNING}
    # each names the other gateway
    assert here.cluster is not None and there.cluster is not None
    named = {r.getMessage().split()[1] for r in said()}
    assert named == {here.cluster.gateway_id, there.cluster.gateway_id}
