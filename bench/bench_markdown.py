"""Benchmark ``to_plain`` (markdown to plain text, run on every reply) on hostile text.

Run: ``python bench/bench_markdown.py``. A model's reply is not trusted: a line of many
openers without closers (``[a](``, ``**a ``, ``~~a ``, ``<http:``) is what a backtracking
rule turns into quadratic time, on the event loop. Prints, for each such line at 10,000,
40,000 and 160,000 characters, the best of three runs (``time.perf_counter``) and the
ratio between sizes (4x the text: about 4x the time when linear, 16x when quadratic).
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wechat_sdk.outbound.markdown import to_plain

#: a piece repeated to make each hostile line
PIECES = {
    "links `[a](`": "[a](",
    "brackets `[`": "[",
    "images `![a](`": "![a](",
    "autolinks `<http:a`": "<http:a",
    "strike `~~a `": "~~a ",
    "bold `**a `": "**a ",
    "bold ` __a`": " __a",
    "italic `*a `": "*a ",
    "code `` ``a` ``": "``a`",
    "code, runs of every length": "`",  # (made in main: `a``a```a...)
    "nested `**`": "**",
    "escapes `\\*`": "\\*",
    "a mixture": "**a ~~b `c [d](e _f ",
}
SIZES = (10_000, 40_000, 160_000)


def best_ms(text: str, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        to_plain(text)
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main() -> None:
    heads = " | ".join(f"{n:,} chars (ms)" for n in SIZES)
    print(f"| hostile line | {heads} | time / previous size |")
    print("|---|" + "---:|" * (len(SIZES) + 1))
    for name, piece in PIECES.items():
        times = []
        for size in SIZES:
            text = (piece * (size // len(piece) + 1))[:size]
            if name.startswith("nested"):  # all openers, one word in the middle
                text = piece * (size // 4) + "a" + piece * (size // 4)
            elif name.startswith("code, runs"):  # no run closes another
                text = "".join("`" * k + "a" for k in range(1, int((2 * size) ** 0.5)))
            times.append(best_ms(text))
        ratios = ", ".join(f"{b / a:.1f}x" for a, b in itertools.pairwise(times))
        cells = " | ".join(f"{t:.1f}" for t in times)
        print(f"| {name} | {cells} | {ratios} |", flush=True)


if __name__ == "__main__":
    main()
