"""What the agent is handed as context: the history of the conversation as it stands
when the turn is answered, a file sent without text named in it."""

from __future__ import annotations

from typing import Any

from simulator import Recorder
from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.agent import AgentTurn, Reply
from wechat_sdk.puppet import OutboundFile

OPEN: dict[str, Any] = {"dmPolicy": "open", "allowFrom": ["*"], "pacing": False}


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def roles_and_texts(turn: AgentTurn) -> list[tuple[str, str]]:
    return [(h.role, h.text) for h in turn.history]


async def test_a_dm_that_came_while_the_last_one_was_answered_gets_that_turn_as_history(
    wechat: WeChatHarness,
) -> None:
    """Two messages in a row: the second waits for the first's turn (one turn at a time
    per conversation), and is answered knowing it (it came with no history)."""
    world = wechat.world
    turns: list[AgentTurn] = []

    async def thinking(turn: AgentTurn) -> str:
        turns.append(turn)
        await world.clock.sleep(5)
        return f"echo: {turn.text}"

    await wechat.gateway(thinking, **OPEN)
    await world.say("wxid_alice", "my name is Bob", settle=False)
    await world.say("wxid_alice", "what is my name?", settle=False)
    await world.run_until_idle()

    assert [t.text for t in turns] == ["my name is Bob", "what is my name?"]
    assert roles_and_texts(turns[1]) == [
        ("user", "my name is Bob"),
        ("assistant", "echo: my name is Bob"),
    ]


async def test_a_file_sent_without_text_is_named_in_history(wechat: WeChatHarness) -> None:
    """An image, a file or a voice sent alone has no text: its history entry names it
    (an empty entry told the agent nothing, and a model was given its own reply to it
    with no message before it)."""
    world = wechat.world
    world.add_room(id="r1@chatroom", topic="Room")
    agent = Recorder()
    await wechat.gateway(agent, **OPEN)
    await world.say("wxid_alice", media={"kind": "image", "name": "cat.png", "size": 100})
    await world.say("wxid_alice", "call me", media={"kind": "audio", "duration": 2.0})
    await world.say("wxid_alice", "and?")
    await world.say(
        "wxid_bob", room="r1@chatroom", media={"kind": "file", "name": "plan.pdf", "size": 10}
    )
    await world.say("wxid_bob", "look", room="r1@chatroom", mention=True)

    dm, group = agent.turns[2], agent.turns[3]
    assert roles_and_texts(dm) == [
        ("user", "[image: cat.png]"),
        ("assistant", "echo:"),
        ("user", "call me"),  # a voice's transcript is its text
        ("assistant", "echo: call me"),
    ]
    assert [h.text for h in group.history] == ["[file: plan.pdf]"]


async def test_a_reply_of_files_only_is_named_in_history_as_it_went_out(
    wechat: WeChatHarness,
) -> None:
    """A reply that is only files left no assistant entry: the next turn did not know the
    bot had sent anything. Each file that went out is named as a user's file is; one that
    was refused (a voice without its duration) is not; a caption is followed by its files."""
    world = wechat.world
    chart = OutboundFile(name="chart.png", kind="image", data=PNG)
    replies = {
        "chart?": Reply(
            files=[OutboundFile(name="v.silk", kind="audio", data=b"#!SILK_V3"), chart]
        ),
        "notes?": Reply(text="Here they are", files=[OutboundFile(name="notes.txt", data=b"x")]),
    }
    turns: list[AgentTurn] = []

    async def agent(turn: AgentTurn) -> str | Reply:
        turns.append(turn)
        return replies.get(turn.text, "ok")

    await wechat.gateway(agent, **OPEN)
    for text in ("chart?", "notes?", "thanks"):
        await world.say("wxid_alice", text)

    assert [e.media and e.media["name"] for e in world.sent(to="wxid_alice")][:1] == ["chart.png"]
    assert roles_and_texts(turns[2]) == [
        ("user", "chart?"),
        ("assistant", "[image: chart.png]"),
        ("user", "notes?"),
        ("assistant", "Here they are\n\n[file: notes.txt]"),
    ]
