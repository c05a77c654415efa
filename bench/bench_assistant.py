"""The assistant from the config: streaming latency, CPU per streamed reply, a turn with two
tool calls against its floor.

Run: ``python bench/bench_assistant.py [first-send|cpu|tools|all] [--replies N]
[--rate TOKENS_PER_S]``.

The model is ``simulator.fake_model.FakeModel``, an OpenAI-compatible server on
127.0.0.1 (aiohttp) streaming real SSE, one token of 4 characters per chunk, reached
through the official ``openai`` client as any ``agent.baseUrl``. The gateway runs on the
simulator (pacing off, the memory store); a send is timed when the gateway hands it to the
puppet (``send_text``).

- first-send: the model streams at ``--rate`` tokens a second; ``draftChunk`` is
  ``minChars = maxChars = 120`` (``idleMs`` 60 s), so the first block may go out once the
  streamed text passes 120 characters, at token 31. Figure: the time from the server's
  writing that token to the gateway's first send (what the gateway adds over what the
  rules require), median, p90 and max over ``--replies`` replies (one DM each, from a new
  sender); and first token to first send, with the rules' own share.
- cpu: the model, in a process of its own, streams a 600-character reply (150 chunks) as
  fast as it can; CPU time (``time.process_time``) of the gateway's process per reply, and
  of the bare ``openai`` client reading the same stream (the floor).
- tools: a turn where the model calls ``add`` (an MCP tool over stdio: the test suite's
  FastMCP server), then ``add`` again, then answers: three model requests and two tool
  calls. Its time from the message to the answer's send, against the same three requests
  and two calls made directly with the ``openai`` client and an ``mcp`` session (the
  floor), the two alternated turn by turn. Medians of ``--replies`` turns each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.fake_model import FakeModel, ModelStep  # noqa: E402
from simulator.world import SimulatedWeChat  # noqa: E402
from wechat_sdk.assistants import ConfiguredAssistant  # noqa: E402
from wechat_sdk.gateway import Gateway  # noqa: E402
from wechat_sdk.stores.memory import MemoryStore  # noqa: E402

TOOL_SERVER = ROOT / "tests" / "scenarios" / "mcp_tool_server.py"
MAX_CHARS = 120
PIECE = 4
TEXT = " ".join(f"Sentence {i:02d} of an answer streamed a token at a time." for i in range(40))


def config(base_url: str, **agent: Any) -> dict[str, Any]:
    return {
        "channels": {
            "wechat": {
                "dmPolicy": "open",
                "allowFrom": ["*"],
                "pacing": False,
                "dmHistoryLimit": 0,
                "draftChunk": {"minChars": MAX_CHARS, "maxChars": MAX_CHARS, "idleMs": 60_000},
                "agent": {"baseUrl": base_url, "model": "bench", "maxRetries": 0, **agent},
            }
        }
    }


@contextlib.asynccontextmanager
async def gateway_on(
    world: SimulatedWeChat, cfg: dict[str, Any]
) -> AsyncIterator[tuple[Gateway, list[float]]]:
    """A started, logged-in gateway; the list gets ``time.monotonic()`` at each send."""
    sends: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        gw = world.gateway(cfg, ConfiguredAssistant(), state_dir=tmp, store=MemoryStore())
        await gw.start()
        await world.login()
        puppet = world.puppet()
        real_send = puppet.send_text

        async def timed_send(*args: Any, **kwargs: Any) -> Any:
            sends.append(time.monotonic())
            return await real_send(*args, **kwargs)

        puppet.send_text = timed_send  # type: ignore[method-assign]
        try:
            yield gw, sends
        finally:
            await gw.close()


async def answer(world: SimulatedWeChat, gw: Gateway, sender: str, text: str) -> None:
    """Say ``text`` and wait for the whole answer. Virtual time stands still meanwhile:
    with pacing off and the memory store nothing of a reply waits on it, and the block's
    idle flush (60 s) never comes early."""
    await world.say(sender, text)
    await gw.wait_idle()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


# ---------------------------------------------------------------- first-send


async def first_send(replies: int, rate: float) -> None:
    # 300 characters: the first block and a little more
    model = FakeModel([ModelStep(text=TEXT[:300], piece_chars=PIECE)], token_delay_s=1 / rate)
    base_url = await model.serve()
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    needed = MAX_CHARS // PIECE + 1  # the text chunk that takes the buffer past maxChars
    overheads, totals, rules = [], [], []
    async with gateway_on(world, config(base_url)) as (gw, sends):
        for i in range(replies + 1):
            sends.clear()
            await answer(world, gw, f"wxid_user_{i}", "tell me")
            times = model.chunk_times  # [0] is the role chunk; text from [1]
            if i == 0:
                continue  # the first reply warms the client (a connection, a thread)
            overheads.append(sends[0] - times[needed])
            totals.append(sends[0] - times[1])
            rules.append(times[needed] - times[1])
    await model.close()
    overheads.sort()
    p90 = overheads[int(0.9 * (len(overheads) - 1))]
    print(f"first-send at {rate:g} tokens/s, maxChars {MAX_CHARS}, {replies} replies:")
    print(
        f"  over the rules: median {ms(statistics.median(overheads))}, p90 {ms(p90)}, "
        f"max {ms(overheads[-1])}"
    )
    print(
        f"  first token to first send: median {ms(statistics.median(totals))} "
        f"(the rules: {ms(statistics.median(rules))})"
    )


# ---------------------------------------------------------------- cpu

SERVE = """
import asyncio, sys
sys.path.insert(0, {root!r})
from simulator.fake_model import FakeModel, ModelStep
async def main():
    model = FakeModel([ModelStep(text={text!r}, piece_chars={piece})])
    print(await model.serve(), flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


async def cpu(replies: int) -> None:
    text = TEXT[:600]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVE.format(root=str(ROOT), text=text, piece=PIECE),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        base_url = (await proc.stdout.readline()).decode().strip()
        floor = await _client_cpu(base_url, replies)
        world = SimulatedWeChat(seed=0)
        world.add_account("default")
        async with gateway_on(world, config(base_url)) as (gw, sends):
            await answer(world, gw, "wxid_warm", "tell me")
            start = time.process_time()
            for i in range(replies):
                await answer(world, gw, f"wxid_user_{i}", "tell me")
            used = (time.process_time() - start) / replies
            blocks = len(sends) / (replies + 1)
    finally:
        proc.terminate()
        await proc.wait()
    print(f"cpu per streamed reply ({len(text)} characters, 150 chunks, {blocks:.0f} blocks):")
    print(f"  gateway process {ms(used)}; the bare openai client reading it {ms(floor)}")


async def _client_cpu(base_url: str, replies: int) -> float:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)

    async def one() -> None:
        stream = await client.chat.completions.create(
            model="bench", messages=[{"role": "user", "content": "tell me"}], stream=True
        )
        async for _ in stream:
            pass

    await one()
    start = time.process_time()
    for _ in range(replies):
        await one()
    used = (time.process_time() - start) / replies
    await client.close()
    return used


