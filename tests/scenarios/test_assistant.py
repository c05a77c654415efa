"""The assistant from the config, end to end on the simulator: a fake OpenAI-compatible
server streaming real SSE over HTTP (through the official client), MCP tools from a real
MCP server (FastMCP, over stdio and streamable HTTP), the group allowlist, failures."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import socket
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from simulator.fake_model import FakeModel, ModelStep
from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.assistants import ConfiguredAssistant, mcp_tools
from wechat_sdk.assistants.mcp_tools import McpServer
from wechat_sdk.assistants.offered_tools import MAX_RESULT_CHARS
from wechat_sdk.config import parse_config
from wechat_sdk.config.assistant import McpServerConfig
from wechat_sdk.gateway import Gateway

TOOL_SERVER = str(Path(__file__).with_name("mcp_tool_server.py"))
OPEN: dict[str, Any] = {"dmPolicy": "open", "allowFrom": ["*"], "pacing": False}
KEY = "sk-test-0123456789abcdef"
NOTICE = "The assistant is unavailable right now."


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture
async def model() -> AsyncIterator[FakeModel]:
    fake = FakeModel([ModelStep(text="hello")])
    yield fake
    await fake.close()


async def start(
    wechat: WeChatHarness,
    fake: FakeModel,
    *,
    agent: dict[str, Any] | None = None,
    tools_server: bool = False,
    **wechat_keys: Any,
) -> tuple[Gateway, ConfiguredAssistant]:
    base_url = await fake.serve()
    block: dict[str, Any] = {
        "baseUrl": base_url,
        "apiKey": KEY,
        "model": "test-model",
        "maxRetries": 1,
        "failureText": NOTICE,
    }
    if tools_server:
        block["mcpServers"] = {"tools": {"command": sys.executable, "args": [TOOL_SERVER]}}
    block.update(agent or {})
    assistant = ConfiguredAssistant()
    keys = {**OPEN, **wechat_keys, "agent": block}
    gw = await wechat.gateway(assistant, {"channels": {"wechat": keys}})
    return gw, assistant


async def answered(wechat: WeChatHarness, gw: Gateway) -> None:
    """Every turn answered: virtual time moves while the model answers in real time."""
    task = asyncio.ensure_future(gw.wait_idle())
    async with asyncio.timeout(30):
        while not task.done():
            await wechat.world.run_until_idle()
            await asyncio.sleep(0.005)


async def say(wechat: WeChatHarness, gw: Gateway, sender: str, text: str, **kw: Any) -> None:
    await wechat.world.say(sender, text, **kw)
    await answered(wechat, gw)


def offered(request: dict[str, Any]) -> set[str]:
    return {t["function"]["name"] for t in request.get("tools", [])}


def tool_replies(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


# ---------------------------------------------------------------- streaming


async def test_the_answer_streams_in_blocks_by_the_draft_chunk_rules(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    text = " ".join(f"Sentence {i} of a long answer about the weather." for i in range(12))
    model.script = [ModelStep(text=text, piece_chars=3)]
    gw, _ = await start(
        wechat, model, draftChunk={"minChars": 80, "maxChars": 150, "idleMs": 60_000}
    )
    await say(wechat, gw, "wxid_alice", "tell me about the weather")
    blocks = wechat.world.texts(to="wxid_alice")
    assert len(blocks) >= 3
    assert all(len(b) <= 150 for b in blocks)
    assert all(len(b) >= 80 for b in blocks[:-1])
    assert squash("".join(blocks)) == squash(text)


async def test_streaming_off_sends_the_whole_answer_flattened(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    model.script = [ModelStep(text="It is **sunny** today.\n\n- warm\n- dry")]
    gw, _ = await start(wechat, model, streamMode="off")
    await say(wechat, gw, "wxid_alice", "weather?")
    (reply,) = wechat.world.texts(to="wxid_alice")
    assert "**" not in reply  # markdown flattened as for any reply
    assert "sunny" in reply and "warm" in reply


# ---------------------------------------------------------------- what the model sees


async def test_the_model_gets_the_prompt_the_dm_history_and_the_message(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    model.script = [ModelStep(text="Nice to meet you, Alice."), ModelStep(text="You are Alice.")]
    gw, _ = await start(wechat, model, agent={"systemPrompt": "Be kind."})
    await say(wechat, gw, "wxid_alice", "my name is Alice")
    await say(wechat, gw, "wxid_alice", "who am I?")
    messages = model.requests[1]["messages"]
    assert messages[0]["role"] == "system" and messages[0]["content"].startswith("Be kind.")
    assert [(m["role"], m["content"]) for m in messages[1:]] == [
        ("user", "my name is Alice"),
        ("assistant", "Nice to meet you, Alice."),
        ("user", "who am I?"),
    ]


async def test_in_a_group_the_model_sees_who_said_what(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    world = wechat.world
    world.add_contact("wxid_carol", name="Carol")
    world.add_contact("wxid_dave", name="Dave")
    world.add_room("hike@chatroom", topic="Hiking", members=["wxid_carol", "wxid_dave"])
    gw, _ = await start(wechat, model)
    await say(wechat, gw, "wxid_carol", "who brings the map?", room="hike@chatroom")
    await say(wechat, gw, "wxid_dave", "bot, any ideas?", room="hike@chatroom", mention=True)
    (request,) = model.requests
    (user,) = [m["content"] for m in request["messages"] if m["role"] == "user"]
    earlier, message = user.split("\n")
    assert earlier == "Carol: who brings the map?"
    assert message.startswith("Dave: ") and "any ideas?" in message
    assert '"Hiking"' in request["messages"][0]["content"]


def roles_alternate(body: dict[str, Any]) -> bool:
    """Whether a strict chat template takes the request's messages, as Mistral's and
    Gemma's do served by vLLM: after the system message, user and assistant alternate,
    the first a user's (tool results, and the answers that call tools, aside)."""
    said = [
        m["role"]
        for m in body["messages"]
        if m["role"] in ("user", "assistant") and not m.get("tool_calls")
    ]
    return all(role == ("user" if i % 2 == 0 else "assistant") for i, role in enumerate(said))


def strict_template(answer: str) -> Any:
    """A model served with a strict chat template: a request whose roles do not alternate
    is refused (vLLM: HTTP 400, "Conversation roles must alternate user/assistant/...")."""

    def script(body: dict[str, Any]) -> ModelStep:
        return ModelStep(text=answer) if roles_alternate(body) else ModelStep(status=400)

    return script


