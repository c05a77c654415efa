"""A message whose inbound steps raise (the store unreachable for a moment: a Redis
failover, a full disk; or a bug in a step) is not lost: it stays journaled and is taken
through the steps again a while later (``INTAKE_RETRY_S``), answered once, while the
account's other messages go on. One that never gets through is dropped after its last
try, and says so; a stop while it waits keeps it for the next start."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from simulator.world import SimulatedWeChat
from wechat_sdk.agent import AgentTurn
from wechat_sdk.config import parse_config
from wechat_sdk.gateway import Gateway
from wechat_sdk.gateway.connection import INTAKE_RETRY_S
from wechat_sdk.puppet import LogoutEvent, MessageEvent
from wechat_sdk.stores import MemoryStore, OutboxItem, SqliteStore

OPEN: dict[str, Any] = {"dmPolicy": "open", "allowFrom": ["*"], "pacing": False}


class Bot:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, turn: AgentTurn) -> str:
        self.asked.append(turn.message_id)
        return f"got {turn.text}"


class Blinking:
    """A store part whose ``method`` raises for its next ``times`` calls, as a store
    that cannot be reached for a moment does; the rest passes through."""

    def __init__(self, part: Any, method: str, times: int) -> None:
        self._part, self._method, self.times = part, method, times

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._part, name)
        if name != self._method:
            return real

        def blinking(*args: Any, **kwargs: Any) -> Any:
            if self.times > 0:
                self.times -= 1
                raise ConnectionError("the store cannot be reached")
            return real(*args, **kwargs)

        return blinking


def gateway(world: SimulatedWeChat, bot: Bot, state: Path, store: Any) -> Gateway:
    return world.gateway({"channels": {"wechat": OPEN}}, bot, state_dir=state, store=store)


def answered_once(world: SimulatedWeChat, bot: Bot, store: Any, message: str) -> None:
    """The message was asked of the agent once, its reply went out once, and nothing of
    it is left in the journal."""
    assert bot.asked == [message]
    assert world.texts(to="wxid_alice") == ["got hello"]
    assert store.outbox.items("default") == []


def deliver_again(world: SimulatedWeChat, message: str) -> None:
    """WeChat delivers the message again (a puppet after a reconnect)."""
    puppet = world.accounts["default"].puppet
    assert puppet is not None
    puppet.emit(MessageEvent(message))


@asynccontextmanager
async def next_start(
    world: SimulatedWeChat, bot: Bot, tmp_path: Path, store: Any
) -> AsyncIterator[Gateway]:
    """The account's next start on the same store (another gateway), logged in, run
    through the longest of the tries' waits; closed after."""
    again = gateway(world, bot, tmp_path / "state", store)
    await again.start()
    try:
        await world.login()
        await world.advance(max(INTAKE_RETRY_S))
        yield again
    finally:
        await again.close()


async def started(tmp_path: Path, store: Any, bot: Bot) -> tuple[SimulatedWeChat, Gateway]:
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    gw = gateway(world, bot, tmp_path / "state", store)
    await gw.start()
    await world.login()
    return world, gw


@pytest.mark.parametrize("part", ["dedupe", "outbox"])
async def test_a_message_the_store_refused_on_its_way_in_is_answered_once_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, part: str
) -> None:
    """The dedupe check raising (before the mark is recorded), or the journal refusing
    the message: it used to be dropped (and the puppet restarted); now it is answered
    at the next try, once, and nothing stays journaled."""
    store = MemoryStore()
    method = "check_and_add" if part == "dedupe" else "add"
    blinking = Blinking(getattr(store, part), method, times=0)
    setattr(store, part, blinking)
    bot = Bot()
    world, gw = await started(tmp_path, store, bot)
    blinking.times = 1
    try:
        (message,) = await world.say("wxid_alice", "hello", settle=False)
        await world.clock.settle()
        assert blinking.times == 0 and bot.asked == []
        assert "reason=intake_retry" in caplog.text
        await world.clock.advance(INTAKE_RETRY_S[0])
        assert bot.asked == [message]
        assert world.texts(to="wxid_alice") == ["got hello"]
        await world.say("wxid_alice", "and again")  # (the account went on as before)
        assert world.texts(to="wxid_alice") == ["got hello", "got and again"]
        assert gw.status()[0].reconnects == 0
        assert store.outbox.items("default") == []
    finally:
        await gw.close()


