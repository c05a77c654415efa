"""Several gateways on one Redis: throughput with 1, 2 and 3 gateways, the store's cost
per message (Redis against SQLite), and the failover time after a kill -9.

Run: ``python bench/bench_cluster.py [--messages 240] [--ttl 15] [--parts all]``. Never
part of the test suite. Needs ``redis-server`` on the PATH (Debian: ``apt-get install
redis-server``); it starts its own on a free port, without persistence.

- ``throughput``: for 1, 2, 3 gateways (``wechat-sdk gateway run`` processes, the echo
  agent, ``pacing: false``, logging at WARNING) on 12 iLink accounts of the standalone
  simulator (a fresh one each time): ``--messages`` user messages, each from a user of
  its own, spread over the 12 accounts, said as fast as the control API takes them (32 at
  a time); messages per second from the first said to the last answered.
- ``store``: what the store does for one message in process, timed over 2,000 messages:
  the message's journal while it is taken in (an add before the dedupe check, a delete
  after), the dedupe check, two history appends, and the outbox journal of its turn (an
  add, ``sending``, a delete), on a ``RedisStore`` (a local redis-server) and a
  ``SqliteStore`` (a file in a temporary directory, writes committed as the gateway
  commits them).
- ``failover``: 3 gateways, 12 accounts; the gateway holding most is killed (SIGKILL),
  then each of its accounts gets a message at once: seconds from the kill to the first
  reply, and to the last (``--ttl`` is ``store.leaseTtlS``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from simulator.ilink.process import serve_process

ACCOUNTS = 12


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


class Run:
    """A simulator, a config, gateway processes."""

    def __init__(self, root: Path, redis_url: str, namespace: str, ttl_s: float) -> None:
        self.root = root
        self.redis_url = redis_url
        self.namespace = namespace
        self.ttl_s = ttl_s
        self.gateways: list[subprocess.Popen[bytes]] = []

    async def __aenter__(self) -> Run:
        bots = [a for n in range(ACCOUNTS) for a in ("--account", f"bot{n}")]
        self.stack = contextlib.AsyncExitStack()
        served = await self.stack.enter_async_context(
            serve_process("--poll-hold-ms", "1000", "--scan-after-ms", "0", *bots)
        )
        self.base = served.base_url
        self.simulator_pid = served.process.pid
        self.http = aiohttp.ClientSession()
        accounts = {
            f"a{n}": {"puppetOptions": {"baseUrl": f"{self.base}a/bot{n}/"}}
            for n in range(ACCOUNTS)
        }
        wechat = {
            "puppet": "ilink", "dmPolicy": "open", "allowFrom": ["*"], "qrCode": False,
            "pacing": False, "accounts": accounts,
            "store": {"kind": "redis", "url": self.redis_url, "namespace": self.namespace,
                      "leaseTtlS": self.ttl_s},
        }  # fmt: skip
        self.config = self.root / f"{self.namespace}.json"
        self.config.write_text(json.dumps({"channels": {"wechat": wechat}}))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for proc in self.gateways:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.gateways:
            proc.wait(30)
        await self.http.close()
        await self.stack.aclose()  # the simulator

    def start_gateway(self) -> subprocess.Popen[bytes]:
        n = len(self.gateways)
        proc = subprocess.Popen(
            [sys.executable, "-m", "wechat_sdk", "gateway", "run", "--config", str(self.config),
             "--state-dir", str(self.root / f"{self.namespace}-g{n}"), "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.gateways.append(proc)
        return proc

    async def sim_call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body) if body is not None else None
        async with self.http.request(method, f"{self.base}sim/{path}", data=data) as resp:
            return await resp.json(content_type=None)

    async def ready(self, gateways: int) -> None:
        """Every account logged in and held, spread over ``gateways``."""
        from redis.asyncio import Redis

        redis = Redis.from_url(self.redis_url, decode_responses=True)
        try:
            for _ in range(1200):
                rows = await self.sim_call("GET", "accounts")
                held = await self.holders(redis)
                if (
                    sum(1 for r in rows if r["logged_in"]) == ACCOUNTS
                    and len(held) == ACCOUNTS
                    and len(set(held.values())) == gateways
                    and max(Counter(held.values()).values()) <= -(-ACCOUNTS // gateways)
                ):
                    return
                await asyncio.sleep(0.1)
        finally:
            await redis.aclose()
        raise SystemExit("the accounts never got ready")

    async def holders(self, redis: Any) -> dict[str, str]:
        prefix = f"{self.namespace}:wechat:lease:"
        values = await redis.mget([f"{prefix}a{n}" for n in range(ACCOUNTS)])
        return {f"a{n}": v.rsplit(" ", 1)[0] for n, v in enumerate(values) if v is not None}

    async def answered(self) -> int:
        rows = await asyncio.gather(
            *(self.sim_call("GET", f"sent?account=bot{n}") for n in range(ACCOUNTS))
        )
        return sum(len(r) for r in rows)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux: /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy(pids: dict[str, int]) -> dict[str, float]:
    """Each process's CPU seconds so far (this benchmark's own as "client")."""
    now = {name: cpu_seconds(pid) for name, pid in pids.items()}
    own = os.times()
    now["client"] = own.user + own.system
    return now


async def throughput(
    root: Path, redis_url: str, messages: int, gateways: int, redis_pid: int
) -> tuple[float, dict[str, float]]:
    """Messages per second, and each process's share of a core while they were answered."""
    async with Run(root, redis_url, f"tp{gateways}", 15.0) as run:
        for _ in range(gateways):
            run.start_gateway()
        await run.ready(gateways)
        pids = {f"gateway {n + 1}": p.pid for n, p in enumerate(run.gateways)}
        pids |= {"simulator": run.simulator_pid, "redis": redis_pid}
        before = busy(pids)
        started = time.perf_counter()
        sem = asyncio.Semaphore(32)

        async def say(i: int) -> None:
            body = {"from": f"u{i}@im.wechat", "account": f"bot{i % ACCOUNTS}",
                    "text": f"message {i}"}  # fmt: skip
            async with sem:
                await run.sim_call("POST", "messages", body)

        await asyncio.gather(*(say(i) for i in range(messages)))
        while True:  # (the simulator tells no one: it is asked)
            if await run.answered() >= messages:
                elapsed = time.perf_counter() - started
                after = busy(pids)
                cores = {k: (after[k] - before[k]) / elapsed for k in after}
                return messages / elapsed, cores
            await asyncio.sleep(0.05)


