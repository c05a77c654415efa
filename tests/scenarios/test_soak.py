"""Nothing lost, nothing twice: the soak, short, and the bugs it found, each as a scenario.

The soak itself is ``bench/bench_soak.py`` (its checker and its driver are imported from
there): 100,000 messages there, 2,000 here, with every fault kind of the soak at least
once. The checker is tested first, on transcripts with a planted fault, so that a soak
that finds nothing is known to be able to find something.

The soak found three bugs, each kept below as a scenario (they were fixed in the same
round):

1. Sends are tried against a puppet that is not logged in whenever the gateway saw no
   logout: while a dropped link waits to reconnect, or after a logout whose event was lost
   (the link was silent). Each "not logged in" uses one of the five attempts, so the reply
   (or pairing code) is given up after 1 + 2 + 4 + 8 s (``retries_exhausted``).
2. After a logout the gateway no longer knows its own id (it asks the puppet's
   ``self_id``, which the logout cleared): a group message that mentions the bot, read
   after the logout it came before, is dropped as ``no_mention``; the echo of a send that
   finishes after the logout is not the bot's own, so a send whose reply was lost is
   judged not sent and goes out twice, and the echo is taken for a stranger's DM (a pairing
   request from the bot itself).
3. A pairing code not sent yet when the gateway stops (waiting for a login, or for its
   pacing) is not kept: its request stays pending, so the stranger never gets a code.

The short soak runs both ways: sidestepping their windows (``sidestep=True``), and with
every fault as it comes.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from simulator.pytest_plugin import WeChatHarness
from simulator.transcript import TranscriptEntry
from wechat_sdk.agent import AgentTurn


def _bench_soak() -> ModuleType:
    name = "bench_soak"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[2] / "bench" / "bench_soak.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # (dataclasses look their module up while it loads)
    spec.loader.exec_module(module)
    return module


soak = _bench_soak()
OPEN: dict[str, Any] = {"dmPolicy": "open", "allowFrom": ["*"]}
#: every fault kind the soak injects
SOAK_FAULTS = {
    "duplicate_next",
    "send_fail",
    "rate_limit",
    "slow_send",
    "send_lost_reply",
    "disconnect",
    "heartbeat_silence",
    "logout",
}


def out(to: str, text: str, account: str = "default") -> TranscriptEntry:
    return TranscriptEntry(0.0, "out", account, "wxid_bot", to, None, text)


# ---------------------------------------------------------------- the checker


def two_replies() -> Any:
    checker = soak.Checker(chunk_limit=400)
    checker.reply("m1", "default", "wxid_alice", soak.long_text("m1"))
    checker.reply("m2", "default", "wxid_alice", "echo m2")
    return checker


def test_the_checker_passes_a_clean_transcript() -> None:
    checker = two_replies()
    chunks = checker.expected["m1"].chunks
    assert len(chunks) >= 3
    verdict = checker.check([out("wxid_alice", c) for c in [*chunks, "echo m2"]])
    assert verdict.ok and verdict.answered == 2
    assert (verdict.lost, verdict.twice, verdict.out_of_order, verdict.unexpected) == (0, 0, 0, 0)


def test_the_checker_catches_a_planted_duplicate() -> None:
    checker = two_replies()
    chunks = checker.expected["m1"].chunks
    sent = [*chunks, "echo m2", "echo m2"]
    verdict = checker.check([out("wxid_alice", c) for c in sent])
    assert verdict.twice == 1 and not verdict.ok
    # a chunk sent again (a resend of a cut reply) is twice too
    verdict = checker.check([out("wxid_alice", c) for c in [*chunks, chunks[1], "echo m2"]])
    assert verdict.twice == 1 and not verdict.ok


def test_the_checker_catches_a_lost_chunk_and_a_lost_reply() -> None:
    checker = two_replies()
    chunks = checker.expected["m1"].chunks
    verdict = checker.check([out("wxid_alice", c) for c in chunks[:-1]])
    assert verdict.lost == 2 and not verdict.ok  # m1 cut short, m2 never sent


def test_the_checker_counts_a_cut_at_an_unknown_outcome_apart() -> None:
    checker = two_replies()
    chunks = checker.expected["m1"].chunks
    sent = [out("wxid_alice", c) for c in [*chunks[:2], "echo m2"]]
    verdict = checker.check(sent, unknown=soak.Counter({("default", "wxid_alice"): 1}))
    assert verdict.ok and verdict.unknown_cut == 1 and verdict.lost == 0


def test_the_checker_catches_chunks_out_of_order_or_interleaved() -> None:
    checker = two_replies()
    a, b, *rest = checker.expected["m1"].chunks
    verdict = checker.check([out("wxid_alice", c) for c in [b, a, *rest, "echo m2"]])
    assert verdict.out_of_order == 1 and not verdict.ok
    verdict = checker.check([out("wxid_alice", c) for c in [a, "echo m2", b, *rest]])
    assert verdict.out_of_order == 1 and not verdict.ok


def test_the_checker_catches_an_answer_where_nothing_was_due() -> None:
    checker = soak.Checker()
    checker.nothing("m1", "default", "room@chatroom", "echo m1")
    checker.code("m2", "default", "wxid_stranger", "echo m2")
    checker.issued[("default", "wxid_stranger")].add("ABCDEFGH")
    code = "Your WeChat id: wxid_stranger\nPairing code: ABCDEFGH"
    room = TranscriptEntry(0.0, "out", "default", "wxid_bot", None, "room@chatroom", "echo m1")
    verdict = checker.check([room, out("wxid_stranger", code)])
    assert verdict.unexpected == 1 and verdict.codes_sent == 1 and not verdict.ok
    # a stranger's code twice, or a stranger answered by the agent
    verdict = checker.check([out("wxid_stranger", code), out("wxid_stranger", code)])
    assert verdict.twice == 1 and not verdict.ok
    verdict = checker.check([out("wxid_stranger", code), out("wxid_stranger", "echo m2")])
    assert verdict.unexpected == 1 and not verdict.ok


# ---------------------------------------------------------------- the short soak


async def test_a_short_soak_loses_nothing_and_sends_nothing_twice() -> None:
    options = soak.SoakOptions(messages=2000, conversations=100, batch=100, seed=0, sidestep=True)
    result = await soak.soak(options)
    v = result.verdict
    assert v.problems == []
    assert (v.lost, v.twice, v.out_of_order, v.unexpected) == (0, 0, 0, 0)
    assert v.messages == 2000 + options.silent_lost + options.logouts  # (the events' own)
    assert v.answered > 1000 and v.silent_ok > 300 and v.codes_sent == v.codes_expected > 10
    assert set(result.faults) == SOAK_FAULTS and result.duplicates > 50
    assert result.restarts == options.logouts and result.approved > 5 and result.denied > 0
    assert v.unknown_outcomes >= 1  # the lost send replies during a silence
    assert {"paired", "stranger", "group_mention", "group_all", "group_off"} <= set(result.kinds)


async def test_the_short_soak_with_every_fault_as_it_comes() -> None:
    options = soak.SoakOptions(messages=2000, conversations=100, batch=100, seed=1)
    result = await soak.soak(options)
    v = result.verdict
    assert v.problems == []
    assert (v.lost, v.twice, v.out_of_order, v.unexpected) == (0, 0, 0, 0)


# ---------------------------------------------------------------- what the soak found


def slow_echo(wechat: WeChatHarness, seconds: float) -> Any:
    async def agent(turn: AgentTurn) -> str:
        await wechat.world.clock.sleep(seconds)
        return f"echo {turn.text}"

    return agent


async def test_a_reply_written_while_a_flapping_link_reconnects_goes_out(
    wechat: WeChatHarness,
) -> None:
    world = wechat.world
    await wechat.gateway(slow_echo(wechat, 1.0), **OPEN)
    for _ in range(5):  # the link drops again and again, a minute apart: the backoff grows
        world.fault("disconnect")
        await world.advance(60)
    await world.say("wxid_alice", "hello", settle=False)
    await world.clock.settle()  # read: the agent thinks for a second
    world.fault("disconnect")  # the sixth drop: the reconnect is 32 s (+-20 %) away
    await world.advance(120)
    assert world.texts(to="wxid_alice") == ["echo hello"]


async def test_a_reply_written_after_a_logout_on_a_silent_link_goes_out(
    wechat: WeChatHarness,
) -> None:
    world = wechat.world
    await wechat.gateway(slow_echo(wechat, 5.0), **OPEN)
    await world.say("wxid_alice", "hello", settle=False)
    await world.clock.settle()  # read: the agent thinks for 5 s
    world.fault("heartbeat_silence")  # the link goes quiet...
    world.fault("logout")  # ...and the phone logs the bot out: that event is lost too
    await world.advance(90)  # the watchdog reconnects after 60 s: a new QR code
    await world.login()  # the owner scans it
    await world.advance(60)
    assert world.texts(to="wxid_alice") == ["echo hello"]


async def test_a_mention_read_after_a_logout_is_answered_after_the_next_login(
    wechat: WeChatHarness,
) -> None:
    world = wechat.world
    room = world.add_room(members=["wxid_alice"])
    gw = await wechat.gateway(slow_echo(wechat, 0.0), **OPEN)  # groups need a mention
    await world.say("wxid_alice", "are you there?", room=room.id, mention=True, settle=False)
    world.fault("logout")  # the message was on its way when the phone logged the bot out
    await world.advance(30)
    await world.drive(gw.stop())  # the owner restarts and scans again
    await gw.start()
    await world.login()
    await world.run_until_idle()
    assert world.texts(room=room.id) == ["echo are you there?"]


async def test_a_pairing_code_waiting_at_a_stop_is_sent_after_the_restart(
    wechat: WeChatHarness,
) -> None:
    world = wechat.world
    gw = await wechat.gateway(slow_echo(wechat, 0.0))  # dmPolicy "pairing"
    await world.say("wxid_stranger", "hi, who is this?", settle=False)
    world.fault("logout")  # the code is made, and waits for the next login
    await world.advance(30)
    await world.drive(gw.stop())  # the owner restarts and scans again
    await gw.start()
    await world.login()
    await world.run_until_idle()
    await world.say("wxid_stranger", "hello?")  # the request is pending: nothing more
    codes = [t for t in world.texts(to="wxid_stranger") if "Pairing code" in t]
    assert len(codes) == 1


async def test_a_send_under_way_at_a_logout_goes_out_once(wechat: WeChatHarness) -> None:
    world = wechat.world
    gw = await wechat.gateway(slow_echo(wechat, 0.0), allowFrom=["wxid_alice"], pacing=False)
    world.fault("slow_send")  # the next send takes 5 s
    await world.say("wxid_alice", "hello", settle=False)
    await world.clock.settle()  # read and answered: the reply is being sent
    world.fault("logout")  # the phone logs the bot out meanwhile...
    world.fault("send_lost_reply")  # ...and the send's own answer is lost: its echo is the proof
    await world.advance(30)
    await world.drive(gw.stop())  # the owner restarts and scans again
    await gw.start()
    await world.login()
    await world.run_until_idle()
    assert world.texts(to="wxid_alice") == ["echo hello"]
    assert gw.pairing.list() == []  # and the bot did not ask itself to pair