async def test_a_strict_chat_template_takes_a_groups_unanswered_messages(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    """The group's unanswered messages went as consecutive user messages: a Mistral or
    Gemma model on vLLM refused every answer in a group that had talked before."""
    world = wechat.world
    world.add_contact("wxid_carol", name="Carol")
    world.add_contact("wxid_dave", name="Dave")
    world.add_room("hike@chatroom", topic="Hiking", members=["wxid_carol", "wxid_dave"])
    model.script = strict_template("Carol brings it.")
    gw, _ = await start(wechat, model)
    await say(wechat, gw, "wxid_carol", "who brings the map?", room="hike@chatroom")
    await say(wechat, gw, "wxid_dave", "I have no map", room="hike@chatroom")
    await say(wechat, gw, "wxid_dave", "bot, any ideas?", room="hike@chatroom", mention=True)
    assert world.texts(room="hike@chatroom") == ["Carol brings it."]
    (request,) = model.requests
    assert [m["role"] for m in request["messages"]] == ["system", "user"]
    # one user message, each message on its own line with its sender's name
    lines = request["messages"][1]["content"].split("\n")
    assert lines[:2] == ["Carol: who brings the map?", "Dave: I have no map"]
    assert lines[2].startswith("Dave: ") and "any ideas?" in lines[2]


async def test_a_strict_chat_template_takes_a_dm_history_that_lost_its_first_message(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    """With the history cut to its newest turn, and a message the model said nothing to,
    the history began with the bot's answer: refused by a strict template."""
    strict = strict_template("Three.")

    def script(body: dict[str, Any]) -> ModelStep:
        # "two" gets an empty answer: nothing is sent, the turn has no reply
        first = [ModelStep(text="One."), ModelStep(text="")]
        n = len(model.requests)
        return first[n - 1] if n <= len(first) else strict(body)

    model.script = script
    gw, _ = await start(wechat, model, dmHistoryLimit=1)
    await say(wechat, gw, "wxid_alice", "one")
    await say(wechat, gw, "wxid_alice", "two")
    await say(wechat, gw, "wxid_alice", "three")
    assert wechat.world.texts(to="wxid_alice") == ["One.", "Three."]
    messages = model.requests[2]["messages"]
    assert [(m["role"], m["content"]) for m in messages[1:]] == [("user", "two\nthree")]


async def test_each_conversation_has_its_own_user_key_and_headers(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    gw, _ = await start(
        wechat,
        model,
        agent={"headers": {"x-openclaw-agent-id": "main", "x-session": "wx-{conversationId}"}},
    )
    await say(wechat, gw, "wxid_alice", "hi")
    await say(wechat, gw, "wxid_bob", "hi")
    assert [r["user"] for r in model.requests] == [
        "wechat:default:wxid_alice",
        "wechat:default:wxid_bob",
    ]
    assert [h["x-session"] for h in model.headers] == ["wx-wxid_alice", "wx-wxid_bob"]
    assert model.headers[0]["x-openclaw-agent-id"] == "main"
    assert model.headers[0]["authorization"] == f"Bearer {KEY}"


# ---------------------------------------------------------------- tools


def openai_refuses(body: dict[str, Any]) -> list[str]:
    """What OpenAI refuses (HTTP 400) in a request's tools: a description over 1024
    characters, parameters that are no object schema with ``properties``."""
    problems = []
    for tool in body.get("tools", []):
        function = tool["function"]
        if len(function.get("description", "")) > 1024:
            problems.append(f"{function['name']}: string_above_max_length")
        parameters = function.get("parameters", {})
        if parameters.get("type") != "object" or "properties" not in parameters:
            problems.append(f"{function['name']}: object schema missing properties")
    return problems


def calling(name: str, arguments: dict[str, Any], then: str = "done") -> Any:
    """A model that calls ``name`` once, then answers with what the tool said."""

    def script(body: dict[str, Any]) -> ModelStep:
        replies = tool_replies(body)
        if replies:
            return ModelStep(text=f"{then}: {replies[-1]}")
        return ModelStep(tool_calls=[(name, arguments)])

    return script


async def test_an_mcp_tool_is_called_and_its_result_reaches_the_user(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    model.script = calling("add", {"a": 2, "b": 40}, then="the sum is")
    gw, _ = await start(wechat, model, tools_server=True)
    await say(wechat, gw, "wxid_alice", "what is 2 + 40?")
    assert wechat.world.texts(to="wxid_alice") == ["the sum is: 42"]
    assert offered(model.requests[0]) >= {"add", "secret_word", "process_id"}


async def test_groups_get_only_the_tools_their_allowlist_names(
    wechat: WeChatHarness, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    world = wechat.world
    for room in ("all@chatroom", "sums@chatroom"):
        world.add_room(room, topic=room, members=["wxid_carol"])
    model.script = calling("secret_word", {})
    gw, _ = await start(
        wechat,
        model,
        tools_server=True,
        groups={
            "all@chatroom": {"requireMention": False, "tools": ["tools"]},  # the server's key
            "sums@chatroom": {"requireMention": False, "tools": ["add", "weather"]},
        },
    )
    ran: list[str] = []

    def weather(city: str) -> str:
        """The weather in a city."""
        ran.append(city)
        return "sunny"

    gw.tools.register("weather", weather)
    caplog.set_level(logging.WARNING, "wechat_sdk")
    await say(wechat, gw, "wxid_carol", "the word?", room="all@chatroom")
    await say(wechat, gw, "wxid_carol", "the word?", room="sums@chatroom")
    await say(wechat, gw, "wxid_alice", "the word?")  # a DM: every tool
    all_tools, sums, dm = (model.requests[i] for i in (0, 2, 4))
    every = {
        "add",
        "secret_word",
        "process_id",
        "run_shell",
        "long_text",
        "learn_tool",
        "crash",
        "pause",
        "guide",
    }
    assert offered(all_tools) == every
    assert offered(sums) == {"add", "weather"}
    assert offered(dm) == every | {"weather"}
    # where it was offered the tool ran; where not, the call was refused and never run
    assert tool_replies(model.requests[1]) == ["pineapple"]
    (refusal,) = tool_replies(model.requests[3])
    assert "not available" in refusal and "pineapple" not in refusal
    assert "pineapple" not in world.texts(room="sums@chatroom")[0]
    assert "reason=tool_not_allowed" in caplog.text
    assert ran == []


TWO_SERVERS = {
    "mcpServers": {
        "tools": {"command": sys.executable, "args": [TOOL_SERVER]},
        "more": {"command": sys.executable, "args": [TOOL_SERVER]},
    }
}


async def test_server__tool_in_a_rule_picks_that_servers_tool_only(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    world = wechat.world
    for room in ("more@chatroom", "denied@chatroom"):
        world.add_room(room, topic=room, members=["wxid_carol"])
    model.script = calling("process_id", {})
    gw, assistant = await start(
        wechat,
        model,
        agent=TWO_SERVERS,
        groups={
            "more@chatroom": {"requireMention": False, "tools": ["more__process_id"]},
            # deny wins, here for one server's tool of a name the allow gives both
            "denied@chatroom": {
                "requireMention": False,
                "tools": {"allow": ["process_id"], "deny": ["tools__process_id"]},
            },
        },
    )
    more_pid = await assistant.mcp_servers["more"].call("process_id", {})
    assert more_pid != await assistant.mcp_servers["tools"].call("process_id", {})
    for room in ("more@chatroom", "denied@chatroom"):
        await say(wechat, gw, "wxid_carol", "pid?", room=room)
    for first in (0, 2):
        assert offered(model.requests[first]) == {"process_id"}
        # the call ran on the server the entry named, not on the other one
        assert tool_replies(model.requests[first + 1]) == [more_pid]


async def test_a_bare_name_two_servers_have_allows_both_with_one_warning(
    wechat: WeChatHarness, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    world = wechat.world
    world.add_room("sums@chatroom", topic="sums", members=["wxid_carol"])
    model.script = [ModelStep(text="ok")]
    gw, _ = await start(
        wechat,
        model,
        agent=TWO_SERVERS,
        groups={"sums@chatroom": {"requireMention": False, "tools": ["add"]}},
    )
    caplog.set_level(logging.WARNING, "wechat_sdk")
    await say(wechat, gw, "wxid_carol", "1 + 1?", room="sums@chatroom")
    await say(wechat, gw, "wxid_carol", "2 + 2?", room="sums@chatroom")
    assert offered(model.requests[0]) == {"add", "more__add"}
    warnings = [r.getMessage() for r in caplog.records if "tool_rule_ambiguous" in r.getMessage()]
    assert len(warnings) == 1
    assert "'add'" in warnings[0] and "more__add" in warnings[0]


async def test_a_rule_naming_a_python_tool_means_it_not_an_mcp_tool_of_that_name_too(
    wechat: WeChatHarness, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    """A Python tool ``add`` and the MCP server's ``add``: an entry ``add`` (a group's
    rule, ``dmTools``) means the Python tool, as the name the model sees it by; it allowed
    the MCP one too, silently (offered as ``tools__add``). That one is named
    ``tools__add`` (or ``tools``); the log says so, once."""
    world = wechat.world
    for room in ("sums@chatroom", "both@chatroom"):
        world.add_room(room, topic=room, members=["wxid_carol"])
    model.script = calling("add", {"a": 1, "b": 2})
    gw, _ = await start(
        wechat,
        model,
        tools_server=True,
        agent={"dmTools": ["add"]},
        groups={
            "sums@chatroom": {"requireMention": False, "tools": ["add"]},
            "both@chatroom": {"requireMention": False, "tools": ["add", "tools__add"]},
        },
    )

    def add(a: int, b: int) -> str:
        """Add two numbers, in Python."""
        return f"python says {a + b}"

    gw.tools.register("add", add)
    caplog.set_level(logging.WARNING, "wechat_sdk")
    await say(wechat, gw, "wxid_carol", "1 + 2?", room="sums@chatroom")
    await say(wechat, gw, "wxid_carol", "1 + 2?", room="sums@chatroom")
    await say(wechat, gw, "wxid_alice", "1 + 2?")  # a DM: dmTools names it so
    await say(wechat, gw, "wxid_carol", "1 + 2?", room="both@chatroom")
    sums, dm, both = (model.requests[i] for i in (0, 4, 6))
    assert offered(sums) == offered(dm) == {"add"}
    assert tool_replies(model.requests[1]) == ["python says 3"]
    assert offered(both) == {"add", "tools__add"}  # each named: both, no warning
    warnings = [r.getMessage() for r in caplog.records if "tool_rule_ambiguous" in r.getMessage()]
    assert warnings == [
        "tool rule entry 'add' (group sums@chatroom) allows the Python tool of that name "
        "only, not the tool of that name of MCP server tools: write tools__add to allow "
        "it too reason=tool_rule_ambiguous"
    ]


async def test_a_deny_by_the_name_the_model_sees_denies_the_tool(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    world = wechat.world
    world.add_room("safe@chatroom", topic="safe", members=["wxid_carol"])
    world.add_room("shell@chatroom", topic="shell", members=["wxid_carol"])
    model.script = calling("run_shell", {"cmd": "id"})
    gw, _ = await start(
        wechat,
        model,
        tools_server=True,
        groups={
            "safe@chatroom": {"requireMention": False, "tools": {"deny": ["run_shell"]}},
            "shell@chatroom": {"requireMention": False, "tools": ["run_shell"]},
        },
    )
    await say(wechat, gw, "wxid_carol", "run it", room="safe@chatroom")
    assert "run_shell" not in offered(model.requests[0]) and "add" in offered(model.requests[0])
    (refusal,) = tool_replies(model.requests[1])
    assert "not available" in refusal and "ran id" not in refusal
    # an allow by that name works the same way
    await say(wechat, gw, "wxid_carol", "run it", room="shell@chatroom")
    assert offered(model.requests[2]) == {"run_shell"}
    assert tool_replies(model.requests[3]) == ["ran id"]


async def test_a_python_tool_is_named_in_rules_by_the_name_the_model_sees_too(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    """A Python tool registered as ``weather.today`` is offered as ``weather_today``: a
    deny by that name let it through (offered and run), and an allow by it or a
    ``dmTools`` entry did not offer it, where an MCP tool is named either way."""
    world = wechat.world
    for room in ("safe@chatroom", "open@chatroom"):
        world.add_room(room, topic=room, members=["wxid_carol"])
    model.script = calling("weather_today", {"city": "Paris"})
    gw, _ = await start(
        wechat,
        model,
        agent={"dmTools": ["weather_today"]},
        groups={
            "safe@chatroom": {"requireMention": False, "tools": {"deny": ["weather_today"]}},
            "open@chatroom": {"requireMention": False, "tools": ["weather_today"]},
        },
    )
    ran: list[str] = []
    gw.tools.register("weather.today", lambda city: ran.append(city) or "sunny")
    gw.tools.register("search", lambda query: "found")
    await say(wechat, gw, "wxid_carol", "weather?", room="safe@chatroom")
    assert offered(model.requests[0]) == {"search"}
    (refusal,) = tool_replies(model.requests[1])
    assert "not available" in refusal and ran == []
    await say(wechat, gw, "wxid_carol", "weather?", room="open@chatroom")
    assert offered(model.requests[2]) == {"weather_today"}
    await say(wechat, gw, "wxid_alice", "weather?")  # a DM, dmTools naming it so
    assert offered(model.requests[4]) == {"weather_today"}
    assert ran == ["Paris", "Paris"]


async def test_a_huge_tool_result_is_cut_with_a_note(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    def calls(name: str, arguments: dict[str, Any]) -> Any:
        def script(body: dict[str, Any]) -> ModelStep:
            return (
                ModelStep(text="ok")
                if tool_replies(body)
                else ModelStep(tool_calls=[(name, arguments)])
            )

        return script

    model.script = calls("long_text", {"chars": MAX_RESULT_CHARS + 150_000})
    gw, _ = await start(wechat, model, tools_server=True)

    def long_python_text() -> str:
        """A long text, from Python."""
        return "B" * (MAX_RESULT_CHARS + 7)

    gw.tools.register("long_python_text", long_python_text)
    await say(wechat, gw, "wxid_alice", "a long one")
    model.script = calls("long_python_text", {})
    await say(wechat, gw, "wxid_alice", "another")
    (mcp,) = tool_replies(model.requests[1])
    (python,) = tool_replies(model.requests[3])
    assert mcp == "A" * MAX_RESULT_CHARS + "\n[cut: 150000 characters more]"
    assert python == "B" * MAX_RESULT_CHARS + "\n[cut: 7 characters more]"


async def test_a_tool_with_a_description_over_the_apis_limit_is_offered_with_it_cut(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    """OpenAI refuses (HTTP 400) a request with a tool description over 1024 characters:
    a server describing one tool at length (sequential-thinking, Sentry's) failed every
    turn it was offered in. Its beginning is given, as a Python tool's."""

    def as_openai(body: dict[str, Any]) -> ModelStep:
        return ModelStep(status=400) if openai_refuses(body) else ModelStep(text="ok")

    model.script = as_openai
    gw, _ = await start(wechat, model, tools_server=True)

    def manual() -> str:
        return "page one"

    manual.__doc__ = "The manual. " * 200
    gw.tools.register("manual", manual)
    await say(wechat, gw, "wxid_alice", "how do I start?")
    assert wechat.world.texts(to="wxid_alice") == ["ok"]
    described = {
        t["function"]["name"]: t["function"]["description"] for t in model.requests[0]["tools"]
    }
    assert len(described["guide"]) == len(described["manual"]) == 1024
    assert described["guide"].startswith("Read this first. Each step of the guide")
    assert described["guide"].endswith("…")
    assert described["manual"].startswith("The manual. The manual.")
    assert described["add"] == "Add two whole numbers."


async def test_an_mcp_tool_listed_with_a_bare_object_schema_is_offered_as_openai_takes_it(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    """The official Go SDK lists a tool without arguments as ``{"type": "object"}``;
    OpenAI refuses a request offering it (HTTP 400, "object schema missing properties"),
    so every turn with that server's tools failed. It is offered with its ``properties``."""
    called = calling("secret_word", {})

    def as_openai(body: dict[str, Any]) -> ModelStep:
        return ModelStep(status=400) if openai_refuses(body) else called(body)

    model.script = as_openai
    gw, _ = await start(wechat, model, tools_server=True)
    await say(wechat, gw, "wxid_alice", "the word?")
    assert wechat.world.texts(to="wxid_alice") == ["done: pineapple"]
    (word,) = (t for t in model.requests[0]["tools"] if t["function"]["name"] == "secret_word")
    assert word["function"]["parameters"] == {"type": "object", "properties": {}}


async def test_text_before_a_tool_call_and_the_answer_are_apart(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    model.script = [
        ModelStep(text="Let me look that up.", tool_calls=[("add", {"a": 1, "b": 1})]),
        ModelStep(text="It is 2."),
    ]
    gw, _ = await start(wechat, model, tools_server=True, streamMode="off")
    await say(wechat, gw, "wxid_alice", "1 + 1?")
    assert wechat.world.texts(to="wxid_alice") == ["Let me look that up.\n\nIt is 2."]
    said = model.requests[1]["messages"][-2]
    assert said["content"] == "Let me look that up." and said["tool_calls"]


async def test_a_python_tool_gets_checked_arguments(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    model.script = calling("forecast", {"city": "Paris", "days": "3"})
    gw, _ = await start(wechat, model)
    calls: list[tuple[str, int]] = []

    async def forecast(city: str, days: int = 1) -> str:
        """The forecast for a city."""
        calls.append((city, days))
        return f"{days} sunny days in {city}"

    gw.tools.register("forecast", forecast)
    await say(wechat, gw, "wxid_alice", "Paris?")
    assert calls == [("Paris", 3)]
    (tool,) = model.requests[0]["tools"]
    assert tool["function"]["description"] == "The forecast for a city."
    assert tool["function"]["parameters"]["required"] == ["city"]
    assert wechat.world.texts(to="wxid_alice") == ["done: 3 sunny days in Paris"]


async def test_python_tools_are_offered_under_names_the_api_takes_and_called_by_them(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    """OpenAI refuses a tool name outside ``[a-zA-Z0-9_-]{1,64}`` (HTTP 400): a Python tool
    named ``weather.today`` failed every turn it was offered in. Two that read the same
    once cleaned up are told apart."""
    model.script = calling("weather_today_2", {"city": "Paris"})
    gw, _ = await start(wechat, model)
    calls: list[str] = []
    gw.tools.register("weather.today", lambda city: calls.append(f"dot {city}") or "a")
    gw.tools.register("weather today", lambda city: calls.append(f"space {city}") or "b")
    await say(wechat, gw, "wxid_alice", "weather?")
    names = [t["function"]["name"] for t in model.requests[0]["tools"]]
    assert names == ["weather_today", "weather_today_2"]  # (in the registry's order)
    assert calls == ["dot Paris"]
    assert wechat.world.texts(to="wxid_alice") == ["done: a"]


async def test_bad_tool_arguments_are_sent_back_not_run(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    model.script = calling("forecast", {"town": "Paris"})
    gw, _ = await start(wechat, model)
    calls: list[str] = []
    gw.tools.register("forecast", lambda city: calls.append(city))
    await say(wechat, gw, "wxid_alice", "Paris?")
    assert calls == []
    (reply,) = tool_replies(model.requests[1])
    assert "bad arguments" in reply and "city" in reply


async def test_tool_rounds_are_bounded(wechat: WeChatHarness, model: FakeModel) -> None:
    def script(body: dict[str, Any]) -> ModelStep:
        if body.get("tool_choice") != "none":  # a model that would call tools forever
            return ModelStep(tool_calls=[("add", {"a": 1, "b": 1})])
        return ModelStep(text="I give up on tools.")

    model.script = script
    gw, _ = await start(wechat, model, tools_server=True, agent={"maxToolRounds": 2})
    await say(wechat, gw, "wxid_alice", "count")
    # the last request still describes the tools (the history has their calls), but
    # asks for none
    assert [r.get("tool_choice") for r in model.requests] == [None, None, "none"]
    assert len(tool_replies(model.requests[2])) == 2
    assert wechat.world.texts(to="wxid_alice") == ["I give up on tools."]


async def test_a_model_calling_tools_past_the_last_round_gets_the_notice(
    wechat: WeChatHarness, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    model.script = [ModelStep(tool_calls=[("add", {"a": 1, "b": 1})])]  # never stops
    gw, _ = await start(wechat, model, tools_server=True, agent={"maxToolRounds": 1})
    await say(wechat, gw, "wxid_alice", "count")
    assert len(model.requests) == 2
    assert wechat.world.texts(to="wxid_alice") == [NOTICE]
    assert "reason=tool_rounds_exhausted" in caplog.text


# ---------------------------------------------------------------- failures


async def test_a_429_is_retried_and_the_answer_arrives_once(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    model.script = [ModelStep(status=429), ModelStep(text="Here you go.")]
    gw, _ = await start(wechat, model)
    await say(wechat, gw, "wxid_alice", "hi")
    assert wechat.world.texts(to="wxid_alice") == ["Here you go."]
    assert len(model.requests) == 2


async def test_a_model_that_keeps_failing_gets_the_notice_not_a_traceback(
    wechat: WeChatHarness, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    model.script = [ModelStep(status=500)]
    gw, _ = await start(wechat, model)
    caplog.set_level(logging.INFO, "wechat_sdk")
    await say(wechat, gw, "wxid_alice", "hi")
    assert wechat.world.texts(to="wxid_alice") == [NOTICE]
    assert len(model.requests) == 2  # maxRetries 1
    assert "reason=model_unavailable" in caplog.text
    assert "Traceback" not in caplog.text
    (status,) = gw.status()  # the account's status says the model is failing
    assert status.last_error is not None and status.last_error.startswith("model error:")


async def test_a_stream_cut_after_text_sends_the_half_and_the_notice_once(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    text = "The first half of the answer is here. And the second half"
    model.script = [ModelStep(text=text, piece_chars=10, cut_after=5)]
    gw, _ = await start(wechat, model)
    await say(wechat, gw, "wxid_alice", "hi")
    sent = "\n".join(wechat.world.texts(to="wxid_alice"))
    assert sent.count("The first half") == 1
    assert sent.count(NOTICE) == 1 and sent.rstrip().endswith(NOTICE)
    assert len(model.requests) == 1  # text went out: asking again would repeat it


async def test_a_stream_cut_before_any_text_is_asked_again(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    model.script = [
        ModelStep(tool_calls=[("add", {"a": 1, "b": 2})], cut_after=2),
        ModelStep(text="All good."),
    ]
    gw, _ = await start(wechat, model)
    await say(wechat, gw, "wxid_alice", "hi")
    assert wechat.world.texts(to="wxid_alice") == ["All good."]
    assert len(model.requests) == 2


async def test_the_api_key_never_shows(
    wechat: WeChatHarness, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    model.script = [ModelStep(status=401)]  # its message repeats the key, as OpenAI's does
    gw, _ = await start(wechat, model)
    caplog.set_level(logging.DEBUG)
    await say(wechat, gw, "wxid_alice", "hi")
    assert wechat.world.texts(to="wxid_alice") == [NOTICE]
    assert "reason=model_refused" in caplog.text
    assert "Incorrect API key provided: ***" in caplog.text
    assert gw.status()[0].last_error is not None  # said, with the key scrubbed (below)
    shown = [
        caplog.text,
        json.dumps([s.to_json() for s in gw.status()]),
        json.dumps([e.text for e in wechat.world.transcript]),
        repr(gw.config),
    ]
    assert all(KEY not in text for text in shown)


async def test_a_key_sent_in_a_header_never_shows(
    wechat: WeChatHarness, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    """A key given as ``headers: {Authorization: "Bearer ..."}`` (a proxy's, Azure's):
    the server's 401 repeats the key without its scheme, which the log, the status and the
    HTTP API showed."""
    model.script = [ModelStep(status=401)]
    header_key = "hdr-key-0123456789"
    gw, _ = await start(wechat, model, agent={"headers": {"Authorization": f"Bearer {header_key}"}})
    caplog.set_level(logging.DEBUG, "wechat_sdk")
    await say(wechat, gw, "wxid_alice", "hi")
    assert wechat.world.texts(to="wxid_alice") == [NOTICE]
    assert "Incorrect API key provided: ***" in caplog.text
    shown = [caplog.text, json.dumps([s.to_json() for s in gw.status()])]
    assert all(header_key not in text for text in shown)


# ---------------------------------------------------------------- MCP servers


async def test_mcp_servers_start_with_the_gateway_and_stop_with_it(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    model.script = calling("process_id", {})
    gw, assistant = await start(wechat, model, tools_server=True)
    server = assistant.mcp_servers["tools"]
    assert server.up and server.sessions_opened == 1
    await say(wechat, gw, "wxid_alice", "pid?")
    pid = int(tool_replies(model.requests[1])[0])
    await gw.close()
    assert not server.up
    assert not _alive(pid)


async def test_an_mcp_server_two_accounts_share_keeps_each_accounts_timeout(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    """The server both accounts' agent blocks name was started once, with the first
    account's agent.timeout: the other account's calls were timed by it."""
    wechat.world.add_account("work")
    base_url = await model.serve()
    block: dict[str, Any] = {
        "baseUrl": base_url,
        "apiKey": KEY,
        "model": "test-model",
        "maxRetries": 0,
        "mcpServers": {"tools": {"command": sys.executable, "args": [TOOL_SERVER]}},
    }
    accounts = {
        "default": {"agent": {**block, "timeout": 60}},
        "work": {"agent": {**block, "timeout": 1.5}},
    }
    assistant = ConfiguredAssistant()
    gw = await wechat.gateway(assistant, {"channels": {"wechat": {**OPEN, "accounts": accounts}}})
    model.script = calling("pause", {"seconds": 3})
    await say(wechat, gw, "wxid_alice", "slow one", account="default")
    await say(wechat, gw, "wxid_alice", "slow one", account="work")
    assert wechat.world.texts(to="wxid_alice", account="default") == ["done: paused 3 s"]
    (said,) = wechat.world.texts(to="wxid_alice", account="work")
    assert "did not answer within 1.5 s" in said


async def test_a_python_tool_that_never_returns_is_given_up_at_agent_timeout(
    wechat: WeChatHarness, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    """``timeout`` bounds one tool call, as for an MCP tool: an async Python tool stuck on
    an answer that never comes held the conversation forever (and the user heard
    nothing). The model is told, and answers without it."""
    model.script = calling("lookup", {"word": "pineapple"})
    gw, _ = await start(wechat, model, agent={"timeout": 1.5})
    cancelled: list[str] = []

    async def lookup(word: str) -> str:
        """Look a word up in a dictionary that never answers."""
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.append(word)
        return "never"

    gw.tools.register("lookup", lookup)
    caplog.set_level(logging.WARNING, "wechat_sdk")
    await say(wechat, gw, "wxid_alice", "what is a pineapple?")
    (said,) = wechat.world.texts(to="wxid_alice")
    assert "did not answer within 1.5 s" in said
    assert cancelled == ["pineapple"]
    assert "tool 'lookup' failed" in caplog.text and "reason=tool_failed" in caplog.text


def _hanging_lookup(gw: Any) -> tuple[threading.Event, asyncio.Event]:
    """Registers a sync tool ``lookup`` stuck on a blocking call until the first event is
    set (8 s at most); the second is set once it returned (``a late definition``)."""
    release = threading.Event()
    returned = asyncio.Event()
    loop = asyncio.get_running_loop()

    def lookup(word: str) -> str:
        """Look a word up in a dictionary behind a blocking call that hangs."""
        release.wait(8)  # (set by the test; bounded, so that a loop it blocked goes on)
        loop.call_soon_threadsafe(returned.set)
        return "a late definition"

    gw.tools.register("lookup", lookup)
    return release, returned


async def test_a_sync_python_tool_runs_off_the_loop_and_is_given_up_at_agent_timeout(
    wechat: WeChatHarness, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    """A sync tool ran on the event loop: one stuck on a blocking call held every
    conversation of every account, and ``timeout`` could not give it up. It runs in a
    thread: the model is told it timed out, and its result, when it comes, is dropped."""
    model.script = calling("lookup", {"word": "pineapple"})
    gw, _ = await start(wechat, model, agent={"timeout": 1.5})
    release, returned = _hanging_lookup(gw)
    caplog.set_level(logging.WARNING, "wechat_sdk")
    await say(wechat, gw, "wxid_alice", "what is a pineapple?")
    (said,) = wechat.world.texts(to="wxid_alice")
    assert "did not answer within 1.5 s" in said
    assert "tool 'lookup' failed" in caplog.text and "reason=tool_failed" in caplog.text
    release.set()
    async with asyncio.timeout(10):
        await returned.wait()
    await answered(wechat, gw)
    assert wechat.world.texts(to="wxid_alice") == [said]  # (its late result dropped)
    assert len(model.requests) == 2


async def test_a_def_tool_returning_a_coroutine_has_it_run_on_the_loop_within_timeout(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    """A ``def`` handing back a coroutine (a decorator's sync wrapper of an async function,
    say) runs in its thread; the coroutine it returns is awaited on the event loop, as an
    async tool is, and given up at ``timeout`` the same way (cancelled)."""
    model.script = calling("lookup", {"word": "pineapple"})
    gw, _ = await start(wechat, model, agent={"timeout": 1.5})
    loop_thread = threading.current_thread().name
    ran_in: list[str] = []
    cancelled: list[str] = []

    async def look_up(word: str, *, hang: bool) -> str:
        ran_in.append(threading.current_thread().name)
        if hang:
            try:
                await asyncio.Event().wait()
            finally:
                cancelled.append(word)
        return f"{word}: a fruit"

    def lookup(word: str) -> Any:
        """Look a word up."""
        return look_up(word, hang=word == "durian")

    gw.tools.register("lookup", lookup)
    await say(wechat, gw, "wxid_alice", "what is a pineapple?")
    assert wechat.world.texts(to="wxid_alice") == ["done: pineapple: a fruit"]
    assert ran_in == [loop_thread]
    model.script = calling("lookup", {"word": "durian"})
    await say(wechat, gw, "wxid_alice", "what is a durian?")
    assert "did not answer within 1.5 s" in wechat.world.texts(to="wxid_alice")[-1]
    assert cancelled == ["durian"]


async def test_a_coroutine_a_sync_tool_returns_after_it_was_given_up_is_closed_unrun(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    """What a sync tool returns after ``timeout`` is dropped: a coroutine too, but it was
    left unawaited, and Python printed ``RuntimeWarning: coroutine ... was never awaited``
    (with a traceback-like report on stderr) for a tool that had done nothing wrong."""
    model.script = calling("lookup", {"word": "pineapple"})
    gw, _ = await start(wechat, model, agent={"timeout": 1.5})
    release = threading.Event()
    returned = asyncio.Event()
    loop = asyncio.get_running_loop()
    ran: list[str] = []

    async def look_up(word: str) -> str:
        ran.append(word)
        return "a late definition"

    def lookup(word: str) -> Any:
        """Look a word up behind a blocking call that hangs, then hand back a coroutine."""
        release.wait(8)  # (set below; bounded, so that a loop it blocked goes on)
        loop.call_soon_threadsafe(returned.set)
        return look_up(word)

    gw.tools.register("lookup", lookup)
    await say(wechat, gw, "wxid_alice", "what is a pineapple?")
    (said,) = wechat.world.texts(to="wxid_alice")
    assert "did not answer within 1.5 s" in said
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        release.set()
        async with asyncio.timeout(10):
            await returned.wait()
        await answered(wechat, gw)
        gc.collect()
    assert ran == []
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []
    assert wechat.world.texts(to="wxid_alice") == [said]


def turn_timeout_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "reason=turn_timeout" in r.getMessage()]


async def test_a_turn_of_tool_calls_ends_by_default_within_five_agent_timeouts(
    wechat: WeChatHarness, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    """Each tool call was bounded by ``timeout``, but not the turn: a model calling tools
    that never answer, 4 at a time for 50 rounds, held the conversation for 50 x 4 calls
    x ``timeout`` (with the defaults up to 16 calls and 60 s each: about an hour). Unset,
    ``turnTimeout`` is 5 x ``timeout``: the turn ends there, the call under way is
    cancelled, the user gets the notice once, after what was said."""
    started: list[int] = []
    cancelled: list[int] = []

    def script(body: dict[str, Any]) -> ModelStep:
        calls = [("lookup", {"word": "pineapple"})] * 4
        text = "" if tool_replies(body) else "Looking it up."
        return ModelStep(text=text, tool_calls=calls)

    model.script = script
    gw, _ = await start(wechat, model, agent={"timeout": 0.5, "maxToolRounds": 50})

    async def lookup(word: str) -> str:
        """Look a word up in a dictionary that never answers."""
        started.append(len(started))
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.append(len(cancelled))
        return "never"

    gw.tools.register("lookup", lookup)
    caplog.set_level(logging.WARNING, "wechat_sdk")
    await say(wechat, gw, "wxid_alice", "what is a pineapple?")
    sent = "\n".join(wechat.world.texts(to="wxid_alice"))
    assert sent.startswith("Looking it up.") and sent.count("Looking it up.") == 1
    assert sent.count(NOTICE) == 1 and sent.rstrip().endswith(NOTICE)
    assert len(started) == len(cancelled) < 50  # (none left running)
    (line,) = turn_timeout_lines(caplog)
    assert "within 2.5 s" in line and "agent.turnTimeout" in line
    (status,) = gw.status()
    assert status.last_error is not None and "agent.turnTimeout" in status.last_error


async def test_turn_timeout_gives_up_a_sync_tool_and_drops_its_late_result(
    wechat: WeChatHarness, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    """``turnTimeout`` ends the turn before a tool's own ``timeout``: the sync tool's
    thread cannot be stopped, so it is abandoned, and what it returns later goes nowhere:
    not to the model, not to the user."""
    model.script = calling("lookup", {"word": "pineapple"})
    gw, _ = await start(wechat, model, agent={"turnTimeout": 1})
    release, returned = _hanging_lookup(gw)
    caplog.set_level(logging.WARNING, "wechat_sdk")
    await say(wechat, gw, "wxid_alice", "what is a pineapple?")
    assert wechat.world.texts(to="wxid_alice") == [NOTICE]
    (line,) = turn_timeout_lines(caplog)
    assert "within 1 s" in line
    release.set()
    async with asyncio.timeout(10):
        await returned.wait()
    await answered(wechat, gw)
    assert wechat.world.texts(to="wxid_alice") == [NOTICE]
    assert len(model.requests) == 1


async def test_turn_timeout_cuts_a_slow_stream_once_and_does_not_ask_again(
    wechat: WeChatHarness, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    """A model streaming slowly within its request's ``timeout`` is cut at the turn's:
    what was said stays said, the notice follows it once, and the model is not asked
    again (as it is when one request runs out of its own time before any text)."""
    text = "One two three four five six seven eight."
    model.script = [ModelStep(text=text, piece_chars=5)]
    model.token_delay_s = 0.25
    gw, _ = await start(wechat, model, agent={"turnTimeout": 1}, streamMode="off")
    caplog.set_level(logging.WARNING, "wechat_sdk")
    await say(wechat, gw, "wxid_alice", "count")
    (sent,) = wechat.world.texts(to="wxid_alice")
    said, _, notice = sent.rpartition("\n\n")
    assert notice == NOTICE
    assert said and text.startswith(said) and said != text
    assert len(model.requests) == 1
    assert len(turn_timeout_lines(caplog)) == 1


async def test_a_dead_mcp_server_is_restarted(wechat: WeChatHarness, model: FakeModel) -> None:
    model.script = calling("crash", {})
    gw, assistant = await start(wechat, model, tools_server=True)
    server = assistant.mcp_servers["tools"]
    await say(wechat, gw, "wxid_alice", "crash it")
    assert "stopped" in tool_replies(model.requests[1])[0]
    async with asyncio.timeout(20):
        await server.wait_up()  # (a new session: the call found the old one closed)
    assert server.sessions_opened == 2
    model.script = calling("add", {"a": 1, "b": 2})
    await say(wechat, gw, "wxid_alice", "1 + 2?")
    assert wechat.world.texts(to="wxid_alice")[-1] == "done: 3"


async def test_a_server_whose_tools_change_has_its_new_tools_offered(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    model.script = calling("learn_tool", {"name": "say_pineapple"})
    gw, assistant = await start(wechat, model, tools_server=True)
    server = assistant.mcp_servers["tools"]
    await say(wechat, gw, "wxid_alice", "learn a word")
    assert tool_replies(model.requests[1]) == ["learned say_pineapple"]
    for _ in range(500):  # (the server's notice, then the list asked again)
        if "say_pineapple" in {t.name for t in server.tools}:
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the new tool was never listed")
    model.script = calling("say_pineapple", {})
    await say(wechat, gw, "wxid_alice", "say it")
    assert "say_pineapple" in offered(model.requests[2])
    assert wechat.world.texts(to="wxid_alice")[-1] == "done: say_pineapple"


def never_answering(asked: Path, call_timeout_s: float) -> McpServer:
    """A server whose program starts but never answers (it writes ``asked`` when it got
    the client's first message)."""
    config = McpServerConfig(
        command=sys.executable, args=[TOOL_SERVER, "--never-answer", str(asked)]
    )
    return McpServer("silent", config, call_timeout_s=call_timeout_s)


async def test_a_server_that_never_answers_its_opening_is_logged_and_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "wechat_sdk")
    server = never_answering(tmp_path / "asked", call_timeout_s=0.5)
    await server.start(60)  # (returns when the first try failed)
    try:
        for _ in range(1200):  # (two tries: the first failed, and the next one too)
            failures = [r.getMessage() for r in caplog.records if "mcp_failed" in r.getMessage()]
            if len(failures) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await server.aclose()
    assert len(failures) >= 2, caplog.text
    assert "MCP server 'silent' could not be used" in failures[0]
    assert "no answer to initialize within 0.5 s" in failures[0]
    assert not server.up and server.sessions_opened == 0


async def test_stopping_does_not_wait_for_an_opening_that_never_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(mcp_tools, "STOP_WAIT_S", 3600.0)  # (a stop waiting would hang here)
    asked = tmp_path / "asked"
    server = never_answering(asked, call_timeout_s=3600)
    await server.start(0)
    for _ in range(1200):  # (the program got initialize, and will never answer it)
        if asked.exists():
            break
        await asyncio.sleep(0.05)
    assert asked.exists()
    async with asyncio.timeout(60):
        await server.aclose()
    assert not server.up and "mcp_failed" not in caplog.text


@pytest.fixture
def http_tool_server() -> Any:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, TOOL_SERVER, "--http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail("the MCP HTTP server did not start")
                import time

                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_an_mcp_server_over_streamable_http(
    wechat: WeChatHarness, model: FakeModel, http_tool_server: str
) -> None:
    model.script = calling("add", {"a": 20, "b": 22}, then="sum")
    gw, _ = await start(
        wechat,
        model,
        agent={"mcpServers": {"remote": {"url": http_tool_server, "headers": {"x-token": "t"}}}},
    )
    await say(wechat, gw, "wxid_alice", "20 + 22?")
    assert wechat.world.texts(to="wxid_alice") == ["sum: 42"]


async def test_the_libraries_request_lines_hold_no_key_of_the_config(
    wechat: WeChatHarness, model: FakeModel, http_tool_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A program that logs everything (``logging.basicConfig(level=logging.DEBUG)``): httpx's
    INFO line named each request's URL with its user, password and query, the mcp SDK's
    DEBUG line the server's URL, and the openai SDK's DEBUG line the request's headers (it
    hides Authorization only)."""
    caplog.set_level(logging.DEBUG)  # (every logger, the libraries' too)
    model.script = calling("add", {"a": 20, "b": 22}, then="sum")
    base_url = (await model.serve()).replace("http://", "http://bob:pw-0123456789@")
    remote = {
        "url": http_tool_server.replace("http://", "http://amy:mcppw-0123456789@")
        + "?key=mcpkey-0123456789",
        "headers": {"x-token": "mcphdr-0123456789"},
    }
    agent = {
        "baseUrl": base_url,
        "headers": {"x-api-key": "hdr-0123456789", "x-org": "Token org-0123456789"},
        "mcpServers": {"remote": remote},
    }
    gw, _ = await start(wechat, model, agent=agent)
    await say(wechat, gw, "wxid_alice", "20 + 22?")
    assert wechat.world.texts(to="wxid_alice") == ["sum: 42"]
    for library in ("httpx", "openai._base_client", "mcp.client.streamable_http"):
        assert any(r.name == library for r in caplog.records), library  # (it did log)
    assert "0123456789" not in caplog.text


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not reaped yet) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


async def test_a_reload_answers_with_the_new_agent_block(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    gw, assistant = await start(wechat, model, tools_server=True)
    old_server = assistant.mcp_servers["tools"]
    settings = gw.config.channels.wechat.model_dump(exclude_unset=True, mode="json")
    agent = {**settings["agent"], "model": "newer-model", "apiKey": KEY}
    del agent["mcpServers"]
    new = {"channels": {"wechat": {**settings, "agent": agent}}}
    await gw.reload(parse_config(json.dumps(new)))
    assert not old_server.up  # the servers of the old block were stopped
    assert assistant.mcp_servers == {}
    await wechat.world.login()
    await say(wechat, gw, "wxid_alice", "hi")
    assert model.requests[-1]["model"] == "newer-model"
    assert "tools" not in model.requests[-1]


async def test_the_model_gets_a_quotes_text_and_a_voice_transcript(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    gw, _ = await start(wechat, model, dmHistoryLimit=0)
    (first,) = await wechat.world.say("wxid_alice", "the first message")
    await answered(wechat, gw)
    await say(wechat, gw, "wxid_alice", "what did I mean?", quote=first)
    await say(wechat, gw, "wxid_alice", "call me at noon", media={"kind": "audio", "duration": 2})
    quoted, voice = (r["messages"][-1]["content"] for r in model.requests[1:])
    assert quoted == "(replying to: the first message)\nwhat did I mean?"
    assert voice == "call me at noon"


@pytest.mark.parametrize("status", [401, 500])
async def test_an_mcp_server_refusing_never_shows_its_url_key_or_token(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    from aiohttp import web

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=status, text="no")

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://bob:pw-0123456789@127.0.0.1:{port}/mcp?key=key-0123456789"
    config = McpServerConfig(url=url, headers={"Authorization": "Bearer tok-0123456789"})
    server = McpServer("remote", config, call_timeout_s=5)
    caplog.set_level(logging.INFO, "wechat_sdk")
    try:
        await server.start(30)  # (returns when the first try failed)
    finally:
        await server.aclose()
        await runner.cleanup()
    failures = [r.getMessage() for r in caplog.records if "mcp_failed" in r.getMessage()]
    assert failures, caplog.text
    assert f"HTTP {status}" in failures[0] and f"127.0.0.1:{port}" in failures[0]
    assert not any(s in caplog.text for s in ("0123456789", "key=", "bob"))


async def test_the_mcp_sdks_own_errors_are_gateway_lines_without_its_url_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A server that takes ``initialize`` and refuses the next POST (401): the mcp SDK
    logs its error with a traceback repeating the URL; it went to stderr bare, outside the
    JSON log, with the URL's token."""
    from aiohttp import web

    from wechat_sdk.gateway.service import configure_logging

    async def answer(request: web.Request) -> web.Response:
        body = await request.json() if request.method == "POST" else {}
        if body.get("method") != "initialize":
            return web.Response(status=401, text="token expired")
        result = {
            "protocolVersion": body["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "refusing", "version": "1"},
        }
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": result})

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    configure_logging("json")
    config = McpServerConfig(url=f"http://127.0.0.1:{port}/mcp?token=tok-0123456789")
    server = McpServer("remote", config, call_timeout_s=5)
    try:
        await server.start(30)  # (returns when the first try failed)
    finally:
        await server.aclose()
        await runner.cleanup()
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines()]  # (each line JSON)
    (mcp,) = [line for line in lines if line["logger"].startswith("mcp.")]
    assert mcp["level"] == "error" and "error" not in mcp  # (no traceback)
    assert f"401 Unauthorized' for url 'http://127.0.0.1:{port}'" in mcp["message"]
    assert "0123456789" not in err


async def test_a_password_in_base_url_never_shows(
    wechat: WeChatHarness, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:  # (a port nothing listens on)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base_url = f"http://bob:pw-0123456789@127.0.0.1:{port}/v1"
    gw, _ = await start(wechat, model, agent={"baseUrl": base_url, "maxRetries": 0})
    caplog.set_level(logging.DEBUG, "wechat_sdk")
    await say(wechat, gw, "wxid_alice", "hi")
    assert wechat.world.texts(to="wxid_alice") == [NOTICE]
    assert f"cannot reach http://127.0.0.1:{port}/v1" in caplog.text
    status = json.dumps([s.to_json() for s in gw.status()])
    assert f"127.0.0.1:{port}" in status
    assert not any("pw-0123456789" in text for text in (caplog.text, status))


def test_a_sync_python_tool_that_never_returns_does_not_keep_the_process_from_ending(
    tmp_path: Path,
) -> None:
    """A sync tool stuck for good (a blocking call without a timeout): it is given up at
    ``agent.timeout``, and the process still ends when its program is done (a stop): its
    thread is not one the interpreter waits for at exit (the default thread pool's are,
    so ``gateway stop`` never ended)."""
    script = tmp_path / "hung_tool.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, threading
            from wechat_sdk.assistants.offered_tools import _python_tool

            def stuck() -> str:
                \"\"\"Wait for ever.\"\"\"
                threading.Event().wait()
                return "never"

            async def main() -> None:
                tool = _python_tool(stuck, "stuck", 0.2)
                try:
                    await tool.run("{}")
                except Exception as exc:
                    print("given up:", exc, flush=True)

            asyncio.run(main())
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "did not answer within 0.2 s" in done.stdout


async def test_a_notice_with_markdown_is_taken_out_of_the_history_as_it_was_sent(
    wechat: WeChatHarness, model: FakeModel
) -> None:
    """``failureText`` written with markdown goes out flattened (``markdown: "plain"``):
    the history holds it as sent, so that is what is taken out of the model's earlier
    answers (the raw text was looked for, and the notice given to the model as its own)."""
    model.script = [ModelStep(status=500), ModelStep(status=500), ModelStep(text="Now ok.")]
    gw, _ = await start(wechat, model, agent={"failureText": "**Sorry**, try again later.  "})
    await say(wechat, gw, "wxid_alice", "hi")
    assert wechat.world.texts(to="wxid_alice") == ["Sorry, try again later."]
    await say(wechat, gw, "wxid_alice", "again")
    contents = [m["content"] for m in model.requests[-1]["messages"]]
    assert not any("Sorry" in str(c) for c in contents), contents
