"""Benchmark ``chunk_text`` on mixed Chinese, English and markdown text with code fences.

Run: ``python bench/bench_chunking.py``. Prints a markdown table (best of a few runs,
``time.perf_counter``; peak memory from ``tracemalloc`` in a separate run so tracing does
not distort the timings) and the time ratio between consecutive sizes (10x the text).

The first ("cold") run is shown apart: at 10 MB its output (about 40 MB of strings) lands in
fresh pages the kernel must fault in, because glibc hands the previous run's memory back to
the OS. The best run keeps the previous result alive while the next one is made, so the
allocator reuses memory as it does in a long-running gateway; that isolates the algorithm.
"""

from __future__ import annotations

import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wechat_sdk.outbound.chunking import chunk_text

SIZES = [("10 KB", 10_000), ("100 KB", 100_000), ("1 MB", 1_000_000), ("10 MB", 10_000_000)]
LIMIT = 2048
MAX_RUNS = 50

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
    lines = [f"    value_{i} = compute({i}, 'text')  # step {i}" for i in range(rng.randint(4, 16))]
    return f"```{lang}\n" + "\n".join(lines) + "\n```\n\n"


def _section(rng: random.Random) -> str:
    """One section with the same mixture every time, so every size has the same density."""
    english = " ".join(rng.choice(_ENGLISH) for _ in range(rng.randint(2, 5)))
    chinese = "".join(rng.choice(_CHINESE) for _ in range(rng.randint(2, 5)))
    mixed = rng.choice(_CHINESE) + " " + rng.choice(_ENGLISH)
    return (
        rng.choice(_MARKDOWN[:1])
        + english
        + "\n\n"
        + chinese
        + "\n"
        + rng.choice(_MARKDOWN[1:])
        + "\n"
        + mixed
        + "\n\n"
        + _fence(rng)
    )


def build_text(size: int, seed: int = 7) -> str:
    """Deterministic mixed text of exactly ``size`` code points."""
    rng = random.Random(seed)
    parts: list[str] = []
    total = 0
    while total < size:
        section = _section(rng)
        parts.append(section)
        total += len(section)
    return "".join(parts)[:size]


def runs_for(size: int) -> int:
    """More runs for small texts, whose single timings are noisy, at most ~10 MB in all."""
    return max(5, min(MAX_RUNS, 10_000_000 // size))


def timings(text: str) -> tuple[float, float]:
    """(first run, best run) in seconds."""
    times: list[float] = []
    kept: list[str] = []
    for _ in range(runs_for(len(text))):
        started = time.perf_counter()
        result = chunk_text(text, LIMIT)
        times.append(time.perf_counter() - started)
        # Free the previous result only now, after this run allocated its own.
        kept = result
    del kept
    return times[0], min(times)


def peak_memory(text: str) -> int:
    tracemalloc.start()
    try:
        chunk_text(text, LIMIT)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    print(f"chunk_text, limit {LIMIT}, best of 5 to {MAX_RUNS} runs (more for small sizes)\n")
    print(
        "| size | chunks | first run (ms) | best time (ms) | peak memory (MB) "
        "| best time / previous size |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    previous: float | None = None
    for label, size in SIZES:
        text = build_text(size)
        first, seconds = timings(text)
        chunks = len(chunk_text(text, LIMIT))
        peak = peak_memory(text)
        ratio = f"{seconds / previous:.1f}x" if previous else "–"
        print(
            f"| {label} | {chunks} | {first * 1000:.1f} | {seconds * 1000:.1f} "
            f"| {peak / 1e6:.1f} | {ratio} |"
        )
        previous = seconds


if __name__ == "__main__":
    main()
