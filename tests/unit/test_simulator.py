"""The simulated WeChat's wire habits: QR codes, sessions, replay, heartbeats, media, mentions."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from simulator import SimulatedPuppet, SimulatedWeChat, TranscriptEntry
from wechat_sdk.puppet import (
    HeartbeatEvent,
    LoginEvent,
    Message,
    MessageEvent,
    PuppetEvent,
    ReadyEvent,
    ScanEvent,
    ScanStatus,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Events:
    """Collects a puppet's events in a background task (restartable after a stop)."""

    def __init__(self, puppet: SimulatedPuppet) -> None:
        self.puppet = puppet
        self.seen: list[PuppetEvent] = []
        self.tasks: list[asyncio.Task[None]] = []

    def listen(self) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(self._collect()))

    async def _collect(self) -> None:
        async for event in self.puppet.events():
            self.seen.append(event)

    def scans(self) -> list[ScanEvent]:
        return [e for e in self.seen if isinstance(e, ScanEvent)]

    def heartbeats(self) -> int:
        return sum(isinstance(e, HeartbeatEvent) for e in self.seen)

    def message_ids(self) -> list[str]:
        return [e.message_id for e in self.seen if isinstance(e, MessageEvent)]

    def index(self, kind: type) -> int:
        return next(i for i, e in enumerate(self.seen) if isinstance(e, kind))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture
def world() -> SimulatedWeChat:
    w = SimulatedWeChat(seed=3, qr_ttl_s=60.0)
    w.add_account("default", name="Helper")
    return w


@pytest.fixture
async def puppet(world: SimulatedWeChat) -> AsyncIterator[SimulatedPuppet]:
    p = world.puppet_factory("default")
    yield p
    await p.stop()
    await world.run_until_idle()


@pytest.fixture
async def events(puppet: SimulatedPuppet) -> AsyncIterator[Events]:
    e = Events(puppet)
    yield e
    await e.close()


async def start(puppet: SimulatedPuppet, events: Events, world: SimulatedWeChat) -> None:
    await puppet.start()
    events.listen()
    await world.run_until_idle()


async def logged_in(puppet: SimulatedPuppet, events: Events, world: SimulatedWeChat) -> None:
    await start(puppet, events, world)
    await world.login()


# ---------------------------------------------------------------- QR codes


async def test_qr_code_times_out_after_ttl_and_a_new_one_is_shown(
    world: SimulatedWeChat, puppet: SimulatedPuppet, events: Events
) -> None:
    await start(puppet, events, world)
    first = events.scans()
    assert [s.status for s in first] == [ScanStatus.WAITING]

    await world.advance(59.0)
    assert len(events.scans()) == 1

    await world.advance(1.0)
    statuses = [s.status for s in events.scans()]
    assert statuses == [ScanStatus.WAITING, ScanStatus.TIMEOUT, ScanStatus.WAITING]
    old, timeout, new = events.scans()
    assert timeout.qrcode == old.qrcode
    assert new.qrcode and new.qrcode != old.qrcode
    assert puppet.self_id is None
    assert puppet.qr_waiting

    await world.advance(60.0)
    assert [s.status for s in events.scans()].count(ScanStatus.TIMEOUT) == 2


async def test_cancel_on_the_phone_shows_a_new_code_and_login_still_works(
    world: SimulatedWeChat, puppet: SimulatedPuppet, events: Events
) -> None:
    await start(puppet, events, world)
    world.scan()
    world.cancel()
    await world.run_until_idle()
    statuses = [s.status for s in events.scans()]
    assert statuses == [
        ScanStatus.WAITING,
        ScanStatus.SCANNED,
        ScanStatus.CANCEL,
        ScanStatus.WAITING,
    ]
    assert events.scans()[-1].qrcode != events.scans()[0].qrcode
    assert puppet.self_id is None

    await world.login()
    assert puppet.self_id == "wxid_bot_default"
    assert isinstance(events.seen[-1], ReadyEvent)


async def test_login_order_is_waiting_scanned_confirmed_login_ready(
    world: SimulatedWeChat, puppet: SimulatedPuppet, events: Events
) -> None:
    await logged_in(puppet, events, world)
    shape = [(type(e).__name__, getattr(e, "status", None)) for e in events.seen]
    assert shape == [
        ("ScanEvent", ScanStatus.WAITING),
        ("ScanEvent", ScanStatus.SCANNED),
        ("ScanEvent", ScanStatus.CONFIRMED),
        ("LoginEvent", None),
        ("ReadyEvent", None),
    ]


