"""Compare the simulator throughput of two or more code trees, run by run.

Run: ``python bench/bench_gateway_ab.py [--rounds 5] [--messages 3000] base=/tmp/base head=.``
where each ``name=path`` is a checkout of this repository (``git worktree add /tmp/base
REV`` makes one). Never part of the test suite.

Each round runs ``bench/bench_gateway.py throughput`` of every tree once, in the order
given, each in a fresh interpreter with that tree first on ``PYTHONPATH`` (its own script,
so each tree builds its gateway with its own API). One run gives messages/s at 1, 100 and
10,000 conversations (the best of 3 inside the run). Per tree and number of conversations
it prints the median messages/s over the rounds with the range, and for every tree after
the first the median of the round-by-round ratios to the first tree: the trees take turns,
so a change in the machine's speed hits them alike.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROW = re.compile(r"^\| ([\d,]+) \| [\d,]+ \| [\d.]+ \| ([\d,]+) \|")


def run_tree(path: Path, messages: int, store: str) -> dict[int, float]:
    """messages/s by number of conversations, from one run of the tree's own script."""
    env = {**os.environ, "PYTHONPATH": str(path)}
    out = subprocess.run(
        [
            sys.executable,
            str(path / "bench" / "bench_gateway.py"),
            "throughput",
            "--messages",
            str(messages),
            "--store",
            store,
        ],
        env=env,
        cwd=path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rates: dict[int, float] = {}
    for line in out.splitlines():
        m = ROW.match(line)
        if m:
            rates[int(m.group(1).replace(",", ""))] = float(m.group(2).replace(",", ""))
    if not rates:
        raise SystemExit(f"no throughput table from {path}:\n{out}")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", help="name=path of a checkout; the first is the base")
    parser.add_argument("--rounds", type=int, default=5, help="runs per tree")
    parser.add_argument("--messages", type=int, default=3000, help="DMs per run and size")
    parser.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    args = parser.parse_args()
    trees = [(n, Path(p).resolve()) for n, p in (t.split("=", 1) for t in args.trees)]
    names = [n for n, _ in trees]

    runs: dict[str, list[dict[int, float]]] = {n: [] for n in names}
    for i in range(args.rounds):
        for name, path in trees:
            runs[name].append(run_tree(path, args.messages, args.store))
            shown = ", ".join(f"{c:,}: {r:,.0f}" for c, r in runs[name][-1].items())
            print(f"round {i + 1} {name}: messages/s by conversations {shown}", flush=True)

    print(
        f"\n{args.messages:,} messages per run, {args.store} store, {args.rounds} rounds; "
        f"medians, the range in brackets; ratio to {names[0]}, round by round\n"
    )
    header = "| conversations | " + " | ".join(f"{n} messages/s" for n in names)
    header += "".join(f" | {n} / {names[0]}" for n in names[1:]) + " |"
    print(header)
    print("|---:" * (len(names) * 2) + "|")
    for conversations in runs[names[0]][0]:
        cells = []
        for n in names:
            rates = [r[conversations] for r in runs[n]]
            cells.append(f"{statistics.median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f})")
        for n in names[1:]:
            ratios = sorted(
                r[conversations] / b[conversations]
                for b, r in zip(runs[names[0]], runs[n], strict=True)
            )
            cells.append(f"{statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})")
        print(f"| {conversations:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
