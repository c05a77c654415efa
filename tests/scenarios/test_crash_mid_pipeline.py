"""A gateway killed (kill -9) while a message is on its way through the inbound steps (its
media downloading, its sender being looked up) loses nothing: the message was marked as
seen, so WeChat delivering it again is a duplicate, but it was journaled in the outbox
before that mark, and the next gateway on the same store takes it through the steps again
and answers it, once. On SQLite (the next process on what the killed one left on disk)
and on a real redis-server (another gateway taking the account over when the killed one's
lease expires)."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from simulator.puppet import SimulatedPuppet
from simulator.world import SimulatedWeChat
from wechat_sdk.agent import AgentTurn
from wechat_sdk.config import parse_config
from wechat_sdk.gateway import Gateway
from wechat_sdk.puppet import Contact, MessageEvent
from wechat_sdk.stores import MemoryStore, OutboxItem, SqliteStore
from wechat_sdk.stores.base import OutboxState

OPEN: dict[str, Any] = {"dmPolicy": "open", "allowFrom": ["*"], "pacing": False}
PICTURE = {"kind": "image", "name": "cat.png", "size": 4000}


class Bot:
    """Says what it got; notes the message ids it was asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, turn: AgentTurn) -> str:
        self.asked.append(turn.message_id)
        return f"got {turn.text} from {turn.sender_name}, {len(turn.media)} file(s)"


class SlowPuppet(SimulatedPuppet):
    """The world's puppet, whose media downloads (``slow="download"``) or look-ups of
    contacts other than the bot (``slow="contact"``) hang: a CDN or a service that does
    not answer while the process is killed."""

    slow = ""
    reached: asyncio.Event

    async def download(self, message_id: str, max_bytes: int) -> AsyncIterator[bytes]:
        if self.slow == "download":
            self.reached.set()
            await asyncio.Event().wait()  # never: the process dies meanwhile
        async for chunk in super().download(message_id, max_bytes):
            yield chunk

    async def contact(self, contact_id: str) -> Contact:
        if self.slow == "contact" and contact_id != self.self_id:
            self.reached.set()
            await asyncio.Event().wait()
        return await super().contact(contact_id)


def slow_puppets(world: SimulatedWeChat, slow: str, reached: asyncio.Event) -> Callable[..., Any]:
    def make(account: Any) -> SimulatedPuppet:
        sim = world.accounts[account.id]
        puppet = SlowPuppet(world, sim)
        puppet.slow, puppet.reached = slow, reached
        sim.puppet = puppet
        return puppet

    return make


def gateway(
    world: SimulatedWeChat,
    config: dict[str, Any],
    bot: Bot,
    state: Path,
    puppets: Callable[..., Any] | None = None,
    store: Any = None,
) -> Gateway:
    return Gateway(
        parse_config(json.dumps({"channels": {"wechat": config}})),
        agent=bot,
        puppet_factory=puppets or world.puppet_factory,
        state_dir=state,
        clock=world.clock,
        rng=world.rng_for("gateway"),
        show_terminal_qr=False,
        store=store,
    )


def kill(gw: Gateway) -> None:
    """What kill -9 does to a gateway of this process: each of its tasks ends where it is
    (nothing settled, kept, released or said goodbye)."""
    cluster = gw.cluster
    if cluster is not None:
        for task in (cluster._task, cluster._renewing, cluster._listening):
            assert task is not None
            task.cancel()
    for runner in gw.runners.values():
        assert not runner.turns.tasks  # (no turn in flight: a cut turn would be kept)
        assert runner._task is not None
        runner._task.cancel()


async def until_answered(world: SimulatedWeChat, to: str) -> None:
    """Drive the world until ``to`` got a message, in real time as well: a lease expires
    in Redis's time, and each send checks the lease in Redis first."""
    for _ in range(1500):
        await world.run_until_idle()
        if world.texts(to=to):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{to} never got an answer")


async def said_and_stuck(
    world: SimulatedWeChat, gw: Gateway, reached: asyncio.Event, slow: str
) -> str:
    """Alice sends a picture; the first gateway is stuck in the slow step for it."""
    await gw.start()
    await world.login()
    (message,) = await world.say("wxid_alice", "look", media=PICTURE, settle=False)
    for _ in range(500):  # (with Redis, the dedupe mark is a real round trip)
        await world.clock.advance(1)
        if reached.is_set():
            break
        await asyncio.sleep(0.01)
    assert reached.is_set(), f"never reached the slow {slow}"
    assert world.texts(to="wxid_alice") == []
    return message


