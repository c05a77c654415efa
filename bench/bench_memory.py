"""Memory of the history store with many conversations, each holding a full DM history.

Run: ``python bench/bench_memory.py [--conversations 1000 10000 100000] [--turns 10]
[--store sqlite|memory] [--cache N]``.

Each count runs in a fresh interpreter, so every figure starts from the same baseline.
There, a store is opened in a temporary state directory (SQLite: with the history cache
bound ``--cache``, ``channels.wechat.historyCacheConversations``, default 1000; both stores
built to track every conversation, their default being 1000) and filled the way the
gateway fills it: message ``i`` goes to conversation ``i % N`` (so each history builds up
over time, as under load), its dedupe mark is recorded, the conversation's history is read
as the agent's context (``HistoryBook.dm``), then the user's entry and the reply's are
appended (``HistoryBook.record_dm_turn``, ``dmHistoryLimit`` = ``--turns``, so each
conversation ends with 2 x turns entries). The event loop turns every 100 messages, so
queued writes are committed in groups as in a burst. Then every conversation's history is
read back and checked to be full.

Figures: resident set size (``/proc/self/status`` VmRSS) after opening the store (the
baseline), after filling and after reading everything back (after ``gc.collect()``), the
growth over the baseline, and the peak (VmHWM) over it. This measures the store alone:
``bench_gateway.py rss`` runs the same load through the simulator, whose world keeps every
message it ever carried (most of that benchmark's growth).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wechat_sdk.agent import HistoryEntry
from wechat_sdk.inbound.history import HistoryBook
from wechat_sdk.stores.base import Store
from wechat_sdk.stores.memory import MemoryStore
from wechat_sdk.stores.sqlite import DEFAULT_HISTORY_CACHE_CONVERSATIONS, SqliteStore

T0 = 1_700_000_000.0


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def make_store(kind: str, folder: Path, conversations: int, cache: int) -> Store:
    if kind == "memory":
        return MemoryStore(max_conversations=conversations)
    return SqliteStore.in_state_dir(
        folder, max_conversations=conversations, history_cache_conversations=cache
    )


async def fill(store: Store, conversations: int, turns: int) -> None:
    book = HistoryBook(store.history, "default", group_limit=20, dm_limit=turns)
    for i in range(conversations * turns):
        contact = f"wxid_user{i % conversations:06d}"
        message_id = f"msg-{i:012d}"
        store.dedupe.check_and_add("default", message_id, T0 + i, 600.0)
        book.dm(contact)  # the agent's context
        text = f"message {i}"
        user = HistoryEntry("user", contact, f"User {contact[9:]}", text, T0 + i, message_id)
        reply = HistoryEntry("assistant", "wxid_bot", "Bot", f"echo {text}", T0 + i)
        book.record_dm_turn(contact, user, reply)
        if i % 100 == 99:
            await asyncio.sleep(0)  # a turn of the loop: the queued writes are committed


def measure(kind: str, conversations: int, turns: int, cache: int) -> dict[str, float]:
    """One count, in this process: the figures in MB (and seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = make_store(kind, Path(tmp), conversations, cache)
        gc.collect()
        base = status_kb("VmRSS")
        started = time.perf_counter()
        asyncio.run(fill(store, conversations, turns))
        filled_s = time.perf_counter() - started
        gc.collect()
        filled = status_kb("VmRSS")
        book = HistoryBook(store.history, "default", group_limit=20, dm_limit=turns)
        sizes = {len(book.dm(f"wxid_user{c:06d}")) for c in range(conversations)}
        if sizes != {2 * turns}:
            raise SystemExit(f"some conversation does not hold its full history: {sizes}")
        gc.collect()
        read = status_kb("VmRSS")
        peak = status_kb("VmHWM")
        store.close()
    return {
        "base": base / 1024,
        "filled": filled / 1024,
        "read": read / 1024,
        "growth": (max(filled, read) - base) / 1024,
        "peak": (peak - base) / 1024,
        "seconds": filled_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--cache", type=int, default=DEFAULT_HISTORY_CACHE_CONVERSATIONS)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child: one count, figures as JSON
        figures = measure(args.store, args.conversations[0], args.turns, args.cache)
        print(json.dumps(figures))
        return
    cache = f", history cache {args.cache:,} conversations" if args.store == "sqlite" else ""
    print(f"## RSS: conversations x {args.turns} turns, {args.store} store{cache}\n")
    print(
        "| conversations | RSS baseline (MB) | after filling | after reading all back "
        "| growth (MB) | peak over baseline (MB) | fill time (s) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for count in args.conversations:
        child = [sys.executable, __file__, "--one", "--conversations", str(count)]
        child += ["--turns", str(args.turns), "--store", args.store, "--cache", str(args.cache)]
        out = subprocess.run(child, check=True, capture_output=True, text=True).stdout
        f = json.loads(out.splitlines()[-1])
        print(
            f"| {count:,} | {f['base']:.1f} | {f['filled']:.1f} | {f['read']:.1f} "
            f"| {f['growth']:.1f} | {f['peak']:.1f} | {f['seconds']:.1f} |",
            flush=True,
        )
    print()


if __name__ == "__main__":
    main()