async def test_restart_with_a_session_logs_in_without_a_qr_code(
    world: SimulatedWeChat, puppet: SimulatedPuppet, events: Events
) -> None:
    await logged_in(puppet, events, world)
    await puppet.stop()
    await world.run_until_idle()
    assert puppet.self_id is None

    again = Events(puppet)
    await puppet.start()
    again.listen()
    await world.run_until_idle()
    try:
        assert again.scans() == []
        assert isinstance(again.seen[0], LoginEvent)
        assert puppet.self_id == "wxid_bot_default"
        assert any(isinstance(e, ReadyEvent) for e in again.seen)
    finally:
        await again.close()


async def test_after_logout_a_restart_needs_a_new_scan(
    world: SimulatedWeChat, puppet: SimulatedPuppet, events: Events
) -> None:
    await logged_in(puppet, events, world)
    world.fault("logout")
    await puppet.stop()
    await world.run_until_idle()

    again = Events(puppet)
    await puppet.start()
    again.listen()
    await world.run_until_idle()
    try:
        assert [s.status for s in again.scans()] == [ScanStatus.WAITING]
        assert puppet.self_id is None
    finally:
        await again.close()


# ---------------------------------------------------------------- replay and offline


async def test_history_is_replayed_after_login(
    world: SimulatedWeChat, puppet: SimulatedPuppet, events: Events
) -> None:
    old = world.add_past_message("wxid_alice", "sent while you were away", age_s=600)
    await logged_in(puppet, events, world)
    assert old in events.message_ids()
    replay_at = next(
        i for i, e in enumerate(events.seen) if isinstance(e, MessageEvent) and e.message_id == old
    )
    assert events.index(LoginEvent) < replay_at
    msg = await puppet.message(old)
    assert msg.text == "sent while you were away"
    assert msg.timestamp == world.clock.now() - 600


async def test_messages_said_while_disconnected_arrive_after_the_next_start(
    world: SimulatedWeChat, puppet: SimulatedPuppet, events: Events
) -> None:
    await logged_in(puppet, events, world)
    world.fault("disconnect")
    await world.run_until_idle()
    assert events.tasks[0].done()  # the event stream ended with the link

    (missed,) = await world.say("wxid_bob", "are you there?")
    assert missed not in events.message_ids()

    again = Events(puppet)
    await puppet.start()
    again.listen()
    await world.run_until_idle()
    try:
        assert missed in again.message_ids()
        assert again.index(LoginEvent) < again.message_ids().index(missed) + len(again.seen)
        (msg,) = [
            m for m in [await puppet.message(i) for i in again.message_ids()] if m.id == missed
        ]
        assert msg.text == "are you there?"
    finally:
        await again.close()


async def test_heartbeats_every_fifteen_virtual_seconds(
    world: SimulatedWeChat, puppet: SimulatedPuppet, events: Events
) -> None:
    await logged_in(puppet, events, world)
    assert events.heartbeats() == 0
    await world.advance(14.9)
    assert events.heartbeats() == 0
    await world.advance(0.1)
    assert events.heartbeats() == 1
    await world.advance(45.0)
    assert events.heartbeats() == 4


async def test_restart_after_a_dropped_link_does_not_double_the_heartbeat(
    world: SimulatedWeChat, puppet: SimulatedPuppet, events: Events
) -> None:
    await logged_in(puppet, events, world)
    world.fault("disconnect")
    again = Events(puppet)
    await puppet.start()
    again.listen()
    await world.run_until_idle()
    try:
        await world.advance(60.0)
        assert again.heartbeats() == 4
    finally:
        await again.close()


async def test_heartbeat_silence_stops_every_event(
    world: SimulatedWeChat, puppet: SimulatedPuppet, events: Events
) -> None:
    await logged_in(puppet, events, world)
    before = len(events.seen)
    world.fault("heartbeat_silence")
    await world.say("wxid_carol", "hello?")
    await world.advance(120.0)
    assert len(events.seen) == before


# ---------------------------------------------------------------- media


