"""Each step of the inbound pipeline in isolation: MemoryStore, a VirtualClock, the
simulator's puppet (logged in, its event stream left unread)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from simulator.world import SimulatedPuppet, SimulatedWeChat
from wechat_sdk.agent import AgentTurn, HistoryEntry, ToolRegistry
from wechat_sdk.clock import VirtualClock
from wechat_sdk.config import ResolvedAccount, accounts_of, parse_config
from wechat_sdk.echoes import EchoLedger, text_key
from wechat_sdk.inbound.groups import resolve_group
from wechat_sdk.inbound.history import HistoryBook
from wechat_sdk.inbound.media import MediaSaver
from wechat_sdk.inbound.pipeline import REPLAY_GRACE_S, Drop, Inbound, InboundPipeline
from wechat_sdk.own_accounts import OwnAccounts
from wechat_sdk.pairing.service import Pairing
from wechat_sdk.puppet import Message, MessageKind
from wechat_sdk.stores.memory import MemoryStore

BOT = "wxid_bot_default"
R1 = "r1@chatroom"


def account(**keys: Any) -> ResolvedAccount:
    return accounts_of(parse_config(json.dumps({"channels": {"wechat": keys}}), env={})).default


@dataclass
class Rig:
    world: SimulatedWeChat
    puppet: SimulatedPuppet
    store: MemoryStore
    media_dir: Path

    @property
    def clock(self) -> VirtualClock:
        return self.world.clock

    def pipeline(self, **keys: Any) -> InboundPipeline:
        acc = account(**keys)
        s = acc.settings

        return InboundPipeline(
            account=acc,
            default_account_id="default",
            puppet=self.puppet,
            clock=self.clock,
            dedupe=self.store.dedupe,
            pairing=Pairing(self.store.pairing, self.clock),
            history=HistoryBook(
                self.store.history, acc.id, group_limit=s.historyLimit, dm_limit=s.dmHistoryLimit
            ),
            media=MediaSaver(self.media_dir, self.clock),
            tools=ToolRegistry(),
            echoes=EchoLedger(),
        )

    async def message(self, sender: str, text: str = "", **say: Any) -> Message:
        (msg_id,) = await self.world.say(sender, text, settle=False, **say)
        return await self.puppet.message(msg_id)

    async def said(self, sender: str, text: str = "", **say: Any) -> str:
        """The id of a message said in the world (what the pipeline is given)."""
        (msg_id,) = await self.world.say(sender, text, settle=False, **say)
        return msg_id


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    world = SimulatedWeChat(seed=3)
    world.add_account("default")
    world.add_contact("wxid_alice", name="Alice")
    world.add_room(id=R1, topic="Room one", members=["wxid_alice"])
    puppet = world.puppet_factory("default")
    await puppet.start()
    world.confirm()  # logged in: the puppet knows its own id
    assert puppet.self_id == BOT
    try:
        yield Rig(world, puppet, MemoryStore(), tmp_path / "media" / "inbound")
    finally:
        await puppet.stop()


def msg(
    talker: str,
    text: str = "hi",
    *,
    room: str | None = None,
    ts: float = 0.0,
    mention_ids: tuple[str, ...] = (),
    id: str = "m1",
) -> Message:
    return Message(
        id=id,
        kind=MessageKind.TEXT,
        talker_id=talker,
        text=text,
        room_id=room,
        listener_id=None if room else BOT,
        mention_ids=mention_ids,
        timestamp=ts,
    )


# ---------------------------------------------------------------- self


async def test_drop_self_drops_the_bots_own_echo_and_notes_it(rig: Rig) -> None:
    p = rig.pipeline()
    [own] = await rig.world.say(BOT, "my reply", room=R1, settle=False)
    assert await p.drop_self(own) == Drop("self")
    assert p.echoes.seen_since(R1, text_key("my reply"), rig.clock.now())
    other = await rig.said("wxid_alice")
    loaded = await p.drop_self(other)
    assert isinstance(loaded, Message) and loaded.id == other


async def test_drop_self_knows_a_sent_id_without_loading_the_message(rig: Rig) -> None:
    p = rig.pipeline()
    p.echoes.sent("echo-1")  # (delivery notes the id a send returned)
    assert await p.process("echo-1") == Drop("self")  # no such message: never loaded
    assert p.drops == {"self": 1}
    # taken once: the same id again is loaded (and here, with no such message, skipped)
    again = await p.process("echo-1")
    assert isinstance(again, Drop) and again.reason == "unreadable"


# ---------------------------------------------------------------- duplicate


async def test_drop_duplicate_within_the_window_only(rig: Rig) -> None:
    p = rig.pipeline()
    m = msg("wxid_alice", id="dup-1")
    assert await p.drop_duplicate(Inbound(m)) is None
    assert await p.drop_duplicate(Inbound(m)) == Drop("duplicate")
    assert await p.drop_duplicate(Inbound(msg("wxid_alice", id="dup-2"))) is None
    await rig.clock.advance(3601)  # the dedupe window is one hour
    assert await p.drop_duplicate(Inbound(m)) is None


async def test_duplicate_window_is_per_account(rig: Rig) -> None:
    a = rig.pipeline()
    b = rig.pipeline(accounts={"b": {}}, defaultAccountId="b")
    m = msg("wxid_alice", id="same-id")
    assert await a.drop_duplicate(Inbound(m)) is None
    assert await b.drop_duplicate(Inbound(m)) is None


# ---------------------------------------------------------------- replayed


async def test_drop_replayed_uses_the_connect_time_with_a_grace(rig: Rig) -> None:
    p = rig.pipeline()
    now = rig.clock.now()
    old = msg("wxid_alice", ts=now - 3600)
    assert await p.drop_replayed(Inbound(old)) is None  # not connected yet: no judgement
    p.connected(now)
    drop = await p.drop_replayed(Inbound(old))
    assert drop is not None and drop.reason == "replayed"
    assert await p.drop_replayed(Inbound(msg("x", ts=now - REPLAY_GRACE_S - 1))) is not None
    assert await p.drop_replayed(Inbound(msg("x", ts=now - REPLAY_GRACE_S + 1))) is None
    assert await p.drop_replayed(Inbound(msg("x", ts=now + 5))) is None


async def test_a_message_without_a_time_is_taken_as_said_on_arrival_and_said(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """A payload without a time (a Puppet Service's, with neither receive_time nor the
    old timestamp) was dropped as history said in 1970, without a word: a puppet that
    never sends one had every message dropped."""
    p = rig.pipeline()
    p.connected(rig.clock.now())
    item = Inbound(msg("wxid_alice", ts=0.0))
    assert await p.drop_replayed(item) is None
    assert item.message.timestamp == rig.clock.now()
    assert "message m1 from wxid_alice has no time: taken as sent now" in caplog.text


async def test_a_message_handed_on_again_an_hour_later_is_never_answered_twice(rig: Rig) -> None:
    """A transport hands a message on again (iLink: those of the last hour, at a start):
    at the very edge of the hour its dedupe mark is gone, and it is too old; one a moment
    younger is still a duplicate."""
    p = rig.pipeline()
    p.connected(rig.clock.now() - 7200)  # first served long ago: no history
    said = rig.clock.now()
    edge, younger = msg("wxid_alice", id="edge", ts=said), msg("wxid_alice", id="young", ts=said)
    assert await p.drop_duplicate(Inbound(edge)) is None  # answered then
    await rig.clock.advance(1)
    assert await p.drop_duplicate(Inbound(younger)) is None
    await rig.clock.advance(3599)  # the hour since "edge" was said and marked
    first = await p.drop_duplicate(Inbound(edge)) or await p.drop_replayed(Inbound(edge))
    assert first is not None and first.reason == "too_old"
    assert await p.drop_duplicate(Inbound(younger)) == Drop("duplicate")


# ---------------------------------------------------------------- describe


async def test_describe_fills_names_and_falls_back_to_the_id(rig: Rig) -> None:
    p = rig.pipeline()
    item = Inbound(msg("wxid_alice", room=R1))
    assert await p.describe(item) is None
    assert (item.sender_name, item.room_topic) == ("Alice", "Room one")

    unknown = Inbound(msg("wxid_nobody", room="ghost@chatroom"))
    assert await p.describe(unknown) is None
    assert (unknown.sender_name, unknown.room_topic) == ("wxid_nobody", None)


# ---------------------------------------------------------------- own accounts


async def test_check_own_account_drops_a_dm_and_marks_a_group_message(rig: Rig) -> None:
    own = OwnAccounts()
    own.logged_in("default", BOT)
    own.logged_in("work", "wxid_work")
    p = rig.pipeline(dmPolicy="pairing")
    p.own_accounts = own
    assert await p.check_own_account(Inbound(msg("wxid_work"))) == Drop(
        "own_account", "a DM from account work"
    )
    group = Inbound(msg("wxid_work", room=R1))
    assert await p.check_own_account(group) is None  # the group checks go on
    assert group.own_account == "work"
    for sender in ("wxid_alice", BOT):  # a user; the account's own id (drop_self's)
        assert await p.check_own_account(Inbound(msg(sender))) is None


async def test_a_group_message_of_another_account_is_history_even_mentioning_the_bot(
    rig: Rig,
) -> None:
    p = rig.pipeline(groups={"*": {"requireMention": False}})
    item = group_item(p, msg("wxid_work", f"@{BOT}\u2005 are you there?", room=R1, ts=5.0))
    item.own_account = "work"
    assert await p.check_mention(item) == Drop("own_account", "a group message from account work")
    (entry,) = p.history.group(R1)
    assert (entry.sender_id, entry.text) == ("wxid_work", f"@{BOT}\u2005 are you there?")


def test_own_accounts_follow_logins_and_the_config() -> None:
    own = OwnAccounts()
    own.logged_in("a", "wxid_1")
    own.logged_in("b", "wxid_2")
    own.logged_in("a", "wxid_3")  # logged in as another WeChat user: wxid_1 is nobody's
    assert [own.account_of(i) for i in ("wxid_1", "wxid_2", "wxid_3")] == [None, "b", "a"]
    own.keep_only(["a"])  # b left the config
    assert (own.account_of("wxid_2"), own.account_of("wxid_3")) == (None, "a")


# ---------------------------------------------------------------- DM policy


@pytest.mark.parametrize(
    ("keys", "sender", "expected"),
    [
        ({"dmPolicy": "disabled"}, "wxid_alice", "dm_disabled"),
        ({"dmPolicy": "disabled", "allowFrom": ["wxid_alice"]}, "wxid_alice", "dm_disabled"),
        ({"dmPolicy": "open", "allowFrom": ["*"]}, "wxid_alice", None),
        ({"dmPolicy": "allowlist", "allowFrom": ["wx:wxid_alice"]}, "wxid_alice", None),
        ({"dmPolicy": "allowlist", "allowFrom": ["wxid_bob"]}, "wxid_alice", "dm_not_allowed"),
        ({"allowFrom": ["wxid_alice"]}, "wxid_alice", None),
        ({}, "wxid_alice", "pairing_required"),
    ],
)
async def test_check_dm_policies(
    rig: Rig, keys: dict[str, Any], sender: str, expected: str | None
) -> None:
    p = rig.pipeline(**keys)
    item = Inbound(msg(sender), sender_name="Alice")
    drop = await p.check_dm(item)
    assert (drop.reason if drop else None) == expected
    # only the pairing policy ever talks to a stranger
    assert len(drop.replies if drop else ()) == (1 if expected == "pairing_required" else 0)


async def test_check_dm_pairing_challenges_once_then_lets_the_approved_sender_in(
    rig: Rig,
) -> None:
    p = rig.pipeline()
    item = Inbound(msg("wxid_alice"), sender_name="Alice")
    first = await p.check_dm(item)
    assert first is not None and first.reason == "pairing_required"
    ((to, text),) = first.replies
    assert to == "wxid_alice"
    assert await p.check_dm(item) == Drop("pairing_required")  # no second code
    (request,) = p.pairing.list("default")
    assert request.code in text
    p.pairing.approve(request.code)
    assert await p.check_dm(item) is None


async def test_check_dm_ignores_group_messages(rig: Rig) -> None:
    p = rig.pipeline(dmPolicy="disabled")
    assert await p.check_dm(Inbound(msg("wxid_alice", room=R1))) is None


# ---------------------------------------------------------------- group policy


async def test_check_group_sets_the_rule_and_applies_group_allow_from(rig: Rig) -> None:
    p = rig.pipeline(groupAllowFrom=["wxid_alice"], groups={R1: {"requireMention": False}})
    ok = Inbound(msg("wxid_alice", room=R1))
    assert await p.check_group(ok) is None
    assert ok.rule is not None and ok.rule.require_mention is False
    assert await p.check_group(Inbound(msg("wxid_bob", room=R1))) == Drop("sender_not_allowed")
    assert await p.check_group(Inbound(msg("wxid_bob", room="r9@chatroom"))) == Drop(
        "group_not_allowed"
    )
    assert await p.check_group(Inbound(msg("wxid_bob"))) is None  # DMs pass


async def test_check_group_disabled(rig: Rig) -> None:
    p = rig.pipeline(groupPolicy="disabled")
    assert await p.check_group(Inbound(msg("wxid_alice", room=R1))) == Drop("group_disabled")


# ---------------------------------------------------------------- mention


def group_item(p: InboundPipeline, m: Message) -> Inbound:
    item = Inbound(m, sender_name="Alice", text=m.text)
    item.rule = resolve_group(p.account.settings, R1)
    return item


async def test_check_mention_keeps_unmentioned_messages_as_history(rig: Rig) -> None:
    p = rig.pipeline()
    item = group_item(p, msg("wxid_alice", "  just chatting ", room=R1, ts=5.0))
    assert await p.check_mention(item) == Drop("no_mention")
    assert p.history.group(R1) == (
        HistoryEntry("user", "wxid_alice", "Alice", "just chatting", 5.0, "m1"),
    )


async def test_check_mention_by_name_alias_config_name_or_id(rig: Rig) -> None:
    rig.world.set_room_alias(R1, BOT, "小助手")
    p = rig.pipeline(name="Molty")
    cases = {
        "@Bot default\u2005one": "one",  # the contact name
        "@小助手 two": "two",  # the room alias
        "@Molty three": "three",  # the configured name
    }
    for text, stripped in cases.items():
        item = group_item(p, msg("wxid_alice", text, room=R1))
        assert await p.check_mention(item) is None, text
        assert item.mentioned and item.text == stripped
    by_id = group_item(p, msg("wxid_alice", "four", room=R1, mention_ids=(BOT,)))
    assert await p.check_mention(by_id) is None
    assert by_id.text == "four"
    assert p.history.group(R1) == ()


async def test_check_mention_not_required(rig: Rig) -> None:
    p = rig.pipeline(groups={"*": {"requireMention": False}})
    item = group_item(p, msg("wxid_alice", "hello", room=R1))
    assert await p.check_mention(item) is None
    assert item.mentioned is False


async def test_check_mention_at_all_follows_mention_all(rig: Rig) -> None:
    text = "@所有人\u2005meeting"
    off = rig.pipeline()
    assert await off.check_mention(group_item(off, msg("a", text, room=R1))) == Drop("no_mention")
    on = rig.pipeline(mentionAll=True)
    assert await on.check_mention(group_item(on, msg("a", text, room=R1))) is None


#: how Wechaty's puppets (and WeChat, for a client that shows no quotes) write a quote
#: into the quoting message's text: the quoted message, a rule, then the message's own text
QUOTED = "「Bob：@Bot default\u2005when is the meeting?」\n- - - - - - - - - - - - - - -\n"


async def test_a_mention_inside_a_quote_does_not_wake_the_bot(rig: Rig) -> None:
    # quoting a message that mentioned the bot, without mentioning it now
    p = rig.pipeline()
    item = group_item(p, msg("wxid_alice", f"{QUOTED}it moved to 3pm", room=R1, ts=5.0))
    assert await p.check_mention(item) == Drop("no_mention")
    assert not item.mentioned
    (entry,) = p.history.group(R1)
    assert entry.text == f"{QUOTED}it moved to 3pm"


async def test_a_mention_after_a_quote_counts_and_is_stripped_with_the_quote_kept(
    rig: Rig,
) -> None:
    p = rig.pipeline()
    item = group_item(p, msg("wxid_alice", f"{QUOTED}@Bot default\u2005is that right?", room=R1))
    assert await p.check_mention(item) is None
    assert item.mentioned and item.text == f"{QUOTED}is that right?"


# ---------------------------------------------------------------- media


async def test_fetch_media_saves_the_file(rig: Rig) -> None:
    p = rig.pipeline()
    m = await rig.message(
        "wxid_alice", media={"kind": "audio", "name": "voice.silk", "size": 3000, "duration": 4.5}
    )
    item = Inbound(m)
    assert await p.fetch_media(item) is None
    (saved,) = item.media
    assert saved.kind == "audio"
    assert saved.mime == "audio/silk"
    assert saved.duration_s == 4.5
    assert saved.path is not None
    assert saved.path.read_bytes() == rig.world.message_data(m.id)
    assert saved.path.stat().st_mode & 0o777 == 0o600
    assert rig.media_dir.stat().st_mode & 0o777 == 0o700


async def test_fetch_media_over_the_cap_is_a_note(rig: Rig) -> None:
    p = rig.pipeline(mediaMaxMb=0.001)
    m = await rig.message("wxid_alice", media={"kind": "image", "name": "a.png", "size": 5000})
    item = Inbound(m)
    assert await p.fetch_media(item) is None
    (saved,) = item.media
    assert saved.path is None and saved.note is not None and "too large" in saved.note
    assert not rig.media_dir.exists() or list(rig.media_dir.iterdir()) == []


async def test_fetch_media_skips_text(rig: Rig) -> None:
    p = rig.pipeline()
    item = Inbound(msg("wxid_alice"))
    assert await p.fetch_media(item) is None
    assert item.media == []


async def test_media_prune_removes_only_old_files(rig: Rig) -> None:
    saver = MediaSaver(rig.media_dir, rig.clock)
    old = await saver.fetch(rig.puppet, await rig.message("a", media={"kind": "image"}), 10**6)
    await rig.clock.advance(7200)
    new = await saver.fetch(rig.puppet, await rig.message("a", media={"kind": "image"}), 10**6)
    assert old.path is not None and new.path is not None
    assert saver.prune(3600) == 1
    assert not old.path.exists()
    assert new.path.exists()


# ---------------------------------------------------------------- the whole pipeline


async def test_process_builds_a_group_turn(rig: Rig) -> None:
    p = rig.pipeline()
    p.tools.register("weather", lambda: "sunny")
    await p.process(await rig.said("wxid_alice", "earlier", room=R1))
    result = await p.process(await rig.said("wxid_alice", "go", room=R1, mention=True))
    assert isinstance(result, AgentTurn)
    assert result.chat_type == "group"
    assert result.conversation_id == R1
    assert result.text == "go"
    assert result.raw_text == "@Bot default\u2005go"
    assert result.sender_name == "Alice"
    assert [h.text for h in result.history] == ["earlier"]
    assert result.tools.names == ["weather"]
    assert p.drops == {"no_mention": 1}


async def test_process_counts_drops_by_reason(rig: Rig) -> None:
    p = rig.pipeline()
    m = await rig.said("wxid_alice", "hi")
    first = await p.process(m)
    assert isinstance(first, Drop) and first.reason == "pairing_required"
    assert await p.process(m) == Drop("duplicate")
    [own] = await rig.world.say(BOT, "my reply", settle=False)
    assert await p.process(own) == Drop("self")
    assert p.drops == {"pairing_required": 1, "duplicate": 1, "self": 1}


async def test_process_dm_turn_text_is_trimmed(rig: Rig) -> None:
    p = rig.pipeline(dmPolicy="open", allowFrom=["*"])
    result = await p.process(await rig.said("wxid_alice", "  hello  "))
    assert isinstance(result, AgentTurn)
    assert (result.chat_type, result.text, result.room_id) == ("direct", "hello", None)


async def test_maybe_prune_runs_at_most_once_an_hour(rig: Rig) -> None:
    saver = MediaSaver(rig.media_dir, rig.clock)
    assert saver.maybe_prune(60) == 0  # first call prunes (nothing there yet)
    item = await saver.fetch(rig.puppet, await rig.message("a", media={"kind": "file"}), 10**6)
    await rig.clock.advance(120)
    assert saver.maybe_prune(60) == 0  # too soon after the last prune
    assert item.path is not None and item.path.exists()
    await rig.clock.advance(MediaSaver.PRUNE_EVERY_S)
    assert saver.maybe_prune(60) == 1
    assert not item.path.exists()


async def test_fetch_media_prunes_by_media_max_age_hours(rig: Rig) -> None:
    p = rig.pipeline(mediaMaxAgeHours=1)
    first = Inbound(await rig.message("a", media={"kind": "image", "name": "old.png"}))
    await p.fetch_media(first)
    await rig.clock.advance(2 * 3600)
    second = Inbound(await rig.message("a", media={"kind": "image", "name": "new.png"}))
    await p.fetch_media(second)
    old_path, new_path = first.media[0].path, second.media[0].path
    assert old_path is not None and new_path is not None
    assert not old_path.exists()
    assert new_path.exists()


async def test_a_download_a_stop_cuts_leaves_no_part_of_the_file(rig: Rig) -> None:
    # (the message is taken in again at the next start: the part would stay until pruned)
    started = asyncio.Event()

    class Stalling:
        async def download(self, message_id: str, max_bytes: int) -> AsyncIterator[bytes]:
            yield b"the first part"
            started.set()
            await asyncio.Event().wait()  # the rest never comes

    saver = MediaSaver(rig.media_dir, rig.clock)
    message = await rig.message("a", media={"kind": "file"})
    task = asyncio.create_task(saver.fetch(Stalling(), message, 10**6))  # type: ignore[arg-type]
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(rig.media_dir.iterdir()) == []
