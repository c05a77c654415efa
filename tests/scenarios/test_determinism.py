"""Determinism: the same seed gives the same transcript, byte for byte, through a real Gateway."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from simulator import FAULT_KINDS, SimulatedWeChat
from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.agent import AgentTurn, Reply
from wechat_sdk.puppet import OutboundFile

CODE_RE = re.compile(r"Pairing code: (\S+)")

LONG_ANSWER = " ".join(f"Sentence number {i} of a long answer." for i in range(1, 13))


async def agent(turn: AgentTurn) -> str | Reply:
    """Deterministic answers that exercise chunking, files and media (never local paths)."""
    if turn.media:
        item = turn.media[0]
        return f"got your {item.kind} {item.name} of {item.size} bytes"
    if "long" in turn.text:
        return LONG_ANSWER
    if "file" in turn.text:
        return Reply(
            text="here is the file",
            files=[OutboundFile(name="notes.txt", data=b"line\n" * 2000, mime="text/plain")],
        )
    where = f" in {turn.room_topic}" if turn.room_topic else ""
    return f"{turn.sender_name} said {turn.text!r}{where}"


async def run_conversation(seed: int, state_dir: Path) -> SimulatedWeChat:
    """A whole conversation on a fresh world and gateway; returns the world to inspect."""
    world = SimulatedWeChat(seed=seed)
    world.add_account("default")
    harness = WeChatHarness(world, state_dir)
    try:
        gw = await harness.gateway(
            agent, dmPolicy="pairing", textChunkLimit=120, groups={"*": {"requireMention": True}}
        )
        alice = world.add_contact()
        bob = world.add_contact()
        room = world.add_room(members=[alice.id, bob.id])

        # pairing: a stranger gets a code, the owner approves it
        await world.say(alice.id, "hello?")
        challenge = "\n".join(world.texts(to=alice.id))  # chunked too, at 120 characters
        code = CODE_RE.search(challenge)
        assert code is not None, challenge
        # the notice is paced on the virtual clock: let the world run while it goes out
        approving = asyncio.create_task(gw.pairing.approve(code.group(1), notify=True))
        await world.run_until_idle()
        await approving
        await world.say(alice.id, "hello again")

        # groups: only the mention is answered
        await world.say(bob.id, "nobody asked the bot", room=room.id)
        await world.say(bob.id, "what's up?", room=room.id, mention=True)

        # a long answer is chunked; a file answer; inbound media
        await world.say(alice.id, "tell me a long story")
        await world.say(alice.id, "send me the file")
        await world.say(alice.id, media={"kind": "image", "name": "cat.png", "size": 40_000})

        # a transient send failure is retried
        world.fault("send_fail")
        await world.say(alice.id, "are you still there?")
        await world.advance(3600)
        await gw.wait_idle()
        return world
    finally:
        await harness.close()


async def test_same_seed_gives_the_same_transcript_byte_for_byte(tmp_path: Path) -> None:
    first = await run_conversation(11, tmp_path / "one")
    second = await run_conversation(11, tmp_path / "two")

    assert first.transcript_json() == second.transcript_json()
    assert first.transcript_json().encode() == second.transcript_json().encode()

    # the conversation really went through every path
    out = first.sent()
    alice_texts = [e.text or "" for e in out if e.to is not None]
    assert any("Pairing code" in t for t in alice_texts)
    assert any("approved" in t for t in alice_texts)
    assert sum(1 for e in out if e.text and "Sentence number" in e.text) > 1  # chunked
    assert any(e.media is not None and e.media["name"] == "notes.txt" for e in out)
    assert any("got your image cat.png of 40000 bytes" in t for t in alice_texts)
    assert any("are you still there?" in t for t in alice_texts)  # sent after the retry
    assert len([e for e in out if e.room is not None]) == 1  # only the mention answered
    assert any(e["event"] == "fault" and e["kind"] == "send_fail" for e in first.events_log)


async def test_a_different_seed_gives_a_different_transcript(tmp_path: Path) -> None:
    one = await run_conversation(11, tmp_path / "one")
    other = await run_conversation(12, tmp_path / "two")

    assert one.transcript_json() != other.transcript_json()
    one_ids = {e.sender for e in one.transcript if e.direction == "in"}
    other_ids = {e.sender for e in other.transcript if e.direction == "in"}
    assert one_ids.isdisjoint(other_ids)
    assert [c.name for c in one.contacts.values()] != [c.name for c in other.contacts.values()]


def test_world_built_twice_with_one_seed_has_the_same_names_ids_and_topics() -> None:
    def build(seed: int) -> tuple[list[tuple[str, str]], str, str]:
        w = SimulatedWeChat(seed=seed)
        contacts = [w.add_contact() for _ in range(6)]
        room = w.add_room(members=[c.id for c in contacts])
        return [(c.id, c.name) for c in contacts], room.id, room.topic

    assert build(4) == build(4)
    assert build(4) != build(5)


@pytest.mark.parametrize("kind", FAULT_KINDS)
async def test_every_fault_kind_is_accepted(kind: str) -> None:
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    puppet = world.puppet_factory("default")
    await puppet.start()
    await world.login()
    try:
        world.fault(kind)
        await world.run_until_idle()
        assert any(e["event"] == "fault" and e["kind"] == kind for e in world.events_log)
    finally:
        await puppet.stop()
        await world.run_until_idle()


def test_an_unknown_fault_kind_is_refused_with_the_valid_kinds() -> None:
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    with pytest.raises(ValueError, match="unknown fault 'earthquake'") as err:
        world.fault("earthquake")
    for kind in FAULT_KINDS:
        assert kind in str(err.value)
