"""An account's life on the simulator, in virtual time: QR login and its time limit,
restarts without a new scan (same world, and a new world on the same state directory),
reconnects after a dropped or silent link, forced logout, two accounts side by side, and
a graceful stop in the middle of a long reply."""

from __future__ import annotations

import itertools
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from simulator.pytest_plugin import WeChatHarness
from simulator.world import QR_TTL_S, SESSION_FILE, SimulatedWeChat
from wechat_sdk.agent import AgentTurn
from wechat_sdk.config import parse_config
from wechat_sdk.gateway import Gateway
from wechat_sdk.gateway.connection import HEARTBEAT_TIMEOUT_S
from wechat_sdk.gateway.status import AccountStatus

OPEN: dict[str, Any] = {"dmPolicy": "open", "allowFrom": ["*"]}


async def echo(turn: AgentTurn) -> str:
    return f"echo {turn.text}"


def status_of(gw: Gateway, account: str = "default") -> AccountStatus:
    return next(s for s in gw.status() if s.account == account)


def scans(world: SimulatedWeChat, account: str = "default") -> list[int]:
    """Scan statuses the world showed the account, in order."""
    return [
        e["status"] for e in world.events_log if e["event"] == "scan" and e["account"] == account
    ]


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "wechat_sdk.gateway"]


# ---------------------------------------------------------------- QR login


