"""Soak: nothing lost, nothing twice, on the simulator, under every recoverable fault.

Run: ``python bench/bench_soak.py [--messages 100000] [--conversations 1000] [--seed 0]``.

One gateway with two accounts on a seeded simulated WeChat, in virtual time: ``paced``
keeps the default pacing (1 message a second, burst 5, chunks 1 s apart, jitter), ``fast``
has pacing off. The conversations are DMs from senders in ``allowFrom``, strangers (each
message is checked against the pairing rules: a code when a request is created, nothing
while it is pending or when 3 requests are pending already; the owner approves some codes,
and those senders are answered from then on, and denies others), groups that need a
mention (with and without one), groups answered on every message, and a disabled group.
The agent answers every message with a short echo naming it, some with a long text that
goes out in chunks (``textChunkLimit`` 400), and thinks for a few seconds on some.

Messages are said in batches; after each batch the world runs until everything is answered
and the owner decides on the pending pairing codes. Faults are injected as the messages
come: duplicate deliveries (about 5 % of the messages), transient send failures (about 1 %
of the sends, rate limits among them, and slow sends now and then), lost send replies,
dropped links, heartbeat silence (the watchdog reconnects after 60 s), a forced logout of
each account (the owner then restarts the gateway and scans again), and, a few times, a
lost send reply during a silence, whose outcome nobody can know: the gateway gives it up
(``outcome_unknown``) and never sends it again. Those are counted apart, neither lost nor
twice.

A failing send fault is injected on an account only when none is pending there and the
last was 8 s of virtual time ago or more, so that no single message meets five failures in
a row (the gateway gives up after 5 attempts, by design); a lost send reply is never
injected while an account's link is down or silent, except in the deliberate cases.
``--sidestep-known-bugs`` keeps out of the windows of the bugs the soak found (see
``SIDESTEP``), to show that nothing else is lost.

:class:`Checker` knows, for every message said, what must come back; at the end it reads
the simulator's transcript. Exit status 1 when anything was lost, sent twice, out of order
or unexpected.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import random
import re
import resource
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.transcript import TranscriptEntry
from simulator.world import SimulatedWeChat
from wechat_sdk.agent import AgentTurn
from wechat_sdk.gateway.connection import STABLE_AFTER_S
from wechat_sdk.idle_loop import new_event_loop
from wechat_sdk.outbound.chunking import chunk_text
from wechat_sdk.pairing.service import DEFAULT_MAX_PENDING

CHUNK_LIMIT = 400
ACCOUNTS = ("paced", "fast")
TAG = re.compile(r"\bm\d+\b")
CODE = re.compile(r"Pairing code: ([A-Z0-9]{8})")
#: faults that make a send fail (and be retried)
FAILING = ("send_fail", "rate_limit")
#: seconds of virtual time between two failing faults on one account, at least: one send
#: meets three of them at most in its five attempts (1 + 2 + 4 + 8 s of backoff apart)
FAIL_SPACING_S = 8.0
#: seconds an account's link is counted as disturbed after a disconnect or a silence
DISTURBED_S = 90.0
#: with ``--sidestep-known-bugs``, seconds between two disturbances of one account: the
#: connection's reconnect backoff is reset only after 300 s of a stable link
CALM_S = DISTURBED_S + STABLE_AFTER_S + 10.0
SIDESTEP = """the windows of the three bugs the soak found are sidestepped: a logout comes
only once the gateway has read every message and sent every reply and pairing code (a slow
turn is then in flight, so a reply is still written while logged out and kept across the
restart), never while the link is down or silent, and one account's disturbances are at
least 400 s apart (so that the reconnect backoff is back to 1 s each time). The bugs:
sends tried against a puppet that is not logged in while the gateway saw no logout (a
reconnect's wait, a logout whose event was lost) use up their five attempts; after a
logout the gateway no longer knows its own id (a mention read then is not one, an echo
read then is not its own); a pairing code not sent yet at a stop is not kept"""

Kind = Literal["allowed", "stranger", "group_mention", "group_all", "group_off"]


def long_text(tag: str) -> str:
    """A long answer: every sentence names the message, so every chunk does."""
    return " ".join(
        f"{tag} answers, part {i} of a long reply sent in chunks." for i in range(1, 31)
    )


def answer_of(text: str) -> str:
    """What the agent answers to a message's text."""
    match = TAG.search(text)
    tag = match.group(0) if match else "?"
    return long_text(tag) if " long" in text else f"echo {tag}"


class SoakAgent:
    """Answers every message (see :func:`answer_of`); "slow" ones after a few seconds."""

    def __init__(self, world: SimulatedWeChat) -> None:
        self.world = world
        self.asked: Counter[str] = Counter()

    async def __call__(self, turn: AgentTurn) -> str:
        match = TAG.search(turn.text)
        if match:
            self.asked[match.group(0)] += 1
        if " slow" in turn.text:
            await self.world.clock.sleep(8.0)
        return answer_of(turn.text)


# ---------------------------------------------------------------- the checker


@dataclass
class Expectation:
    """What must come back for one message: ``chunks`` in order, once; a pairing code;
    or nothing (no chunks, no code)."""

    tag: str
    account: str
    conversation: str
    chunks: tuple[str, ...] = ()
    code: bool = False


@dataclass
class Verdict:
    messages: int = 0
    answered: int = 0  # every chunk of the reply, once, in order, contiguous
    silent_ok: int = 0  # nothing was due and nothing came
    codes_expected: int = 0
    codes_sent: int = 0
    lost: int = 0
    twice: int = 0
    out_of_order: int = 0
    unexpected: int = 0
    unknown_outcomes: int = 0  # sends given up as outcome_unknown (logged by the gateway)
    unknown_cut: int = 0  # replies ended at such a send: a prefix went out, once
    reordered_replies: int = 0  # (information) replies of a conversation not in message order
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.twice or self.out_of_order or self.unexpected)

    def problem(self, text: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)


