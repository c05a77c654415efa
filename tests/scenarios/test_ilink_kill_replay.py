"""A gateway killed after the iLink adapter recorded a message (its cursor moved past it)
and before the gateway took it in: the next holder of the account answers it, through the
adapter's replay at its start, up to the hour a late message is still answered (a backlog
delivered late, after the cluster was down). Real HTTP to the standalone simulator, the
Redis store, on the real clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from standalone_simulator import sim
from waiting import until

from wechat_sdk import AgentTurn, Gateway, parse_config
from wechat_sdk.inbound.pipeline import InboundPipeline

pytestmark = pytest.mark.slow  # real HTTP on the real clock

ALICE = "alice@im.wechat"


async def agent(turn: AgentTurn) -> str:
    return f"echo: {turn.text}"


def kill(gw: Gateway) -> None:
    """A kill -9 of an in-process gateway: its loops end where they are, nothing settled
    or released (its lease expires)."""
    cluster = gw.cluster
    assert cluster is not None
    for task in (cluster._task, cluster._renewing, cluster._listening):
        assert task is not None
        task.cancel()
    for runner in gw.runners.values():
        for task in getattr(runner.puppet, "_tasks", []):
            task.cancel()  # (the poll of a dead process polls no more)
        assert runner._task is not None
        runner._task.cancel()


def frozen_before_taking_in(monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Event, Any]:
    """The gateway stops dead as it begins to take a message in (once ``on`` is set)."""
    frozen, never, on = asyncio.Event(), asyncio.Event(), {"on": True}
    drop_self = InboundPipeline.drop_self

    async def frozen_drop_self(self: InboundPipeline, message_id: str) -> Any:
        if on["on"]:
            frozen.set()
            await never.wait()
        return await drop_self(self, message_id)

    monkeypatch.setattr(InboundPipeline, "drop_self", frozen_drop_self)
    return frozen, on


@pytest.mark.parametrize("age_s", [60, 3300])
async def test_a_message_recorded_but_not_taken_in_at_a_kill_is_answered_by_the_next(
    served: str,
    tmp_path: Path,
    redis_url: str,
    redis_namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    age_s: int,
) -> None:
    from redis import Redis

    config = parse_config(
        f"""{{ channels: {{ wechat: {{
            puppet: "ilink", puppetOptions: {{ baseUrl: "{served}" }},
            dmPolicy: "open", allowFrom: ["*"], qrCode: false, pacing: false,
            store: {{ kind: "redis", url: "{redis_url}", namespace: "{redis_namespace}",
                      leaseTtlS: 1 }},
        }} }} }}"""
    )
    r = Redis.from_url(redis_url, decode_responses=True)
    # first served two hours ago: what was said while the cluster was down is no history
    r.set(f"{redis_namespace}:wechat:serving-since:default", repr(time.time() - 7200))
    first = Gateway(config, agent=agent, state_dir=tmp_path / "first")
    second = Gateway(config, agent=agent, state_dir=tmp_path / "second")
    async with aiohttp.ClientSession() as http:

        async def sent() -> list[str]:
            rows = await sim(http, "GET", f"{served}sim/sent?account=bot&to={ALICE}")
            return [row["text"] for row in rows]

        async def eventually(what: str, check: Callable[[], Awaitable[bool]]) -> None:
            for _ in range(750):
                if await check():
                    return
                await asyncio.sleep(0.02)
            raise AssertionError(what)

        await first.start()
        try:
            await until("a QR code", lambda: bool(first.runners) and first.status()[0].qr_url)
            await sim(http, "POST", f"{served}sim/accounts/bot/login")
            await until("ready", lambda: first.status()[0].lifecycle == "ready")
            frozen, freeze = frozen_before_taking_in(monkeypatch)
            said = {"from": ALICE, "account": "bot", "text": "late", "age_s": age_s}
            await sim(http, "POST", f"{served}sim/messages", said)
            await asyncio.wait_for(frozen.wait(), 20)
            kill(first)
            freeze["on"] = False
            await second.start()  # it takes the account once the lease expired

            async def answered() -> bool:
                return await sent() == ["echo: late"]

            await eventually(f"a message {age_s} s old answered by the next holder", answered)
        finally:
            await second.close()
            for runner in first.runners.values():  # (what the kill left open)
                http_session = getattr(runner.puppet, "_http", None)
                if http_session is not None:
                    await http_session.close()
            first.store.close()
            r.close()
