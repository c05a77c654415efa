"""`wechat-sdk gateway run --config F` answers with the config's assistant (no --agent), as
a real process on the simulator puppet, with a fake model over HTTP and an MCP server it
starts and stops; `--agent` still overrides it."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_gateway_cli import Running, config_text, sent_texts, wait_for

from simulator.fake_model import FakeModel, ModelStep

pytestmark = pytest.mark.slow

TOOL_SERVER = str(Path(__file__).with_name("mcp_tool_server.py"))
KEY = "sk-cli-test-0123456789"


def adds(body: dict[str, Any]) -> ModelStep:
    results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if results:
        return ModelStep(text=f"the sum is {results[-1]}")
    return ModelStep(tool_calls=[("add", {"a": 40, "b": 2})])


@pytest.fixture
def model_url() -> Iterator[str]:
    """The fake model, served from a thread of its own for the gateway's process."""
    loop = asyncio.new_event_loop()
    model = FakeModel(adds)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    url = asyncio.run_coroutine_threadsafe(model.serve(), loop).result(10)
    try:
        yield url
    finally:
        asyncio.run_coroutine_threadsafe(model.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def write_config(tmp_path: Path, model_url: str) -> tuple[Path, Path]:
    inbox, transcript = tmp_path / "inbox", tmp_path / "transcript.jsonl"
    inbox.mkdir()
    agent = {
        "baseUrl": model_url,
        "apiKey": KEY,
        "model": "fake",
        "mcpServers": {"tools": {"command": sys.executable, "args": [TOOL_SERVER]}},
    }
    options = {"scanAfterMs": 200, "inbox": str(inbox), "transcript": str(transcript)}
    (tmp_path / "config.json5").write_text(
        config_text(puppetOptions=options, pacing=False, agent=agent)
    )
    return inbox, transcript


def say(inbox: Path, text: str) -> None:
    (inbox / "m.tmp").write_text(json.dumps({"from": "wxid_alice", "text": text}))
    (inbox / "m.tmp").rename(inbox / "m.json")


def test_gateway_run_answers_with_the_configs_assistant(tmp_path: Path, model_url: str) -> None:
    inbox, transcript = write_config(tmp_path, model_url)
    run = Running(tmp_path).start()
    try:
        run.wait_ready()
        say(inbox, "what is 40 + 2?")
        wait_for("the answer", lambda: sent_texts(transcript))
        assert sent_texts(transcript) == ["the sum is 42"]
        assert run.proc is not None
        run.proc.send_signal(signal.SIGTERM)
        assert run.wait_exit() == 0
    finally:
        run.kill()
    log = run.stderr()
    assert "MCP server 'tools' ready: 9 tool(s)" in log
    assert KEY not in log and "Traceback" not in log


def test_the_agent_option_overrides_the_config(tmp_path: Path, model_url: str) -> None:
    inbox, transcript = write_config(tmp_path, model_url)
    run = Running(tmp_path, "run", "--agent", "echo").start()
    try:
        run.wait_ready()
        say(inbox, "hello")
        wait_for("the echo", lambda: sent_texts(transcript))
        assert sent_texts(transcript) == ["hello"]
    finally:
        run.kill()
    assert "MCP server" not in run.stderr()  # the config's assistant never started