class Checker:
    """Knows, per message said, what must come back, and checks a transcript against it.

    - a reply: each of its chunks exactly once, in order, one after the other in its
      conversation (nothing else sent there between two of its chunks);
    - a pairing code: one code message per request, to that stranger;
    - nothing: not a word (a stranger whose request is pending, a group message without a
      mention where one is needed, a disabled group).

    Every answer the agent would give is known, so an answer to a message that was due
    nothing is recognised (``unexpected``), and so is any text that answers nothing.
    A reply cut short by a send whose outcome is unknown (the gateway logged it) is
    counted as ``unknown_cut`` when what went out is a prefix, once and in order.
    """

    def __init__(self, chunk_limit: int = CHUNK_LIMIT) -> None:
        self.chunk_limit = chunk_limit
        self.expected: dict[str, Expectation] = {}
        self._by_text: dict[str, tuple[str, int]] = {}
        #: codes the store issued, per (account, stranger), as the driver saw them
        self.issued: defaultdict[tuple[str, str], set[str]] = defaultdict(set)

    def _chunks(self, text: str) -> tuple[str, ...]:
        return tuple(chunk_text(text, self.chunk_limit))

    def _know(self, tag: str, text: str) -> tuple[str, ...]:
        chunks = self._chunks(text)
        for i, chunk in enumerate(chunks):
            self._by_text[chunk] = (tag, i)
        return chunks

    def reply(self, tag: str, account: str, conversation: str, answer: str) -> None:
        """The message must be answered with ``answer`` (in its chunks)."""
        chunks = self._know(tag, answer)
        self.expected[tag] = Expectation(tag, account, conversation, chunks)

    def code(self, tag: str, account: str, stranger: str, answer: str) -> None:
        """The message must get one pairing code (and never the agent's answer)."""
        self._know(tag, answer)
        self.expected[tag] = Expectation(tag, account, stranger, code=True)

    def nothing(self, tag: str, account: str, conversation: str, answer: str) -> None:
        """Nothing must come back for the message (``answer``: what the agent would say)."""
        self._know(tag, answer)
        self.expected[tag] = Expectation(tag, account, conversation)

    def check(
        self,
        outbound: Iterable[TranscriptEntry],
        unknown: Counter[tuple[str, str]] | None = None,
    ) -> Verdict:
        """Compare what went out (transcript entries, in order) with what was due.
        ``unknown``: sends given up as outcome_unknown per (account, conversation)."""
        v = Verdict(messages=len(self.expected))
        allowance = Counter(unknown or {})
        v.unknown_outcomes = sum(allowance.values())
        sequences: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
        for entry in outbound:
            if entry.direction != "out":
                continue
            conversation = entry.room or entry.to or ""
            sequences[(entry.account, conversation)].append(entry.text or "")
        codes_due: Counter[tuple[str, str]] = Counter(
            (e.account, e.conversation) for e in self.expected.values() if e.code
        )
        v.codes_expected = sum(codes_due.values())
        runs: defaultdict[str, list[tuple[int, int]]] = defaultdict(list)
        codes_seen: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
        for key, texts in sequences.items():
            for pos, text in enumerate(texts):
                code = CODE.search(text)
                if code is not None:
                    codes_seen[key].append(code.group(1))
                    continue
                hit = self._by_text.get(text)
                if hit is None:
                    v.unexpected += 1
                    v.problem(f"{key}: a message that answers nothing: {text[:60]!r}")
                    continue
                tag, index = hit
                due = self.expected[tag]
                if (due.account, due.conversation) != key:
                    v.unexpected += 1
                    v.problem(f"{key}: the answer to {tag} of {due.conversation} came here")
                    continue
                runs[tag].append((pos, index))
        for key in codes_due.keys() | codes_seen.keys():
            seen = codes_seen.get(key, [])
            v.codes_sent += len(seen)
            distinct = set(seen)
            issued = self.issued.get(key, set())
            if len(seen) > len(distinct):
                v.twice += len(seen) - len(distinct)
                v.problem(f"{key}: the same pairing code sent {len(seen)} times")
            if distinct - issued:
                v.unexpected += len(distinct - issued)
                v.problem(f"{key}: codes {sorted(distinct - issued)} were never in the store")
            if not codes_due[key] and distinct:
                v.unexpected += len(distinct)
                v.problem(f"{key}: {len(distinct)} pairing code(s) where none was due")
            elif len(distinct) > codes_due[key]:
                v.twice += len(distinct) - codes_due[key]
                v.problem(f"{key}: {len(distinct)} pairing codes, {codes_due[key]} due")
            elif len(distinct) < codes_due[key]:
                v.lost += codes_due[key] - len(distinct)
                v.problem(f"{key}: {len(distinct)} pairing codes, {codes_due[key]} due")
        first_pos: defaultdict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        for tag, due in self.expected.items():
            got = runs.get(tag, [])
            key = (due.account, due.conversation)
            if not due.chunks:
                if got:
                    v.unexpected += 1
                    v.problem(f"{key}: {tag} was due nothing and was answered")
                elif not due.code:
                    v.silent_ok += 1
                continue
            indices = [i for _, i in got]
            if len(indices) != len(set(indices)):
                v.twice += 1
                v.problem(f"{key}: {tag}: chunks {indices} (of {len(due.chunks)})")
                continue
            if not got:
                v.lost += 1
                v.problem(f"{key}: {tag} was never answered")
                continue
            first_pos[key].append((got[0][0], int(tag[1:])))
            positions = [p for p, _ in got]
            in_order = indices == list(range(len(indices))) and positions == list(
                range(positions[0], positions[0] + len(positions))
            )
            if not in_order:
                v.out_of_order += 1
                v.problem(f"{key}: {tag}: chunks {indices} at {positions}")
            elif len(indices) == len(due.chunks):
                v.answered += 1
            elif allowance[key] > 0:
                allowance[key] -= 1
                v.unknown_cut += 1
            else:
                v.lost += 1
                v.problem(f"{key}: {tag}: {len(indices)} of {len(due.chunks)} chunks went out")
        for firsts in first_pos.values():
            order = [n for _, n in sorted(firsts)]
            v.reordered_replies += sum(1 for a, b in itertools.pairwise(order) if b < a)
        return v