@pytest.mark.parametrize("slow", ["download", "contact"])
async def test_a_message_mid_pipeline_at_a_kill_is_answered_once_by_the_next_process(
    tmp_path: Path, slow: str
) -> None:
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    reached = asyncio.Event()
    first = gateway(world, OPEN, Bot(), tmp_path / "state", slow_puppets(world, slow, reached))
    message = await said_and_stuck(world, first, reached, slow)
    await world.clock.advance(5)  # long past the commit of the message's dedupe mark
    killed = tmp_path / "killed"
    shutil.copytree(tmp_path / "state", killed)  # what kill -9 leaves on disk, now
    kill(first)

    bot = Bot()
    second = gateway(world, OPEN, bot, killed)
    try:
        await second.start()
        await world.login()
        await world.run_until_idle()
        world.puppet("default").emit(MessageEvent(message))  # WeChat delivers it again
        await world.run_until_idle()
        name = world.contacts["wxid_alice"].name
        assert world.texts(to="wxid_alice") == [f"got look from {name}, 1 file(s)"]
        assert bot.asked == [message]
        with SqliteStore.in_state_dir(killed) as store:
            assert store.outbox.items("default") == []  # nothing left journaled
    finally:
        await second.close()
        first.store.close()


@pytest.mark.parametrize("slow", ["download", "contact"])
async def test_a_message_mid_pipeline_at_a_kill_is_answered_once_by_the_gateway_taking_over(
    tmp_path: Path, slow: str, redis_url: str, redis_namespace: str
) -> None:
    store = {"kind": "redis", "url": redis_url, "namespace": redis_namespace, "leaseTtlS": 1}
    config = {**OPEN, "store": store}
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    reached = asyncio.Event()
    first = gateway(world, config, Bot(), tmp_path / "one", slow_puppets(world, slow, reached))
    message = await said_and_stuck(world, first, reached, slow)
    kill(first)

    bot = Bot()
    second = gateway(world, config, bot, tmp_path / "two")
    try:
        await second.start()  # takes the account once the killed gateway's lease expired
        for _ in range(1500):
            if "default" in second.runners:
                break
            await asyncio.sleep(0.01)
        await world.login()
        await until_answered(world, "wxid_alice")
        world.puppet("default").emit(MessageEvent(message))  # WeChat delivers it again
        await world.run_until_idle()
        await asyncio.sleep(0.2)
        await world.run_until_idle()
        name = world.contacts["wxid_alice"].name
        assert world.texts(to="wxid_alice") == [f"got look from {name}, 1 file(s)"]
        assert bot.asked == [message]
        assert second.store.outbox.items("default") == []  # nothing left journaled
    finally:
        await second.close()
        first.store.close()


async def test_a_stop_while_a_message_downloads_keeps_it_for_the_next_start(
    tmp_path: Path,
) -> None:
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    reached = asyncio.Event()
    state = tmp_path / "state"
    first = gateway(world, OPEN, Bot(), state, slow_puppets(world, "download", reached))
    message = await said_and_stuck(world, first, reached, "download")
    await world.drive(first.close(grace_s=2))  # the download does not end within the grace

    bot = Bot()
    second = gateway(world, OPEN, bot, state)
    try:
        await second.start()
        await world.login()
        await world.run_until_idle()
        assert bot.asked == [message]
        assert len(world.texts(to="wxid_alice")) == 1
    finally:
        await second.close()


async def test_a_message_dropped_or_delivered_twice_leaves_nothing_journaled(
    tmp_path: Path,
) -> None:
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    bot = Bot()
    config = {**OPEN, "dmPolicy": "allowlist", "allowFrom": ["wxid_alice"]}
    gw = gateway(world, config, bot, tmp_path / "state")
    await gw.start()
    await world.login()
    try:
        world.fault("duplicate_next")
        (message,) = await world.say("wxid_alice", "hello")
        await world.say("wxid_stranger", "let me in")  # not on the allowlist: dropped
        assert bot.asked == [message]
        assert gw.store.outbox.items("default") == []
    finally:
        await gw.close()


