"""iLink DM round trips against the standalone simulator: the gateway against a raw client.

Run: ``python bench/bench_ilink.py [--messages 1000] [--warmup 50] [--repeat 3]``. Never
part of the test suite.

Each round starts ``wechat-sdk simulator serve`` in its own process (on the real clock)
with two iLink bot accounts, and one bot on each:

- ``raw`` (account ``raw``): a raw client (aiohttp, nothing of wechat-sdk's, in a process
  of its own) logged in by QR, doing what any iLink bot does: one long poll open at
  all times (``getupdates`` with the cursor it was given), and for each user message the
  call the gateway makes for a reply ready at once: a ``sendmessage`` answering it with
  its ``context_token`` (the gateway shows no typing for such a reply: it would follow
  the reply; the few typing calls it makes when its fsync went to a worker thread, and
  the reply was not ready, are counted and printed). The floor.
- ``gateway`` (account ``gw``): ``wechat-sdk gateway run`` in a process of its own, with
  one iLink account on the simulator (``puppet: "ilink"``, ``pacing: false``,
  ``dmPolicy: "open"``, the echo agent, logging at WARNING, the SQLite store), logged in
  by the simulated phone.

Each round trip, one message at a time, is timed from the moment the test says a user
message (``POST /sim/messages`` sent) to the moment the reply is in the world's transcript
(``GET /sim/sent?since=N&wait_ms=...`` answered). The two bots take turns message by
message (raw first on even messages, the gateway first on odd ones), so a change of the
machine's speed hits both alike, with a pause of ``QUIET_S`` after each round trip, so
that neither bot's work after its reply (its next poll, the gateway's fsync) is counted
against the other. The figure is the median of the per-message differences (gateway
minus raw), and the verdict the median of the rounds' figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from simulator.ilink.process import serve_process

ALICE = "alice@im.wechat"
#: the pause after each round trip (a bot's trailing work takes a few milliseconds)
QUIET_S = 0.01
HEADERS = {"Content-Type": "application/json", "AuthorizationType": "ilink_bot_token"}


class RawBot:
    """An iLink bot in a few lines: poll, answer every user message."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base, self.token, self.buf = http, base, "", ""

    async def post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {**HEADERS, "Authorization": f"Bearer {self.token}"}
        body = {**body, "base_info": {"channel_version": "bench", "bot_agent": "bench/1"}}
        async with self.http.post(
            f"{self.base}ilink/bot/{endpoint}", data=json.dumps(body), headers=headers
        ) as resp:
            answer: dict[str, Any] = await resp.json(content_type=None)
            return answer

    async def login(self) -> None:
        """A QR login (the simulated phone scans it at once: ``--scan-after-ms 0``)."""
        async with self.http.post(f"{self.base}ilink/bot/get_bot_qrcode?bot_type=3", json={}) as r:
            qrcode = (await r.json())["qrcode"]
        url = f"{self.base}ilink/bot/get_qrcode_status?qrcode={qrcode}"
        async with asyncio.timeout(30):
            while not self.token:  # (the server holds each status call until it changes)
                async with self.http.get(url) as r:
                    self.token = (await r.json()).get("bot_token") or ""

    async def run(self) -> None:
        n = 0
        while True:
            updates = await self.post("getupdates", {"get_updates_buf": self.buf})
            self.buf = updates.get("get_updates_buf") or self.buf
            for msg in updates.get("msgs") or []:
                n += 1
                text = msg["item_list"][0]["text_item"]["text"]
                reply = {
                    "to_user_id": msg["from_user_id"],
                    "client_id": f"bench-{n}",
                    "message_type": 2,
                    "message_state": 2,
                    "context_token": msg["context_token"],
                    "item_list": [{"type": 1, "text_item": {"text": text}}],
                }
                answer = await self.post("sendmessage", {"msg": reply})
                assert answer.get("ret") == 0, answer


async def round_trip(http: aiohttp.ClientSession, base: str, account: str, i: int) -> float:
    said = {"from": ALICE, "account": account, "text": f"message {i}"}
    started = time.perf_counter()
    async with http.post(f"{base}sim/messages", json=said) as resp:
        assert resp.status == 201
    async with http.get(f"{base}sim/sent?account={account}&since={i}&wait_ms=10000") as resp:
        sent = await resp.json()
    elapsed = time.perf_counter() - started
    assert sent and sent[0]["text"] == f"message {i}", sent
    return elapsed


