"""Compare the gateway of two or more code trees on the Wechaty burst, run by run.

Run: ``python bench/bench_wechaty_ab.py --rounds 8 floor=. base=/tmp/base head=.`` where
each ``name=path`` is a checkout of this repository (``git worktree add /tmp/base REV``
makes one) and ``floor`` runs the raw-stub floor of ``bench/bench_wechaty.py`` instead
of the gateway. Never part of the test suite.

Each round runs one 3,000-DM burst per tree, in the order given (a fresh sidecar and a
fresh bot process each, as in ``bench_wechaty.py``, whose code it uses). Per tree it prints
the medians of: the span (first DM to last reply, in ms), the CPU time per reply of the bot
process, of its **main thread** alone, and of the sidecar, the whole machine's busy time per
reply (``/proc/stat``), and the throughput relative to the first tree, run by run.

On this 2-core machine the bot's main thread (the event loop) is what limits a burst: the
throughput ratios follow the main thread's CPU time per reply, not the process's.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any


def _load(name: str, root: str) -> ModuleType:
    path = Path(root).resolve() / "bench" / "bench_wechaty.py"
    spec = importlib.util.spec_from_file_location(f"bench_wechaty_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _threads(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of a process so far ("main" for the main thread)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                text = fh.read()
        except OSError:
            continue
        fields = text.rpartition(")")[2].split()
        name = "main" if tid == str(pid) else f"thread-{tid}"
        out[name] = (int(fields[11]) + int(fields[12])) / tick
    return out


def _machine_busy() -> float:
    """Seconds of CPU the whole machine was busy so far (user, nice, system, irq, softirq)."""
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")


async def _burst(bench: ModuleType, role: str, n: int, contacts: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-wechaty-ab-") as tmp:
        async with bench.Session(role, Path(tmp)) as s:
            ids = await s.contacts(contacts)
            busy0, main0 = _machine_busy(), _threads(s.proc.pid)["main"]
            cpu0 = (bench.cpu_s(s.proc.pid), bench.cpu_s(s.sidecar.pid))
            made = await s.control("burst", **{"from": ids, "count": n, "prefix": "m"})
            start = int(made["timestamps"][0])
            await s.wait_replies(start, n)
            busy1, main1 = _machine_busy(), _threads(s.proc.pid)["main"]
            cpu1 = (bench.cpu_s(s.proc.pid), bench.cpu_s(s.sidecar.pid))
            sent = (await s.control("sentSince", since=start))["sent"]
    first: dict[str, int] = {}  # each DM's first reply
    for r in sent:
        if r["text"].startswith("echo: m"):
            first.setdefault(r["text"], int(r["timestamp"]))
    return {
        "span_ms": float(max(first.values()) - start) if first else float("inf"),
        "replies": float(len(first)),
        "bot_ms": (cpu1[0] - cpu0[0]) * 1000 / n,
        "main_ms": (main1 - main0) * 1000 / n,
        "sidecar_ms": (cpu1[1] - cpu0[1]) * 1000 / n,
        "machine_ms": (busy1 - busy0) * 1000 / n,
    }


async def _main(args: argparse.Namespace) -> None:
    trees = dict(t.split("=", 1) for t in args.trees)
    benches = {name: _load(name, root) for name, root in trees.items()}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for i in range(args.rounds):
        for name, bench in benches.items():
            role = "floor" if name == "floor" else "gateway"
            r = await _burst(bench, role, args.dms, args.contacts)
            runs[name].append(r)
            print(f"round {i + 1} {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()))
    first = next(iter(trees))
    print(
        f"\n{args.dms} DMs from {args.contacts} contacts, {args.rounds} rounds, medians; "
        f"throughput relative to {first}, run by run\n"
    )
    print(
        "| tree | span (ms) | bot CPU (ms/reply) | main thread | sidecar | machine "
        f"| throughput vs {first} (runs) | lost |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, rs in runs.items():
        ratios = sorted(
            base["span_ms"] / r["span_ms"] for base, r in zip(runs[first], rs, strict=True)
        )

        def med(key: str, rs: list[dict[str, Any]] = rs) -> float:
            return statistics.median(r[key] for r in rs)

        lost = max(args.dms - r["replies"] for r in rs)
        print(
            f"| {name} | {med('span_ms'):.0f} | {med('bot_ms'):.3f} | {med('main_ms'):.3f} "
            f"| {med('sidecar_ms'):.3f} | {med('machine_ms'):.3f} "
            f"| {statistics.median(ratios):.0%} ({ratios[0]:.0%}-{ratios[-1]:.0%}) "
            f"| {lost:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+", help="name=path of a checkout (floor=...: the floor)")
    parser.add_argument("--rounds", type=int, default=8, help="bursts per tree")
    parser.add_argument("--dms", type=int, default=3000, help="DMs per burst")
    parser.add_argument("--contacts", type=int, default=100, help="contacts sending the burst")
    os.environ.setdefault(
        "WECHAT_SDK_NODE_CACHE", str(Path(__file__).resolve().parent.parent / "build/node-cache")
    )
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