async def test_journaled_messages_are_taken_up_once_and_never_beside_their_turn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The last process died between writing a message's turn and taking the message out
    of the outbox: the turn is asked again, the message not taken in twice. A journaled
    message WeChat no longer has is dropped, said in the log."""
    from wechat_sdk.gateway.outbox import kept_turn

    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    now = world.clock.now()
    turn = AgentTurn("default", "direct", "wxid_alice", "Alice", "hi", message_id="m-1")
    state = tmp_path / "state"
    with SqliteStore.in_state_dir(state) as store:
        store.outbox.add([kept_turn(turn, now)])
        store.outbox.add([OutboxItem("default", "wxid_alice", "message", now, turn="m-1")])
        store.outbox.add([OutboxItem("default", "wxid_bob", "message", now, turn="m-gone")])

    bot = Bot()
    gw = gateway(world, OPEN, bot, state)
    await gw.start()
    await world.login()
    await world.run_until_idle()
    try:
        assert bot.asked == ["m-1"]
        assert world.texts(to="wxid_alice") == ["got hi from Alice, 0 file(s)"]
        assert world.texts(to="wxid_bob") == []
        assert gw.store.outbox.items("default") == []
        assert "could not load message m-gone" in caplog.text
    finally:
        await gw.close()


class RefusingOutbox:
    """An outbox that refuses to take messages out (Redis unreachable, say)."""

    def __init__(self, outbox: Any) -> None:
        self.outbox = outbox
        self.refusing = True

    def add(self, items: Any) -> list[OutboxItem]:
        added: list[OutboxItem] = self.outbox.add(items)
        return added

    def items(self, account_id: str) -> list[OutboxItem]:
        found: list[OutboxItem] = self.outbox.items(account_id)
        return found

    def set_state(self, item_id: int, state: OutboxState) -> None:
        self.outbox.set_state(item_id, state)

    def delete(self, item_id: int) -> bool:
        kinds = {i.id: i.kind for i in self.outbox.items("default")}
        if self.refusing and kinds.get(item_id) == "message":
            raise ConnectionError("the store cannot be reached")
        done: bool = self.outbox.delete(item_id)
        return done


async def test_a_message_the_store_would_not_take_out_is_answered_later_never_twice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Were it answered now, it would stay journaled and be answered again at the next
    start: it is answered then, once."""
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    store = MemoryStore()
    refusing = RefusingOutbox(store.outbox)
    store.outbox = refusing  # type: ignore[assignment]
    bot = Bot()
    first = gateway(world, OPEN, bot, tmp_path / "state", store=store)
    await first.start()
    await world.login()
    (message,) = await world.say("wxid_alice", "hello")
    assert bot.asked == [] and world.texts(to="wxid_alice") == []
    assert "could not take message" in caplog.text
    await first.close()

    refusing.refusing = False  # the store answers again; the account starts again
    second = gateway(world, OPEN, bot, tmp_path / "state", store=store)
    await second.start()
    await world.login()
    await world.run_until_idle()
    try:
        assert bot.asked == [message]
        assert len(world.texts(to="wxid_alice")) == 1
        assert store.outbox.items("default") == []
    finally:
        await second.close()


async def test_a_journaled_message_that_fails_its_second_pass_leaves_the_others_answered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two messages left on their way in by a killed process: the first raises in its
    second pass (a bug in a step): it is dropped, said in the log, and the second is still
    answered (it used to be lost with it)."""
    from wechat_sdk.inbound.pipeline import InboundPipeline

    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    reached = asyncio.Event()
    first = gateway(world, OPEN, Bot(), tmp_path / "state", slow_puppets(world, "contact", reached))
    stuck = await said_and_stuck(world, first, reached, "contact")
    await world.clock.advance(5)
    killed = tmp_path / "killed"
    shutil.copytree(tmp_path / "state", killed)
    kill(first)
    first.store.close()
    (other,) = await world.say("wxid_bob", "second", settle=False)  # (to the dead process)
    with SqliteStore.in_state_dir(killed) as store:  # as if it had got that far with it
        now = world.clock.now()
        store.outbox.add([OutboxItem("default", "wxid_bob", "message", now, turn=other)])
    real = InboundPipeline.go_through

    async def go_through(self: InboundPipeline, message: Any, *, again: bool = False) -> Any:
        if message.id == stuck and again:  # (its second pass; a replay at login is not)
            raise RuntimeError("a bug in a step")
        return await real(self, message, again=again)

    monkeypatch.setattr(InboundPipeline, "go_through", go_through)
    bot = Bot()
    second = gateway(world, OPEN, bot, killed)
    try:
        await second.start()
        await world.login()
        await world.run_until_idle()
        assert bot.asked == [other]
        assert world.texts(to="wxid_alice") == []
        assert len(world.texts(to="wxid_bob")) == 1
        assert second.store.outbox.items("default") == []
        assert "reason=intake_failed" in caplog.text
    finally:
        await second.close()
