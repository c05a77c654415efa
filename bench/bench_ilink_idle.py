"""Many iLink accounts idle in one gateway: memory and CPU per account.

Run: ``python bench/bench_ilink_idle.py [--accounts 1,100,1000] [--idle-s 60]``. Never part
of the test suite.

For each number of accounts: ``wechat-sdk simulator serve`` in a process of its own (real
clock, loopback; the owner's phone scans every QR code at once, ``--scan-after-ms 0``, and
an empty long poll is held 30 s as Tencent's server does), then ``wechat-sdk gateway run``
with that many iLink accounts (``puppet: "ilink"``, each on its own base URL of the
simulator, the echo agent, logging at WARNING). Once every account is logged in (its long
poll open) and ``--settle-s`` more seconds have passed (the start's own work: a QR code PNG
per account), the gateway is left idle for ``--idle-s`` seconds and measured from
``/proc``: its resident memory (VmRSS) at the end, and the CPU it used (user + system)
while idle. Per account: the difference to the run with the fewest accounts, divided by
the difference in accounts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from simulator.ilink.process import serve_process

TICKS = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no VmRSS for {pid}")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


async def start_gateway(
    http: aiohttp.ClientSession, base: str, state_dir: Path
) -> asyncio.subprocess.Process:
    async with http.get(f"{base}sim/accounts") as resp:
        listed = await resp.json()
    accounts = {a["id"]: {"puppetOptions": {"baseUrl": a["base_url"].rstrip("/")}} for a in listed}
    wechat = {
        "puppet": "ilink",
        "puppetOptions": {"cdnBaseUrl": f"{base}c2c"},
        "qrCode": False,
        "pacing": False,
        "dmPolicy": "open",
        "allowFrom": ["*"],
        "defaultAccountId": next(iter(accounts)),
        "accounts": accounts,
    }
    config = state_dir / "config.json5"
    config.write_text(json.dumps({"channels": {"wechat": wechat}}), encoding="utf-8")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wechat_sdk", "gateway", "run", "--config", str(config),
        "--state-dir", str(state_dir / "state"), "--agent", "echo", "--log-level", "warning",
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def all_logged_in(http: aiohttp.ClientSession, base: str, within_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        async with http.get(f"{base}sim/accounts") as resp:
            if all(a["logged_in"] for a in await resp.json()):
                return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise SystemExit("the gateway's accounts never all logged in")


async def measure(count: int, idle_s: float, settle_s: float) -> tuple[float, float, float]:
    """(seconds to log every account in, RSS MB after the idle time, CPU s while idle)."""
    names = [f"bot{i:04d}" for i in range(count)]
    accounts = [flag for name in names for flag in ("--account", name)]
    async with serve_process("--scan-after-ms", "0", *accounts) as served:
        return await measure_on(served.base_url, count, idle_s, settle_s)


async def measure_on(
    base: str, count: int, idle_s: float, settle_s: float
) -> tuple[float, float, float]:
    gateway = None
    try:
        async with aiohttp.ClientSession() as http:
            with tempfile.TemporaryDirectory(prefix="bench-ilink-idle-") as tmp:
                gateway = await start_gateway(http, base, Path(tmp))
                login_s = await all_logged_in(http, base, within_s=120 + count * 0.5)
                # the start's own work (a QR code PNG per account, the first polls) ends
                await asyncio.sleep(settle_s)
                before = cpu_s(gateway.pid)
                await asyncio.sleep(idle_s)
                used = cpu_s(gateway.pid) - before
                rss = rss_mb(gateway.pid)
                gateway.terminate()
                await gateway.wait()
                gateway = None
    finally:
        if gateway is not None:
            gateway.kill()
            await gateway.wait()
    return login_s, rss, used


async def main(counts: list[int], idle_s: float, settle_s: float) -> None:
    print(f"iLink accounts idle in one gateway, {idle_s:g} s idle each\n")
    print("| accounts | all logged in (s) | gateway RSS (MB) | CPU while idle (% of a core) |")
    print("|---:|---:|---:|---:|")
    rows = []
    for count in counts:
        login_s, rss, used = await measure(count, idle_s, settle_s)
        rows.append((count, rss, used))
        print(f"| {count:,} | {login_s:.1f} | {rss:.1f} | {used / idle_s * 100:.2f} |")
    (n0, rss0, cpu0), (n1, rss1, cpu1) = rows[0], rows[-1]
    if n1 > n0:
        per_kb = (rss1 - rss0) * 1024 / (n1 - n0)
        per_cpu = (cpu1 - cpu0) / idle_s / (n1 - n0) * 100
        print(
            f"\nper account: {per_kb:.0f} KB of RSS and {per_cpu:.4f} % of a core "
            f"while idle ({n0:,} -> {n1:,} accounts)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", default="1,100,1000")
    parser.add_argument("--idle-s", type=float, default=60.0)
    parser.add_argument("--settle-s", type=float, default=30.0)
    args = parser.parse_args()
    asyncio.run(main([int(n) for n in args.accounts.split(",")], args.idle_s, args.settle_s))