async def test_qr_statuses_are_logged_as_the_seed_shows_them(
    wechat: WeChatHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wechat_sdk.gateway")
    world = wechat.world
    gw = await wechat.gateway(echo, login=False)
    await world.run_until_idle()
    status = status_of(gw)
    assert status.state == "waiting_for_scan"
    qr_url = status.qr_url
    assert qr_url is not None
    assert qr_url.startswith("https://wechaty.js.org/qrcode/https%3A%2F%2Flogin.weixin")

    world.scan()
    await world.run_until_idle()
    world.confirm()
    await world.run_until_idle()

    lines = logged(caplog)
    assert [line for line in lines if line.startswith("[WeChat] QR Code status")] == [
        "[WeChat] QR Code status: 2",
        "[WeChat] QR Code status: 3",
        "[WeChat] QR Code status: 4",
    ]
    assert f"[WeChat] Scan QR Code at: {qr_url}" in lines
    status = status_of(gw)
    assert (status.state, status.user_id, status.qr_url) == ("ready", "wxid_bot_default", None)


async def test_qr_timeouts_up_to_the_limit_fail_the_account(
    wechat: WeChatHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wechat_sdk.gateway")
    world = wechat.world
    gw = await wechat.gateway(echo, login=False, qrMaxTimeouts=2)
    await world.advance(QR_TTL_S + 1)
    # one QR code expired: a new one is shown, the account still waits
    assert status_of(gw).state == "waiting_for_scan"
    assert scans(world) == [2, 5, 2]

    await world.advance(QR_TTL_S)
    assert status_of(gw).state == "failed: login timed out"
    assert "login timed out: 2 QR codes expired without a scan (qrMaxTimeouts)" in logged(caplog)
    # the account stopped: no more QR codes, however long we wait
    shown = len(scans(world))
    await world.advance(10 * QR_TTL_S)
    assert len(scans(world)) == shown
    await gw.stop()
    assert status_of(gw).state == "failed: login timed out"


async def test_a_scan_resets_the_qr_timeout_count(wechat: WeChatHarness) -> None:
    world = wechat.world
    gw = await wechat.gateway(echo, **OPEN, login=False, qrMaxTimeouts=2)
    await world.advance(QR_TTL_S + 1)  # one timeout
    await world.login()
    world.fault("logout")
    await gw.stop()
    await gw.start()
    await world.advance(QR_TTL_S + 1)  # one more timeout after the new start: not two
    assert status_of(gw).lifecycle == "waiting_for_scan"


# ---------------------------------------------------------------- restarts keep the login


async def test_gateway_restart_on_the_same_world_needs_no_new_scan(
    wechat: WeChatHarness,
) -> None:
    world = wechat.world
    first = await wechat.gateway(echo, **OPEN)
    await world.say("wxid_alice", "before")
    await first.close()
    assert scans(world) == [2, 3]

    second = await wechat.gateway(echo, **OPEN, login=False)
    await world.run_until_idle()
    assert status_of(second).state == "ready"
    assert scans(world) == [2, 3]  # no new QR code was shown
    await world.say("wxid_alice", "after")
    assert world.texts(to="wxid_alice") == ["echo before", "echo after"]


def make_gateway(world: SimulatedWeChat, state: Path, **keys: Any) -> Gateway:
    config = parse_config(json.dumps({"channels": {"wechat": {**OPEN, **keys}}}))
    return Gateway(
        config,
        agent=echo,
        puppet_factory=world.puppet_factory,
        state_dir=state,
        clock=world.clock,
        show_terminal_qr=False,
    )


async def test_new_process_with_the_same_state_dir_logs_in_without_a_scan(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    # a "process" is a world of its own: only the state directory is shared
    first = SimulatedWeChat(seed=0, session_dir=state / "accounts")
    gw = make_gateway(first, state)
    await gw.start()
    await first.login()
    await gw.close()
    card = state / "accounts" / "default" / SESSION_FILE
    assert json.loads(card.read_text())["wxid"] == "wxid_bot_default"
    assert card.stat().st_mode & 0o777 == 0o600

    second = SimulatedWeChat(seed=0, session_dir=state / "accounts")
    gw = make_gateway(second, state)
    await gw.start()
    await second.run_until_idle()
    try:
        assert status_of(gw).state == "ready"
        assert scans(second) == []
        await second.say("wxid_alice", "still me?")
        assert second.texts(to="wxid_alice") == ["echo still me?"]
    finally:
        await gw.close()


async def test_after_a_logout_the_next_process_needs_a_scan_again(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = SimulatedWeChat(seed=0, session_dir=state / "accounts")
    gw = make_gateway(first, state)
    await gw.start()
    await first.login()
    first.fault("logout")
    await first.run_until_idle()
    await gw.close()
    assert not (state / "accounts" / "default" / SESSION_FILE).exists()

    second = SimulatedWeChat(seed=0, session_dir=state / "accounts")
    gw = make_gateway(second, state)
    await gw.start()
    await second.run_until_idle()
    try:
        assert status_of(gw).state == "waiting_for_scan"
        assert scans(second) == [2]
    finally:
        await gw.close()


async def test_unreadable_session_card_means_a_new_scan(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    card = state / "accounts" / "default" / SESSION_FILE
    card.parent.mkdir(parents=True)
    card.write_text("{not json")
    world = SimulatedWeChat(seed=0, session_dir=state / "accounts")
    gw = make_gateway(world, state)
    await gw.start()
    await world.run_until_idle()
    try:
        assert status_of(gw).state == "waiting_for_scan"
        assert any("ignoring unreadable session" in r.getMessage() for r in caplog.records)
        await world.login()
        assert json.loads(card.read_text())["account"] == "default"
    finally:
        await gw.close()


async def test_simulator_puppet_without_a_factory_scans_by_itself_and_remembers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # what `gateway run` does with puppet "simulator": the gateway builds the world
    caplog.set_level(logging.INFO, logger="wechat_sdk.gateway")
    world = SimulatedWeChat(seed=0)  # only lends its virtual clock
    config = parse_config(
        json.dumps(
            {"channels": {"wechat": {"puppet": "simulator", "puppetOptions": {"scanAfterMs": 500}}}}
        )
    )

    async def run_once() -> str:
        gw = Gateway(config, agent=echo, state_dir=tmp_path, clock=world.clock)
        await gw.start()
        await world.clock.advance(1.0)
        try:
            return status_of(gw).state
        finally:
            await gw.close()

    assert await run_once() == "ready"
    assert sum("QR Code status: 2" in m for m in logged(caplog)) == 1
    caplog.clear()
    assert await run_once() == "ready"
    assert not any("QR Code status" in m for m in logged(caplog))


def test_scan_after_ms_must_be_a_number_of_milliseconds(tmp_path: Path) -> None:
    world = SimulatedWeChat(seed=0)
    config = parse_config(
        json.dumps(
            {
                "channels": {
                    "wechat": {"puppet": "simulator", "puppetOptions": {"scanAfterMs": "soon"}}
                }
            }
        )
    )
    from wechat_sdk.config import ConfigError, accounts_of

    (account,) = accounts_of(config).enabled
    with pytest.raises(ConfigError, match=r"channels\.wechat\.puppetOptions\.scanAfterMs: must be"):
        world.puppet_factory(account)


async def test_simulator_inbox_and_transcript_let_a_test_drive_it_from_outside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # what a test of a `gateway run` process uses: messages in through files, and every
    # message in and out appended to a file
    inbox, transcript = tmp_path / "inbox", tmp_path / "transcript.jsonl"
    inbox.mkdir()
    world = SimulatedWeChat(seed=0)
    options = {"scanAfterMs": 0, "inbox": str(inbox), "transcript": str(transcript)}
    gw = make_gateway(world, tmp_path / "state", puppet="simulator", puppetOptions=options)
    await gw.start()
    await world.run_until_idle()
    try:
        (inbox / "b.tmp").write_text(json.dumps({"from": "wxid_bob", "text": "second"}))
        (inbox / "b.tmp").rename(inbox / "b.json")
        (inbox / "a.json").write_text(json.dumps({"from": "wxid_alice", "text": "first"}))
        (inbox / "c.json").write_text("{not json")
        await world.advance(1)
        lines = [json.loads(line) for line in transcript.read_text().splitlines()]
        assert [(e["direction"], e["from"], e["text"]) for e in lines] == [
            ("in", "wxid_alice", "first"),
            ("in", "wxid_bob", "second"),
            ("out", "wxid_bot_default", "echo first"),
            ("out", "wxid_bot_default", "echo second"),
        ]
        assert list(inbox.iterdir()) == []  # taken, the bad one too
        assert any("ignoring inbox file" in r.getMessage() for r in caplog.records)
    finally:
        await gw.close()


async def test_a_missing_inbox_folder_is_made_when_the_account_starts(tmp_path: Path) -> None:
    # it was read as empty without a word: a test's messages dropped nowhere, never answered
    base = tmp_path / "bot-test"
    inbox, transcript = base / "inbox", base / "transcript.jsonl"
    world = SimulatedWeChat(seed=0)
    options = {"scanAfterMs": 0, "inbox": str(inbox), "transcript": str(transcript)}
    gw = make_gateway(world, tmp_path / "state", puppet="simulator", puppetOptions=options)
    await gw.start()
    await world.run_until_idle()
    try:
        assert inbox.is_dir()
        (inbox / "a.json").write_text(json.dumps({"from": "wxid_alice", "text": "hi"}))
        await world.advance(1)
        lines = [json.loads(line) for line in transcript.read_text().splitlines()]
        assert [(e["direction"], e["text"]) for e in lines] == [("in", "hi"), ("out", "echo hi")]
    finally:
        await gw.close()


async def test_an_inbox_folder_that_cannot_be_made_is_a_warning_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    inbox = in_the_way / "inbox"
    world = SimulatedWeChat(seed=0)
    options = {"scanAfterMs": 0, "inbox": str(inbox)}
    gw = make_gateway(world, tmp_path / "state", puppet="simulator", puppetOptions=options)
    await gw.start()
    await world.run_until_idle()
    try:
        await world.advance(1)  # looked into ten times: one warning
        warned = [r.getMessage() for r in caplog.records if "inbox" in r.getMessage()]
        assert len(warned) == 1, warned
        assert str(inbox) in warned[0] and "make the folder" in warned[0]
        assert status_of(gw).state == "ready"  # the account runs on
    finally:
        await gw.close()


async def test_an_inbox_message_to_a_room_makes_the_room_and_is_answered_there(
    tmp_path: Path,
) -> None:
    # under `gateway run` the world knows no room: the inbox's "room" makes one (the
    # sender and the bot in it), and the answer is the room's in the transcript (it was
    # written as a DM to a contact named like the room)
    inbox, transcript = tmp_path / "inbox", tmp_path / "transcript.jsonl"
    inbox.mkdir()
    world = SimulatedWeChat(seed=0)
    options = {"scanAfterMs": 0, "inbox": str(inbox), "transcript": str(transcript)}
    gw = make_gateway(
        world, tmp_path / "state", puppet="simulator", puppetOptions=options, name="Molty"
    )
    await gw.start()
    await world.run_until_idle()
    try:
        message = {"from": "wxid_alice", "text": "@Molty\u2005hi", "room": "12345@chatroom"}
        (inbox / "a.json").write_text(json.dumps(message))
        await world.advance(1)
        lines = [json.loads(line) for line in transcript.read_text().splitlines()]
        assert [(e["direction"], e["to"], e["room"], e["text"]) for e in lines] == [
            ("in", None, "12345@chatroom", "@Molty\u2005hi"),
            ("out", None, "12345@chatroom", "echo hi"),
        ]
        assert world.rooms["12345@chatroom"].members == ["wxid_alice"]
    finally:
        await gw.close()


async def test_an_inbox_folder_goes_to_another_account_across_a_reload(tmp_path: Path) -> None:
    # the world's accounts outlive a reload (`gateway restart`): an account of the old
    # config, stopped, reads its folder no more, and the new config may give it to another
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    world = SimulatedWeChat(seed=0)

    def config(**inboxes: Path) -> Any:
        accounts = {
            a: {"puppetOptions": {"scanAfterMs": 0, "inbox": str(inbox)}}
            for a, inbox in inboxes.items()
        }
        wechat = {**OPEN, "puppet": "simulator", "defaultAccount": next(iter(inboxes))}
        return parse_config(json.dumps({"channels": {"wechat": {**wechat, "accounts": accounts}}}))

    async def answered_by(inbox: Path, sender: str) -> list[str]:
        (inbox / "m.json").write_text(json.dumps({"from": sender, "text": "hi"}))
        await world.advance(1)
        return [a for a, sent in world.sent_by_account.items() if any(e.to == sender for e in sent)]

    gw = Gateway(
        config(a=one, b=two),
        agent=echo,
        puppet_factory=world.puppet_factory,
        state_dir=tmp_path / "state",
        clock=world.clock,
        show_terminal_qr=False,
    )
    await gw.start()
    await world.run_until_idle()
    try:
        await gw.reload(config(a=two, b=one))  # the folders swapped
        await world.run_until_idle()
        assert await answered_by(one, "wxid_alice") == ["b"]
        await gw.reload(config(c=one))  # "b" renamed "c", "a" gone
        await world.run_until_idle()
        assert await answered_by(one, "wxid_bob") == ["c"]
        (two / "m.json").write_text(json.dumps({"from": "wxid_carol", "text": "hi"}))
        await world.advance(1)
        assert list(two.iterdir()) != []  # "a" reads nothing any more
    finally:
        await gw.close()


def test_inbox_and_transcript_options_must_be_paths(tmp_path: Path) -> None:
    from wechat_sdk.config import ConfigError, accounts_of

    world = SimulatedWeChat(seed=0)
    for key in ("inbox", "transcript"):
        config = parse_config(
            json.dumps({"channels": {"wechat": {"puppet": "simulator", "puppetOptions": {key: 3}}}})
        )
        (account,) = accounts_of(config).enabled
        with pytest.raises(ConfigError, match=rf"puppetOptions\.{key}: must be a path"):
            world.puppet_factory(account)


# ---------------------------------------------------------------- reconnects


async def test_disconnect_reconnects_and_answers_outage_messages_exactly_once(
    wechat: WeChatHarness,
) -> None:
    world = wechat.world
    gw = await wechat.gateway(echo, **OPEN)
    await world.say("wxid_alice", "before")
    world.fault("disconnect")
    await world.say("wxid_alice", "during one", settle=False)
    await world.say("wxid_bob", "during two", settle=False)
    await world.run_until_idle()

    status = status_of(gw)
    assert status.state == "ready"
    assert status.reconnects == 1
    assert status.last_error == "connection lost"
    # the messages of the outage arrive after the reconnect; the replayed history does
    # not make the bot answer "before" a second time
    assert world.texts(to="wxid_alice") == ["echo before", "echo during one"]
    assert world.texts(to="wxid_bob") == ["echo during two"]
    await world.say("wxid_alice", "after")
    assert world.texts(to="wxid_alice")[-1] == "echo after"


async def test_silent_link_is_noticed_by_the_heartbeat_watchdog(
    wechat: WeChatHarness, caplog: pytest.LogCaptureFixture
) -> None:
    world = wechat.world
    gw = await wechat.gateway(echo, **OPEN)
    await world.say("wxid_alice", "before")
    world.fault("heartbeat_silence")
    await world.say("wxid_alice", "anyone?", settle=False)
    await world.say("wxid_alice", "hello??", settle=False)
    await world.run_until_idle()
    assert world.texts(to="wxid_alice") == ["echo before"]  # nothing gets through yet
    assert status_of(gw).state == "ready"  # the link looks open

    await world.advance(HEARTBEAT_TIMEOUT_S + 1)
    status = status_of(gw)
    assert status.state == "ready"
    assert status.reconnects == 1
    assert status.last_error == "heartbeat timeout"
    assert world.texts(to="wxid_alice") == ["echo before", "echo anyone?", "echo hello??"]
    assert any("no heartbeat for 60 s: reconnecting" in r.getMessage() for r in caplog.records)


async def test_reconnect_backoff_grows_while_the_link_keeps_dropping(
    wechat: WeChatHarness,
) -> None:
    world = wechat.world
    gw = await wechat.gateway(echo, **OPEN)
    starts = []
    for _ in range(3):
        world.fault("disconnect")
        await world.run_until_idle()
        starts.append(world.elapsed)
    status = status_of(gw)
    assert status.reconnects == 3 and status.state == "ready"
    # about 1 s, then 2 s, then 4 s (with up to 20 % jitter) before each new connection
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert 1.6 <= gaps[0] <= 2.4 and 3.2 <= gaps[1] <= 4.8


# ---------------------------------------------------------------- logout


async def test_forced_logout_is_its_own_state_and_nothing_is_answered(
    wechat: WeChatHarness,
) -> None:
    world = wechat.world
    gw = await wechat.gateway(echo, **OPEN)
    world.fault("logout")
    await world.run_until_idle()
    status = status_of(gw)
    assert status.state == "logged_out: logged out on the phone"
    assert status.user_id is None
    assert status.reconnects == 0  # a logout is not a network error
    await world.say("wxid_alice", "hello?")
    assert world.texts(to="wxid_alice") == []

    # the puppet shows a new QR code at once; after the scan the account is ready again
    assert status.qr_url is not None
    await world.login()
    assert status_of(gw).state == "ready"
    assert scans(world) == [2, 3, 2, 3]  # shown, scanned; shown again, scanned
    await world.say("wxid_alice", "back?")
    assert world.texts(to="wxid_alice") == ["echo hello?", "echo back?"]


# ---------------------------------------------------------------- two accounts


async def test_two_accounts_each_answer_through_themselves(wechat: WeChatHarness) -> None:
    world = wechat.world
    world.add_account("home", name="Home Bot")
    world.add_account("work", name="Work Bot")
    room = world.add_room(
        "team@chatroom", topic="Team", members=["wxid_alice", "wxid_bot_home", "wxid_bot_work"]
    )
    config = {
        "channels": {
            "wechat": {
                "defaultAccountId": "home",
                "groups": {"*": {"requireMention": True}},
                "accounts": {
                    "home": {"dmPolicy": "open", "allowFrom": ["*"]},
                    "work": {"dmPolicy": "pairing", "allowFrom": ["wxid_boss"]},
                },
            }
        }
    }
    gw = await wechat.gateway(echo, config)

    await world.say("wxid_alice", "hi home", account="home")
    await world.say("wxid_alice", "hi work", account="work")
    await world.say("wxid_boss", "report", account="work")
    # only the work bot is mentioned in the room
    await world.say("wxid_alice", "standup?", room=room.id, account="work", mention=True)

    assert world.texts(to="wxid_alice", account="home") == ["echo hi home"]
    (pairing,) = world.texts(to="wxid_alice", account="work")
    assert re.search(r"\b[A-Z0-9]{8}\b", pairing)
    assert world.texts(to="wxid_boss", account="work") == ["echo report"]
    assert world.texts(to="wxid_boss", account="home") == []
    assert [(e.account, e.text) for e in world.sent(room=room.id)] == [("work", "echo standup?")]
    home, work = status_of(gw, "home"), status_of(gw, "work")
    assert (home.pending_pairing, work.pending_pairing) == (0, 1)
    assert (home.sent, work.sent) == (1, 3)
    assert (home.user_id, work.user_id) == ("wxid_bot_home", "wxid_bot_work")

    # one account dropping its link leaves the other untouched
    world.fault("disconnect", account="work")
    await world.run_until_idle()
    assert (status_of(gw, "home").reconnects, status_of(gw, "work").reconnects) == (0, 1)


# ---------------------------------------------------------------- graceful stop


LONG = " ".join(f"Sentence {i} of a long answer, sent in chunks." for i in range(1, 41))
PACED: dict[str, Any] = {
    "textChunkLimit": 100,
    "pacing": {"perSecond": 1, "burst": 5, "chunkGapMs": 1000, "jitterMs": 0},
}


def long_answer(turn: AgentTurn) -> Any:
    async def agent() -> str:
        return LONG if turn.text == "long" else f"echo {turn.text}"

    return agent()


async def test_stop_mid_reply_lets_it_finish_within_the_grace_period(
    wechat: WeChatHarness,
) -> None:
    world = wechat.world
    gw = await wechat.gateway(long_answer, **PACED, **OPEN)
    await world.say("wxid_alice", "long", settle=False)
    await world.clock.advance(5)  # a few chunks are out, most are not
    early = len(world.texts(to="wxid_alice"))
    assert 2 <= early < 10

    await world.drive(gw.stop(grace_s=60))
    texts = world.texts(to="wxid_alice")
    assert "".join(t.replace(" ", "") for t in texts) == LONG.replace(" ", "")
    assert len(texts) == len(set(texts))  # every chunk once
    assert status_of(gw).state == "stopped"


async def test_stop_after_the_grace_period_keeps_the_rest_and_never_resends(
    wechat: WeChatHarness, caplog: pytest.LogCaptureFixture
) -> None:
    # (more cases, and new processes on the same state directory: test_stop_keeps_work.py)
    world = wechat.world
    seen: list[list[tuple[str, str]]] = []

    async def agent(turn: AgentTurn) -> str:
        seen.append([(h.role, h.text) for h in turn.history])
        return await long_answer(turn)

    gw = await wechat.gateway(agent, **PACED, **OPEN)
    await world.say("wxid_alice", "long", settle=False)
    await world.clock.advance(3)
    await world.drive(gw.stop(grace_s=2))
    cut = world.texts(to="wxid_alice")
    assert 2 <= len(cut) < 15
    assert LONG.replace(" ", "").startswith("".join(cut).replace(" ", ""))
    assert any(
        "stopped before the whole reply to wxid_alice" in r.getMessage() for r in caplog.records
    )

    # started again: the rest goes out, once; the message replayed at login is not
    # answered a second time
    await gw.start()
    await world.run_until_idle()
    texts = world.texts(to="wxid_alice")
    assert texts[: len(cut)] == cut
    assert "".join(texts).replace(" ", "") == LONG.replace(" ", "")
    assert len(texts) == len(set(texts))
    await world.say("wxid_alice", "where was I?")
    assert world.texts(to="wxid_alice")[-1] == "echo where was I?"
    assert len(seen) == 2
    # (the reply is one entry, as a reply never cut: its part before the stop and the rest)
    assert seen[-1] == [("user", "long"), ("assistant", "\n\n".join(texts))]


async def test_no_per_conversation_state_is_kept_once_the_replies_went_out(
    wechat: WeChatHarness,
) -> None:
    """A long-running gateway meets new conversations all the time: the locks that keep
    each conversation's replies in order are dropped once a conversation is idle."""
    world = wechat.world
    gw = await wechat.gateway(echo, {"channels": {"wechat": {**OPEN, "pacing": False}}})
    for i in range(50):
        await world.say(f"wxid_u{i}", f"hi {i}", settle=False)
        await world.say(f"wxid_u{i}", f"again {i}", settle=False)
    await world.run_until_idle()
    await gw.wait_idle()
    assert len(world.sent()) == 100  # every message answered, in order per contact
    assert world.texts(to="wxid_u7") == ["echo hi 7", "echo again 7"]
    runner = gw._runner()  # white box: nothing left behind inside
    assert len(runner.turns.conversations) == 0
    assert len(runner.outbound._locks) == 0


async def test_the_gateway_builds_its_sqlite_store_on_its_clock_and_config(
    wechat: WeChatHarness,
) -> None:
    """Virtual time cannot see a thread's work: a send waiting for an fsync in a thread
    would let the simulated world move on without it."""
    import asyncio

    from wechat_sdk.stores.sqlite import SqliteStore

    gw = await wechat.gateway(echo, login=False, historyCacheConversations=7)
    store = gw.store
    assert isinstance(store, SqliteStore)
    assert store.history.cache_conversations == 7
    store.dedupe.check_and_add("default", "m1", wechat.world.clock.now(), 60)
    waiting = asyncio.ensure_future(store.marks_durable(store.mark_position()))
    await asyncio.sleep(0)  # one loop turn: the commit and fsync ran inline
    assert waiting.done() and waiting.exception() is None
