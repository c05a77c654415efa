"""The iLink adapter against the simulator's iLink server (real HTTP, the real clock): the
kept login, expiry, restarts, the reply window, rate limits, media both ways, typing, and
the token kept out of every log line."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from puppet_contract import EventLog

from simulator import SimulatedWeChat
from simulator.ilink import ILinkServer
from wechat_sdk.adapters.ilink import sending
from wechat_sdk.adapters.ilink.puppet import ILinkOptions, ILinkPuppet
from wechat_sdk.adapters.ilink.session import SESSION_FILE, KeptLogin, SessionFile
from wechat_sdk.clock import RealClock
from wechat_sdk.puppet import (
    ErrorEvent,
    LoginEvent,
    LogoutEvent,
    Message,
    MessageEvent,
    MessageKind,
    OutboundFile,
    ReadyEvent,
    ScanEvent,
    ScanStatus,
    SendError,
    WindowClosed,
)

ALICE = "alice@im.wechat"


@pytest.fixture
async def world() -> SimulatedWeChat:
    world = SimulatedWeChat(seed=5, clock=RealClock(), qr_ttl_s=0.4)
    world.add_account("bot", transport="ilink")
    world.add_contact(ALICE, name="Alice")
    return world


@pytest.fixture
async def server(world: SimulatedWeChat) -> AsyncIterator[ILinkServer]:
    async with await world.ilink_server(poll_hold_s=0.3) as server:
        yield server


class Bot:
    """An iLink puppet on the simulator's server and the events it gave."""

    def __init__(self, server: ILinkServer, account_dir: Path, qr_max_timeouts: int = 3) -> None:
        options = ILinkOptions(server.base_url.rstrip("/"), server.cdn_base_url, "test/1")
        self.puppet = ILinkPuppet(
            account_id="bot",
            account_dir=account_dir,
            options=options,
            clock=RealClock(),
            qr_max_timeouts=qr_max_timeouts,
        )
        self.log = EventLog(self.puppet)

    async def start(self) -> Bot:
        await self.puppet.start()
        self.log.start()
        return self

    async def stop(self) -> None:
        await self.puppet.stop()
        await self.log.cancel()

    async def until(self, what: str, condition: Callable[[], bool], within_s: float = 5) -> None:
        for _ in range(int(within_s / 0.02)):
            if condition():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"never happened: {what}")

    async def messages(self) -> list[Message]:
        return await self.log.messages()


@pytest.fixture
async def bots(server: ILinkServer, tmp_path: Path) -> AsyncIterator[Callable[..., Bot]]:
    made: list[Bot] = []

    def make(qr_max_timeouts: int = 3) -> Bot:
        made.append(Bot(server, tmp_path / "accounts" / "bot", qr_max_timeouts))
        return made[-1]

    yield make
    for bot in made:
        await bot.stop()


async def logged_in(world: SimulatedWeChat, bot: Bot) -> Bot:
    await bot.start()
    await world.login("bot", within_s=5)
    await bot.until("ready", lambda: bool(bot.log.of(ReadyEvent)))
    return bot


async def said(world: SimulatedWeChat, bot: Bot, text: str, **media: object) -> Message:
    await world.say(ALICE, text, account="bot", settle=False, **media)  # type: ignore[arg-type]
    for _ in range(250):
        found = [m for m in await bot.messages() if m.talker_id == ALICE and m.text == text]
        if found:
            return found[-1]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no message {text!r}")


# ---------------------------------------------------------------- login


async def test_the_kept_login_is_used_at_the_next_start_without_a_scan(
    world: SimulatedWeChat, bots: Callable[..., Bot], tmp_path: Path
) -> None:
    first = await logged_in(world, bots())
    me = first.puppet.self_id
    await first.stop()
    kept = tmp_path / "accounts" / "bot" / SESSION_FILE
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    second = await bots().start()
    await second.until("ready", lambda: bool(second.log.of(ReadyEvent)))
    assert second.log.of(ScanEvent) == []
    assert [e.contact_id for e in second.log.of(LoginEvent)] == [me]


