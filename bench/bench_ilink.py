"""iLink DM round trips against the standalone simulator, by a raw HTTP client.

Run: ``python bench/bench_ilink.py [--messages 1000] [--warmup 50]``. Never part of the
test suite.

It starts ``wechat-sdk simulator serve`` in its own process (on the real clock) and logs a
bot in by QR through the control API. A raw client (aiohttp, nothing of wechat-sdk's) then
does what any iLink bot does: one long poll open at all times (``getupdates`` with the
cursor it was given), and for each user message a ``sendmessage`` answering it with its
``context_token``. Each round trip is timed from the moment the test says a user message
(``POST /sim/messages`` sent) to the moment the reply is in the world's transcript
(``GET /sim/sent?since=N&wait_ms=...`` answered): the server, the poll, the client's
handling and the send. This is the floor the gateway's own round trip (the same
measurement with the gateway's iLink adapter as the client) is compared with. It prints
the median, p90 and p99 in milliseconds, and the messages per second of the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from typing import Any

import aiohttp

ALICE = "alice@im.wechat"
HEADERS = {"Content-Type": "application/json", "AuthorizationType": "ilink_bot_token"}


async def start_server() -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wechat_sdk", "simulator", "serve", "--port", "0",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stdout is not None
    line = (await proc.stdout.readline()).decode()
    found = re.match(r"iLink server at (\S+)", line)
    if not found:
        raise SystemExit(f"the simulator did not start: {line!r}")
    return proc, found.group(1)


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
        async with self.http.post(f"{self.base}ilink/bot/get_bot_qrcode?bot_type=3", json={}) as r:
            qrcode = (await r.json())["qrcode"]
        async with self.http.post(f"{self.base}sim/accounts/bot/login") as r:
            assert r.status == 200, await r.text()
        url = f"{self.base}ilink/bot/get_qrcode_status?qrcode={qrcode}"
        async with self.http.get(url) as r:
            self.token = (await r.json())["bot_token"]

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


async def round_trip(http: aiohttp.ClientSession, base: str, i: int) -> float:
    said = {"from": ALICE, "account": "bot", "text": f"message {i}"}
    started = time.perf_counter()
    async with http.post(f"{base}sim/messages", json=said) as resp:
        assert resp.status == 201
    async with http.get(f"{base}sim/sent?account=bot&since={i}&wait_ms=10000") as resp:
        sent = await resp.json()
    elapsed = time.perf_counter() - started
    assert sent and sent[0]["text"] == f"message {i}", sent
    return elapsed


async def main(messages: int, warmup: int) -> None:
    proc, base = await start_server()
    try:
        async with aiohttp.ClientSession() as http:
            bot = RawBot(http, base)
            await bot.login()
            client = asyncio.ensure_future(bot.run())
            times = [await round_trip(http, base, i) for i in range(warmup + messages)]
            client.cancel()
    finally:
        proc.terminate()
        await proc.wait()
    measured = sorted(t * 1000 for t in times[warmup:])
    q = statistics.quantiles(measured, n=100)
    print(f"iLink DM round trip, raw aiohttp client, {messages} messages ({warmup} warm-up)")
    print(f"  median {statistics.median(measured):.2f} ms  p90 {q[89]:.2f} ms  p99 {q[98]:.2f} ms")
    print(f"  {messages / (sum(measured) / 1000):.0f} round trips per second, one at a time")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.warmup))