class GatewayLog(logging.Handler):
    """Counts the gateway's warnings by reason, and the sends it gave up as
    outcome_unknown (never to be sent again) by (account, conversation)."""

    REASON = re.compile(r"reason=(\w+)")
    WHERE = re.compile(r"account=(\S+) to=(\S+)")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reasons: Counter[str] = Counter()
        self.unknown: Counter[tuple[str, str]] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        reason = self.REASON.search(text)
        if reason is None:
            return
        self.reasons[reason.group(1)] += 1
        if reason.group(1) == "outcome_unknown" and "retrying" not in text:  # given up
            where = self.WHERE.search(text)
            if where is not None:
                self.unknown[(where.group(1), where.group(2))] += 1


# ---------------------------------------------------------------- the world and its traffic


@dataclass
class Conversation:
    id: str  # the contact (a DM) or the room
    account: str
    kind: Kind
    members: tuple[str, ...] = ()  # a group's talkers
    state: Literal["none", "pending", "approved"] = "none"  # a stranger's pairing


@dataclass
class SoakOptions:
    messages: int = 100_000
    conversations: int = 1000
    seed: int = 0
    batch: int = 500
    disconnects: int = 6
    silences: int = 6
    logouts: int = 2
    silent_lost: int = 2  # a lost send reply during a silence: outcome unknown
    duplicate_rate: float = 0.05
    send_fail_rate: float = 0.012  # (some are skipped: about 1 % of the sends fail)
    lost_reply_rate: float = 0.005
    rate_limit_rate: float = 0.001
    slow_send_rate: float = 0.001
    long_rate: float = 0.03
    slow_rate: float = 0.02
    #: keep out of the windows of the three bugs the soak found (see SIDESTEP)
    sidestep: bool = False