def store_cost(redis_url: str, n: int = 2000) -> dict[str, float]:
    """Microseconds of store work per message."""
    from wechat_sdk.agent import HistoryEntry
    from wechat_sdk.stores import OutboxItem, SqliteStore
    from wechat_sdk.stores.redis import RedisStore

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        stores = {
            "redis": RedisStore(redis_url, namespace="bench-store"),
            "sqlite": SqliteStore(Path(tmp) / "s.sqlite3"),
        }
        for name, store in stores.items():
            times = []
            for i in range(n):
                t0 = time.perf_counter()
                (arrived,) = store.outbox.add(
                    [OutboxItem("a0", f"u{i % 50}", "message", 1e9 + i, turn=f"m{i}", dm=True)]
                )
                store.dedupe.check_and_add("a0", f"m{i}", 1e9 + i, 3600)
                store.outbox.delete(arrived.id)
                entry = HistoryEntry("user", "u", "U", f"text {i}", 1e9 + i, f"m{i}")
                store.history.append("a0", f"u{i % 50}", entry, 20)
                (item,) = store.outbox.add(
                    [OutboxItem("a0", f"u{i % 50}", "text", 1e9 + i, text=f"reply {i}")]
                )
                store.outbox.set_state(item.id, "sending")
                store.outbox.delete(item.id)
                store.history.append("a0", f"u{i % 50}", entry, 20)
                times.append(time.perf_counter() - t0)
            out[name] = statistics.median(times) * 1e6
            store.close()
    return out


async def failover(root: Path, redis_url: str, ttl_s: float, run_no: int) -> tuple[float, float]:
    from redis.asyncio import Redis

    async with Run(root, redis_url, f"fo{run_no}", ttl_s) as run:
        for _ in range(3):
            run.start_gateway()
        await run.ready(3)
        redis = Redis.from_url(redis_url, decode_responses=True)
        held = await run.holders(redis)
        await redis.aclose()
        victim_id, _ = Counter(held.values()).most_common(1)[0]
        pid = int(victim_id.split(":")[1])
        accounts = [a for a, h in held.items() if h == victim_id]
        before = await run.answered()
        os.kill(pid, signal.SIGKILL)
        killed = time.perf_counter()
        for a in accounts:
            n = int(a[1:])
            body = {"from": "failover@im.wechat", "account": f"bot{n}", "text": "still there?"}
            await run.sim_call("POST", "messages", body)
        first = None
        while True:
            got = await run.answered() - before
            if got and first is None:
                first = time.perf_counter() - killed
            if got >= len(accounts):
                assert first is not None
                return first, time.perf_counter() - killed
            await asyncio.sleep(0.05)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=240)
    parser.add_argument("--ttl", type=float, default=15.0)
    parser.add_argument("--failovers", type=int, default=3)
    parser.add_argument("--parts", default="throughput,store,failover")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        redis, url = start_redis(root)
        try:
            if "throughput" in parts:
                runs = {
                    g: await throughput(root, url, args.messages, g, redis.pid) for g in (1, 2, 3)
                }
                one = runs[1][0]
                for g, (rate, cores) in runs.items():
                    print(f"{g} gateway(s): {rate:.1f} messages/s ({rate / one:.2f}x one)")
                    shares = ", ".join(f"{name} {share:.0%}" for name, share in cores.items())
                    print(f"    share of a core each: {shares}; all: {sum(cores.values()):.0%}")
            if "store" in parts:
                for name, us in store_cost(url).items():
                    print(f"store work per message, {name}: {us:.0f} us (median)")
            if "failover" in parts:
                fails = [await failover(root, url, args.ttl, i) for i in range(args.failovers)]
                for first, last in fails:
                    print(
                        f"failover after kill -9 (TTL {args.ttl:g} s): first reply {first:.1f} s, "
                        f"last {last:.1f} s"
                    )
        finally:
            redis.terminate()
            redis.wait()


if __name__ == "__main__":
    asyncio.run(main())