async def wait_logged_in(http: aiohttp.ClientSession, base: str, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        async with http.get(f"{base}sim/accounts") as resp:
            if all(a["logged_in"] for a in await resp.json()):
                return
        await asyncio.sleep(0.05)
    raise SystemExit("the gateway never logged in")


async def start_gateway(base: str, api: str, state_dir: Path) -> asyncio.subprocess.Process:
    """``wechat-sdk gateway run`` with an iLink account on the simulator (its API at
    ``api``, whose QR codes log in the account ``gw``) and the echo agent."""
    wechat = {
        "puppet": "ilink",
        "puppetOptions": {"baseUrl": api, "cdnBaseUrl": f"{base}c2c"},
        "pacing": False,
        "dmPolicy": "open",
        "allowFrom": ["*"],
    }
    config = state_dir / "config.json5"
    config.write_text(json.dumps({"channels": {"wechat": wechat}}), encoding="utf-8")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wechat_sdk", "gateway", "run", "--config", str(config),
        "--state-dir", str(state_dir / "state"), "--agent", "echo", "--log-level", "warning",
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


@dataclass
class Round:
    """One round's times (ms), message by message: raw's and the gateway's round trips,
    and an fsync of the disk the gateway's state is on, taken between them."""

    raw: list[float]
    gateway: list[float]
    fsync: list[float]


def disk_fsync(path: Path) -> float:
    """Seconds an overwrite of 16 KiB and its ``fdatasync`` take in ``path``: a proxy for
    the disk's speed at the moment, beside the gateway's one fsync of its WAL a message
    (the raw client keeps no state)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, os.urandom(16384), 0)
        started = time.perf_counter()
        os.fdatasync(fd)
        return time.perf_counter() - started
    finally:
        os.close(fd)


async def measure(messages: int, warmup: int) -> Round:
    """One round: a fresh server, a fresh raw client and a fresh gateway."""
    async with serve_process(
        "--account", "raw", "--account", "gw", "--scan-after-ms", "0"
    ) as served:
        return await measure_on(served.base_url, messages, warmup)


async def measure_on(base: str, messages: int, warmup: int) -> Round:
    tmp = Path(tempfile.mkdtemp(prefix="bench-ilink-"))
    gateway = raw = None
    raw_times: list[float] = []
    gateway_times: list[float] = []
    fsync_times: list[float] = []
    try:
        async with aiohttp.ClientSession() as http:
            raw = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--raw-bot", f"{base}a/raw/"
            )  # a process of its own, as the gateway's
            gateway = await start_gateway(base, f"{base}a/gw", tmp)
            await wait_logged_in(http, base)
            for i in range(warmup + messages):
                order = [("raw", raw_times), ("gw", gateway_times)]
                for account, times in order if i % 2 == 0 else order[::-1]:
                    times.append(await round_trip(http, base, account, i))
                    # the bot's work after its reply (its next poll and fsync) is done
                    # before the other bot's message: not counted against the other
                    await asyncio.sleep(QUIET_S)
                fsync_times.append(disk_fsync(tmp / "fsync-probe"))
                await asyncio.sleep(QUIET_S)  # (the probe's own writeback: not counted)
            # the same calls on both sides: a typing call of the gateway's would show here
            async with http.get(f"{base}sim/events") as resp:
                typing = sum(e["event"] == "typing" for e in (await resp.json())["events"])
            if typing:
                print(f"  (the gateway made {typing} typing calls: the raw client made none)")
    finally:
        for process in (raw, gateway):
            if process is not None:
                process.terminate()
                await process.wait()
        shutil.rmtree(tmp, ignore_errors=True)  # (its state: a fresh one each round)
    return Round(
        *([t * 1000 for t in times[warmup:]] for times in (raw_times, gateway_times, fsync_times))
    )


async def main(messages: int, warmup: int, repeat: int) -> None:
    print(f"iLink DM round trip, {messages} messages a round ({warmup} warm-up), {repeat} rounds")
    added: list[float] = []
    for r in range(repeat):
        measured = await measure(messages, warmup)
        differences = [g - f for f, g in zip(measured.raw, measured.gateway, strict=True)]
        added.append(statistics.median(differences))
        for name, times in (("raw", measured.raw), ("gateway", measured.gateway)):
            q = statistics.quantiles(times, n=100)
            print(
                f"  round {r + 1} {name:8} median {statistics.median(times):6.2f} ms"
                f"  p90 {q[89]:6.2f} ms  p99 {q[98]:6.2f} ms"
            )
        print(
            f"  round {r + 1} the gateway adds {added[-1]:.2f} ms (median of the differences);"
            f" a probe fdatasync meanwhile: {statistics.median(measured.fsync):.2f} ms"
        )
    print(
        f"  the gateway adds {statistics.median(added):.2f} ms at the median "
        f"(rounds: {', '.join(f'{a:.2f}' for a in added)})"
    )


async def raw_bot(base: str) -> None:
    """The raw client alone (``--raw-bot BASE``): log in, answer until terminated."""
    async with aiohttp.ClientSession() as http:
        raw = RawBot(http, base)
        await raw.login()
        await raw.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--raw-bot", metavar="BASE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_bot:
        asyncio.run(raw_bot(args.raw_bot))
    else:
        asyncio.run(main(args.messages, args.warmup, args.repeat))
