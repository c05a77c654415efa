"""`gateway run` tunes Python's garbage collector once started; the library alone never does."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from wechat_sdk.agent import AgentTurn
from wechat_sdk.cli import cli
from wechat_sdk.gateway import service
from wechat_sdk.gateway.control import control_request


@pytest.fixture
def gc_state() -> Iterator[None]:
    """Whatever a test does to the collector is undone for the tests after it."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


async def echo(turn: AgentTurn) -> str:
    return turn.text


def test_tune_gc_freezes_start_up_objects_and_raises_the_young_threshold(
    gc_state: None,
) -> None:
    gc.set_threshold(700, 10, 10)
    made_at_start_up = [object() for _ in range(10)]  # noqa: F841 (alive while frozen)
    before = gc.get_freeze_count()
    service.tune_gc()
    assert gc.get_freeze_count() > before
    assert gc.get_threshold() == (service.GC_GEN0_THRESHOLD, 10, 10)


def test_tune_gc_never_lowers_a_higher_threshold(gc_state: None) -> None:
    gc.set_threshold(50_000, 20, 30)
    service.tune_gc()
    assert gc.get_threshold() == (50_000, 20, 30)


async def test_serve_tunes_the_collector_only_when_asked_and_after_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original_start = service.Gateway.start
    started = asyncio.Event()

    async def start(self: service.Gateway) -> None:
        await original_start(self)
        calls.append(len(self.runners))  # the accounts exist before the collector is tuned
        started.set()

    monkeypatch.setattr(service.Gateway, "start", start)
    monkeypatch.setattr(service, "tune_gc", lambda: calls.append(-1))
    config = tmp_path / "config.json5"
    config.write_text(json.dumps({"channels": {"wechat": {"puppet": "simulator"}}}))
    for tuning, state in ((False, tmp_path / "a"), (True, tmp_path / "b")):
        started.clear()
        task = asyncio.create_task(service.serve(config, state, echo, gc_tuning=tuning))
        async with asyncio.timeout(30):
            await started.wait()  # (the control socket is up before the start)
        await asyncio.to_thread(control_request, state, {"cmd": "stop"})
        assert await task == 0
    assert calls == [1, 1, -1]  # not tuned without gc_tuning; tuned once started with it


def test_gateway_run_asks_serve_for_gc_tuning(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    async def fake_serve(*args: object, **kwargs: object) -> int:
        seen.update(kwargs)
        return 0

    monkeypatch.setattr(service, "serve", fake_serve)
    result = CliRunner().invoke(cli, ["gateway", "run"])
    assert result.exit_code == 0, result.output
    assert seen.get("gc_tuning") is True