@dataclass
class SoakResult:
    verdict: Verdict
    options: SoakOptions
    wall_s: float
    virtual_s: float
    faults: Counter[str]
    duplicates: int  # deliveries duplicated (duplicate_next that took effect)
    reasons: Counter[str]
    kinds: Counter[str]  # messages said per conversation kind
    approved: int
    denied: int
    asked_again: int  # turns the agent was asked a second time (cut by a restart)
    restarts: int
    sent: int  # messages that went out (chunks one by one)
    peak_rss_mb: float

    def summary(self) -> str:
        v, o = self.verdict, self.options
        faults = ", ".join(f"{k} {n}" for k, n in sorted(self.faults.items()))
        failed = sum(self.faults[k] for k in FAILING)
        lost_replies = self.faults["send_lost_reply"]
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items()))
        reasons = ", ".join(f"{k} {n}" for k, n in sorted(self.reasons.items()))
        lines = [
            f"soak: {o.messages} messages, {o.conversations} conversations, seed {o.seed}"
            + (", known bugs sidestepped" if o.sidestep else ""),
            f"messages said:          {v.messages} ({kinds})",
            f"answered:               {v.answered} (every chunk once, in order)",
            f"nothing due, nothing:   {v.silent_ok}",
            f"pairing codes:          {v.codes_sent} sent, {v.codes_expected} due "
            f"({self.approved} approved, {self.denied} denied)",
            f"messages sent:          {self.sent} (chunks one by one)",
            f"duplicates injected:    {self.duplicates} deliveries "
            f"({100 * self.duplicates / max(1, v.messages):.1f} % of the messages)",
            f"faults injected:        {faults}",
            f"  failed sends:         {failed} ({100 * failed / max(1, self.sent):.2f} % of the "
            f"sends); lost send replies {lost_replies} "
            f"({100 * lost_replies / max(1, self.sent):.2f} %)",
            f"gateway restarts:       {self.restarts}",
            f"lost:                   {v.lost}",
            f"sent twice:             {v.twice}",
            f"out of order:           {v.out_of_order}",
            f"unexpected:             {v.unexpected}",
            f"unknown outcome, never repeated: {v.unknown_outcomes} sends "
            f"({v.unknown_cut} replies ended there)",
            f"asked again after a restart: {self.asked_again}; replies reordered: "
            f"{v.reordered_replies}",
            f"gateway warnings:       {reasons}",
            f"wall time:              {self.wall_s:.1f} s (the check included); peak RSS "
            f"{self.peak_rss_mb:.0f} MB",
            f"virtual time:           {self.virtual_s:.0f} s ({self.virtual_s / 3600:.1f} h)",
            f"verdict:                {'OK' if v.ok else 'FAILED'}",
        ]
        lines += [f"  {p}" for p in v.problems]
        return "\n".join(lines)