# ---------------------------------------------------------------- tools


def two_adds(body: dict[str, Any]) -> ModelStep:
    done = [m for m in body["messages"] if m["role"] == "tool"]
    if len(done) == 0:
        return ModelStep(tool_calls=[("add", {"a": 1, "b": 2})])
    if len(done) == 1:
        return ModelStep(tool_calls=[("add", {"a": 3, "b": 4})])
    return ModelStep(text=f"The sums are {done[0]['content']} and {done[1]['content']}.")


async def tools(replies: int) -> None:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from openai import AsyncOpenAI

    model = FakeModel(two_adds)
    base_url = await model.serve()
    server = {"command": sys.executable, "args": [str(TOOL_SERVER)]}
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    params = StdioServerParameters(command=sys.executable, args=[str(TOOL_SERVER)])
    turns, floor = [], []
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write) as session,
        gateway_on(world, config(base_url, mcpServers={"tools": server})) as (gw, sends),
    ):
        await session.initialize()
        schemas = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description or "",
                    "parameters": t.inputSchema,
                },
            }
            for t in (await session.list_tools()).tools
        ]
        # alternated, turn by turn: the machine's moods fall on both alike
        for i in range(replies + 1):
            sends.clear()
            start = time.monotonic()
            await answer(world, gw, f"wxid_user_{i}", "add them")
            turn = sends[-1] - start
            start = time.monotonic()
            await _direct_turn(client, session, schemas)
            if i:  # the first of each warms up
                turns.append(turn)
                floor.append(time.monotonic() - start)
    await client.close()
    await model.close()
    assert len(model.requests) == 6 * (replies + 1), "the model was not asked three times"
    turn, direct = statistics.median(turns), statistics.median(floor)
    print(f"a turn with two tool calls (3 model requests, 2 MCP calls), {replies} turns:")
    print(
        f"  through the gateway {ms(turn)}; the same calls made directly {ms(direct)}; "
        f"{turn / direct:.2f}x, {ms(turn - direct)} over"
    )


async def _direct_turn(client: Any, session: Any, schemas: list[Any]) -> None:
    """The turn's model requests and tool calls, made directly (the floor)."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "add them"}]
    for _ in range(3):
        calls = await _stream(client, messages, schemas)
        if not calls:
            return
        messages.append({"role": "assistant", "content": None, "tool_calls": calls})
        for call in calls:
            args = json.loads(call["function"]["arguments"])
            result = await session.call_tool(call["function"]["name"], args)
            text = "".join(getattr(c, "text", "") for c in result.content)
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": text})


async def _stream(client: Any, messages: list[dict[str, Any]], schemas: list[Any]) -> list[Any]:
    stream = await client.chat.completions.create(
        model="bench", messages=messages, tools=schemas, stream=True
    )
    calls: dict[int, dict[str, Any]] = {}
    async for chunk in stream:
        for piece in chunk.choices[0].delta.tool_calls or ():
            call = calls.setdefault(
                piece.index,
                {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
            )
            call["id"] = piece.id or call["id"]
            if piece.function and piece.function.name:
                call["function"]["name"] += piece.function.name
            if piece.function and piece.function.arguments:
                call["function"]["arguments"] += piece.function.arguments
    return [calls[i] for i in sorted(calls)]


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "what", nargs="?", default="all", choices=["first-send", "cpu", "tools", "all"]
    )
    parser.add_argument("--replies", type=int, default=30)
    parser.add_argument("--rate", type=float, default=50.0, help="tokens a second")
    args = parser.parse_args()
    runs: dict[str, Callable[[], Any]] = {
        "first-send": lambda: first_send(args.replies, args.rate),
        "cpu": lambda: cpu(args.replies),
        "tools": lambda: tools(args.replies),
    }
    for name, run in runs.items():
        if args.what in (name, "all"):
            asyncio.run(run())


if __name__ == "__main__":
    main()
