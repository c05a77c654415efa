"""Benchmark the Wechaty adapter against the Node sidecar with wechaty-puppet-mock.

Run: ``python bench/bench_wechaty.py`` (needs Node 18+ and npm; set
``WECHAT_SDK_NODE_CACHE`` to reuse installed npm packages). Never part of the test suite.
With ``BENCH_WECHATY_STORE=memory`` the gateway uses the in-memory store instead of the
default SQLite one (to separate the store's cost from the rest).
With ``BENCH_WECHATY_PROFILE=<file>`` the gateway process runs under pyinstrument and
writes its profile there. ``BENCH_WECHATY_WRAP`` is a command put in front of each bot
process, e.g. ``valgrind --tool=callgrind --callgrind-out-file=cg.%p`` to count its
instructions (the waits for the bot are then long enough for a 50x slower process; the
figures of such a run are not throughput).

Three measurements, each repeated ``--repeat`` times (medians are printed):

* **Burst**: the mock's contacts say N DMs to the bot in one go (the sidecar's test-only
  ``burst`` op; pacing off) and the bot echoes each. Two bots answer in turn, each in its own
  Python process started by this script, each against its own fresh sidecar:

  - ``gateway``: the real :class:`~wechat_sdk.Gateway` with ``puppet:
    "wechaty-puppet-service"``, ``dmPolicy: "open"``, ``pacing: false`` and an echo agent,
    its garbage collector tuned as ``wechat-sdk gateway run`` tunes it (``tune_gc``);
  - ``floor``: a bare client written here with the raw generated stubs: it opens the
    ``Event`` stream and, with a task per MESSAGE event, fetches ``MessagePayload`` and calls
    ``MessageSendText`` with the echo (it skips the bot's own messages, as the gateway does).

  Latency runs from a message's creation on the server (``Date.now()`` in the sidecar as the
  mock makes the DM) to the creation of the bot's reply on the server (the mock's payload
  timestamp of the reply, also ``Date.now()`` in the sidecar): both ends are read from the
  same clock, server side, in milliseconds. Throughput is N replies over the time from the
  first DM's creation to the last reply's. Lost = DMs without a reply, duplicated = extra
  replies. ``bot CPU`` and ``sidecar CPU`` are the user plus system CPU time each process
  used during the burst (``/proc/<pid>/stat``), per reply: on a machine whose cores are all
  busy, throughput is set by their sum. The floor and gateway runs alternate, and the
  verdict is the median of the ratios of each pair. Peak RSS is the bot process's own
  ``VmHWM`` from ``/proc/self/status`` (the driver's memory, this process, is not counted);
  ``idle`` is its ``VmRSS`` once logged in.

* **Unloaded**: one DM at a time (the next after the reply), the same two bots.

* **Send**: ``PuppetServiceClient.send_text`` versus a raw ``MessageSendText`` stub call on
  the same channel, interleaved, timed with ``time.perf_counter`` in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
POLL_S = 0.25
WRAP = shlex.split(os.environ.get("BENCH_WECHATY_WRAP", ""))
IDLE_TIMEOUT_S = 120.0 if WRAP else 20.0
BOT_WAIT_S = 900.0 if WRAP else 60.0


# ---------------------------------------------------------------- the bots (subprocesses)


def _proc_status() -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])  # KiB
    return out


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _stdin_closed() -> None:
    await asyncio.to_thread(sys.stdin.read)


async def _until(check: Callable[[], Any], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the bot did not get there in time")
        await asyncio.sleep(0.02)


async def run_gateway(endpoint: str, token: str, state_dir: Path) -> None:
    from wechat_sdk import Gateway, parse_config
    from wechat_sdk.agent import AgentTurn
    from wechat_sdk.gateway.service import tune_gc

    async def echo(turn: AgentTurn) -> str:
        return f"echo: {turn.text}"

    wechat = {
        "puppet": "wechaty-puppet-service",
        "puppetOptions": {"endpoint": endpoint, "token": token, "tls": False},
        "pacing": False,
        "dmPolicy": "open",
    }
    config = parse_config(json.dumps({"channels": {"wechat": wechat}}))
    store = None
    if os.environ.get("BENCH_WECHATY_STORE") == "memory":
        from wechat_sdk.stores.memory import MemoryStore

        store = MemoryStore()
    gateway = Gateway(config, agent=echo, state_dir=state_dir, store=store, show_terminal_qr=False)
    await gateway.start()
    tune_gc()  # as `wechat-sdk gateway run` does once its accounts have started
    await _until(lambda: gateway.status()[0].qr_url)
    _say({"event": "waiting"})
    await _until(lambda: gateway.status()[0].lifecycle == "ready")
    _say({"event": "ready", **_proc_status()})
    await _stdin_closed()
    await gateway.close()
    _say({"event": "done", **_proc_status()})


async def run_floor(endpoint: str, token: str) -> None:
    import grpc

    from wechat_sdk.adapters.wechaty._proto import puppet_pb2 as pb
    from wechat_sdk.adapters.wechaty._proto import puppet_pb2_grpc as pb_grpc

    channel = grpc.aio.insecure_channel(endpoint)
    stub = pb_grpc.PuppetStub(channel)  # type: ignore[no-untyped-call]
    md = (("authorization", f"Wechaty {token}"),)
    self_id: list[str] = []
    tasks: set[asyncio.Task[None]] = set()

    async def answer(message_id: str) -> None:
        p = await stub.MessagePayload(pb.MessagePayloadRequest(id=message_id), metadata=md)
        if self_id and p.talker_id == self_id[0]:
            return
        await stub.MessageSendText(
            pb.MessageSendTextRequest(
                conversation_id=p.room_id or p.talker_id, text=f"echo: {p.text}"
            ),
            metadata=md,
        )

    async def read() -> None:
        async for ev in stub.Event(pb.EventRequest(), metadata=md):
            kind = int(ev.type)
            if kind == 2:  # MESSAGE
                task = asyncio.get_running_loop().create_task(
                    answer(json.loads(ev.payload)["messageId"])
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            elif kind == 22:  # SCAN
                _say({"event": "waiting"})
            elif kind == 25:  # LOGIN
                self_id[:] = [json.loads(ev.payload)["contactId"]]
            elif kind == 23:  # READY
                _say({"event": "ready", **_proc_status()})

    reader = asyncio.get_running_loop().create_task(read())
    await asyncio.sleep(0.3)  # the stream is open (the first event is a heartbeat)
    await stub.Start(pb.StartRequest(), metadata=md)
    await _stdin_closed()
    reader.cancel()
    for task in list(tasks):  # the bot's own last messages: nothing left to answer
        task.cancel()
    await asyncio.gather(reader, *tasks, return_exceptions=True)
    await channel.close()
    _say({"event": "done", **_proc_status()})


# ---------------------------------------------------------------- the driver


class Control:
    """The sidecar's test-only control channel (see node/sidecar.cjs)."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/"

    def sync(self, op: str, **args: Any) -> dict[str, Any]:
        body = json.dumps({"op": op, **args}).encode()
        request = urllib.request.Request(
            self.url, data=body, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            result: dict[str, Any] = json.loads(response.read())
        if not result.get("ok"):
            raise RuntimeError(f"control {op} failed: {result.get('error')}")
        return result

    async def __call__(self, op: str, **args: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync, op, **args)


class Session:
    """A fresh mock sidecar and one bot process (``gateway`` or ``floor``) logged in to it."""

    def __init__(self, role: str, work: Path) -> None:
        self.role = role
        self.work = work
        self.idle: dict[str, int] = {}
        self.final: dict[str, int] = {}

    async def __aenter__(self) -> Session:
        from wechat_sdk.adapters.wechaty.sidecar import Sidecar

        self.sidecar = Sidecar(
            puppet="wechaty-puppet-mock",
            state_dir=self.work / "peer",
            account_dir=self.work / "peer" / "accounts" / "default",
            test_control=True,
        )
        conn = await self.sidecar.start()
        assert self.sidecar.control_port is not None
        self.control = Control(self.sidecar.control_port)
        self.proc = await asyncio.create_subprocess_exec(
            *WRAP,
            sys.executable,
            __file__,
            "--role",
            self.role,
            "--endpoint",
            conn.endpoint,
            "--token",
            conn.token,
            "--state",
            str(self.work / "bot"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        await self._expect("waiting")
        self.bot = str((await self.control("login"))["id"])
        self.idle = await self._expect("ready")
        return self

    async def _expect(self, event: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), BOT_WAIT_S)
            if not line:
                raise RuntimeError(f"the {self.role} process exited before {event!r}")
            msg: dict[str, Any] = json.loads(line)
            if msg.get("event") == event:
                return msg

    async def __aexit__(self, *exc: object) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.final = await asyncio.wait_for(self._expect("done"), BOT_WAIT_S)
            except (TimeoutError, RuntimeError):
                self.proc.kill()
            await self.proc.wait()
        await self.sidecar.stop()

    async def contacts(self, n: int) -> list[str]:
        return [str((await self.control("createContact", name=f"c{i}"))["id"]) for i in range(n)]

    async def wait_replies(self, since: int, n: int) -> None:
        """Until n replies since ``since`` exist, or none came for IDLE_TIMEOUT_S."""
        seen, last_change = -1, time.monotonic()
        while True:
            count = int((await self.control("sentSince", since=since, countOnly=True))["count"])
            if count >= n:
                return
            if count != seen:
                seen, last_change = count, time.monotonic()
            elif time.monotonic() - last_change > IDLE_TIMEOUT_S:
                return
            await asyncio.sleep(POLL_S)


def cpu_s(pid: int | None) -> float:
    """User plus system CPU seconds a process has used so far (``/proc/<pid>/stat``)."""
    if pid is None:
        return float("nan")
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def burst(role: str, n: int, contacts: int, work: Path) -> dict[str, float]:
    async with Session(role, work) as s:
        ids = await s.contacts(contacts)
        cpu0 = (cpu_s(s.proc.pid), cpu_s(s.sidecar.pid))
        made = (await s.control("burst", **{"from": ids, "count": n, "prefix": "m"}))["timestamps"]
        start = int(made[0])
        await s.wait_replies(start, n)
        cpu1 = (cpu_s(s.proc.pid), cpu_s(s.sidecar.pid))
        await asyncio.sleep(1.0)  # late duplicates
        sent = (await s.control("sentSince", since=start))["sent"]
    replies = Counter(r["text"] for r in sent)
    first_reply: dict[int, int] = {}
    for r in sent:
        text = r["text"]
        if text.startswith("echo: m") and text[7:].isdigit():
            first_reply.setdefault(int(text[7:]), int(r["timestamp"]))
    lost = sum(1 for i in range(n) if i not in first_reply)
    dup = sum(c - 1 for t, c in replies.items() if c > 1)
    latencies = [first_reply[i] - made[i] for i in first_reply]
    span_s = (max(first_reply.values()) - start) / 1000 if first_reply else float("inf")
    return {
        "replies_per_s": len(first_reply) / span_s if span_s > 0 else float("inf"),
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p95_ms": pct(latencies, 0.95) if latencies else float("nan"),
        "lost": lost,
        "dup": dup,
        "bot_cpu_ms": (cpu1[0] - cpu0[0]) * 1000 / n,
        "sidecar_cpu_ms": (cpu1[1] - cpu0[1]) * 1000 / n,
        "idle_mib": s.idle.get("VmRSS", 0) / 1024,
        "peak_mib": s.final.get("VmHWM", 0) / 1024,
    }


async def unloaded(role: str, count: int, work: Path) -> dict[str, float]:
    async with Session(role, work) as s:
        (contact,) = await s.contacts(1)
        latencies: list[float] = []
        for i in range(count + 3):  # the first 3 warm up
            made = (await s.control("burst", **{"from": contact, "count": 1, "prefix": f"u{i}-"}))[
                "timestamps"
            ][0]
            want = f"echo: u{i}-0"
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                sent = (await s.control("sentSince", since=made))["sent"]
                hit = [r for r in sent if r["text"] == want]
                if hit:
                    if i >= 3:
                        latencies.append(hit[0]["timestamp"] - made)
                    break
                await asyncio.sleep(0.002)
            else:
                raise RuntimeError(f"no reply to DM {i} from the {role}")
    return {"p50_ms": statistics.median(latencies), "p95_ms": pct(latencies, 0.95)}


async def send_latency(count: int, work: Path) -> dict[str, float]:
    from wechat_sdk.adapters.wechaty._proto import puppet_pb2 as pb
    from wechat_sdk.adapters.wechaty.client import PuppetServiceClient
    from wechat_sdk.adapters.wechaty.sidecar import Sidecar

    sidecar = Sidecar(
        puppet="wechaty-puppet-mock",
        state_dir=work / "peer",
        account_dir=work / "peer" / "accounts" / "default",
        test_control=True,
    )
    conn = await sidecar.start()
    assert sidecar.control_port is not None
    control = Control(sidecar.control_port)
    client = PuppetServiceClient(conn)
    try:
        await client.start()

        async def drain() -> None:  # consume events as the gateway would
            async for _ in client.events():
                pass

        drainer = asyncio.get_running_loop().create_task(drain())
        await control("login")
        contact = str((await control("createContact", name="peer"))["id"])
        md = (("authorization", f"Wechaty {conn.token}"),)
        adapter: list[float] = []
        raw: list[float] = []
        for i in range(count + 20):  # interleaved; the first 20 warm up
            t0 = time.perf_counter()
            await client.send_text(contact, f"a{i}")
            t1 = time.perf_counter()
            await client.stub.MessageSendText(
                pb.MessageSendTextRequest(conversation_id=contact, text=f"r{i}"),
                metadata=md,
                timeout=30.0,
            )
            t2 = time.perf_counter()
            if i >= 20:
                adapter.append((t1 - t0) * 1000)
                raw.append((t2 - t1) * 1000)
        drainer.cancel()
    finally:
        await client.stop()
        await sidecar.stop()
    return {
        "adapter_p50_ms": statistics.median(adapter),
        "adapter_p95_ms": pct(adapter, 0.95),
        "raw_p50_ms": statistics.median(raw),
        "raw_p95_ms": pct(raw, 0.95),
    }


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def spread(runs: list[dict[str, float]], key: str) -> str:
    values = [r[key] for r in runs]
    return f"{min(values):.0f}-{max(values):.0f}"


async def driver(args: argparse.Namespace) -> None:
    os.environ.setdefault("WECHAT_SDK_NODE_CACHE", str(ROOT / "build" / "node-cache"))
    with tempfile.TemporaryDirectory(prefix="bench-wechaty-") as tmp:
        work = Path(tmp)
        n_run = 0

        def fresh() -> Path:
            nonlocal n_run
            n_run += 1
            return work / f"run{n_run}"

        print(
            f"Wechaty adapter vs raw-stub floor, mock sidecar (plaintext, loopback), "
            f"{args.contacts} contacts, {args.repeat} runs each, medians\n"
        )
        if args.sizes:
            print(
                "| DMs | bot | replies/s (runs) | latency p50 (ms) | p95 (ms) | lost | dup "
                "| bot CPU (ms/reply) | sidecar CPU (ms/reply) | idle RSS (MiB) | peak RSS (MiB) |"
            )
            print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        verdicts: list[str] = []
        for n in args.sizes:
            # floor and gateway runs alternate, so that a drift of the machine's speed
            # (it swings by a fifth from minute to minute here) hits both alike
            by_role: dict[str, list[dict[str, float]]] = {"floor": [], "gateway": []}
            for _ in range(args.repeat):
                for role in ("floor", "gateway"):
                    by_role[role].append(await burst(role, n, args.contacts, fresh()))
            for role in ("floor", "gateway"):
                m = medians(by_role[role])
                print(
                    f"| {n} | {role} | {m['replies_per_s']:.0f} "
                    f"({spread(by_role[role], 'replies_per_s')}) | {m['p50_ms']:.0f} "
                    f"| {m['p95_ms']:.0f} | {max(r['lost'] for r in by_role[role]):.0f} "
                    f"| {max(r['dup'] for r in by_role[role]):.0f} "
                    f"| {m['bot_cpu_ms']:.2f} | {m['sidecar_cpu_ms']:.2f} "
                    f"| {m['idle_mib']:.1f} | {max(r['peak_mib'] for r in by_role[role]):.1f} |",
                    flush=True,
                )
            ratios = sorted(
                g["replies_per_s"] / f["replies_per_s"]
                for f, g in zip(by_role["floor"], by_role["gateway"], strict=True)
            )
            verdicts.append(
                f"{n} DMs: gateway at {statistics.median(ratios):.1%} of the floor's "
                f"throughput (median of {len(ratios)} alternating pairs; pairs "
                f"{ratios[0]:.0%}-{ratios[-1]:.0%})"
            )
        for line in verdicts:
            print(line)
        if args.unloaded:
            print(f"\nUnloaded: one DM at a time, {args.unloaded} DMs per run\n")
            print("| bot | latency p50 (ms) | p95 (ms) |")
            print("|---|---:|---:|")
            un: dict[str, dict[str, float]] = {}
            for role in ("floor", "gateway"):
                runs = [await unloaded(role, args.unloaded, fresh()) for _ in range(args.repeat)]
                un[role] = medians(runs)
                print(f"| {role} | {un[role]['p50_ms']:.1f} | {un[role]['p95_ms']:.1f} |")
            added = un["gateway"]["p50_ms"] - un["floor"]["p50_ms"]
            print(f"gateway's added latency (p50): {added:.1f} ms")
        if args.sends:
            print(f"\nSend latency, {args.sends} sends each per run, interleaved\n")
            runs = [await send_latency(args.sends, fresh()) for _ in range(args.repeat)]
            m = medians(runs)
            print("| call | p50 (ms) | p95 (ms) |")
            print("|---|---:|---:|")
            print(
                f"| PuppetServiceClient.send_text | {m['adapter_p50_ms']:.2f} "
                f"| {m['adapter_p95_ms']:.2f} |"
            )
            print(f"| raw MessageSendText stub | {m['raw_p50_ms']:.2f} | {m['raw_p95_ms']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 3000], help="burst sizes")
    parser.add_argument("--contacts", type=int, default=100, help="contacts sending the burst")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (medians)")
    parser.add_argument("--unloaded", type=int, default=50, help="DMs one at a time (0: skip)")
    parser.add_argument("--sends", type=int, default=500, help="send calls timed (0: skip)")
    parser.add_argument("--role", choices=["gateway", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "gateway" and os.environ.get("BENCH_WECHATY_PROFILE"):
        from pyinstrument import Profiler  # the whole thread, loop included

        with Profiler(async_mode="disabled") as profiler:
            asyncio.run(run_gateway(args.endpoint, args.token, Path(args.state)))
        Path(os.environ["BENCH_WECHATY_PROFILE"]).write_text(profiler.output_text())
    elif args.role == "gateway":
        asyncio.run(run_gateway(args.endpoint, args.token, Path(args.state)))
    elif args.role == "floor":
        asyncio.run(run_floor(args.endpoint, args.token))
    else:
        asyncio.run(driver(args))


if __name__ == "__main__":
    main()
