"""The iLink round trip (bench_ilink.py) of two or more checkouts, round by round.

Run: ``python bench/bench_ilink_ab.py --rounds 10 before=/tmp/before head=.`` (make the
other checkout with ``git worktree add /tmp/before <commit>``). Never part of the test
suite.

Each round runs ``bench_ilink.py --repeat 1`` (this checkout's script, so every tree is
measured the same way) once per tree, in turn, with that tree's code first on
``PYTHONPATH``: the simulator and the gateway it starts are that tree's. A change of the
machine's speed then hits the trees alike. Prints each round's figure (what the gateway
adds to the raw client's round trip, median of the per-message differences; all in ms),
the raw client's own round trip in each tree's run (how fast the machine was), and, per
tree, the median of its rounds.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).with_name("bench_ilink.py")
_ADDS = re.compile(r"the gateway adds ([0-9.]+) ms at the median")
_RAW = re.compile(r"raw +median +([0-9.]+) ms")


def one_round(tree: Path, messages: int, warmup: int) -> tuple[float, float]:
    """What the gateway adds (ms), and the raw client's median round trip (ms)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, str(BENCH), "--messages", str(messages), "--warmup", str(warmup)]
    done = subprocess.run(
        [*command, "--repeat", "1"], cwd=tree, env=env, capture_output=True, text=True
    )
    found, raw = _ADDS.search(done.stdout), _RAW.search(done.stdout)
    if done.returncode != 0 or found is None or raw is None:
        raise SystemExit(f"{tree}: bench_ilink.py failed:\n{done.stdout}\n{done.stderr}")
    return float(found.group(1)), float(raw.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", help="name=path of a checkout")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()
    trees: dict[str, Path] = {}
    for given in args.trees:
        name, _, path = given.partition("=")
        if not path or not (Path(path) / "wechat_sdk").is_dir():
            raise SystemExit(f"{given!r}: give name=path of a wechat-sdk checkout")
        trees[name] = Path(path).resolve()
    figures: dict[str, list[float]] = {name: [] for name in trees}
    print("| round | " + " | ".join(trees) + " | the raw client's round trip |")
    print("|---:|" + "---:|" * len(trees) + "---|")
    for r in range(args.rounds):
        raws: list[str] = []
        for name, tree in trees.items():
            added, raw = one_round(tree, args.messages, args.warmup)
            figures[name].append(added)
            raws.append(f"{raw:.2f}")
        shown = " | ".join(f"{figures[n][-1]:.2f}" for n in trees)
        print(f"| {r + 1} | {shown} | {' / '.join(raws)} |", flush=True)
    medians = " | ".join(f"**{statistics.median(figures[n]):.2f}**" for n in trees)
    print(f"| median | {medians} | |")


if __name__ == "__main__":
    main()