@pytest.mark.parametrize(
    ("kind", "name", "signature"),
    [
        ("image", "photo.png", PNG_SIGNATURE),
        ("audio", "voice.silk", b"#!SILK_V3"),
        ("video", "clip.mp4", b"ftyp"),
        ("file", "doc.pdf", b"%PDF-"),
        ("emoticon", "smile.gif", b"GIF89a"),
    ],
)
async def test_media_has_a_real_signature_and_the_requested_size(
    world: SimulatedWeChat,
    puppet: SimulatedPuppet,
    events: Events,
    kind: str,
    name: str,
    signature: bytes,
) -> None:
    await logged_in(puppet, events, world)
    (msg_id,) = await world.say("wxid_dan", media={"kind": kind, "name": name, "size": 70_000})
    msg = await puppet.message(msg_id)
    assert msg.kind.has_file
    assert msg.file is not None and msg.file.size == 70_000 and msg.file.name == name
    data = b"".join([chunk async for chunk in puppet.download(msg_id, 1_000_000)])
    assert len(data) == 70_000
    assert signature in data[:32]
    if kind == "image":
        assert data.startswith(PNG_SIGNATURE)
    if kind == "audio":
        assert data[1:].startswith(b"#!SILK_V3")
        assert msg.file.duration_s is not None and msg.file.duration_s > 0


async def test_media_smaller_than_its_signature_is_still_exactly_that_size(
    world: SimulatedWeChat, puppet: SimulatedPuppet, events: Events
) -> None:
    await logged_in(puppet, events, world)
    (msg_id,) = await world.say("wxid_dan", media={"kind": "image", "size": 4})
    assert world.message_data(msg_id) == PNG_SIGNATURE[:4]


# ---------------------------------------------------------------- mentions


async def room_message(world: SimulatedWeChat, puppet: SimulatedPuppet, **say: object) -> Message:
    room = world.add_room(id="r1@chatroom", topic="Family", members=["wxid_erin"])
    (msg_id,) = await world.say("wxid_erin", "dinner?", room=room.id, **say)  # type: ignore[arg-type]
    return await puppet.message(msg_id)


async def test_mention_uses_name_and_four_per_em_space_plus_the_id(
    world: SimulatedWeChat, puppet: SimulatedPuppet, events: Events
) -> None:
    await logged_in(puppet, events, world)
    msg = await room_message(world, puppet, mention=True)
    assert msg.text == "@Helper\u2005dinner?"
    assert msg.mention_ids == ("wxid_bot_default",)


async def test_mention_text_uses_the_room_alias_when_set(
    world: SimulatedWeChat, puppet: SimulatedPuppet, events: Events
) -> None:
    await logged_in(puppet, events, world)
    world.add_room(id="r1@chatroom", topic="Family", members=["wxid_erin"])
    world.set_room_alias("r1@chatroom", "wxid_bot_default", "小助手")
    (msg_id,) = await world.say("wxid_erin", "dinner?", room="r1@chatroom", mention=True)
    msg = await puppet.message(msg_id)
    assert msg.text == "@小助手\u2005dinner?"
    assert await puppet.room_alias("r1@chatroom", "wxid_bot_default") == "小助手"


async def test_world_without_mention_ids_sends_only_the_text_form() -> None:
    world = SimulatedWeChat(seed=3, mention_ids=False)
    world.add_account("default", name="Helper")
    puppet = world.puppet_factory("default")
    events = Events(puppet)
    try:
        await logged_in(puppet, events, world)
        msg = await room_message(world, puppet, mention=True)
        assert msg.text == "@Helper\u2005dinner?"
        assert msg.mention_ids == ()
    finally:
        await puppet.stop()
        await events.close()


async def test_world_without_mention_text_sends_only_the_id() -> None:
    world = SimulatedWeChat(seed=3, mention_text=False)
    world.add_account("default", name="Helper")
    puppet = world.puppet_factory("default")
    events = Events(puppet)
    try:
        await logged_in(puppet, events, world)
        msg = await room_message(world, puppet, mention=True)
        assert msg.text == "dinner?"
        assert msg.mention_ids == ("wxid_bot_default",)
    finally:
        await puppet.stop()
        await events.close()