async def test_a_step_that_raises_after_the_mark_does_not_lose_the_message(
    tmp_path: Path,
) -> None:
    """The mark is recorded, then a later step raises: the next try leaves the dedupe
    check out (it would call the message a duplicate of itself) and answers it; WeChat
    delivering it again meanwhile, or after, is a duplicate."""
    store = MemoryStore()
    bot = Bot()
    world, gw = await started(tmp_path, store, bot)
    inbound = gw.runners["default"].inbound
    real = inbound.describe
    failures = [ConnectionError("the contact service is down")]

    async def describe(item: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real(item)

    inbound.steps = tuple(describe if step == real else step for step in inbound.steps)
    try:
        (message,) = await world.say("wxid_alice", "hello", settle=False)
        await world.clock.settle()
        assert bot.asked == [] and not failures
        deliver_again(world, message)  # while it waits
        await world.clock.settle()
        await world.run_until_idle()
        deliver_again(world, message)  # and after
        await world.run_until_idle()
        assert bot.asked == [message]
        assert world.texts(to="wxid_alice") == ["got hello"]
        assert gw.status()[0].drops.get("duplicate") == 2
        assert store.outbox.items("default") == []
    finally:
        await gw.close()


async def test_a_message_that_never_gets_through_is_dropped_after_its_tries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in a step: tried ``1 + len(INTAKE_RETRY_S)`` times, then dropped, said in
    the log, and taken out of the journal; another sender is answered meanwhile."""
    from wechat_sdk.inbound.pipeline import InboundPipeline

    store = MemoryStore()
    bot = Bot()
    world, gw = await started(tmp_path, store, bot)
    real = InboundPipeline.go_through
    tries: list[str] = []

    async def go_through(self: InboundPipeline, message: Any, *, again: bool = False) -> Any:
        if message.talker_id == "wxid_alice":
            tries.append(message.id)
            raise RuntimeError("a bug in a step")
        return await real(self, message, again=again)

    monkeypatch.setattr(InboundPipeline, "go_through", go_through)
    try:
        await world.say("wxid_alice", "hello", settle=False)
        await world.clock.settle()
        (other,) = await world.say("wxid_bob", "hi")
        assert bot.asked == [other]
        await world.run_until_idle()
        assert len(tries) == 1 + len(INTAKE_RETRY_S)
        assert world.texts(to="wxid_alice") == []
        assert "reason=intake_failed" in caplog.text
        assert gw.status()[0].drops.get("intake_failed") == 1
        assert store.outbox.items("default") == []
    finally:
        await gw.close()


async def test_a_stop_while_a_message_waits_for_its_next_try_keeps_it(tmp_path: Path) -> None:
    """The store cannot be reached at the stop either: the message stays journaled, and
    the next start answers it, once."""
    store = MemoryStore()
    blinking = Blinking(store.dedupe, "check_and_add", times=0)
    store.dedupe = blinking  # type: ignore[assignment]
    bot = Bot()
    world, first = await started(tmp_path, store, bot)
    blinking.times = 1
    (message,) = await world.say("wxid_alice", "hello", settle=False)
    await world.clock.settle()
    assert blinking.times == 0
    await first.close()
    assert [i.kind for i in store.outbox.items("default")] == ["message"]
    assert bot.asked == [] and world.texts(to="wxid_alice") == []

    async with next_start(world, bot, tmp_path, store):
        answered_once(world, bot, store, message)


def reopening(
    kind: str, tmp_path: Path, world: SimulatedWeChat, request: pytest.FixtureRequest
) -> Callable[[], Any]:
    """Opens a store of ``kind`` on the same data at each call (the next process's, after
    a gateway closed its own); the in-memory one is the same store each time."""
    if kind == "memory":
        memory = MemoryStore()
        return lambda: memory
    if kind == "sqlite":
        return lambda: SqliteStore(tmp_path / "store.db", clock=world.clock)
    from wechat_sdk.stores.redis import RedisStore

    url, namespace = (
        request.getfixturevalue("redis_url"),
        request.getfixturevalue("redis_namespace"),
    )
    return lambda: RedisStore(url, namespace=namespace)


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
async def test_a_message_the_store_would_not_journal_is_journaled_by_the_stop_that_ends_its_tries(
    tmp_path: Path, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    """The journal's own write was refused (Redis down for a moment), and the stop comes
    while the message waits for its next try, the store answering again: the stop writes
    its journal, so the next start answers it, once. It was lost (Wechaty never delivers
    a message again)."""
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    reopen = reopening(kind, tmp_path, world, request)
    store = reopen()
    blinking = Blinking(store.outbox, "add", times=0)
    store.outbox = blinking
    bot = Bot()
    first = gateway(world, bot, tmp_path / "state", store)
    await first.start()
    await world.login()
    blinking.times = 1
    (message,) = await world.say("wxid_alice", "hello", settle=False)
    await world.clock.settle()
    assert blinking.times == 0 and "not journaled: the store refused it" in caplog.text
    await first.close()
    assert bot.asked == [] and world.texts(to="wxid_alice") == []

    again = reopen()
    assert [i.kind for i in again.outbox.items("default")] == ["message"]
    async with next_start(world, bot, tmp_path, again):
        answered_once(world, bot, again, message)
    again.close()


async def test_a_message_the_store_would_not_journal_even_at_the_stop_is_named_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The store still refuses at the stop: the message is lost (Wechaty never delivers it
    again), and one error line says which, and from whom (never its text)."""
    store = MemoryStore()
    blinking = Blinking(store.outbox, "add", times=0)
    store.outbox = blinking  # type: ignore[assignment]
    bot = Bot()
    world, first = await started(tmp_path, store, bot)
    blinking.times = 2  # its first try, and the stop's
    (message,) = await world.say("wxid_alice", "a secret", settle=False)
    await world.clock.settle()
    await first.close()
    assert blinking.times == 0 and store.outbox.items("default") == []
    (line,) = [r for r in caplog.records if "reason=intake_lost" in r.getMessage()]
    assert line.levelname == "ERROR"
    assert message in line.getMessage() and "wxid_alice" in line.getMessage()
    assert "secret" not in line.getMessage()


async def test_a_stop_tries_the_store_once_for_the_messages_it_would_not_journal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two messages wait for the store; it refuses the stop's try for the first: the
    second is not tried (a store that hangs would hold the stop for its timeout at each
    message), and each is named lost."""
    store = MemoryStore()
    blinking = Blinking(store.outbox, "add", times=0)
    store.outbox = blinking  # type: ignore[assignment]
    bot = Bot()
    world, first = await started(tmp_path, store, bot)
    blinking.times = 3  # the two first tries, and the stop's first
    (one,) = await world.say("wxid_alice", "one", settle=False)
    (two,) = await world.say("wxid_bob", "two", settle=False)
    await world.clock.settle()
    await first.close()
    assert blinking.times == 0 and store.outbox.items("default") == []
    lost = [r.getMessage() for r in caplog.records if "reason=intake_lost" in r.getMessage()]
    assert len(lost) == 2
    assert any(one in line for line in lost) and any(two in line for line in lost)


async def test_a_copy_of_an_answered_message_the_stop_journals_is_not_answered_again(
    tmp_path: Path,
) -> None:
    """WeChat delivers an answered message again while the journal is refused: the stop
    that ends its tries journals it and checks it, finds it a duplicate, and keeps
    nothing of it (the next start answering it again)."""
    store = MemoryStore()
    blinking = Blinking(store.outbox, "add", times=0)
    store.outbox = blinking  # type: ignore[assignment]
    bot = Bot()
    world, first = await started(tmp_path, store, bot)
    (message,) = await world.say("wxid_alice", "hello")
    blinking.times = 1
    deliver_again(world, message)
    await world.clock.settle()
    assert blinking.times == 0
    await first.close()
    assert store.outbox.items("default") == []

    async with next_start(world, bot, tmp_path, store):
        assert bot.asked == [message]
        assert world.texts(to="wxid_alice") == ["got hello"]


async def test_an_answered_message_delivered_again_while_its_check_raises_is_not_answered_again(
    tmp_path: Path,
) -> None:
    """A puppet redelivers after a reconnect (iLink hands on the last hour at a start)
    while the dedupe check raises: the next try checks it (it never got past the check),
    and finds it answered: a duplicate."""
    store = MemoryStore()
    blinking = Blinking(store.dedupe, "check_and_add", times=0)
    store.dedupe = blinking  # type: ignore[assignment]
    bot = Bot()
    world, gw = await started(tmp_path, store, bot)
    try:
        (message,) = await world.say("wxid_alice", "hello")
        blinking.times = 1
        deliver_again(world, message)
        await world.clock.settle()
        assert blinking.times == 0
        await world.run_until_idle()
        assert bot.asked == [message]
        assert world.texts(to="wxid_alice") == ["got hello"]
        assert gw.status()[0].drops.get("duplicate") == 1
        assert store.outbox.items("default") == []
    finally:
        await gw.close()


def slow_second_try(gw: Gateway, world: SimulatedWeChat) -> list[str]:
    """The contact look-up raises at its first call and takes 30 s at its second (a
    Puppet Service coming back slowly); returns the ids it was called for."""
    inbound = gw.runners["default"].inbound
    real = inbound.describe
    calls: list[str] = []

    async def describe(item: Any) -> Any:
        calls.append(item.message.id)
        if len(calls) == 1:
            raise ConnectionError("the contact service is down")
        if len(calls) == 2:
            await world.clock.sleep(30.0)
        return await real(item)

    inbound.steps = tuple(describe if step == real else step for step in inbound.steps)
    return calls


@pytest.mark.parametrize("how", ["stop, then start", "restart"])
async def test_a_try_under_way_at_a_stop_ends_with_it_and_the_message_is_answered_once(
    tmp_path: Path, how: str
) -> None:
    """A stop (or ``gateway restart``) while the message's second try is in its steps:
    the try ends with the account (it used to go on, take the message out of the journal
    and ask the agent with no puppet to answer through: lost, or asked twice), the
    message stays journaled, and the account's next start answers it once."""
    store = MemoryStore()
    bot = Bot()
    world, gw = await started(tmp_path, store, bot)
    calls = slow_second_try(gw, world)
    (message,) = await world.say("wxid_alice", "hello", settle=False)
    await world.clock.settle()
    await world.clock.advance(INTAKE_RETRY_S[0] + 0.5)  # the second try is under way
    assert len(calls) == 2
    old = gw.runners["default"]
    try:
        if how == "restart":
            await gw.reload(parse_config(json.dumps({"channels": {"wechat": OPEN}})))
        else:
            await gw.stop()
            assert [i.kind for i in store.outbox.items("default")] == ["message"]
            await world.clock.advance(40.0)  # (the cut try would have ended by now)
            assert [i.kind for i in store.outbox.items("default")] == ["message"]
            await gw.start()
        await world.login()
        await world.advance(60.0)
        answered_once(world, bot, store, message)
        assert not [t for t in old.turns.tasks if not t.done()]
    finally:
        await gw.close()


async def test_ilink_hands_on_the_last_hour_at_a_start_while_the_check_raises_none_answered_twice(
    tmp_path: Path,
) -> None:
    """iLink gives the gateway the last hour's messages again at each start; the dedupe
    check raising for them (the store blinking as the account starts) has them tried
    again, checked, and dropped as the duplicates they are."""
    world = SimulatedWeChat(seed=3)
    world.add_account("default", transport="ilink")
    alice = world.add_contact("alice@im.wechat", "Alice").id
    config = {"channels": {"wechat": {**OPEN, "puppet": "ilink"}}}
    bot = Bot()
    try:
        async with world.gateway(config, bot, state_dir=tmp_path):
            await world.login()
            for text in ("one", "two", "three"):
                await world.say(alice, text)
            await world.run_until_idle()
        answered = ["got one", "got two", "got three"]
        assert [e.text for e in world.sent(to=alice)] == answered

        store = SqliteStore.in_state_dir(tmp_path)
        blinking = Blinking(store.dedupe, "check_and_add", times=3)
        store.dedupe = blinking  # type: ignore[assignment]
        async with world.gateway(config, bot, state_dir=tmp_path, store=store) as again:
            await world.run_until_idle()
            await world.advance(max(INTAKE_RETRY_S))
            assert blinking.times == 0  # (each of the three was checked, and raised)
            assert [e.text for e in world.sent(to=alice)] == answered
            assert again.status()[0].drops.get("duplicate") == 3
        store.close()
    finally:
        await world.close()


class RaisingAt(Blinking):
    """``method`` raises at these calls (counted from 1, from when ``counting`` is set)."""

    def __init__(self, part: Any, method: str, calls: set[int]) -> None:
        super().__init__(part, method, times=0)
        self.calls, self.counted, self.counting = calls, 0, False

    def __getattr__(self, name: str) -> Any:
        real = super().__getattr__(name)
        if name != self._method or not self.counting:
            return real

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.counted += 1
            if self.counted in self.calls:
                raise ConnectionError("the store cannot be reached")
            return real(*args, **kwargs)

        return counted


@pytest.mark.parametrize(
    "raising",
    [{1}, {2}, {1, 2}],
    ids=["its mark at the start", "the replayed copy's check", "both"],
)
async def test_a_message_left_journaled_is_answered_once_whichever_check_raises_at_the_start(
    tmp_path: Path, raising: set[int]
) -> None:
    """A stop left a message journaled, never marked (its check had raised); at the next
    start the store blinks again: at the start's mark of it (1), or at the check of the
    copy WeChat replays at login (2). The copy waits for the journaled one, which is
    answered once, and marked: WeChat delivering it again later is a duplicate."""
    store = MemoryStore()
    dedupe = RaisingAt(store.dedupe, "check_and_add", raising)
    store.dedupe = dedupe  # type: ignore[assignment]
    bot = Bot()
    world, first = await started(tmp_path, store, bot)
    dedupe.times = 1
    (message,) = await world.say("wxid_alice", "hello", settle=False)
    await world.clock.settle()
    await first.close()
    assert [i.kind for i in store.outbox.items("default")] == ["message"]

    dedupe.counting = True
    async with next_start(world, bot, tmp_path, store):
        assert dedupe.counted >= 1
        answered_once(world, bot, store, message)
        deliver_again(world, message)
        await world.run_until_idle()
        assert bot.asked == [message]


async def test_a_try_waits_while_the_account_reconnects(tmp_path: Path) -> None:
    """The same failover that made the check raise ends the iLink poll: the account
    reconnects, and the try waits for it to be ready again (it used to run with the
    puppet stopped: the picture could not be downloaded and the agent got a note)."""
    world = SimulatedWeChat(seed=3)
    world.add_account("default", transport="ilink")
    alice = world.add_contact("alice@im.wechat", "Alice").id
    config = {"channels": {"wechat": {**OPEN, "puppet": "ilink"}}}
    store = MemoryStore()
    blinking = Blinking(store.dedupe, "check_and_add", times=0)
    store.dedupe = blinking  # type: ignore[assignment]
    turns: list[AgentTurn] = []

    async def files(turn: AgentTurn) -> str:
        turns.append(turn)
        return f"got {len([m for m in turn.media if m.path is not None])} file(s)"

    picture = {"kind": "image", "name": "cat.png", "size": 4000}
    try:
        async with world.gateway(config, files, state_dir=tmp_path, store=store) as gw:
            await world.login()
            await world.run_until_idle()
            blinking.times = 1
            await world.say(alice, "look", media=picture, settle=False)
            for _ in range(200):
                await world.clock.advance(0.01)
                if blinking.times == 0:
                    break
            assert blinking.times == 0
            await world.clock.advance(0.5)
            puppet: Any = gw.runners["default"].puppet
            puppet._end()  # the poll stopped (a state write refused): the stream ends
            await world.advance(60.0)
            assert gw.status()[0].reconnects == 1
            assert len(turns) == 1
            assert world.texts(to=alice) == ["got 1 file(s)"]
    finally:
        await world.close()


class AnswerLost:
    """A store part whose ``method`` reaches the store, then raises for its next
    ``times`` calls (a timeout from Redis after its script or its write ran)."""

    def __init__(self, part: Any, method: str) -> None:
        self._part, self._method, self.times = part, method, 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._part, name)
        if name != self._method:
            return real

        def lost(*args: Any, **kwargs: Any) -> Any:
            answer = real(*args, **kwargs)
            if self.times > 0:
                self.times -= 1
                raise TimeoutError("Timeout reading from socket")
            return answer

        return lost


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
async def test_a_check_whose_answer_was_lost_is_answered_at_its_next_try(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    """The store recorded the mark, then its answer was lost (a timeout from Redis after
    its script ran): the next try's check finds the mark its own (the delivery's claim),
    not a duplicate, and the message is answered, once. It used to be taken for a
    duplicate: never answered. A copy WeChat delivers meanwhile is a duplicate."""
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    store: Any
    if kind == "memory":
        store = MemoryStore()
    elif kind == "sqlite":
        store = SqliteStore(tmp_path / "store.db", clock=world.clock)
    else:
        from wechat_sdk.stores.redis import RedisStore

        namespace = request.getfixturevalue("redis_namespace")
        store = RedisStore(request.getfixturevalue("redis_url"), namespace=namespace)
    lossy = AnswerLost(store.dedupe, "check_and_add")
    store.dedupe = lossy
    bot = Bot()
    gw = gateway(world, bot, tmp_path / "state", store)
    await gw.start()
    await world.login()
    try:
        lossy.times = 1
        (message,) = await world.say("wxid_alice", "hello", settle=False)
        await world.clock.settle()
        assert lossy.times == 0 and bot.asked == []
        deliver_again(world, message)
        await world.advance(max(INTAKE_RETRY_S))
        assert bot.asked == [message]
        assert world.texts(to="wxid_alice") == ["got hello"]
        assert gw.status()[0].drops.get("duplicate") == 1  # (the copy)
        assert store.outbox.items("default") == []
    finally:
        await gw.close()
        store.close()


async def test_a_journal_write_that_reached_the_store_before_it_raised_is_used_not_doubled(
    tmp_path: Path,
) -> None:
    """The next try finds the entry its first try wrote, and takes it out when through:
    a second entry left behind was taken in at the next start and answered again."""
    store = MemoryStore()
    lossy = AnswerLost(store.outbox, "add")
    store.outbox = lossy  # type: ignore[assignment]
    bot = Bot()
    world, first = await started(tmp_path, store, bot)
    lossy.times = 1
    (message,) = await world.say("wxid_alice", "hello", settle=False)
    await world.advance(max(INTAKE_RETRY_S))
    assert bot.asked == [message]
    assert store.outbox.items("default") == []
    await first.close()

    async with next_start(world, bot, tmp_path, store):
        assert bot.asked == [message]
        assert world.texts(to="wxid_alice") == ["got hello"]


async def test_a_message_whose_turn_the_store_would_not_let_begin_is_tried_again(
    tmp_path: Path,
) -> None:
    """The steps went through, but the store refused to take the message out of the
    journal as its turn began: not answered then (it would be again at the next
    start), tried again a second later and answered once (it used to wait for the
    next start, and one more than an hour or a day later dropped it as too old)."""
    store = MemoryStore()
    deletes = Blinking(store.outbox, "delete", times=0)
    store.outbox = deletes  # type: ignore[assignment]
    bot = Bot()
    world, gw = await started(tmp_path, store, bot)
    try:
        deletes.times = 1
        (message,) = await world.say("wxid_alice", "hello", settle=False)
        await world.clock.settle()
        assert deletes.times == 0 and bot.asked == []
        await world.advance(INTAKE_RETRY_S[0])
        answered_once(world, bot, store, message)
    finally:
        await gw.close()


async def test_a_try_finds_its_own_journal_entry_not_an_older_one_of_the_message(
    tmp_path: Path,
) -> None:
    """An older entry of the same message stays for what it was left for (a start
    that could not read it, say): a copy whose journal write reached the store before
    it raised finds its own entry (the same time), not that one."""
    store = MemoryStore()
    lossy = AnswerLost(store.outbox, "add")
    store.outbox = lossy  # type: ignore[assignment]
    bot = Bot()
    world, gw = await started(tmp_path, store, bot)
    try:
        (message,) = await world.say("wxid_alice", "hello")
        earlier = world.clock.now() - 60
        store.outbox.add([OutboxItem("default", "wxid_alice", "message", earlier, turn=message)])
        await world.clock.advance(5)
        lossy.times = 1
        deliver_again(world, message)  # a copy; its journal write raises once
        await world.advance(max(INTAKE_RETRY_S))
        assert bot.asked == [message]
        assert [i.created_at for i in store.outbox.items("default")] == [earlier]
    finally:
        await gw.close()


class SlowForBob(Bot):
    """Takes 5 s (of the world's clock) to answer Bob: a turn in flight at a stop."""

    def __init__(self, world: SimulatedWeChat) -> None:
        super().__init__()
        self.world = world

    async def __call__(self, turn: AgentTurn) -> str:
        if turn.sender_id == "wxid_bob":
            await self.world.clock.sleep(5.0)
        return await super().__call__(turn)


async def test_a_copy_said_during_a_stops_grace_period_waits_for_the_next_start(
    tmp_path: Path,
) -> None:
    """The stop ended the message's tries; events are still read while the stop waits
    for Bob's turn: WeChat delivering the message again then is a duplicate (it used to
    be answered then, and the journaled one again at the next start)."""
    store = MemoryStore()
    blinking = Blinking(store.dedupe, "check_and_add", times=0)
    store.dedupe = blinking  # type: ignore[assignment]
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    bot = SlowForBob(world)
    first = gateway(world, bot, tmp_path / "state", store)
    await first.start()
    await world.login()
    await world.say("wxid_bob", "slow", settle=False)
    await world.clock.settle()
    blinking.times = 1
    (message,) = await world.say("wxid_alice", "hello", settle=False)
    await world.clock.settle()
    stopping = asyncio.ensure_future(first.stop())
    await world.clock.settle()
    deliver_again(world, message)
    await world.clock.settle()
    while not stopping.done():
        await world.clock.advance(1.0)
    await first.close()
    assert message not in bot.asked

    async with next_start(world, bot, tmp_path, store):
        assert bot.asked.count(message) == 1
        assert world.texts(to="wxid_alice") == ["got hello"]


async def test_a_try_waits_while_the_account_waits_for_a_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session that ended with a new QR code and no logout: the account is not ready,
    and the try waits for the next login."""
    from wechat_sdk.inbound.pipeline import InboundPipeline

    store = MemoryStore()
    blinking = Blinking(store.dedupe, "check_and_add", times=0)
    store.dedupe = blinking  # type: ignore[assignment]
    bot = Bot()
    world, gw = await started(tmp_path, store, bot)
    status = gw.runners["default"].status
    seen: list[str] = []
    real = InboundPipeline.go_through

    async def go_through(self: Any, message: Any, *, again: bool = False) -> Any:
        seen.append(status.lifecycle)
        return await real(self, message, again=again)

    monkeypatch.setattr(InboundPipeline, "go_through", go_through)
    puppet: Any = world.accounts["default"].puppet
    emit = puppet.emit
    puppet.emit = lambda e: None if isinstance(e, LogoutEvent) else emit(e)
    try:
        blinking.times = 1
        (message,) = await world.say("wxid_alice", "hello", settle=False)
        await world.clock.settle()
        puppet.forced_logout("session ended")  # a new QR code follows, no logout event
        await world.clock.settle()
        assert status.lifecycle == "waiting_for_scan"
        await world.clock.advance(INTAKE_RETRY_S[0] + 0.5)
        assert seen == []
        await world.login()
        await world.run_until_idle()
        assert seen == ["ready"]
        assert bot.asked == [message]
    finally:
        await world.drive(gw.close())


class RefusingMessageDeletes:
    """An outbox that refuses, ``times`` times, to take a message's journal entry out
    (other deletes go through)."""

    def __init__(self, part: Any) -> None:
        self._part, self.times = part, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._part, name)

    def delete(self, item_id: int) -> bool:
        kinds = {i.id: i.kind for i in self._part.items("default")}
        if self.times > 0 and kinds.get(item_id) == "message":
            self.times -= 1
            raise ConnectionError("the store cannot be reached")
        done: bool = self._part.delete(item_id)
        return done


async def test_a_turn_journaled_as_it_began_is_taken_out_when_its_message_could_not_be(
    tmp_path: Path,
) -> None:
    """Every turn is journaled as it begins (an account held by lease): when the store
    then refuses to take the message's entry out, the turn's entry goes too, and the
    next try journals the turn again; one entry stood for the message, never two (the
    turn left behind was asked again at the next start: answered twice)."""
    store = MemoryStore()
    refusing = RefusingMessageDeletes(store.outbox)
    store.outbox = refusing  # type: ignore[assignment]
    bot = Bot()
    world, first = await started(tmp_path, store, bot)
    first.runners["default"].turns.journal_every_turn = True
    refusing.times = 1
    (message,) = await world.say("wxid_alice", "hello", settle=False)
    await world.clock.settle()
    assert refusing.times == 0 and bot.asked == []
    await world.advance(INTAKE_RETRY_S[0])
    assert bot.asked == [message]
    assert store.outbox.items("default") == []
    await first.close()

    async with next_start(world, bot, tmp_path, store):
        assert bot.asked == [message]
        assert world.texts(to="wxid_alice") == ["got hello"]


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
async def test_an_answered_messages_copy_left_unchecked_by_a_stop_is_not_answered_again(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    """WeChat delivers an answered message again while the dedupe check raises (Redis
    down for a moment): the copy is journaled but never checked when the stop comes. The
    next start checks it against the mark of the copy answered before, and drops it (it
    took every journaled message in as checked: the user got the answer twice)."""
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    reopen = reopening(kind, tmp_path, world, request)
    store = reopen()
    blinking = Blinking(store.dedupe, "check_and_add", times=0)
    store.dedupe = blinking
    bot = Bot()
    first = gateway(world, bot, tmp_path / "state", store)
    await first.start()
    await world.login()
    (message,) = await world.say("wxid_alice", "hello")
    blinking.times = 1
    deliver_again(world, message)
    await world.clock.settle()
    assert blinking.times == 0
    await first.close()
    store.close()

    again = reopen()
    assert [i.kind for i in again.outbox.items("default")] == ["message"]
    async with next_start(world, bot, tmp_path, again):
        answered_once(world, bot, again, message)
    again.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
async def test_a_message_checked_then_cut_by_a_stop_is_answered_by_the_next_process(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    """The message's dedupe mark is recorded, then a later step raises and the stop comes
    while it waits for its next try: the next process (the store opened again) finds
    the mark its own, not an earlier copy's, and answers it once."""
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    reopen = reopening(kind, tmp_path, world, request)
    store = reopen()
    bot = Bot()
    first = gateway(world, bot, tmp_path / "state", store)
    await first.start()
    await world.login()
    inbound = first.runners["default"].inbound
    real = inbound.describe
    failures = [ConnectionError("the contact service is down")]

    async def describe(item: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real(item)

    inbound.steps = tuple(describe if step == real else step for step in inbound.steps)
    (message,) = await world.say("wxid_alice", "hello", settle=False)
    await world.clock.settle()
    assert not failures and bot.asked == []
    await first.close()
    store.close()

    again = reopen()
    assert [i.kind for i in again.outbox.items("default")] == ["message"]
    async with next_start(world, bot, tmp_path, again):
        answered_once(world, bot, again, message)
    again.close()


async def test_a_group_turn_the_store_would_not_let_begin_keeps_the_groups_history(
    tmp_path: Path,
) -> None:
    """A mention in a group whose turn the store would not let begin: the try after it
    is handed the group's messages said before the mention, as the first would have
    been (they were cleared by the first try, and the agent answered without them);
    they are cleared once the turn is taken, so the next mention does not get them."""
    store = MemoryStore()
    deletes = Blinking(store.outbox, "delete", times=0)
    store.outbox = deletes  # type: ignore[assignment]
    turns: list[AgentTurn] = []

    async def agent(turn: AgentTurn) -> str:
        turns.append(turn)
        return "ok"

    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    world.add_room(id="r1@chatroom", topic="Room")
    gw = world.gateway({"channels": {"wechat": OPEN}}, agent, state_dir=tmp_path, store=store)
    await gw.start()
    await world.login()
    try:
        await world.say("wxid_bob", "the meeting moved to 3pm", room="r1@chatroom")
        deletes.times = 1
        await world.say("wxid_alice", "when is it?", room="r1@chatroom", mention=True, settle=False)
        await world.clock.settle()
        assert deletes.times == 0 and turns == []
        await world.advance(INTAKE_RETRY_S[0])
        assert [[h.text for h in t.history] for t in turns] == [["the meeting moved to 3pm"]]
        await world.say("wxid_alice", "thanks", room="r1@chatroom", mention=True)
        assert [[h.text for h in t.history] for t in turns][1] == []
    finally:
        await gw.close()
