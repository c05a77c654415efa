"""What the gateway remembers when a reply fails: the newest error in status, and in DM
history exactly the part of the reply that did reach WeChat. Time is virtual."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from simulator.pytest_plugin import WeChatHarness
from simulator.world import SimulatedWeChat
from wechat_sdk.agent import AgentTurn, Reply
from wechat_sdk.gateway import Gateway
from wechat_sdk.puppet import OutboundFile

OPEN: dict[str, Any] = {"dmPolicy": "open", "allowFrom": ["*"]}


def last_error(gw: Gateway) -> str:
    return next(s for s in gw.status() if s.account == "default").last_error or ""


class Scripted:
    """An agent answering by sender; remembers every turn's history."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.histories: list[list[tuple[str, str]]] = []

    async def __call__(self, turn: AgentTurn) -> Any:
        self.histories.append([(h.role, h.text) for h in turn.history])
        answer = self.answers[turn.sender_id]
        if isinstance(answer, Exception):
            raise answer
        return answer(turn) if callable(answer) else answer


async def test_newer_agent_error_is_not_hidden_by_an_older_send_error(
    wechat: WeChatHarness,
) -> None:
    agent = Scripted({"wxid_alice": "pong", "wxid_bob": RuntimeError("model overloaded")})
    gw = await wechat.gateway(agent, errorNotice=False, **OPEN)
    wechat.world.fault("send_fail_permanent")
    await wechat.world.say("wxid_alice", "ping")
    assert "cannot receive" in last_error(gw)

    await wechat.world.say("wxid_bob", "ping")
    # every status refresh keeps showing the newest error, not the older send failure
    assert last_error(gw) == "agent error: RuntimeError: model overloaded"
    assert last_error(gw) == "agent error: RuntimeError: model overloaded"


async def test_newer_send_error_replaces_an_older_agent_error(wechat: WeChatHarness) -> None:
    agent = Scripted({"wxid_alice": "pong", "wxid_bob": RuntimeError("model overloaded")})
    gw = await wechat.gateway(agent, errorNotice=False, **OPEN)
    await wechat.world.say("wxid_bob", "ping")
    assert last_error(gw).startswith("agent error")
    wechat.world.fault("send_fail_permanent")
    await wechat.world.say("wxid_alice", "ping")
    assert last_error(gw) == ("send to wxid_alice failed: the contact cannot receive messages")


async def test_text_that_went_out_before_a_file_failed_is_in_history(
    wechat: WeChatHarness,
) -> None:
    # a voice file without its duration is refused after the caption went out
    broken = Reply(
        text="Here is the recording", files=[OutboundFile(name="v.silk", kind="audio", data=b"x")]
    )
    agent = Scripted({"wxid_alice": lambda turn: broken if turn.text == "voice" else "ok"})
    await wechat.gateway(agent, **OPEN)
    await wechat.world.say("wxid_alice", "voice")
    assert wechat.world.texts(to="wxid_alice") == ["Here is the recording"]

    await wechat.world.say("wxid_alice", "again")
    assert agent.histories[-1] == [("user", "voice"), ("assistant", "Here is the recording")]


def failing_stream(world: SimulatedWeChat) -> Any:
    def agent(turn: AgentTurn) -> AsyncIterator[str]:
        async def gen() -> AsyncIterator[str]:
            yield "Here is the first part. "
            await world.clock.sleep(0.2)
            yield "And a second one."
            raise RuntimeError("the model fell over")

        return gen()

    return agent


async def test_streamed_reply_failing_partway_keeps_what_went_out_in_history(
    wechat: WeChatHarness,
) -> None:
    world = wechat.world
    stream = failing_stream(world)
    agent = Scripted({"wxid_alice": lambda turn: stream(turn) if turn.text == "go" else "ok"})
    await wechat.gateway(
        agent, errorNotice=False, draftChunk={"minChars": 20, "maxChars": 60}, **OPEN
    )
    await world.say("wxid_alice", "go")
    assert world.texts(to="wxid_alice") == ["Here is the first part. And a second one."]

    await world.say("wxid_alice", "and?")
    assert agent.histories[-1] == [
        ("user", "go"),
        ("assistant", "Here is the first part. And a second one."),
    ]


async def test_permanent_failure_of_a_later_block_keeps_the_earlier_one_in_history(
    wechat: WeChatHarness,
) -> None:
    world = wechat.world

    def agent_stream(turn: AgentTurn) -> AsyncIterator[str]:
        async def gen() -> AsyncIterator[str]:
            yield "The first block is long enough to go out. "
            await world.clock.sleep(2.0)  # idle: the first block is sent
            world.fault("send_fail_permanent")  # the contact blocks the bot now
            yield "The second block never arrives."

        return gen()

    agent = Scripted({"wxid_alice": lambda t: agent_stream(t) if t.text == "go" else "ok"})
    gw = await wechat.gateway(
        agent, draftChunk={"minChars": 20, "maxChars": 60, "idleMs": 1000}, **OPEN
    )
    await world.say("wxid_alice", "go")
    assert world.texts(to="wxid_alice") == ["The first block is long enough to go out."]
    assert "cannot receive" in last_error(gw)

    await world.say("wxid_alice", "still there?")
    assert agent.histories[-1] == [
        ("user", "go"),
        ("assistant", "The first block is long enough to go out."),
    ]


async def test_a_failed_sends_log_line_names_its_account(
    wechat: WeChatHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    # `gateway run`'s log: "[-]" where the account should be, on the lines of the account's
    # work that name no account of their own (send failed for good, a library's warning)
    from wechat_sdk.gateway.service import configure_logging

    configure_logging("json")
    gw = await wechat.gateway(Scripted({"wxid_alice": "pong"}), errorNotice=False, **OPEN)
    wechat.world.fault("send_fail_permanent")
    await wechat.world.say("wxid_alice", "ping")
    assert "cannot receive" in last_error(gw)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    (failed,) = [line for line in lines if "send failed for good" in line["message"]]
    assert failed["account"] == "default"


async def test_a_failed_proactive_sends_log_line_names_its_account(
    wechat: WeChatHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    from wechat_sdk.gateway.service import configure_logging
    from wechat_sdk.outbound.delivery import DeliveryFailed

    configure_logging("json")
    gw = await wechat.gateway(Scripted({}), errorNotice=False, **OPEN)
    wechat.world.fault("send_fail_permanent")
    with pytest.raises(DeliveryFailed):
        await wechat.world.drive(gw.send("wxid_alice", "the backup is done"))
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    (failed,) = [line for line in lines if "send failed for good" in line["message"]]
    assert failed["account"] == "default"