async def test_mention_form_can_be_chosen_per_message(
    world: SimulatedWeChat, puppet: SimulatedPuppet, events: Events
) -> None:
    await logged_in(puppet, events, world)
    room = world.add_room(id="r1@chatroom", members=["wxid_erin"])
    (ids_only,) = await world.say("wxid_erin", "a", room=room.id, mention="ids")
    (text_only,) = await world.say("wxid_erin", "b", room=room.id, mention="text")
    a, b = await puppet.message(ids_only), await puppet.message(text_only)
    assert (a.text, a.mention_ids) == ("a", ("wxid_bot_default",))
    assert (b.text, b.mention_ids) == ("@Helper\u2005b", ())


async def test_mention_all_uses_the_chinese_at_all(
    world: SimulatedWeChat, puppet: SimulatedPuppet, events: Events
) -> None:
    await logged_in(puppet, events, world)
    msg = await room_message(world, puppet, mention_all=True)
    assert msg.text == "@所有人\u2005dinner?"
    assert msg.mention_ids == ()


async def test_a_dm_never_carries_a_mention(
    world: SimulatedWeChat, puppet: SimulatedPuppet, events: Events
) -> None:
    await logged_in(puppet, events, world)
    (msg_id,) = await world.say("wxid_erin", "hi", mention=True)
    msg = await puppet.message(msg_id)
    assert (msg.text, msg.mention_ids, msg.room_id) == ("hi", (), None)


# ---------------------------------------------------------------- bots in one room


async def test_a_bots_room_message_reaches_the_other_bots_of_the_room() -> None:
    # in WeChat every member of a group gets its messages, bot accounts too: another bot
    # of the room hears one bot's message (from that bot's id), a bot outside it does not;
    # and a bot's DM to another bot account reaches it
    world = SimulatedWeChat(seed=3)
    for account in ("a", "b", "c"):
        world.add_account(account)
    world.add_room(id="r1@chatroom", members=["wxid_erin", "wxid_bot_a", "wxid_bot_b"])
    puppets = {account: world.puppet_factory(account) for account in ("a", "b", "c")}
    heard = {account: Events(puppet) for account, puppet in puppets.items()}
    try:
        for account, puppet in puppets.items():
            await start(puppet, heard[account], world)
            await world.login(account)
        before = {account: len(events.message_ids()) for account, events in heard.items()}
        sent = await puppets["a"].send_text("r1@chatroom", "hello all", ("wxid_erin",))
        await world.run_until_idle()

        new = {a: events.message_ids()[before[a] :] for a, events in heard.items()}
        assert new["a"] == [sent]  # the sender: its own echo
        assert new["c"] == []  # not a member
        (to_b,) = new["b"]
        message = await puppets["b"].message(to_b)
        assert to_b != sent
        assert (message.talker_id, message.room_id, message.text) == (
            "wxid_bot_a",
            "r1@chatroom",
            "hello all",
        )
        assert message.mention_ids == ("wxid_erin",)
        (entry,) = [e for e in world.transcript if e.direction == "in"]
        assert (entry.account, entry.sender, entry.room, entry.message_id) == (
            "b",
            "wxid_bot_a",
            "r1@chatroom",
            to_b,
        )
        # a DM to another bot reaches that bot, and only it
        await puppets["a"].send_text("wxid_bot_b", "psst")
        await world.run_until_idle()
        assert heard["c"].message_ids()[before["c"] :] == []
        dm = await puppets["b"].message(heard["b"].message_ids()[-1])
        assert (dm.talker_id, dm.listener_id, dm.room_id, dm.text) == (
            "wxid_bot_a",
            "wxid_bot_b",
            None,
            "psst",
        )
    finally:
        for account, puppet in puppets.items():
            await puppet.stop()
            await heard[account].close()


# ---------------------------------------------------------------- names


def test_the_same_seed_gives_the_same_fake_names_and_topics() -> None:
    def names(seed: int) -> list[str]:
        w = SimulatedWeChat(seed=seed)
        return [w.add_contact().name for _ in range(8)] + [w.add_room().topic]

    assert names(5) == names(5)
    assert names(5) != names(6)


