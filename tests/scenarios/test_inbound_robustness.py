"""Inbound robustness on the simulator: duplicates, login replay, media, DM history."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from simulator import Recorder
from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.agent import AgentTurn

OPEN: dict[str, Any] = {"dmPolicy": "open", "allowFrom": ["*"]}
R1 = "r1@chatroom"


def inbound_files(state_dir: Path) -> list[Path]:
    folder = state_dir / "media" / "inbound" / "default"
    return sorted(folder.iterdir()) if folder.is_dir() else []


async def test_duplicate_delivery_is_answered_once(wechat: WeChatHarness) -> None:
    agent = Recorder()
    gw = await wechat.gateway(agent, **OPEN)
    world = wechat.world

    world.fault("duplicate_next")
    await world.say("wxid_alice", "only once please")

    assert world.texts(to="wxid_alice") == ["echo: only once please"]
    assert len(agent.turns) == 1
    assert gw.status()[0].drops.get("duplicate") == 1


async def test_history_replayed_at_login_gets_no_reply_and_no_pairing_code(
    wechat: WeChatHarness,
) -> None:
    agent = Recorder()
    world = wechat.world
    gw = await wechat.gateway(agent, login=False)  # dmPolicy pairing
    world.add_past_message("wxid_stranger", "old message", age_s=600)

    await world.login()

    assert world.sent() == []
    assert agent.turns == []
    assert gw.pairing.list() == []
    assert gw.status()[0].drops.get("replayed") == 1


async def test_message_just_before_login_is_processed_within_the_grace(
    wechat: WeChatHarness,
) -> None:
    agent = Recorder()
    world = wechat.world
    await wechat.gateway(agent, login=False, **OPEN)
    world.add_past_message("wxid_alice", "sent while you logged in", age_s=10)
    world.add_past_message("wxid_bob", "too old", age_s=31)

    await world.login()

    assert [t.text for t in agent.turns] == ["sent while you logged in"]
    assert world.texts(to="wxid_alice") == ["echo: sent while you logged in"]
    assert world.texts(to="wxid_bob") == []


async def test_oversized_media_is_not_downloaded_and_the_agent_gets_a_note(
    wechat: WeChatHarness,
) -> None:
    agent = Recorder()
    await wechat.gateway(agent, mediaMaxMb=1, **OPEN)

    await wechat.world.say(
        "wxid_alice", "", media={"kind": "file", "name": "big.pdf", "size": 2 * 1024 * 1024}
    )

    (turn,) = agent.turns
    (item,) = turn.media
    assert item.path is None
    assert item.note is not None and "too large" in item.note
    assert item.name == "big.pdf"
    assert item.size == 2 * 1024 * 1024
    assert inbound_files(wechat.state_dir) == []


async def test_image_is_saved_with_the_same_bytes_and_sniffed_mime(
    wechat: WeChatHarness,
) -> None:
    agent = Recorder()
    await wechat.gateway(agent, **OPEN)
    world = wechat.world

    (msg_id,) = await world.say(
        "wxid_alice", "", media={"kind": "image", "name": "cat.png", "size": 40_000}
    )

    (item,) = agent.turns[0].media
    assert item.note is None
    assert item.kind == "image"
    assert item.mime == "image/png"
    assert item.path is not None and item.path.is_file()
    assert item.path.parent == (wechat.state_dir / "media" / "inbound" / "default").resolve()
    assert item.path.read_bytes() == world.message_data(msg_id)
    assert item.size == 40_000
    assert item.path.name.startswith("cat-") and item.path.suffix == ".png"


async def test_mime_comes_from_content_not_from_the_name(wechat: WeChatHarness) -> None:
    agent = Recorder()
    await wechat.gateway(agent, **OPEN)

    # a JPEG called .png, announced as text/plain by the sender
    await wechat.world.say(
        "wxid_alice",
        "",
        media={"kind": "image", "name": "photo.jpg", "size": 2000, "mime": "text/plain"},
    )

    assert agent.turns[0].media[0].mime == "image/jpeg"


async def test_same_file_name_twice_gets_two_files(wechat: WeChatHarness) -> None:
    agent = Recorder()
    await wechat.gateway(agent, **OPEN)
    media = {"kind": "image", "name": "same.png", "size": 500}

    await wechat.world.say("wxid_alice", "", media=media)
    await wechat.world.say("wxid_alice", "", media=media)

    paths = [t.media[0].path for t in agent.turns]
    assert paths[0] != paths[1]
    assert len(inbound_files(wechat.state_dir)) == 2


async def test_traversal_file_name_is_saved_inside_media_inbound(
    wechat: WeChatHarness,
) -> None:
    agent = Recorder()
    await wechat.gateway(agent, **OPEN)

    await wechat.world.say(
        "wxid_alice", "", media={"kind": "file", "name": "../../etc/passwd", "size": 300}
    )

    (item,) = agent.turns[0].media
    folder = (wechat.state_dir / "media" / "inbound" / "default").resolve()
    assert item.path is not None
    assert item.path.resolve().parent == folder
    assert ".." not in item.path.name and "/" not in item.path.name
    assert not item.path.name.startswith(".")
    assert item.name == "../../etc/passwd"  # the original name is still reported
    assert [p.name for p in inbound_files(wechat.state_dir)] == [item.path.name]
    assert not (wechat.state_dir / "etc").exists()


async def test_a_long_name_of_wide_letters_is_saved_and_its_message_reaches_the_agent(
    wechat: WeChatHarness,
) -> None:
    # 100 letters of 4 bytes each in UTF-8: cut to 80 characters, the name was 316 bytes,
    # over the 255 a file system takes; the message (its text too) never reached the agent
    agent = Recorder()
    await wechat.gateway(agent, **OPEN)
    name = "\U0001d400" * 100 + ".pdf"

    await wechat.world.say(
        "wxid_alice", "my file", media={"kind": "file", "name": name, "size": 300}
    )

    (turn,) = agent.turns
    (item,) = turn.media
    assert turn.text == "my file"
    assert item.note is None and item.path is not None and item.path.is_file()
    assert item.path.name.startswith("\U0001d400") and item.path.suffix == ".pdf"
    assert item.name == name  # the name as sent, for display


async def test_dm_history_gives_earlier_turns_with_replies_bounded_by_dm_history_limit(
    wechat: WeChatHarness,
) -> None:
    agent = Recorder()
    await wechat.gateway(agent, dmHistoryLimit=2, **OPEN)
    world = wechat.world

    for n in range(4):
        await world.say("wxid_alice", f"m{n}")
    await world.say("wxid_bob", "bob's own")

    assert agent.turns[0].history == ()
    assert [(h.role, h.text) for h in agent.turns[1].history] == [
        ("user", "m0"),
        ("assistant", "echo: m0"),
    ]
    assert [(h.role, h.text) for h in agent.turns[3].history] == [
        ("user", "m1"),
        ("assistant", "echo: m1"),
        ("user", "m2"),
        ("assistant", "echo: m2"),
    ]
    assert agent.turns[4].history == ()  # per conversation
    user, reply = agent.turns[3].history[2:]
    assert user.sender_id == "wxid_alice" and user.message_id
    assert reply.sender_id == "wxid_bot_default"


async def test_dm_history_limit_zero_gives_no_history(wechat: WeChatHarness) -> None:
    agent = Recorder()
    await wechat.gateway(agent, dmHistoryLimit=0, **OPEN)
    await wechat.world.say("wxid_alice", "one")
    await wechat.world.say("wxid_alice", "two")
    assert agent.turns[1].history == ()


async def test_dm_history_survives_a_gateway_restart(wechat: WeChatHarness) -> None:
    world = wechat.world
    first_agent = Recorder()
    first = await wechat.gateway(first_agent, **OPEN)
    await world.say("wxid_alice", "remember me")
    await first.close()

    agent = Recorder()
    # the puppet session survives: the new gateway logs in without a scan
    await wechat.gateway(agent, login=False, **OPEN)
    await world.run_until_idle()
    await world.say("wxid_alice", "did you?")

    # the message replayed at login was already answered: the dedupe window persists too
    assert [t.text for t in agent.turns] == ["did you?"]
    assert [(h.role, h.text) for h in agent.turns[0].history] == [
        ("user", "remember me"),
        ("assistant", "echo: remember me"),
    ]
    assert world.texts(to="wxid_alice") == ["echo: remember me", "echo: did you?"]


async def test_group_history_survives_a_gateway_restart(wechat: WeChatHarness) -> None:
    world = wechat.world
    world.add_room(id=R1, topic="Room")
    first = await wechat.gateway(Recorder())
    await world.say("wxid_alice", "context before restart", room=R1)
    await first.close()

    agent = Recorder()
    await wechat.gateway(agent, login=False)
    await world.run_until_idle()
    await world.say("wxid_alice", "go", room=R1, mention=True)

    assert [h.text for h in agent.turns[0].history] == ["context before restart"]


async def test_old_inbound_media_is_pruned_by_media_max_age_hours(wechat: WeChatHarness) -> None:
    agent = Recorder()
    await wechat.gateway(agent, mediaMaxAgeHours=1, **OPEN)
    world = wechat.world

    await world.say("wxid_alice", "", media={"kind": "image", "name": "old.png", "size": 100})
    await world.advance(2 * 3600)
    await world.say("wxid_alice", "", media={"kind": "image", "name": "new.png", "size": 100})

    old, new = (t.media[0].path for t in agent.turns)
    assert old is not None and new is not None
    assert [f.name for f in inbound_files(wechat.state_dir)] == [new.name]


async def test_one_accounts_media_max_age_never_prunes_another_accounts_files(
    wechat: WeChatHarness,
) -> None:
    world = wechat.world
    world.add_account("shortlived")
    agent = Recorder()
    config = {**OPEN, "accounts": {"default": {}, "shortlived": {"mediaMaxAgeHours": 1}}}
    await wechat.gateway(agent, **config)
    await world.say("wxid_alice", "", media={"kind": "image", "name": "a.png", "size": 100})
    await world.advance(2 * 3600)
    await world.say(
        "wxid_bob", "", media={"kind": "image", "name": "b.png", "size": 100}, account="shortlived"
    )
    kept = agent.turns[0].media[0].path
    assert kept is not None and kept.is_file()  # default keeps its files a week


async def test_dm_history_counts_turns_even_when_the_agent_stays_silent(
    wechat: WeChatHarness,
) -> None:
    turns: list[AgentTurn] = []

    async def quiet_agent(turn: AgentTurn) -> str | None:
        turns.append(turn)
        return None if turn.text.startswith("quiet") else f"echo: {turn.text}"

    await wechat.gateway(quiet_agent, dmHistoryLimit=2, **OPEN)
    world = wechat.world

    await world.say("wxid_alice", "loud 0")
    for n in range(1, 4):
        await world.say("wxid_alice", f"quiet {n}")
    await world.say("wxid_alice", "last")

    assert world.texts(to="wxid_alice") == ["echo: loud 0", "echo: last"]
    # two user turns, the silent ones without an assistant entry
    assert [(h.role, h.text) for h in turns[-1].history] == [
        ("user", "quiet 2"),
        ("user", "quiet 3"),
    ]


async def test_dedupe_mark_is_committed_before_the_reply_goes_out(
    wechat: WeChatHarness, monkeypatch: Any
) -> None:
    """The SQLite store groups its writes; a send still never precedes its message's mark,
    so a crash right after a reply cannot get the message answered again."""
    import sqlite3

    from wechat_sdk.stores.sqlite.db import Database

    # no commit after a delay: only the pre-send commit can make the marks durable
    monkeypatch.setattr(Database, "queued", lambda self: None)
    gw = await wechat.gateway(Recorder(), **OPEN)
    world = wechat.world
    puppet = world.puppet()
    db = wechat.state_dir / "wechat-sdk.sqlite3"
    seen_at_send: list[set[str]] = []
    real_send = puppet.send_text

    async def send_text(conversation_id: str, text: str, mention_ids: Any = ()) -> Any:
        raw = sqlite3.connect(db)  # what a restarted gateway would find
        try:
            seen_at_send.append({r[0] for r in raw.execute("SELECT message_id FROM dedupe")})
        finally:
            raw.close()
        return await real_send(conversation_id, text, mention_ids)

    monkeypatch.setattr(puppet, "send_text", send_text)
    ids = []
    for i in range(3):
        ids += await world.say(f"wxid_u{i}", f"hello {i}", settle=False)
    await world.run_until_idle()
    await gw.wait_idle()

    assert len(seen_at_send) == 3
    for i, marks in enumerate(seen_at_send):
        assert ids[i] in marks


async def test_the_echo_of_a_reply_is_known_by_its_id_without_loading_it(
    wechat: WeChatHarness,
) -> None:
    gw = await wechat.gateway(Recorder(), **OPEN)
    world = wechat.world
    puppet = world.puppet()
    loaded: list[str] = []
    load = puppet.message

    async def counting(message_id: str) -> Any:
        loaded.append(message_id)
        return await load(message_id)

    puppet.message = counting  # type: ignore[method-assign]
    [inbound] = await world.say("wxid_alice", "hello")
    [reply] = world.sent(to="wxid_alice")
    assert reply.text == "echo: hello"
    assert loaded == [inbound]  # the reply's echo came back, by an id the send returned
    assert gw.status()[0].drops.get("self") == 1

    # a send whose id the puppet did not return: its echo is loaded, and noted
    world.fault("send_lost_reply")
    await world.say("wxid_alice", "again")
    assert [e.text for e in world.sent(to="wxid_alice")] == ["echo: hello", "echo: again"]
    assert len(loaded) == 3 and loaded[2] == world.sent(to="wxid_alice")[1].message_id
    assert gw.status()[0].drops.get("self") == 2


async def test_files_saved_before_account_folders_are_pruned_with_the_default_accounts(
    wechat: WeChatHarness,
) -> None:
    agent = Recorder()
    await wechat.gateway(agent, mediaMaxAgeHours=1, **OPEN)
    world = wechat.world
    shared = wechat.state_dir / "media" / "inbound"
    shared.mkdir(parents=True, exist_ok=True)
    old = shared / "from-an-earlier-version.png"
    old.write_bytes(b"x")
    said = world.clock.now() - 2 * 3600
    os.utime(old, (said, said))
    await world.say("wxid_alice", "", media={"kind": "image", "name": "new.png", "size": 100})
    assert not old.exists()
    assert [f.name for f in inbound_files(wechat.state_dir)] == [agent.turns[0].media[0].path.name]