async def test_a_login_kept_before_its_server_was_recorded_is_used_and_recorded(
    world: SimulatedWeChat, server: ILinkServer, bots: Callable[..., Bot], tmp_path: Path
) -> None:
    """After an upgrade, a login kept by a version that did not record its server is
    taken for the configured server's (no scan), and recorded so: a later change of
    ``baseUrl`` is then seen."""
    first = await logged_in(world, bots())
    await first.stop()
    kept = tmp_path / "accounts" / "bot" / SESSION_FILE
    data = json.loads(kept.read_text(encoding="utf-8"))
    data.pop("server", None)  # as an earlier version kept it
    kept.write_text(json.dumps(data), encoding="utf-8")
    second = await bots().start()
    await second.until("ready", lambda: bool(second.log.of(ReadyEvent)))
    assert second.log.of(ScanEvent) == []
    assert SessionFile(kept.parent).server() == server.base_url.rstrip("/")


async def test_an_expired_session_logs_out_and_a_new_qr_login_starts(
    world: SimulatedWeChat, bots: Callable[..., Bot]
) -> None:
    bot = await logged_in(world, bots())
    me = bot.puppet.self_id
    world.fault("logout", account="bot")  # every call with the token: errcode -14
    await bot.until("logout", lambda: bool(bot.log.of(LogoutEvent)))
    assert bot.log.of(LogoutEvent) == [LogoutEvent(me or "", "session expired")]
    assert bot.puppet.self_id is None
    await bot.until("a new QR code", lambda: len(bot.log.of(ScanEvent)) > 3)
    await world.login("bot", within_s=5)
    await bot.until("logged in again", lambda: len(bot.log.of(LoginEvent)) == 2)


async def test_the_bot_logging_out_logs_in_again_at_the_next_scan(
    world: SimulatedWeChat, bots: Callable[..., Bot], tmp_path: Path
) -> None:
    # iLink has no call to end a token: the server holds it valid still. Offered again as
    # an earlier token (local_token_list), the scan would be answered binded_redirect, a
    # login this bot no longer keeps: every code given up, and the login with them
    bot = await logged_in(world, bots(qr_max_timeouts=2))
    me = bot.puppet.self_id
    await bot.puppet.logout()
    await bot.until("a new QR code", lambda: len(bot.log.of(ScanEvent)) > 3)
    _, earlier = SessionFile(tmp_path / "accounts" / "bot").load()
    assert earlier == []  # the token logged out of is not offered
    await world.login("bot", within_s=5)
    await bot.until("logged in again", lambda: len(bot.log.of(LoginEvent)) == 2)
    assert bot.log.of(LoginEvent)[-1].contact_id == me


async def test_a_token_refused_at_start_is_a_logout_then_a_qr_code(
    server: ILinkServer, bots: Callable[..., Bot], tmp_path: Path
) -> None:
    SessionFile(tmp_path / "accounts" / "bot").keep(KeptLogin("x@im.bot", "not-a-valid-token"))
    bot = await bots().start()
    await bot.until("a QR code", lambda: bool(bot.log.of(ScanEvent)))
    assert bot.log.of(LogoutEvent) == [LogoutEvent("x@im.bot", "session expired")]
    assert bot.log.of(LoginEvent) == []
    assert bot.log.of(ScanEvent)[0].status == ScanStatus.WAITING
    _, earlier = SessionFile(tmp_path / "accounts" / "bot").load()
    assert earlier == ["not-a-valid-token"]  # offered as local_token_list, never used again