def test_a_transcript_entry_is_built_like_the_dataclass_it_is() -> None:
    # TranscriptEntry has its own (faster) __init__: the same parameters as its fields
    fields = dataclasses.fields(TranscriptEntry)
    params = list(inspect.signature(TranscriptEntry).parameters.values())
    assert [(p.name, p.default, p.kind) for p in params] == [
        (
            f.name,
            inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        )
        for f in fields
    ]
    entry = TranscriptEntry(1.5, "in", "default", "wxid_a", "wxid_bot", None, "hi")
    assert list(vars(entry)) == [f.name for f in fields]
    assert entry == TranscriptEntry(
        t=1.5,
        direction="in",
        account="default",
        sender="wxid_a",
        to="wxid_bot",
        room=None,
        text="hi",
        media=None,
        message_id="",
    )
    assert dataclasses.replace(entry, text="ho").text == "ho"
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.text = "ho"  # type: ignore[misc]


async def test_a_quote_gives_the_quoted_id_and_whole_text() -> None:
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    [first] = await world.say("wxid_alice", "the first words")
    [second] = await world.say("wxid_alice", "about that", quote=first)
    quoted = world.message_payload(second)
    assert (quoted.quoted_id, quoted.quoted_text) == (first, "the first words")


# ---------------------------------------------------------------- the transcript


async def test_what_each_account_sent_is_read_as_the_transcript_says() -> None:
    world = SimulatedWeChat(seed=3)
    for account in ("a", "b"):
        world.add_account(account)
    world.add_contact("alice", "Alice")
    world.add_contact("bob", "Bob")
    for i in range(6):  # the two accounts' messages interleaved, with messages in
        account = world.accounts["ab"[i % 2]]
        world.record_out(account, "alice" if i < 4 else "bob", f"reply {i}", None)
        await world.say("alice", f"message {i}", account="a", settle=False)

    def out(**only: str) -> list[TranscriptEntry]:
        return [
            e
            for e in world.transcript
            if e.direction == "out" and all(getattr(e, k) == v for k, v in only.items())
        ]

    assert [e.text for e in world.sent(account="a")] == ["reply 0", "reply 2", "reply 4"]
    for account in ("a", "b"):
        assert world.sent(account=account) == out(account=account)
        assert world.sent(account=account, to="alice") == out(account=account, to="alice")
        assert world.sent(account=account, since=1) == out(account=account)[1:]
    assert world.sent(to="bob") == out(to="bob")
    assert world.sent(account="nobody") == []
    world.sent(account="a").clear()  # a copy: the caller's to change
    assert len(world.sent(account="a")) == 3


async def test_a_room_the_world_does_not_know_is_refused_with_or_without_an_account(
    world: SimulatedWeChat, puppet: SimulatedPuppet, events: Events
) -> None:
    # with account= the unknown room went through, and the bot's answer to it was then
    # recorded as a DM to a contact named like the room (room None, to the room id)
    await logged_in(puppet, events, world)
    for account in (None, "default"):
        with pytest.raises(KeyError, match=r"no room 'nope@chatroom' in the world"):
            await world.say("wxid_erin", "hi", room="nope@chatroom", account=account)
    assert world.transcript == []


def test_two_accounts_reading_one_inbox_folder_is_a_config_error(tmp_path: Path) -> None:
    # inbox set at the top level reaches every account: each would take the other's files
    from wechat_sdk.config import ConfigError, parse_config
    from wechat_sdk.config.loader import accounts_of

    inbox = str(tmp_path / "inbox")
    config = parse_config(
        json.dumps(
            {
                "channels": {
                    "wechat": {
                        "puppet": "simulator",
                        "puppetOptions": {"inbox": inbox},
                        "accounts": {
                            "a": {},
                            "b": {},
                            "c": {"puppetOptions": {"inbox": inbox + "-c"}},
                        },
                    }
                }
            }
        )
    )
    accounts = accounts_of(config).accounts
    world = SimulatedWeChat(seed=0)
    world.puppet_factory(accounts["a"])
    world.puppet_factory(accounts["c"])  # a folder of its own
    with pytest.raises(ConfigError) as refused:
        world.puppet_factory(accounts["b"])
    [problem] = refused.value.problems
    assert problem.path == "channels.wechat.puppetOptions.inbox"
    assert "account 'a' reads the same folder" in problem.message