class Soak:
    """Drives the world: says the messages, injects the faults, plays the owner."""

    def __init__(self, options: SoakOptions, state_dir: Path) -> None:
        self.o = options
        self.rng = random.Random(options.seed)
        self.world = SimulatedWeChat(seed=options.seed)
        self.checker = Checker()
        self.agent = SoakAgent(self.world)
        self.log = GatewayLog()
        self.state_dir = state_dir
        self.conversations = self._conversations()
        self.live: dict[str, set[str]] = {a: set() for a in ACCOUNTS}  # pending strangers
        self.disturbed_until: dict[str, float] = dict.fromkeys(ACCOUNTS, 0.0)
        self.last_failing: dict[str, float] = dict.fromkeys(ACCOUNTS, -1e9)
        self.logged_out: set[str] = set()
        self.kinds: Counter[str] = Counter()
        self.approved = self.denied = self.restarts = 0
        self.said = 0
        self.mismatches: list[str] = []
        self.carried: list[tuple[int, str, str]] = []
        self.by_id = {c.id: c for c in self.conversations}
        self.force_slow = False
        self.gateway = self.world.gateway(self._config(), self.agent, state_dir=state_dir)

    # ------------------------------------------------------------ set-up

    def _conversations(self) -> list[Conversation]:
        world, rng = self.world, self.rng
        for account in ACCOUNTS:
            world.add_account(account, name=f"Bot {account}")
        kinds: list[Kind] = ["allowed", "stranger", "group_mention", "group_all", "group_off"]
        weights = [35, 25, 25, 12, 3]
        out = []
        for i in range(self.o.conversations):
            account = ACCOUNTS[i % len(ACCOUNTS)]
            kind = kinds[i % 5] if i < 5 else rng.choices(kinds, weights)[0]
            if kind in ("allowed", "stranger"):
                contact = world.add_contact(f"wxid_{kind}{i:05d}")
                out.append(Conversation(contact.id, account, kind))
                continue
            members = tuple(
                world.add_contact(f"wxid_g{i:05d}_{j}").id for j in range(rng.randint(2, 4))
            )
            room = world.add_room(members=[*members, world.accounts[account].wxid])
            out.append(Conversation(room.id, account, kind, members))
        return out

    def _config(self) -> dict[str, Any]:
        groups: dict[str, Any] = {"*": {"requireMention": True}}
        for c in self.conversations:
            if c.kind == "group_all":
                groups[c.id] = {"requireMention": False}
            elif c.kind == "group_off":
                groups[c.id] = {"enabled": False}
        allowed = [c.id for c in self.conversations if c.kind == "allowed"]
        return {
            "channels": {
                "wechat": {
                    "dmPolicy": "pairing",
                    "allowFrom": allowed,
                    "groups": groups,
                    "textChunkLimit": CHUNK_LIMIT,
                    "defaultAccountId": "fast",
                    "accounts": {"paced": {}, "fast": {"pacing": False}},
                }
            }
        }

    # ------------------------------------------------------------ traffic

    def _text(self, tag: str) -> str:
        r = self.rng.random()
        if self.force_slow:
            self.force_slow = False
            return f"{tag} slow please"
        if r < self.o.long_rate:
            return f"{tag} long please"
        if r < self.o.long_rate + self.o.slow_rate:
            return f"{tag} slow please"
        return f"{tag} hello"

    def _random_faults(self, account: str) -> None:
        world, rng, o = self.world, self.rng, self.o
        faults = world.accounts[account].faults
        now = world.clock.now()
        if rng.random() < o.duplicate_rate and not faults.get("duplicate_next"):
            world.fault("duplicate_next", account)
        r = rng.random()
        failing = [
            (o.send_fail_rate, "send_fail"),
            (o.rate_limit_rate, "rate_limit"),
        ]
        for rate, kind in failing:
            if r < rate:
                if not any(faults.get(k) for k in FAILING) and (
                    now - self.last_failing[account] >= FAIL_SPACING_S
                ):
                    world.fault(kind, account)
                    self.last_failing[account] = now
                break
            r -= rate
        if rng.random() < o.slow_send_rate and not faults.get("slow_send"):
            world.fault("slow_send", account, seconds=rng.choice((2.0, 5.0)))
        if (
            rng.random() < o.lost_reply_rate
            and not faults.get("send_lost_reply")
            and now >= self.disturbed_until[account]
        ):
            world.fault("send_lost_reply", account)

    async def say_one(self, conversation: Conversation | None = None) -> None:
        c = conversation or self.rng.choice(self.conversations)
        self.said += 1
        tag = f"m{self.said}"
        text = self._text(tag)
        answer = answer_of(text)
        self._random_faults(c.account)
        check = self.checker
        self.kinds[c.kind if c.kind != "stranger" or c.state != "approved" else "paired"] += 1
        if c.kind in ("allowed", "stranger"):
            if c.kind == "allowed" or c.state == "approved":
                check.reply(tag, c.account, c.id, answer)
            elif c.state == "pending":
                check.nothing(tag, c.account, c.id, answer)
            elif len(self.live[c.account]) < DEFAULT_MAX_PENDING:
                check.code(tag, c.account, c.id, answer)
                c.state = "pending"
                self.live[c.account].add(c.id)
            else:  # capped: no request, no reply
                check.nothing(tag, c.account, c.id, answer)
            await self.world.say(c.id, text, account=c.account, settle=False)
            return
        mention = c.kind == "group_mention" and self.rng.random() < 0.5
        if c.kind == "group_all" or mention:
            check.reply(tag, c.account, c.id, answer)
        else:
            check.nothing(tag, c.account, c.id, answer)
        sender = self.rng.choice(c.members)
        await self.world.say(sender, text, room=c.id, mention=mention, settle=False)

    # ------------------------------------------------------------ events

    def _can_disturb(self, account: str) -> bool:
        faults = self.world.accounts[account].faults
        return (
            account not in self.logged_out
            and self.world.clock.now() >= self.disturbed_until[account]
            and not faults.get("send_lost_reply")
        )

    async def event(self, kind: str, account: str) -> bool:
        """Carry out one scheduled event; False: not now (try again later)."""
        world, sidestep = self.world, self.o.sidestep
        if kind == "logout" and not sidestep:
            if account in self.logged_out:
                return False
            world.fault("logout", account)
            self.logged_out.add(account)
            return True
        if not self._can_disturb(account):
            return False
        calm = CALM_S if sidestep else DISTURBED_S
        self.disturbed_until[account] = world.clock.now() + calm
        if kind == "logout":  # sidestepped: everything read and sent first
            await self.drain()
            await self.say_one(self._friend(account, slow=True))
            await world.clock.settle()
            world.fault("logout", account)
            self.logged_out.add(account)
        elif kind == "disconnect":
            world.fault("disconnect", account)
        elif kind == "silence":
            world.fault("heartbeat_silence", account)
        elif kind == "silent_lost":
            # a DM is read, then the link goes quiet and the send's answer is lost: its
            # reply goes out while nothing, its echo included, arrives
            await self.say_one(self._friend(account))
            world.fault("heartbeat_silence", account)
            world.fault("send_lost_reply", account)
        return True

    def _friend(self, account: str, *, slow: bool = False) -> Conversation:
        friend = next(c for c in self.conversations if c.account == account and c.kind == "allowed")
        self.force_slow = slow
        return friend

    async def restart(self) -> None:
        """The owner restarts the gateway after a forced logout and scans again."""
        world = self.world
        await world.clock.advance(self.rng.uniform(20.0, 150.0))
        await world.clock.settle()
        await world.drive(self.gateway.stop())
        await self.gateway.start()
        for account in ACCOUNTS:
            await world.login(account)
        self.logged_out.clear()
        # new connections: their links are fresh, their backoffs reset
        self.disturbed_until = dict.fromkeys(ACCOUNTS, world.clock.now())
        self.restarts += 1

    # ------------------------------------------------------------ the owner

    async def drain(self) -> None:
        world = self.world
        sent = -1
        while sent != len(world.transcript):
            sent = len(world.transcript)
            await world.run_until_idle()
            await world.drive(self.gateway.wait_idle())

    async def decide_codes(self) -> None:
        now = self.world.clock.now()
        for account in ACCOUNTS:
            requests = self.gateway.pairing.list(account)
            pending = {r.sender_id for r in requests}
            if pending != self.live[account]:
                self.checker_problem(
                    f"{account}: pending requests {sorted(pending)}, "
                    f"expected {sorted(self.live[account])}"
                )
            for r in requests:
                self.checker.issued[(account, r.sender_id)].add(r.code)
                c = self.by_id.get(r.sender_id)
                if c is None:  # nobody the soak knows: the owner denies it
                    self.checker_problem(f"{account}: a pairing request from {r.sender_id}")
                    self.gateway.pairing.deny(r.code, account=account)
                    continue
                choice = self.rng.random()
                old = now - r.created_at > 1800
                if choice < 0.45 or (old and choice < 0.75):
                    await self.gateway.pairing.approve(r.code, account=account)
                    c.state = "approved"
                    self.approved += 1
                elif choice < 0.65 or old:
                    self.gateway.pairing.deny(r.code, account=account)
                    c.state = "none"
                    self.denied += 1
                else:
                    continue
                self.live[account].discard(r.sender_id)

    def checker_problem(self, text: str) -> None:
        self.mismatches.append(text)

    # ------------------------------------------------------------ the run

    def _schedule(self, batches: int) -> dict[int, list[tuple[int, str, str]]]:
        o, rng = self.o, self.rng
        events: list[tuple[str, str]] = []
        for kind, n in (
            ("disconnect", o.disconnects),
            ("silence", o.silences),
            ("logout", o.logouts),
            ("silent_lost", o.silent_lost),
        ):
            events += [(kind, ACCOUNTS[i % len(ACCOUNTS)]) for i in range(n)]
        plan: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
        for kind, account in events:
            # never in the first batch: the accounts settle in first
            batch = rng.randrange(1, batches) if batches > 1 else 0
            plan[batch].append((rng.randrange(self.o.batch), kind, account))
        return plan

    async def run(self) -> SoakResult:
        o, world = self.o, self.world
        sdk_log = logging.getLogger("wechat_sdk")
        sdk_log.addHandler(self.log)
        level = sdk_log.level
        sdk_log.setLevel(logging.WARNING)
        started = time.perf_counter()
        t0 = world.clock.now()
        try:
            await self.gateway.start()
            for account in ACCOUNTS:
                await world.login(account)
            batches = max(1, -(-o.messages // o.batch))
            plan = self._schedule(batches)
            for b in range(batches):
                size = min(o.batch, o.messages - b * o.batch)
                await self._batch(size, sorted(plan.get(b, [])))
            await self._last_events()
            await world.drive(self.gateway.close())
        finally:
            sdk_log.removeHandler(self.log)
            sdk_log.setLevel(level)
        verdict = self.checker.check(world.transcript, self.log.unknown)
        wall = time.perf_counter() - started
        for text in self.mismatches:
            verdict.unexpected += 1
            verdict.problem(f"pairing model: {text}")
        faults: Counter[str] = Counter()
        duplicates = 0
        for e in world.events_log:
            if e["event"] == "fault":
                if "message_id" in e:
                    duplicates += 1
                else:
                    faults[e["kind"]] += 1
        return SoakResult(
            verdict=verdict,
            options=o,
            wall_s=wall,
            virtual_s=world.clock.now() - t0,
            faults=faults,
            duplicates=duplicates,
            reasons=self.log.reasons,
            kinds=self.kinds,
            approved=self.approved,
            denied=self.denied,
            asked_again=sum(n - 1 for n in self.agent.asked.values() if n > 1),
            restarts=self.restarts,
            sent=len(world.sent()),
            peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        )

    async def _batch(self, size: int, events: list[tuple[int, str, str]]) -> None:
        rng, world = self.rng, self.world
        waiting = self.carried + events
        self.carried = []
        restart_at: int | None = None
        i = 0
        while i < size:
            n = min(size - i, rng.randint(1, 20))
            for _ in range(n):
                while waiting and waiting[0][0] <= i:
                    _, kind, account = waiting[0]
                    if not await self.event(kind, account):
                        break  # not now: the next message tries again
                    waiting.pop(0)
                    if kind == "logout" and restart_at is None:
                        restart_at = min(size - 1, i + rng.randint(10, 80))
                if restart_at is not None and i >= restart_at:
                    await self.restart()
                    restart_at = None
                await self.say_one()
                i += 1
            await world.clock.advance(rng.choice((0.0, 0.2, 0.5, 1.0, 2.0)))
        # an event whose account was busy all batch goes first in the next one
        self.carried = [(0, kind, account) for _, kind, account in waiting]
        if restart_at is not None or self.logged_out:
            await self.restart()
        await self.settle_down()
        await self.decide_codes()

    async def _last_events(self) -> None:
        """The events that found their account busy to the end: now, one by one."""
        world = self.world
        while self.carried:
            _, kind, account = self.carried[0]
            if await self.event(kind, account):
                self.carried.pop(0)
                if kind == "logout":
                    await self.restart()
                await self.settle_down()
            elif world.accounts[account].faults.get("send_lost_reply"):
                await self.say_one(self._friend(account))  # a send to take it
                await self.drain()
            else:
                await world.clock.run_until(max(self.disturbed_until[account], world.clock.now()))

    async def settle_down(self) -> None:
        """Everything answered, every link back (the watchdog's 60 s of a silence)."""
        world = self.world
        await self.drain()
        calm = max(self.disturbed_until.values())
        if world.clock.now() < calm:
            await world.clock.run_until(calm)
            await self.drain()


async def soak(options: SoakOptions) -> SoakResult:
    with tempfile.TemporaryDirectory() as tmp:
        return await Soak(options, Path(tmp)).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=500, help="messages between two drains")
    parser.add_argument(
        "--sidestep-known-bugs", action="store_true", help=SIDESTEP.replace("\n", " ")
    )
    args = parser.parse_args(argv)
    options = SoakOptions(
        messages=args.messages,
        conversations=args.conversations,
        seed=args.seed,
        batch=args.batch,
        sidestep=args.sidestep_known_bugs,
    )
    with asyncio.Runner(loop_factory=new_event_loop) as runner:  # it says when it is idle
        result = runner.run(soak(options))
    print(result.summary())
    v = result.verdict
    return 0 if v.ok else 1


if __name__ == "__main__":
    sys.exit(main())