async def test_qr_codes_that_expire_qr_max_timeouts_times_end_the_login(
    bots: Callable[..., Bot], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wechat_sdk.adapters.ilink")
    bot = await bots(qr_max_timeouts=2).start()
    await bot.until("giving up", lambda: bool(bot.log.of(ErrorEvent)), within_s=10)
    statuses = [e.status for e in bot.log.of(ScanEvent)]
    assert statuses.count(ScanStatus.TIMEOUT) == 2
    assert statuses.count(ScanStatus.WAITING) == 2  # no third code
    (gave_up,) = bot.log.of(ErrorEvent)
    assert gave_up.fatal
    assert "2 QR codes expired without a scan (qrMaxTimeouts)" in gave_up.message
    words = [r.getMessage() for r in caplog.records]
    assert any("expired (the QR code expired: a new one follows)" in w for w in words)


# ---------------------------------------------------------------- inbound


async def test_a_restart_emits_again_what_was_recorded_and_the_cursor_moved_on(
    world: SimulatedWeChat, bots: Callable[..., Bot]
) -> None:
    first = await logged_in(world, bots())
    message = await said(world, first, "are you there?")
    await first.stop()  # a crash after the batch was recorded: nothing was answered
    second = await bots().start()
    await second.until("the replay", lambda: message.id in second.log.message_ids())
    await said(world, second, "hello again")
    assert second.log.message_ids().count(message.id) == 1  # not delivered again by iLink


async def test_voice_arrives_as_its_transcript_and_its_audio(
    world: SimulatedWeChat, bots: Callable[..., Bot]
) -> None:
    bot = await logged_in(world, bots())
    voice = {"kind": "audio", "name": "v.silk", "size": 3000, "duration_s": 2.0}
    message = await said(world, bot, "call me at six", media=voice)
    assert message.kind is MessageKind.AUDIO
    assert message.file is not None and message.file.name.endswith(".silk")
    got = b"".join([c async for c in bot.puppet.download(message.id, 1_000_000)])
    ids = [e.message_id for e in world.transcript if e.direction == "in"]
    assert got == world.message_data(ids[-1])


# ---------------------------------------------------------------- outbound


async def test_sending_before_the_user_wrote_raises_window_closed(
    world: SimulatedWeChat, bots: Callable[..., Bot]
) -> None:
    bot = await logged_in(world, bots())
    with pytest.raises(WindowClosed, match="the user has not written yet"):
        await bot.puppet.send_text(ALICE, "hello?")
    assert world.sent(to=ALICE) == []


async def test_ten_replies_per_user_message_then_the_window_is_closed(
    world: SimulatedWeChat, bots: Callable[..., Bot]
) -> None:
    bot = await logged_in(world, bots())
    await said(world, bot, "tell me everything")
    window = bot.puppet.reply_window(ALICE)
    assert window is not None and window.remaining == 10
    for n in range(10):
        await bot.puppet.send_text(ALICE, f"part {n}")
    with pytest.raises(WindowClosed, match="10 replies already sent"):
        await bot.puppet.send_text(ALICE, "part 10")
    assert len(world.texts(to=ALICE)) == 10
    assert bot.puppet.reply_window(ALICE) == type(window)(0, window.closes_at)
    await said(world, bot, "go on")
    await bot.puppet.send_text(ALICE, "part 10")
    assert world.texts(to=ALICE)[-1] == "part 10"


async def test_a_rate_limited_send_goes_out_once(
    world: SimulatedWeChat, bots: Callable[..., Bot]
) -> None:
    bot = await logged_in(world, bots())
    await said(world, bot, "hi")
    world.fault("rate_limit", account="bot")
    await bot.puppet.send_text(ALICE, "after the limit")
    assert world.texts(to=ALICE) == ["after the limit"]
    assert not [e for e in world.events_log if e["event"] == "client_id_reused"]


async def test_a_send_refused_with_ret_2_every_time_closes_the_window_until_the_user_writes(
    world: SimulatedWeChat, bots: Callable[..., Bot], monkeypatch: pytest.MonkeyPatch
) -> None:
    """iLink answers ``ret -2`` for its rate limit and also when its own reply window for
    the user is closed (its count or its clock ahead of ours): refused every time, the
    send is a closed window (nothing sent), and the window stays closed until the user
    writes, rather than every later message meeting the same refusals."""
    monkeypatch.setattr(sending, "RATE_LIMIT_WAITS_S", (0.01, 0.01, 0.01, 0.01))
    bot = await logged_in(world, bots())
    await said(world, bot, "hi")
    world.fault("rate_limit", account="bot", count=sending.SEND_ATTEMPTS + 1)
    with pytest.raises(WindowClosed, match="ret -2") as refused:
        await bot.puppet.send_text(ALICE, "too fast")
    assert refused.value.transient is False
    assert world.texts(to=ALICE) == []
    window = bot.puppet.reply_window(ALICE)
    assert window is not None and window.remaining == 0
    with pytest.raises(WindowClosed):  # (not asked of the server again)
        await bot.puppet.send_text(ALICE, "still?")
    assert world.accounts["bot"].faults["rate_limit"] == 1
    await said(world, bot, "are you there?")
    await bot.puppet.send_text(ALICE, "now")  # (one more ret -2 on the way: waited out)
    assert world.texts(to=ALICE) == ["now"]


async def test_a_send_whose_answer_was_lost_is_final_and_went_out_once(
    world: SimulatedWeChat, bots: Callable[..., Bot]
) -> None:
    bot = await logged_in(world, bots())
    await said(world, bot, "hi")
    world.fault("send_lost_reply", account="bot")  # taken, but the answer never comes
    with pytest.raises(SendError) as lost:
        await bot.puppet.send_text(ALICE, "maybe")
    assert (lost.value.code, lost.value.transient) == ("outcome_unknown", False)
    assert "not sent again" in str(lost.value)
    assert world.texts(to=ALICE) == ["maybe"]
    # it went out, as far as anyone can tell: it takes its place in the reply window (the
    # server counted it; the tenth send after it would be refused)
    window = bot.puppet.reply_window(ALICE)
    assert window is not None and window.remaining == 9


async def test_an_image_and_a_voice_reply_go_out_through_the_cdn(
    world: SimulatedWeChat, bots: Callable[..., Bot]
) -> None:
    bot = await logged_in(world, bots())
    await said(world, bot, "send pictures")
    picture = bytes(range(256)) * 300
    await bot.puppet.send_file(ALICE, OutboundFile("cat.png", kind="image", data=picture))
    voice = OutboundFile("answer.silk", kind="audio", data=b"#!SILK" + bytes(500), duration_s=1)
    await bot.puppet.send_file(ALICE, voice)
    sent = world.sent(to=ALICE)
    assert [e.media["kind"] if e.media else None for e in sent] == ["image", "file"]
    assert sent[0].media is not None and sent[0].media["size"] == len(picture)
    assert sent[1].media is not None and sent[1].media["name"] == "answer.silk"


async def test_typing_is_shown_and_cancelled(
    world: SimulatedWeChat, bots: Callable[..., Bot]
) -> None:
    bot = await logged_in(world, bots())
    await said(world, bot, "think hard")
    await bot.puppet.set_typing(ALICE, True)
    await bot.puppet.set_typing(ALICE, False)
    typing = [e["status"] for e in world.events_log if e["event"] == "typing"]
    assert typing == [1, 2]


async def test_a_typing_ticket_the_server_no_longer_takes_is_asked_for_again(
    world: SimulatedWeChat, bots: Callable[..., Bot]
) -> None:
    """It was kept for an hour: typing was refused (and not shown) until then."""
    bot = await logged_in(world, bots())
    await said(world, bot, "think hard")
    await bot.puppet.set_typing(ALICE, True)
    world.ilink_state.bot("bot").typing_tickets.clear()  # the server's tickets renewed
    await bot.puppet.set_typing(ALICE, False)  # refused: its ticket is old
    await bot.puppet.set_typing(ALICE, True)
    typing = [e["status"] for e in world.events_log if e["event"] == "typing"]
    assert typing == [1, 1]


async def test_typing_is_not_shown_after_a_message_sent_while_its_ticket_was_asked_for(
    world: SimulatedWeChat, bots: Callable[..., Bot], monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = await logged_in(world, bots())
    await said(world, bot, "hello")
    sender = bot.puppet._sender
    assert sender is not None
    asked, answer = asyncio.Event(), asyncio.Event()
    get_config = sender.api.get_config

    async def slow_get_config(user_id: str, context_token: str | None) -> dict[str, Any]:
        asked.set()
        await answer.wait()
        return await get_config(user_id, context_token)

    monkeypatch.setattr(sender.api, "get_config", slow_get_config)
    typing = asyncio.ensure_future(bot.puppet.set_typing(ALICE, True))
    await asked.wait()  # the first typing call asks for the peer's ticket ...
    await bot.puppet.send_text(ALICE, "the answer")  # ... and the reply goes meanwhile
    answer.set()
    await typing
    assert [e for e in world.events_log if e["event"] == "typing"] == []
    await bot.puppet.set_typing(ALICE, True)  # (a later turn's: the ticket is kept)
    assert [e["status"] for e in world.events_log if e["event"] == "typing"] == [1]


async def test_two_clients_polling_with_one_token_do_not_hammer_the_server(
    world: SimulatedWeChat, server: ILinkServer, bots: Callable[..., Bot], tmp_path: Path
) -> None:
    """A second client with the bot's token (a second gateway on a copy of the state
    directory, Tencent's client beside this one): each poll ends the other's open one at
    once, with nothing. Each client waits before it polls again, rather than both polling
    as fast as the server answers."""
    first = await logged_in(world, bots())
    other = tmp_path / "copy" / "bot"
    other.mkdir(parents=True)
    (other / SESSION_FILE).write_bytes((tmp_path / "accounts" / "bot" / SESSION_FILE).read_bytes())
    second = Bot(server, other)
    try:
        await second.start()
        await second.until("ready", lambda: bool(second.log.of(ReadyEvent)))
        await asyncio.sleep(2.0)
        replaced = sum(1 for e in world.events_log if e["event"] == "poll_replaced")
    finally:
        await second.stop()
    assert replaced < 40
    assert first.puppet.self_id is not None  # (still logged in: nothing else went wrong)


# ---------------------------------------------------------------- secrets


async def test_the_token_is_in_no_log_line(
    world: SimulatedWeChat,
    bots: Callable[..., Bot],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bot = await logged_in(world, bots())
    await said(world, bot, "hi")
    world.fault("rate_limit", account="bot")
    await bot.puppet.send_text(ALICE, "hello")
    world.fault("logout", account="bot")
    await bot.until("logout", lambda: bool(bot.log.of(LogoutEvent)))
    await bot.stop()
    _, earlier = SessionFile(tmp_path / "accounts" / "bot").load()
    (token,) = earlier
    logged = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    assert token not in logged
    events = json.dumps([str(e) for e in bot.log.events])
    assert token not in events


# ---------------------------------------------------------------- a lease lost


async def test_a_state_write_refused_for_a_lost_lease_stops_polling_with_a_warning(
    world: SimulatedWeChat, server: ILinkServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On Redis, another gateway took the account over: its state writes are refused. The
    poll stops with one warning (not an error with a traceback) and the event stream ends
    (the gateway stops the account here); the refused batch is not emitted."""
    from wechat_sdk.adapters.ilink.state import Delivered, SqliteILinkState
    from wechat_sdk.stores.redis.fencing import LeaseLost

    class Refusing(SqliteILinkState):
        async def record(self, batch: Sequence[Delivered], cursor: str | None) -> list[str]:
            raise LeaseLost("bot", "write of the iLink state")

    account_dir = tmp_path / "accounts" / "bot"
    bot = Bot(server, account_dir)
    bot.puppet._open_state = lambda: Refusing.in_dir(account_dir, "bot", RealClock())
    try:
        await logged_in(world, bot)
        with caplog.at_level(logging.DEBUG, logger="wechat_sdk"):
            await world.say(ALICE, "hello?", account="bot", settle=False)
            await bot.until("the event stream ended", lambda: bot.log.ended)
        stopped = [r for r in caplog.records if "polling stopped" in r.getMessage()]
        assert [(r.levelno, r.exc_info) for r in stopped] == [(logging.WARNING, None)]
        assert "reason=lease_lost" in stopped[0].getMessage()
        assert bot.log.message_ids() == []
    finally:
        await bot.stop()


# ---------------------------------------------------------------- the cursor on disk


async def test_no_poll_moves_the_cursor_before_its_batch_is_on_disk_even_across_a_restart(
    world: SimulatedWeChat,
    server: ILinkServer,
    tmp_path: Path,
    fsyncs: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gateway restarts the puppet while it is still busy with a batch (its handling
    raised, say): the poll waiting for that batch's fsync is cut, and the next start's
    first getupdates, which carries the new cursor, must not go out before the fsync."""
    from wechat_sdk.adapters.ilink.api import ILinkApi
    from wechat_sdk.adapters.ilink.state import SqliteILinkState
    from wechat_sdk.stores.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "wechat-sdk.sqlite3")
    polls: list[tuple[str, bool]] = []  # (the cursor sent, everything committed on disk)
    real = ILinkApi.get_updates

    async def get_updates(api: ILinkApi, cursor: str, timeout_s: float) -> Any:
        polls.append((cursor, store.database.commits_synced >= store.database.commits))
        return await real(api, cursor, timeout_s)

    monkeypatch.setattr(ILinkApi, "get_updates", get_updates)
    bot = Bot(server, tmp_path / "accounts" / "bot")
    bot.puppet._open_state = lambda: SqliteILinkState(store.database, "bot")
    busy = asyncio.Event()

    async def gateway_busy_with_the_message() -> None:
        async for event in bot.puppet.events():
            if isinstance(event, MessageEvent):
                busy.set()
                await asyncio.Event().wait()  # never comes back for more

    try:
        await bot.puppet.start()
        consumer = asyncio.create_task(gateway_busy_with_the_message())
        await world.login("bot", within_s=5)
        await world.say(ALICE, "hello", account="bot", settle=False)
        await asyncio.wait_for(busy.wait(), 5)
        assert polls[-1][0] == ""  # the batch's cursor not sent: its poll waits for the gateway
        consumer.cancel()
        await bot.puppet.stop()  # the gateway's restart of the account
        before = len(polls)
        await bot.puppet.start()
        consumer = asyncio.create_task(gateway_busy_with_the_message())
        await bot.until("a poll after the restart", lambda: len(polls) > before)
        cursor, on_disk = polls[before]
        assert cursor != "" and on_disk
        consumer.cancel()
    finally:
        await bot.puppet.stop()
        store.close()
