"""Benchmark ``chunk_text`` on mixed Chinese, English and markdown text with code fences.

Run: ``python bench/bench_chunking.py``. Prints a markdown table (best of a few runs,
``time.perf_counter``; peak memory from ``tracemalloc`` in a separate run so tracing does
not distort the timings) and the time ratio between consecutive sizes (10x the text).
"""

from __future__ import annotations

import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wechat_sdk.outbound.chunking import chunk_text  # noqa: E402

SIZES = [("10 KB", 10_000), ("100 KB", 100_000), ("1 MB", 1_000_000), ("10 MB", 10_000_000)]
LIMIT = 2048
RUNS = 5

_ENGLISH = [
    "The gateway keeps one conversation per contact and replies in order.",
    "Chunks are sent one after another, never in parallel!",
    "Is the limit counted in characters? Yes, in code points.",
    "Streaming agents yield small pieces; the coalescer turns them into blocks.",
]
_CHINESE = [
    "微信不能编辑已发送的消息，所以回复会被分成多个块发送。",
    "每个账号都有自己的发送速率限制；默认值是安全的！",
    "长文本会在段落、换行或句号处断开，表情符号👨‍👩‍👧不会被拆开。",
    "这是一个测试句子，包含中文标点、英文单词 and mixed text？",
]
_MARKDOWN = [
    "## A heading\n",
    "- a **bold** item\n- an *italic* item with `code`\n",
    "> a quoted line 🇨🇳 with a flag\n",
    "1. first\n2. second [link](https://example.com/path_x)\n",
]


def _fence(rng: random.Random) -> str:
    lang = rng.choice(["python", "js", "", "bash"])
    lines = [f"    value_{i} = compute({i}, 'text')  # comment {i}" for i in range(rng.randint(3, 40))]
    return f"```{lang}\n" + "\n".join(lines) + "\n```\n"


def build_text(size: int, seed: int = 7) -> str:
    """Deterministic mixed text of exactly ``size`` code points."""
    rng = random.Random(seed)
    parts: list[str] = []
    total = 0
    while total < size:
        kind = rng.random()
        if kind < 0.35:
            piece = " ".join(rng.choice(_ENGLISH) for _ in range(rng.randint(1, 6)))
        elif kind < 0.7:
            piece = "".join(rng.choice(_CHINESE) for _ in range(rng.randint(1, 6)))
        elif kind < 0.9:
            piece = rng.choice(_MARKDOWN)
        else:
            piece = _fence(rng)
        piece += rng.choice(["\n\n", "\n", " "])
        parts.append(piece)
        total += len(piece)
    return "".join(parts)[:size]


def best_time(text: str) -> float:
    best = float("inf")
    for _ in range(RUNS):
        started = time.perf_counter()
        chunk_text(text, LIMIT)
        best = min(best, time.perf_counter() - started)
    return best


def peak_memory(text: str) -> int:
    tracemalloc.start()
    try:
        chunk_text(text, LIMIT)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    print(f"chunk_text, limit {LIMIT}, best of {RUNS} runs\n")
    print("| size | chunks | best time (ms) | peak memory (MB) | time / previous size |")
    print("|---:|---:|---:|---:|---:|")
    previous: float | None = None
    for label, size in SIZES:
        text = build_text(size)
        chunks = len(chunk_text(text, LIMIT))
        seconds = best_time(text)
        peak = peak_memory(text)
        ratio = f"{seconds / previous:.1f}x" if previous else "–"
        print(f"| {label} | {chunks} | {seconds * 1000:.1f} | {peak / 1e6:.1f} | {ratio} |")
        previous = seconds


if __name__ == "__main__":
    main()
