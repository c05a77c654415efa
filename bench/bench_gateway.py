"""End-to-end gateway benchmarks on the simulator: throughput, memory, import and demo time.

Run: ``python bench/bench_gateway.py [throughput|rss|import|demo|all] [--store sqlite|memory]``.

- throughput: a gateway with the built-in echo agent, ``dmPolicy: open``, pacing off, on
  the simulator's virtual clock. N inbound DMs spread over 1, 100 or 10,000 conversations
  are injected, then the world runs until every reply went out. The garbage collector is
  tuned as ``wechat-sdk gateway run`` tunes it once started (``tune_gc``: start-up objects
  frozen, young generation every 10,000 allocations). Figures: messages/s (one
  message = one inbound DM answered with one outbound reply) and wall time per message.
  Best of 3 runs (``time.perf_counter``). ``--trickle``: each message is answered before
  the next one is injected (no two messages share an event-loop turn or a commit).
- rss: 10,000 conversations, each with a full DM history (``dmHistoryLimit`` 10 turns =
  20 entries; the store is built to track 10,000 conversations, its default being 1000),
  resident set size of the process (``/proc/self/status`` VmRSS) before and after; every
  conversation's history is read back and checked to be full.
- import: ``import wechat_sdk`` in a fresh interpreter, best of 10, minus the interpreter's
  own start-up.
- demo: ``wechat-sdk demo`` wall time (``python -m wechat_sdk demo``), best and mean of 5.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.world import SimulatedWeChat
from wechat_sdk.agent import AgentTurn
from wechat_sdk.clock import Clock
from wechat_sdk.gateway import Gateway
from wechat_sdk.gateway.service import tune_gc
from wechat_sdk.idle_loop import new_event_loop
from wechat_sdk.stores.base import DEFAULT_MAX_CONVERSATIONS, Store
from wechat_sdk.stores.memory import MemoryStore
from wechat_sdk.stores.sqlite import SqliteStore

T = TypeVar("T")

CONFIG = {"channels": {"wechat": {"dmPolicy": "open", "allowFrom": ["*"], "pacing": False}}}


async def echo(turn: AgentTurn) -> str:
    return turn.text


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the loop the simulator's entry points use (it says when it is idle)."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)


def make_store(kind: str, folder: Path, max_conversations: int, clock: Clock) -> Store:
    if kind == "memory":
        return MemoryStore(max_conversations=max_conversations)
    # on the world's clock: a thread's fsync is work the virtual world cannot see
    return SqliteStore.in_state_dir(folder, max_conversations=max_conversations, clock=clock)


async def run_load(
    messages: int,
    conversations: int,
    store_kind: str,
    *,
    keep: bool = False,
    max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
    trickle: bool = False,
) -> tuple[float, Gateway | None]:
    """Wall seconds to answer ``messages`` DMs spread over ``conversations`` contacts.

    Every reply is then checked: each contact got exactly the echo of each of its
    messages, once (outside the timed part).
    """
    with tempfile.TemporaryDirectory() as tmp:
        world = SimulatedWeChat(seed=0)
        world.add_account("default")
        store = make_store(store_kind, Path(tmp), max_conversations, world.clock)
        gw = world.gateway(CONFIG, echo, state_dir=tmp, store=store)
        await gw.start()
        await world.login()
        contacts = [f"wxid_user{i:05d}" for i in range(conversations)]
        for c in contacts:
            world.add_contact(c, name=c)
        tune_gc()  # as `wechat-sdk gateway run` does once its accounts have started
        started = time.perf_counter()
        for i in range(messages):
            # trickle: each message answered before the next one comes (no batching at all)
            await world.say(contacts[i % conversations], f"message {i}", settle=trickle)
        await world.run_until_idle()
        await gw.wait_idle()
        elapsed = time.perf_counter() - started
        got = Counter((e.to, e.text) for e in world.sent())
        expected = Counter((contacts[i % conversations], f"message {i}") for i in range(messages))
        if got != expected:
            raise SystemExit(
                f"replies differ from one echo per message: {len(got - expected)} unexpected, "
                f"{len(expected - got)} missing"
            )
        if keep:
            return elapsed, gw
        await gw.close()
        gc.unfreeze()  # (this run's world and gateway can go now)
        return elapsed, None


def throughput(store_kind: str, messages: int, trickle: bool = False) -> None:
    how = "one at a time" if trickle else "all injected at once"
    print(
        f"## throughput: echo agent, pacing off, {store_kind} store, {messages} messages ({how})\n"
    )
    print("| conversations | messages | best wall time (s) | messages/s | per message (µs) |")
    print("|---:|---:|---:|---:|---:|")
    for conversations in (1, 100, 10_000):
        best = min(
            run(run_load(messages, conversations, store_kind, trickle=trickle))[0] for _ in range(3)
        )
        print(
            f"| {conversations:,} | {messages:,} | {best:.2f} | {messages / best:,.0f} "
            f"| {best / messages * 1e6:,.0f} |"
        )
    print()


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def rss(store_kind: str) -> None:
    conversations, turns = 10_000, 10
    before = rss_kb()

    async def main() -> tuple[float, int]:
        # the stores track 1000 conversations per account by default (the least recently
        # written is forgotten): room for all of them, or most histories would be empty
        elapsed, gw = await run_load(
            conversations * turns,
            conversations,
            store_kind,
            keep=True,
            max_conversations=conversations,
        )
        assert gw is not None
        gc.collect()
        after = rss_kb()
        # every conversation now holds its full history: dmHistoryLimit turns, with replies
        history = gw._runner().turns.history
        sizes = Counter(len(history.dm(f"wxid_user{i:05d}")) for i in range(conversations))
        await gw.close()
        print(f"(history entries per conversation -> conversations: {dict(sizes)})")
        if sizes != Counter({2 * turns: conversations}):
            raise SystemExit("some conversation does not hold its full history")
        return elapsed, after

    elapsed, after = run(main())
    print(f"## RSS: {conversations:,} conversations x {turns} turns, {store_kind} store\n")
    print(f"- RSS before: {before / 1024:.1f} MB")
    print(f"- RSS with full histories: {after / 1024:.1f} MB")
    print(
        f"- growth: {(after - before) / 1024:.1f} MB "
        f"({(after - before) * 1024 / conversations:,.0f} bytes per conversation)"
    )
    print(f"- (load took {elapsed:.1f} s for {conversations * turns:,} messages)\n")


def _best_run(args: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def import_time() -> None:
    bare = min(_best_run([sys.executable, "-c", "pass"], 10))
    full = min(_best_run([sys.executable, "-c", "import wechat_sdk"], 10))
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import wechat_sdk"],
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    total = 0
    top: list[tuple[int, str]] = []
    for line in out.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line.split(":", 1)[1].split("|")]
        if not parts[0].isdigit():
            continue
        cumulative, name = int(parts[1]), parts[2]
        if name.strip() == "wechat_sdk":
            total = cumulative
        if not name.startswith(" "):  # top-level imports only
            top.append((cumulative, name))
    print("## import wechat_sdk\n")
    print(
        f"- `python -c 'import wechat_sdk'`: best {full * 1000:.0f} ms, "
        f"of which the interpreter alone {bare * 1000:.0f} ms"
    )
    print(
        f"- import itself: {(full - bare) * 1000:.0f} ms "
        f"(`-X importtime` cumulative for wechat_sdk: {total / 1000:.0f} ms)"
    )
    print("- heaviest top-level imports (-X importtime, cumulative):")
    for cumulative, name in sorted(top, reverse=True)[:5]:
        print(f"  - {name.strip()}: {cumulative / 1000:.0f} ms")
    print()


def demo_time() -> None:
    times = _best_run([sys.executable, "-m", "wechat_sdk", "demo"], 5)
    print("## wechat-sdk demo\n")
    print(
        f"- `python -m wechat_sdk demo`: best {min(times):.2f} s, "
        f"mean {statistics.mean(times):.2f} s"
        f" over {len(times)} runs\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", nargs="?", default="all")
    parser.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument(
        "--trickle", action="store_true", help="throughput: each message answered before the next"
    )
    args = parser.parse_args()
    if args.what in ("throughput", "all"):
        throughput(args.store, args.messages, args.trickle)
    if args.what in ("rss", "all"):
        rss(args.store)
    if args.what in ("import", "all"):
        import_time()
    if args.what in ("demo", "all"):
        demo_time()


if __name__ == "__main__":
    main()
