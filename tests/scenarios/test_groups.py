"""Groups on the simulator: groupPolicy, the groups map, mentions, group history and tools."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from typing import Any

import pytest

from simulator import Recorder
from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.agent import AgentTurn, ToolNotAllowed

R1 = "r1@chatroom"
R2 = "r2@chatroom"
BOT = "wxid_bot_default"


@pytest.fixture
def rooms(wechat: WeChatHarness) -> tuple[str, str]:
    wechat.world.add_room(id=R1, topic="Room one", members=["wxid_alice", "wxid_bob"])
    wechat.world.add_room(id=R2, topic="Room two", members=["wxid_alice"])
    return R1, R2


async def test_unmentioned_message_is_not_answered_but_kept_as_history_then_cleared(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = Recorder()
    gw = await wechat.gateway(agent)
    world = wechat.world

    await world.say("wxid_alice", "lunch at noon?", room=R1)
    await world.say("wxid_bob", "sure", room=R1)
    assert world.sent() == []
    assert agent.turns == []
    assert gw.status()[0].drops.get("no_mention") == 2

    await world.say("wxid_alice", "what do you think?", room=R1, mention=True)
    assert world.texts(room=R1) == ["echo: what do you think?"]
    (turn,) = agent.turns
    assert turn.chat_type == "group"
    assert turn.room_id == R1
    assert turn.room_topic == "Room one"
    assert turn.mentioned
    assert [(h.sender_id, h.text, h.role) for h in turn.history] == [
        ("wxid_alice", "lunch at noon?", "user"),
        ("wxid_bob", "sure", "user"),
    ]
    assert all(h.message_id for h in turn.history)

    await world.say("wxid_bob", "and again", room=R1, mention=True)
    assert agent.turns[1].history == ()  # cleared once handed over


async def test_group_history_is_per_room_and_bounded_by_history_limit(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = Recorder()
    await wechat.gateway(agent, historyLimit=3)
    world = wechat.world

    for n in range(5):
        await world.say("wxid_alice", f"r1 #{n}", room=R1)
    await world.say("wxid_alice", "r2 only", room=R2)
    await world.say("wxid_alice", "go", room=R1, mention=True)

    assert [h.text for h in agent.turns[0].history] == ["r1 #2", "r1 #3", "r1 #4"]


async def test_history_limit_zero_keeps_no_group_history(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = Recorder()
    gw = await wechat.gateway(agent, historyLimit=0)
    await wechat.world.say("wxid_alice", "context", room=R1)
    # nothing is stored either (not only handed over): the store has no entry to clear
    assert gw.store.history.get("default", f"group:{R1}") == []
    await wechat.world.say("wxid_alice", "go", room=R1, mention=True)
    assert agent.turns[0].history == ()


async def test_mention_by_id_only_is_answered(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = Recorder()
    await wechat.gateway(agent)
    await wechat.world.say("wxid_alice", "ping", room=R1, mention="ids")
    assert wechat.world.texts(room=R1) == ["echo: ping"]
    assert agent.turns[0].raw_text == "ping"


async def test_mention_by_text_only_is_answered_and_stripped(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = Recorder()
    await wechat.gateway(agent)
    await wechat.world.say("wxid_alice", "ping", room=R1, mention="text")
    assert wechat.world.texts(room=R1) == ["echo: ping"]
    (turn,) = agent.turns
    assert turn.raw_text == "@Bot default\u2005ping"
    assert turn.text == "ping"


async def test_desktop_mention_with_a_plain_space_is_answered(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = Recorder()
    await wechat.gateway(agent)
    await wechat.world.say("wxid_alice", "@Bot default what time is it", room=R1)
    assert [t.text for t in agent.turns] == ["what time is it"]


async def test_mention_by_room_alias_is_answered(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = Recorder()
    await wechat.gateway(agent)
    world = wechat.world
    world.set_room_alias(R1, BOT, "小助手")

    await world.say("wxid_alice", "天气怎么样", room=R1, mention="text")

    (turn,) = agent.turns
    assert turn.raw_text == "@小助手\u2005天气怎么样"
    assert turn.text == "天气怎么样"
    # the alias is per room: in R2 "@小助手" is somebody else
    await world.say("wxid_alice", "@小助手\u2005hello", room=R2)
    assert len(agent.turns) == 1


async def test_a_room_alias_that_cannot_be_looked_up_still_lets_a_mention_by_id_through(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    """The alias is one more name to look for: its look-up failing (a Puppet Service's
    room member call) made every group message of the room fail its inbound steps, tried
    again and again, then dropped: never answered, mentioned by id or not."""
    agent = Recorder()
    await wechat.gateway(agent)
    puppet = wechat.world.puppet("default")

    async def broken_alias(room_id: str, contact_id: str) -> str | None:
        raise RuntimeError("RoomMemberPayload: member not found")

    puppet.room_alias = broken_alias  # type: ignore[method-assign]
    await wechat.world.say("wxid_alice", "ping", room=R1, mention="ids")
    assert [t.text for t in agent.turns] == ["ping"]


async def test_mention_of_someone_else_with_a_longer_name_is_not_a_mention(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = Recorder()
    await wechat.gateway(agent)
    await wechat.world.say("wxid_alice", "@Bot defaulter\u2005hi", room=R1)
    assert agent.turns == []


async def test_at_all_is_not_a_mention_by_default(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = Recorder()
    gw = await wechat.gateway(agent)
    await wechat.world.say("wxid_alice", "meeting now", room=R1, mention_all=True)
    assert agent.turns == []
    assert gw.status()[0].drops.get("no_mention") == 1


async def test_at_all_counts_with_mention_all(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = Recorder()
    await wechat.gateway(agent, mentionAll=True)
    await wechat.world.say("wxid_alice", "meeting now", room=R1, mention_all=True)
    assert len(agent.turns) == 1
    assert agent.turns[0].mentioned
    assert len(wechat.world.texts(room=R1)) == 1


async def test_only_the_leading_mention_is_stripped(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = Recorder()
    await wechat.gateway(agent)
    await wechat.world.say("wxid_alice", "tell @Bot default\u2005a joke", room=R1, mention="text")
    assert agent.turns[0].text == "tell @Bot default\u2005a joke"


async def test_per_group_override_wins_over_the_wildcard(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = Recorder()
    await wechat.gateway(
        agent, groups={"*": {"requireMention": True}, R2: {"requireMention": False}}
    )
    world = wechat.world

    await world.say("wxid_alice", "in r1", room=R1)
    await world.say("wxid_alice", "in r2", room=R2)

    assert world.texts(room=R1) == []
    assert world.texts(room=R2) == ["echo: in r2"]
    assert agent.turns[0].mentioned is False


async def test_group_policy_disabled_drops_even_mentioned_messages(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = Recorder()
    gw = await wechat.gateway(agent, groupPolicy="disabled", dmPolicy="open", allowFrom=["*"])
    world = wechat.world

    await world.say("wxid_alice", "hello", room=R1, mention=True)
    await world.say("wxid_alice", "dm still works")

    assert world.texts(room=R1) == []
    assert world.texts(to="wxid_alice") == ["echo: dm still works"]
    assert gw.status()[0].drops.get("group_disabled") == 1


async def test_group_policy_allowlist_listens_only_to_listed_groups(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = Recorder()
    gw = await wechat.gateway(agent, groupPolicy="allowlist", groups={R1: {}})
    world = wechat.world

    await world.say("wxid_alice", "in r1", room=R1, mention=True)
    await world.say("wxid_alice", "in r2", room=R2, mention=True)

    assert world.texts(room=R1) == ["echo: in r1"]
    assert world.texts(room=R2) == []
    assert gw.status()[0].drops.get("group_not_allowed") == 1


async def test_group_policy_allowlist_with_empty_groups_listens_to_none(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = Recorder()
    await wechat.gateway(agent, groupPolicy="allowlist")
    await wechat.world.say("wxid_alice", "hi", room=R1, mention=True)
    assert agent.turns == []


async def test_open_policy_with_groups_map_without_wildcard_acts_as_allowlist(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = Recorder()
    await wechat.gateway(agent, groupPolicy="open", groups={R2: {"requireMention": False}})
    world = wechat.world

    await world.say("wxid_alice", "in r1", room=R1, mention=True)
    await world.say("wxid_alice", "in r2", room=R2)

    assert world.texts(room=R1) == []
    assert world.texts(room=R2) == ["echo: in r2"]


async def test_open_policy_with_wildcard_listens_to_every_group(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = Recorder()
    await wechat.gateway(agent, groups={"*": {}, R2: {"requireMention": False}})
    await wechat.world.say("wxid_alice", "in r1", room=R1, mention=True)
    assert wechat.world.texts(room=R1) == ["echo: in r1"]


async def test_group_allow_from_limits_senders(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = Recorder()
    gw = await wechat.gateway(
        agent, groupPolicy="allowlist", groups={"*": {}}, groupAllowFrom=["wx:wxid_alice"]
    )
    world = wechat.world

    await world.say("wxid_bob", "me?", room=R1, mention=True)
    await world.say("wxid_alice", "me!", room=R1, mention=True)

    assert [t.sender_id for t in agent.turns] == ["wxid_alice"]
    assert world.texts(room=R1) == ["echo: me!"]
    assert gw.status()[0].drops.get("sender_not_allowed") == 1


async def test_group_allow_from_limits_senders_under_the_open_policy_too(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    """groupAllowFrom is no allowlist-only key (as its reference line said): under the
    default ``open`` policy it still decides who is answered, and a stranger's message is
    not kept as history either."""
    agent = Recorder()
    gw = await wechat.gateway(agent, groupAllowFrom=["wxid_alice"])
    world = wechat.world

    await world.say("wxid_bob", "me?", room=R1, mention=True)
    await world.say("wxid_bob", "and me", room=R1)
    await world.say("wxid_alice", "me!", room=R1, mention=True)

    (turn,) = agent.turns
    assert turn.sender_id == "wxid_alice" and turn.history == ()
    assert gw.status()[0].drops.get("sender_not_allowed") == 2


async def test_groups_never_consult_the_pairing_store(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = Recorder()
    gw = await wechat.gateway(agent)  # dmPolicy pairing by default
    await wechat.world.say("wxid_stranger", "hi", room=R1, mention=True)
    assert [t.sender_id for t in agent.turns] == ["wxid_stranger"]
    assert gw.pairing.list() == []


class ToolAgent:
    """Calls the forbidden tool and the allowed ones; records what happened."""

    def __init__(self) -> None:
        self.names: list[list[str]] = []
        self.refused: list[str] = []
        self.results: list[Any] = []

    async def __call__(self, turn: AgentTurn) -> str:
        self.names.append(list(turn.tools.names))
        for name in ("weather", "search", "shell"):
            try:
                self.results.append(await turn.tools.call(name, city="Paris"))
            except ToolNotAllowed:
                self.refused.append(name)
        return "ok"


def register_tools(gw: Any) -> None:
    async def weather(city: str) -> str:
        return f"sunny in {city}"

    gw.tools.register("weather", weather)
    gw.tools.register("search", lambda city: f"results for {city}")

    def shell(city: str) -> str:
        return "rm -rf"

    gw.tools.register("shell", shell)


async def test_group_tools_as_list_limits_the_tools_and_refusals_are_logged(
    wechat: WeChatHarness, rooms: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    agent = ToolAgent()
    gw = await wechat.gateway(agent, groups={R1: {"tools": ["weather", "not_registered"]}})
    register_tools(gw)

    with caplog.at_level(logging.WARNING, logger="wechat_sdk.agent"):
        await wechat.world.say("wxid_alice", "weather?", room=R1, mention=True)

    assert agent.names == [["weather"]]
    assert agent.results == ["sunny in Paris"]
    assert agent.refused == ["search", "shell"]
    refusals = [r.getMessage() for r in caplog.records if "tool_not_allowed" in r.getMessage()]
    assert len(refusals) == 2
    assert any("'shell'" in m and R1 in m for m in refusals)


async def test_group_tools_as_policy_object_allow_also_allow_deny(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = ToolAgent()
    gw = await wechat.gateway(
        agent,
        groups={
            "*": {"tools": {"deny": ["shell"]}},
            R2: {
                "tools": {
                    "allow": ["weather", "shell"],
                    "alsoAllow": ["search"],
                    "deny": ["weather"],
                }
            },
        },
    )
    register_tools(gw)
    world = wechat.world

    await world.say("wxid_alice", "in r1", room=R1, mention=True)
    await world.say("wxid_alice", "in r2", room=R2, mention=True)

    assert agent.names == [["search", "weather"], ["search", "shell"]]
    assert agent.refused == ["shell", "weather"]


async def test_dm_turns_get_every_registered_tool(
    wechat: WeChatHarness, rooms: tuple[str, str]
) -> None:
    agent = ToolAgent()
    gw = await wechat.gateway(agent, dmPolicy="open", allowFrom=["*"], groups={"*": {"tools": []}})
    register_tools(gw)
    world = wechat.world

    await world.say("wxid_alice", "dm")
    await world.say("wxid_alice", "group", room=R1, mention=True)

    assert agent.names == [["search", "shell", "weather"], []]
    assert agent.refused == ["weather", "search", "shell"]


# ---------------------------------------------------------------- several accounts


TEAM = "team@chatroom"


@pytest.fixture
def two_bots(wechat: WeChatHarness) -> str:
    """The accounts ``default`` and ``b`` of one gateway, both in the group TEAM."""
    wechat.world.add_account("b")
    wechat.world.add_room(TEAM, "Team", ["wxid_alice", BOT, "wxid_bot_b"])
    return TEAM


def drops(gw: Any, account: str) -> dict[str, int]:
    return next(s.drops for s in gw.status() if s.account == account)


async def test_two_accounts_in_one_group_answer_the_user_and_never_each_other(
    wechat: WeChatHarness, two_bots: str
) -> None:
    # each bot gets the other's reply, as in WeChat: taken for a user's message, it was
    # answered, and that answer too, for ever
    agent = Recorder()
    gw = await wechat.gateway(agent, groups={"*": {"requireMention": False}})
    world = wechat.world

    await world.say("wxid_alice", "hello bots", room=TEAM, settle=False)
    await world.clock.advance(300)  # bounded: bots answering each other never go idle

    assert sorted((e.account, e.text) for e in world.sent(room=TEAM)) == [
        ("b", "echo: hello bots"),
        ("default", "echo: hello bots"),
    ]
    assert [t.sender_id for t in agent.turns] == ["wxid_alice", "wxid_alice"]
    assert drops(gw, "default")["own_account"] == drops(gw, "b")["own_account"] == 1
    await world.run_until_idle()
    assert len(world.sent(room=TEAM)) == 2


async def test_another_accounts_group_message_is_kept_as_history(
    wechat: WeChatHarness, two_bots: str
) -> None:
    # never answered, even when it mentions the bot; but what one bot said in the group is
    # context for the other, as any member's unanswered message
    agent = Recorder()
    await wechat.gateway(agent)
    world = wechat.world

    await world.say("wxid_alice", "who is on call?", room=TEAM, account="default", mention=True)
    await world.drive(wechat.gateways[0].send(None, "@Bot b are you?", room=TEAM))
    await world.say("wxid_alice", "so?", room=TEAM, account="b", mention=True)

    assert [(t.account_id, t.text) for t in agent.turns] == [
        ("default", "who is on call?"),
        ("b", "so?"),
    ]
    assert [(h.sender_id, h.text) for h in agent.turns[1].history] == [
        (BOT, "echo: who is on call?"),
        (BOT, "@Bot b are you?"),
    ]


async def test_a_groups_key_that_is_the_groups_name_is_said_once_with_its_id(
    wechat: WeChatHarness, rooms: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    # the user keyed the group by the name they see in WeChat: its settings never apply
    groups = {"*": {"requireMention": True}, "Room one": {"requireMention": False}}
    await wechat.gateway(Recorder(), groups=groups)
    with caplog.at_level(logging.WARNING, logger="wechat_sdk.inbound"):
        await wechat.world.say("wxid_alice", "anyone?", room=R1)
        await wechat.world.say("wxid_alice", "hello?", room=R1)
        await wechat.world.say("wxid_alice", "in two", room=R2)
    told = [r.getMessage() for r in caplog.records if "group_key_is_name" in r.getMessage()]
    assert len(told) == 1
    assert "'Room one'" in told[0] and R1 in told[0]
    assert wechat.world.sent() == []  # a name is not taken for the id: still by "*"


# ---------------------------------------------------------------- how a tool is run


async def test_a_sync_tool_called_by_a_custom_agent_runs_off_the_loop_and_can_be_given_up(
    wechat: WeChatHarness,
) -> None:
    """``turn.tools.call`` ran a sync tool on the event loop: one stuck on a blocking call
    held every conversation of every account, and a timeout around the call could not
    give it up. It runs in a thread of its own, as the configured assistant runs it."""
    release = threading.Event()
    seen = contextvars.ContextVar("seen", default="")
    outcomes: list[str] = []
    answered = asyncio.Event()

    def lookup(word: str) -> str:
        release.wait(8)  # (set below; bounded, so that a loop it blocked goes on)
        return f"{word}: {seen.get()}"

    async def agent(turn: AgentTurn) -> str:
        seen.set(turn.sender_id)
        try:
            async with asyncio.timeout(0.2):  # (real time: the world's is virtual)
                outcomes.append(await turn.tools.call("lookup", word="pineapple"))
        except TimeoutError:
            outcomes.append("given up")
        answered.set()
        return "ok"

    gw = await wechat.gateway(agent, dmPolicy="open", allowFrom=["*"])
    gw.tools.register("lookup", lookup)
    said = asyncio.ensure_future(wechat.world.say("wxid_alice", "what is a pineapple?"))
    async with asyncio.timeout(5):
        await answered.wait()
    assert outcomes == ["given up"]
    release.set()
    await said
    await gw.wait_idle()
    assert wechat.world.texts(to="wxid_alice") == ["ok"]

    outcomes.clear()  # released: it answers, in the caller's context
    await wechat.world.say("wxid_bob", "and now?")
    assert outcomes == ["pineapple: wxid_bob"]
    assert wechat.world.texts(to="wxid_bob") == ["ok"]


async def test_a_sync_tool_in_its_thread_is_waited_for_by_the_virtual_world(
    wechat: WeChatHarness,
) -> None:
    """The world moves on when the loop has nothing to do; a sync tool running in its
    thread is work it waits for, so the answer is there when ``say`` returns."""

    def slow(word: str) -> str:
        time.sleep(0.05)
        return f"looked up {word}"

    async def agent(turn: AgentTurn) -> str:
        return str(await turn.tools.call("slow", word=turn.text))

    gw = await wechat.gateway(agent, dmPolicy="open", allowFrom=["*"])
    gw.tools.register("slow", slow)
    for n in range(5):
        await wechat.world.say("wxid_alice", f"w{n}")
        assert wechat.world.texts(to="wxid_alice")[-1] == f"looked up w{n}"


async def test_a_sync_tool_raising_stopiteration_fails_its_call_and_the_world_goes_on(
    wechat: WeChatHarness,
) -> None:
    """A sync tool's ``next()`` on an empty iterator raises StopIteration, which asyncio
    cannot put in a future (TypeError on Python 3.11): its call never ended, and the
    world, counting the thread's work as in flight, never became idle. It fails as an
    error of the tool's, that the agent can catch."""

    def first_match(word: str) -> str:
        return next(w for w in ["apple", "pear"] if w.startswith(word))

    outcomes: list[str] = []

    async def agent(turn: AgentTurn) -> str:
        try:
            return str(await turn.tools.call("first_match", word=turn.text))
        except Exception as exc:
            outcomes.append(type(exc).__name__)
            return "no match"

    gw = await wechat.gateway(agent, dmPolicy="open", allowFrom=["*"])
    gw.tools.register("first_match", first_match)
    async with asyncio.timeout(10):  # (real time: without the fix, it never ends)
        await wechat.world.say("wxid_alice", "kiwi")
    assert wechat.world.texts(to="wxid_alice") == ["no match"]
    assert outcomes == ["RuntimeError"]
    await wechat.world.say("wxid_alice", "pe")
    assert wechat.world.texts(to="wxid_alice")[-1] == "pear"