def test_options_a_reloaded_config_no_longer_sets_are_dropped(tmp_path: Path) -> None:
    # a gateway's reload makes the account's puppet again: an option the new config does
    # not set is the world's default again, not the old config's value
    from wechat_sdk.config import parse_config
    from wechat_sdk.config.loader import accounts_of

    def account(options: dict[str, object]) -> object:
        text = json.dumps(
            {"channels": {"wechat": {"puppet": "simulator", "puppetOptions": options}}}
        )
        return accounts_of(parse_config(text)).accounts["default"]

    world = SimulatedWeChat(seed=0, auto_scan_s=0.5)
    transcript = tmp_path / "transcript.jsonl"
    world.puppet_factory(account({"transcript": str(transcript), "scanAfterMs": 5000}))
    sim = world.accounts["default"]
    assert (sim.transcript_file, sim.auto_scan_s) == (transcript, 5.0)
    world.puppet_factory(account({}))
    assert (sim.transcript_file, sim.auto_scan_s, sim.inbox) == (None, 0.5, None)


def test_a_faults_seconds_are_its_own_not_the_next_ones() -> None:
    """fault("slow_send", seconds=30), then fault("slow_send"): the second took 30 s too,
    not its default; slow_poll the same."""
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    world.add_account("dms", transport="ilink")
    world.fault("slow_send", seconds=30)
    world.fault("slow_send")
    assert world.accounts["default"].slow_send_s == 5.0
    world.fault("slow_poll", account="dms", seconds=90)
    world.fault("slow_poll", account="dms")
    assert world.ilink_state.bot("dms").slow_poll_s == 40.0


@pytest.mark.parametrize("count", [0, -3, 1.5, True, "2"])
def test_a_fault_count_that_is_not_a_whole_number_1_or_more_is_refused(count: object) -> None:
    """A count of 0 or less was added to the pending faults and ate the next ones given;
    a float or a bool was taken as a number of operations."""
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    with pytest.raises(ValueError, match=r"count must be a whole number, 1 or more \(how many"):
        world.fault("send_fail", count=count)  # type: ignore[arg-type]
    assert world.accounts["default"].faults == {} and world.events_log == []
    world.fault("send_fail")
    assert world.accounts["default"].faults == {"send_fail": 1}


@pytest.mark.parametrize("seconds", [-1, float("nan"), float("inf"), True, "5"])
def test_a_fault_seconds_that_is_not_a_finite_number_0_or_more_is_refused(
    seconds: object,
) -> None:
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    with pytest.raises(ValueError, match="seconds must be a finite number, 0 or more"):
        world.fault("slow_send", seconds=seconds)  # type: ignore[arg-type]
    assert world.accounts["default"].faults == {} and world.events_log == []


def test_adding_an_account_again_gives_it_back_unless_asked_otherwise() -> None:
    """A different name or transport for an id the world has was ignored: the caller got
    the old account and believed it had the one it asked for."""
    world = SimulatedWeChat(seed=1)
    helper = world.add_account("default", name="Helper")
    assert world.add_account("default") is helper
    assert world.add_account("default", name="Helper", transport="puppet") is helper
    with pytest.raises(ValueError, match="account 'default' exists already, named 'Helper'"):
        world.add_account("default", name="Other")
    with pytest.raises(ValueError, match="as a simulator puppet, not as an iLink bot"):
        world.add_account("default", transport="ilink")
    bot = world.add_account("bot", transport="ilink")
    assert world.add_account("bot") is bot
    with pytest.raises(ValueError, match="as an iLink bot, not as a simulator puppet"):
        world.add_account("bot", transport="puppet")
    assert (helper.name, helper.transport, bot.transport) == ("Helper", "puppet", "ilink")


def test_the_simulator_server_page_shows_ilink_servers_every_parameter() -> None:
    """The page showed ``world.ilink_server(port=0, poll_hold_s=30)``, without ``host``."""
    import re

    from simulator.ilink.server import POLL_HOLD_S

    page = Path(__file__).resolve().parents[2] / "docs" / "simulator-server.md"
    (shown,) = re.findall(r"`await world\.ilink_server\((.*?)\)`", page.read_text())
    given = dict(part.split("=") for part in shown.replace("*, ", "").split(", "))
    params = inspect.signature(SimulatedWeChat.ilink_server).parameters
    code = {
        name: POLL_HOLD_S if p.default is None else p.default
        for name, p in params.items()
        if name != "self"
    }
    assert list(given) == list(code)
    assert {k: json.loads(v) for k, v in given.items()} == code
