"""The iLink adapter on the wire, against a scripted server: Tencent's headers and
``base_info``, and bad input (an HTML answer, garbage JSON, a missing context_token, an
unknown item type, a 10 MB text, a duplicate, a file that does not decrypt or is over the
cap, a quote, hostile numbers, a server clock off ours, an HTTP error to a send): one clear
log line and an error event each, and the account goes on."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ilink_script import Script, scripted
from puppet_contract import EventLog
from silent_servers import connects_hang, never_answers

from wechat_sdk.adapters.ilink import aes
from wechat_sdk.adapters.ilink import api as ilink_api
from wechat_sdk.adapters.ilink import puppet as ilink_puppet
from wechat_sdk.adapters.ilink.api import ILinkApi, NotConnected, TimedOut
from wechat_sdk.adapters.ilink.cdn import CdnFailed
from wechat_sdk.adapters.ilink.puppet import ILinkOptions, ILinkPuppet
from wechat_sdk.adapters.ilink.session import KeptLogin, SessionFile
from wechat_sdk.clock import RealClock
from wechat_sdk.puppet import (
    ErrorEvent,
    FileTooLarge,
    MessageKind,
    OutboundFile,
    ReadyEvent,
    SendError,
)

BOT = "0123456789ab@im.bot"
ALICE = "alice@im.wechat"
TOKEN = "tok-7f3a-secret"
KEY = bytes(range(16))


def msg(mid: int, *items: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "message_id": mid,
        "from_user_id": ALICE,
        "to_user_id": BOT,
        "message_type": 1,
        "context_token": f"ctx-{mid}",
        "create_time_ms": int(time.time() * 1000),
        "item_list": list(items),
        **fields,
    }


def text(t: str) -> dict[str, Any]:
    return {"type": 1, "text_item": {"text": t}}


class Run:
    def __init__(self, puppet: ILinkPuppet, log: EventLog, script: Script) -> None:
        self.puppet, self.log, self.script = puppet, log, script

    async def until(self, what: str, condition: Any) -> None:
        for _ in range(250):
            if condition():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"never happened: {what}; events: {self.log.events}")

    def errors(self) -> list[str]:
        return [e.message for e in self.log.of(ErrorEvent)]


@pytest.fixture
async def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Run]:
    async with scripted() as script, running(tmp_path, monkeypatch, script) as made:
        yield made


@asynccontextmanager
async def running(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    script: Script,
    base_url: str | None = None,
    before_send: Callable[[], None] | None = None,
) -> AsyncIterator[Run]:
    """A logged-in puppet polling ``script``'s server (at ``base_url``: its own address)."""
    monkeypatch.setattr(ilink_puppet, "RETRY_S", 0.01)
    base_url = base_url or script.base_url
    account_dir = tmp_path / "accounts" / "bot"
    SessionFile(account_dir).keep(KeptLogin(BOT, TOKEN, "owner@im.wechat"))
    options = ILinkOptions(base_url, f"{base_url}/c2c", "Wire/1", "tag-7")
    puppet = ILinkPuppet(
        account_id="bot",
        account_dir=account_dir,
        options=options,
        clock=RealClock(),
        before_send=before_send,
    )
    await puppet.start()
    log = EventLog(puppet)
    log.start()
    made = Run(puppet, log, script)
    await made.until("ready", lambda: bool(log.of(ReadyEvent)))
    try:
        yield made
    finally:
        await puppet.stop()
        await log.cancel()


async def test_bot_calls_carry_tencents_headers_and_base_info(run: Run) -> None:
    await run.until("a poll", lambda: bool(run.script.asked("getupdates")))
    poll = run.script.asked("getupdates")[0]
    headers = poll.headers
    assert headers["AuthorizationType"] == "ilink_bot_token"
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    uin = base64.b64decode(headers["X-WECHAT-UIN"]).decode()
    assert uin.isdigit() and int(uin) < 2**32
    assert headers["iLink-App-Id"] == "bot"
    assert headers["iLink-App-ClientVersion"] == str((2 << 16) | (4 << 8) | 9)
    assert headers["SKRouteTag"] == "tag-7"
    assert poll.body["base_info"] == {"channel_version": "2.4.9", "bot_agent": "Wire/1"}
    assert poll.body["get_updates_buf"] == ""


async def test_the_qr_code_request_carries_only_the_earlier_tokens() -> None:
    # Tencent's client (auth/login-qr.ts, fetchQRCode) posts {local_token_list} alone,
    # with its headers but no token and no base_info
    async with scripted() as script, aiohttp.ClientSession() as http:
        api = ILinkApi(http, script.base_url, f"{script.base_url}/c2c", route_tag="tag-7")
        answer = await api.get_bot_qrcode(["old-1", "old-2"])
    assert answer["qrcode"] == "qr-1"
    (asked,) = script.asked("get_bot_qrcode")
    assert asked.body == {"local_token_list": ["old-1", "old-2"]}
    assert asked.headers["AuthorizationType"] == "ilink_bot_token"
    assert asked.headers["iLink-App-Id"] == "bot"
    assert asked.headers["SKRouteTag"] == "tag-7"
    assert "Authorization" not in asked.headers


async def test_a_text_reply_carries_the_context_token_and_a_bot_message(run: Run) -> None:
    run.script.batch(msg(1, text("hi")), cursor="c1")
    await run.until("the message", lambda: "1" in run.log.message_ids())
    await run.puppet.send_text(ALICE, "hello Alice")
    (sent,) = run.script.asked("sendmessage")
    out = sent.body["msg"]
    assert out["to_user_id"] == ALICE
    assert out["context_token"] == "ctx-1"
    assert (out["message_type"], out["message_state"]) == (2, 2)
    assert out["client_id"].startswith("wechat-sdk:")
    assert out["item_list"] == [text("hello Alice")]
    assert sent.body["base_info"]["bot_agent"] == "Wire/1"


async def test_cookies_a_server_sets_are_never_sent_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as Tencent's client (Node's fetch keeps none); at a host name, where a kept cookie
    # would be sent back (a client keeps none for a bare IP address anyway)
    async with scripted() as script:
        script.set_cookie = "lb=node-7; Path=/"
        local = script.base_url.replace("127.0.0.1", "localhost")
        async with running(tmp_path, monkeypatch, script, local) as run:
            await run.until("three polls", lambda: len(script.asked("getupdates")) >= 3)
            run.script.batch(msg(1, text("hi")))
            await run.until("the message", lambda: "1" in run.log.message_ids())
            await run.puppet.send_text(ALICE, "hello")
    sent = [{name.lower() for name in r.headers} for r in script.requests]
    assert sent and all("cookie" not in names for names in sent)


async def test_the_cursor_of_a_batch_is_sent_with_the_next_poll(run: Run) -> None:
    run.script.batch(msg(1, text("hi")), cursor="cursor-after-1")
    await run.until(
        "the next poll",
        lambda: any(
            r.body["get_updates_buf"] == "cursor-after-1" for r in run.script.asked("getupdates")
        ),
    )


@pytest.mark.parametrize(
    ("answer", "status", "said"),
    [
        (b"<html><body>502 Bad Gateway " + TOKEN.encode() + b"</body></html>", 502, "HTTP 502"),
        (b"<html>maintenance</html>", 200, "not JSON"),
        (b'{"ret": 0, "msgs": [', 200, "not JSON"),
        (b"[1, 2, 3]", 200, "not a JSON object"),
        (b"[" * 200_000 + b"]" * 200_000, 200, "not JSON"),
    ],
    ids=["html-502", "html-200", "cut-json", "json-array", "json-nested-too-deep"],
)
async def test_a_bad_answer_is_one_log_line_and_polling_goes_on(
    run: Run, caplog: pytest.LogCaptureFixture, answer: bytes, status: int, said: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="wechat_sdk")
    run.script.raw(answer, status)
    run.script.batch(msg(2, text("after the outage")), cursor="c2")
    await run.until("the next message", lambda: "2" in run.log.message_ids())
    (error,) = run.errors()
    assert said in error
    lines = [r.getMessage() for r in caplog.records if "getupdates failed" in r.getMessage()]
    assert len(lines) == 1 and "reason=poll_failed" in lines[0]
    assert TOKEN not in "\n".join(r.getMessage() for r in caplog.records)


async def test_an_answer_over_the_size_cap_is_one_line_that_says_so_and_the_cursor_stays(
    run: Run, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``getupdates`` answer over 64 MB (1 MB here) is not read: its messages and its
    cursor with it, so the account cannot move past it; the line names the call and the
    cap, and the account goes on once the server answers with less."""
    caplog.set_level(logging.DEBUG, logger="wechat_sdk")
    monkeypatch.setattr(ilink_api, "MAX_ANSWER_BYTES", 1024 * 1024)
    huge = {"ret": 0, "msgs": [msg(1, text("x" * 1_100_000))], "get_updates_buf": "c1"}
    run.script.raw(json.dumps(huge).encode())
    run.script.batch(msg(2, text("after it")), cursor="c2")
    await run.until("the next message", lambda: "2" in run.log.message_ids())
    (error,) = run.errors()
    assert error == (
        "getupdates failed (1 in a row): ilink/bot/getupdates: the answer is over 1 MB "
        "(the most the gateway reads): not read; polling again reason=poll_failed"
    )
    lines = [r.getMessage() for r in caplog.records if "getupdates failed" in r.getMessage()]
    assert len(lines) == 1
    polls = [r.body["get_updates_buf"] for r in run.script.asked("getupdates")]
    assert "c1" not in polls and "1" not in run.log.message_ids()


async def test_a_message_without_a_context_token_is_answered_with_the_last_one(run: Run) -> None:
    run.script.batch(msg(1, text("first")), cursor="c1")
    run.script.batch(msg(2, text("second"), context_token=None), cursor="c2")
    await run.until("both", lambda: {"1", "2"} <= set(run.log.message_ids()))
    assert any("no context_token" in e for e in run.errors())
    await run.puppet.send_text(ALICE, "answer")
    assert run.script.asked("sendmessage")[0].body["msg"]["context_token"] == "ctx-1"


async def test_an_unknown_item_type_is_skipped_with_a_note(run: Run) -> None:
    run.script.batch(msg(1, {"type": 42, "mystery_item": {}}), msg(2, text("plain")), cursor="c")
    await run.until("the plain one", lambda: "2" in run.log.message_ids())
    assert "1" not in run.log.message_ids()
    (error,) = run.errors()
    assert "an item of unknown type 42 skipped" in error


async def test_a_message_that_cannot_be_read_is_skipped_and_the_batch_goes_on(run: Run) -> None:
    run.script.batch({"message_id": 1, "item_list": "oops"}, msg(2, text("fine")), cursor="c")
    await run.until("the good one", lambda: "2" in run.log.message_ids())
    (error,) = run.errors()
    assert "cannot be read" in error and "item_list" in error


async def test_a_user_message_without_its_sender_is_skipped_with_a_line_and_the_cursor_moves(
    run: Run,
) -> None:
    # each a report (the gateway's line: "puppet reported an error: ..."), never handed on
    no_sender = msg(1, text("who am I?"))
    del no_sender["from_user_id"]
    run.script.batch(
        no_sender,
        msg(2, text("and I?"), from_user_id=""),
        msg(3, text("or I?"), from_user_id="  "),
        msg(4, text("fine")),
        cursor="c1",
    )
    run.script.batch(msg(5, text("next")), cursor="c2")
    await run.until("the next batch", lambda: "5" in run.log.message_ids())
    assert run.log.message_ids() == ["4", "5"]  # (never handed on with no sender)
    errors = run.errors()
    assert len(errors) == 3
    assert all("cannot be read was skipped: from_user_id" in e for e in errors)
    assert all(e.endswith("reason=bad_message") for e in errors)
    polls = [r.body["get_updates_buf"] for r in run.script.asked("getupdates")]
    assert "c1" in polls  # (the cursor moved past them)


HUGE = 10**400  # a JSON number no float holds


@pytest.mark.parametrize(
    "hostile",
    [
        {"create_time_ms": HUGE},
        {"item_list": [{"type": 3, "voice_item": {"text": "x", "playtime": HUGE}}]},
        {"item_list": [{"type": 5, "video_item": {"play_length": HUGE}}]},
    ],
    ids=["create_time_ms", "voice-playtime", "video-play_length"],
)
async def test_a_number_out_of_range_skips_its_message_and_the_batch_goes_on(
    run: Run, hostile: dict[str, Any]
) -> None:
    run.script.batch({**msg(1, text("hostile")), **hostile}, msg(2, text("fine")), cursor="c1")
    run.script.batch(msg(3, text("later")), cursor="c2")
    await run.until("the good ones", lambda: {"2", "3"} <= set(run.log.message_ids()))
    assert "1" not in run.log.message_ids()
    (error,) = run.errors()
    assert "cannot be read" in error and "reason=bad_message" in error


async def test_a_number_too_long_for_python_skips_its_message_not_the_answer(run: Run) -> None:
    """Python refuses to read an integer of over 4,300 digits: were the whole answer
    refused, the server would send it again at every poll, and nothing after it would
    arrive. It reads as out of range: only its message is skipped."""
    hostile = {**msg(1, text("hostile")), "create_time_ms": "HOSTILE"}
    body = {"ret": 0, "msgs": [hostile, msg(2, text("fine"))], "get_updates_buf": "c1"}
    raw = json.dumps(body).replace('"HOSTILE"', "9" * 5001)
    assert "9" * 5001 in raw
    run.script.raw(raw.encode())
    run.script.batch(msg(3, text("later")), cursor="c2")
    await run.until("the good ones", lambda: {"2", "3"} <= set(run.log.message_ids()))
    assert "1" not in run.log.message_ids()
    (error,) = run.errors()
    assert "cannot be read" in error and "reason=bad_message" in error


async def test_a_message_that_fails_to_be_read_for_any_reason_skips_only_itself(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ilink_puppet.read_message

    def failing_on_the_first(*args: Any, **kwargs: Any) -> Any:
        read = real(*args, **kwargs)
        if read.message.id == "1":
            raise ArithmeticError("a reader's bug")
        return read

    monkeypatch.setattr(ilink_puppet, "read_message", failing_on_the_first)
    run.script.batch(msg(1, text("unlucky")), msg(2, text("fine")), cursor="c1")
    await run.until("the good one", lambda: "2" in run.log.message_ids())
    assert "1" not in run.log.message_ids()
    (error,) = run.errors()
    assert "cannot be read" in error and "a reader's bug" in error


@pytest.mark.parametrize(
    ("hint_ms", "poll_s"),
    [(HUGE, 120.0), (10**12, 120.0), (1, 5.0)],
    ids=["overflowing", "years", "a-millisecond"],
)
async def test_the_servers_long_poll_hint_is_kept_within_sane_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hint_ms: int, poll_s: float
) -> None:
    polls: list[tuple[str, float]] = []  # (the cursor sent, the poll's timeout)
    real = ILinkApi.get_updates

    async def get_updates(api: ILinkApi, cursor: str, timeout_s: float) -> Any:
        polls.append((cursor, timeout_s))
        return await real(api, cursor, timeout_s)

    monkeypatch.setattr(ILinkApi, "get_updates", get_updates)
    async with scripted() as script, running(tmp_path, monkeypatch, script) as run:
        hinted = {"ret": 0, "msgs": [], "get_updates_buf": "c0", "longpolling_timeout_ms": hint_ms}
        script.raw(json.dumps(hinted).encode())
        script.batch(msg(2, text("after the hint")), cursor="c2")
        await run.until("the next message", lambda: "2" in run.log.message_ids())
    after_hint = next(timeout_s for cursor, timeout_s in polls if cursor == "c0")
    assert after_hint == poll_s + 5  # the server's hold, and 5 s for the answer to come


async def test_a_message_without_its_time_is_stamped_when_it_arrived_with_a_note(
    run: Run,
) -> None:
    run.script.batch(msg(1, text("when?"), create_time_ms=None), cursor="c1")
    await run.until("the message", lambda: "1" in run.log.message_ids())
    message = await run.puppet.message("1")
    assert abs(message.timestamp - time.time()) < 5
    (error,) = run.errors()
    assert "no create_time_ms" in error and "reason=odd_message" in error


@pytest.mark.parametrize(
    "ahead_s", [-120.0, -7200.0, 7200.0], ids=["2-min-behind", "2-h-behind", "2-h-ahead"]
)
async def test_a_message_time_on_a_server_clock_off_ours_is_read_on_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ahead_s: float
) -> None:
    # the server's clock, as its Date header shows it, stamps the message: on ours, it
    # was said just now (else the gateway drops it as replayed, or too old)
    async with scripted() as script, running(tmp_path, monkeypatch, script) as run:
        script.clock_ahead_s = ahead_s
        said_ms = int((time.time() + ahead_s) * 1000)
        script.batch(msg(1, text("now"), create_time_ms=said_ms), cursor="c1")
        await run.until("the message", lambda: "1" in run.log.message_ids())
        message = await run.puppet.message("1")
        window = run.puppet.reply_window(ALICE)
    assert abs(message.timestamp - time.time()) < 5
    assert window is not None and window.closes_at == message.timestamp + 24 * 3600


PROXY_PAGE = b"<html>Gateway Time-out</html>"
ILINK_503 = b'{"ret": -1, "errcode": -1, "errmsg": "service unavailable"}'


@pytest.mark.parametrize(
    ("status", "body", "headers", "code", "transient"),
    [
        # a proxy gave up, or forwarded and lost the answer: the server may have taken it
        (504, PROXY_PAGE, {}, "outcome_unknown", False),
        (502, PROXY_PAGE, {}, "outcome_unknown", False),
        (500, PROXY_PAGE, {}, "outcome_unknown", False),
        (503, b"upstream connect error or disconnect/reset", {}, "outcome_unknown", False),
        # unavailable, as iLink itself or a server asking to come back says: not taken
        (503, ILINK_503, {}, "send_failed", True),
        (503, PROXY_PAGE, {"Retry-After": "5"}, "send_failed", True),
        (400, PROXY_PAGE, {}, "send_failed", True),
    ],
    ids=["504", "502", "500", "503-proxy", "503-ilink", "503-retry-after", "400"],
)
async def test_an_http_error_to_a_send_is_never_sent_twice_when_it_may_have_gone_out(
    run: Run, status: int, body: bytes, headers: dict[str, str], code: str, transient: bool
) -> None:
    run.script.batch(msg(1, text("hi")), cursor="c1")
    await run.until("the message", lambda: "1" in run.log.message_ids())
    run.script.send_answers.put_nowait((status, body, headers))
    with pytest.raises(SendError) as failed:
        await run.puppet.send_text(ALICE, "the answer")
    assert (failed.value.code, failed.value.transient) == (code, transient)
    assert len(run.script.asked("sendmessage")) == 1


async def test_a_send_whose_connect_never_completes_was_not_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (the server's address swallows the SYN: nothing left, so it may be sent again)
    monkeypatch.setattr(ilink_api, "CONNECT_S", 0.3)
    async with aiohttp.ClientSession() as http, connects_hang() as port:
        base = f"http://127.0.0.1:{port}"
        api = ILinkApi(http, base, f"{base}/c2c", token=TOKEN)
        with pytest.raises(NotConnected) as hung:
            await api.send_message({"to_user_id": ALICE})
    assert "no connection" in str(hung.value) and TOKEN not in str(hung.value)


async def test_a_send_written_and_never_answered_may_have_gone_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # connected, the request written: the server may have taken it, whatever the wait
    monkeypatch.setattr(ilink_api, "CONNECT_S", 0.3)
    monkeypatch.setattr(ilink_api, "CALL_S", 0.6)
    async with aiohttp.ClientSession() as http, never_answers() as port:
        base = f"http://127.0.0.1:{port}"
        api = ILinkApi(http, base, f"{base}/c2c", token=TOKEN)
        with pytest.raises(TimedOut):
            await api.send_message({"to_user_id": ALICE})


async def test_a_ten_megabyte_text_arrives_cut_with_a_note(run: Run) -> None:
    run.script.batch(msg(1, text("y" * 10_000_000)), cursor="c")
    await run.until("the long one", lambda: "1" in run.log.message_ids())
    message = await run.puppet.message("1")
    assert len(message.text) < 100_100
    assert "characters more]" in message.text
    assert any("cut to 100000" in e for e in run.errors())


async def test_a_message_delivered_twice_is_handed_on_again_for_the_gateway_to_count(
    run: Run,
) -> None:
    # recorded once; handed on again under its id, as any puppet hands on a message
    # delivered twice: the gateway's dedupe drops it, and counts it (duplicate)
    run.script.batch(msg(1, text("once")), cursor="c1")
    run.script.batch(msg(1, text("once")), msg(2, text("twice?")), cursor="c2")
    await run.until("the second", lambda: len(run.log.message_ids()) == 3)
    assert run.log.message_ids() == ["1", "2", "1"]


@pytest.mark.parametrize("same_batch", [False, True], ids=["seconds-later", "same-batch"])
async def test_a_copy_delivered_again_under_a_new_id_is_handed_on_as_its_original(
    run: Run, caplog: pytest.LogCaptureFixture, same_batch: bool
) -> None:
    # iLink sometimes delivers one user message twice, seconds apart, under a new
    # message_id (and a new context_token): the same sender, time and content
    caplog.set_level(logging.DEBUG, logger="wechat_sdk.adapters.ilink")
    said = int(time.time() * 1000)
    first = msg(1, text("hello"), create_time_ms=said)
    copy = msg(2, {"msg_id": "item-2", **text("hello")}, create_time_ms=said)
    if same_batch:
        run.script.batch(first, copy, msg(3, text("after")), cursor="c1")
    else:
        run.script.batch(first, cursor="c1")
        run.script.batch(copy, cursor="c2")
        run.script.batch(msg(3, text("after")), cursor="c3")
    await run.until("the message after", lambda: len(run.log.message_ids()) == 3)
    # never as itself (a new message): as the message it is a copy of, which the
    # gateway's dedupe drops (and counts)
    assert sorted(run.log.message_ids()) == ["1", "1", "3"]
    (line,) = [r.getMessage() for r in caplog.records if "reason=ilink_duplicate" in r.getMessage()]
    assert "a copy of iLink message 1" in line and "2" in line


async def test_alike_messages_without_a_time_or_said_at_other_times_are_all_taken_in(
    run: Run,
) -> None:
    said = int(time.time() * 1000)
    run.script.batch(
        msg(1, text("ok"), create_time_ms=None),
        msg(2, text("ok"), create_time_ms=None),  # no time: never taken for a copy
        msg(3, text("ok"), create_time_ms=said),
        msg(4, text("ok"), create_time_ms=said + 1500),  # the same words said again
        msg(5, text("ok!"), create_time_ms=said),  # other words at the same time
        msg(6, text("ok"), create_time_ms=said, from_user_id="bob@im.wechat"),
        cursor="c1",
    )
    await run.until("the last", lambda: "6" in run.log.message_ids())
    assert run.log.message_ids() == ["1", "2", "3", "4", "5", "6"]


async def test_a_server_giving_the_same_batch_again_at_once_is_not_polled_in_a_loop(
    run: Run,
) -> None:
    # a server that ignores the cursor and answers each poll at once with what it gave
    # already: every answer after the first brings nothing new, and the next poll waits
    # (a busy loop would take all 300 answers, and hammer a real server, in a moment)
    for _ in range(300):
        run.script.batch(msg(1, text("once")), cursor="c1")
    await run.until("the message", lambda: "1" in run.log.message_ids())
    await asyncio.sleep(1.5)
    assert len(run.script.asked("getupdates")) < 30
    assert set(run.log.message_ids()) == {"1"}


async def test_a_quote_of_the_bots_message_gives_its_whole_text(run: Run) -> None:
    run.script.batch(msg(1, text("explain")), cursor="c1")
    await run.until("the question", lambda: "1" in run.log.message_ids())
    answer = "The whole answer, longer than any quote iLink carries of it."
    sent_id = await run.puppet.send_text(ALICE, answer)
    quote = {"svr_id": int(sent_id or 0), "message_item": text("The whole ans")}
    run.script.batch(msg(3, {**text("why?"), "ref_msg": quote}), cursor="c3")
    await run.until("the quote", lambda: "3" in run.log.message_ids())
    message = await run.puppet.message("3")
    assert message.quoted_id == sent_id
    assert message.quoted_text == answer


async def test_a_quote_naming_another_users_message_gives_none_of_its_text(run: Run) -> None:
    # Bob's quote names the id of a message in Alice's chat (hers, and the bot's answer
    # to her): the agent must get nothing of that chat, only what Bob's message carries
    bob = "bob@im.wechat"
    secret = "Alice's secret: the door code is 4711"
    run.script.batch(msg(1, text(secret)), cursor="c1")
    await run.until("Alice's message", lambda: "1" in run.log.message_ids())
    answer_id = await run.puppet.send_text(ALICE, "Noted, Alice: the door code is 4711.")
    for mid, quoted in ((2, 1), (3, int(answer_id or 0))):
        quote = {"svr_id": quoted, "message_item": text("hm")}
        quoting = msg(mid, {**text("what was that?"), "ref_msg": quote}, from_user_id=bob)
        run.script.batch(quoting, cursor=f"c{mid}")
        await run.until("Bob's quote", lambda mid=mid: str(mid) in run.log.message_ids())
        message = await run.puppet.message(str(mid))
        assert message.talker_id == bob
        assert message.quoted_text == "hm"  # what Bob's own message carries of it


def file_msg(mid: int, query: str, key: bytes, size: int, **media: Any) -> dict[str, Any]:
    aes_key = base64.b64encode(key.hex().encode()).decode()
    item = {
        "media": {"encrypt_query_param": query, "aes_key": aes_key, **media},
        "file_name": "notes.txt",
        "len": str(size),
    }
    return msg(mid, {"type": 4, "file_item": item})


async def test_a_file_is_downloaded_and_decrypted(run: Run) -> None:
    data = b"meeting notes\n" * 5000
    run.script.files["q1"] = aes.encrypt(data, KEY)
    run.script.batch(file_msg(1, "q1", KEY, len(data)), cursor="c")
    await run.until("the file", lambda: "1" in run.log.message_ids())
    message = await run.puppet.message("1")
    assert message.kind is MessageKind.ATTACHMENT
    assert b"".join([c async for c in run.puppet.download("1", len(data))]) == data


async def test_a_file_that_does_not_decrypt_is_a_clear_error(run: Run) -> None:
    data = b"secret" * 1000
    run.script.files["q1"] = aes.encrypt(data, bytes(16))  # not the item's key
    run.script.batch(file_msg(1, "q1", KEY, len(data)), cursor="c")
    await run.until("the file", lambda: "1" in run.log.message_ids())
    with pytest.raises(CdnFailed, match="did not decrypt"):
        async for _ in run.puppet.download("1", 10_000_000):
            pass


async def test_a_file_over_the_cap_is_refused_before_and_while_downloading(run: Run) -> None:
    data = bytes(300_000)
    run.script.files["q1"] = aes.encrypt(data, KEY)
    run.script.batch(file_msg(1, "q1", KEY, len(data)), cursor="c1")
    unsized = {
        "type": 2,
        "image_item": {"media": {"encrypt_query_param": "q1"}, "aeskey": KEY.hex()},
    }
    run.script.batch(msg(2, unsized), cursor="c2")
    await run.until("both", lambda: {"1", "2"} <= set(run.log.message_ids()))
    with pytest.raises(FileTooLarge):
        async for _ in run.puppet.download("1", 100_000):
            pass
    assert not [r for r in run.script.requests if "download" in r.path]  # not even asked
    got = 0
    with pytest.raises(FileTooLarge):
        async for chunk in run.puppet.download("2", 100_000):
            got += len(chunk)
    assert got <= 100_000


async def test_an_image_without_a_key_is_downloaded_as_it_is(run: Run) -> None:
    # Tencent's client (media/media-download.ts) fetches an image item that names no key
    # (neither image_item.aeskey nor media.aes_key) from the CDN as plain bytes
    data = b"\x89PNG plain picture" * 100
    run.script.files["q1"] = data
    plain = {"type": 2, "image_item": {"media": {"encrypt_query_param": "q1"}}}
    run.script.batch(msg(1, plain), cursor="c")
    await run.until("the image", lambda: "1" in run.log.message_ids())
    assert (await run.puppet.message("1")).kind is MessageKind.IMAGE
    assert b"".join([c async for c in run.puppet.download("1", len(data))]) == data
    with pytest.raises(FileTooLarge):
        async for _ in run.puppet.download("1", len(data) - 1):
            pass


async def test_a_file_without_a_key_is_still_refused(run: Run) -> None:
    run.script.files["q1"] = b"notes"
    keyless = {"type": 4, "file_item": {"media": {"encrypt_query_param": "q1"}, "len": "5"}}
    run.script.batch(msg(1, keyless), cursor="c")
    await run.until("the file", lambda: "1" in run.log.message_ids())
    with pytest.raises(CdnFailed, match="no aes_key"):
        async for _ in run.puppet.download("1", 1000):
            pass


async def test_a_full_url_on_another_host_is_never_fetched(run: Run) -> None:
    data = b"picture"
    run.script.files["q1"] = aes.encrypt(data, KEY)
    elsewhere = {"full_url": "http://169.254.169.254/latest/meta-data"}
    run.script.batch(file_msg(1, "q1", KEY, len(data), **elsewhere), cursor="c")
    await run.until("the file", lambda: "1" in run.log.message_ids())
    assert b"".join([c async for c in run.puppet.download("1", 1000)]) == data
    (fetched,) = [r.path for r in run.script.requests if "download" in r.path]
    assert fetched.startswith("/c2c/download?encrypted_query_param=q1")


async def test_an_upload_url_on_another_host_is_never_used(run: Run) -> None:
    run.script.upload_full_url = "http://127.0.0.1:1/upload?elsewhere=1"
    run.script.batch(msg(1, text("send me the notes")), cursor="c1")
    await run.until("the message", lambda: "1" in run.log.message_ids())
    await run.puppet.send_file(ALICE, OutboundFile("notes.txt", data=b"notes" * 200))
    (uploaded,) = [r.path for r in run.script.requests if r.path.startswith("/c2c/upload")]
    assert "encrypted_query_param=up-1" in uploaded
    (sent,) = run.script.asked("sendmessage")
    assert sent.body["msg"]["item_list"][0]["file_item"]["media"]["encrypt_query_param"] == (
        "down-1"
    )


async def test_a_cdn_upload_refused_with_a_4xx_is_not_tried_again(run: Run) -> None:
    # Tencent's client (cdn/cdn-upload.ts) retries a CDN upload after a server error, but
    # a client error (4xx) ends it at once
    run.script.upload_answers.put_nowait((400, "filekey mismatch"))
    run.script.batch(msg(1, text("send me the notes")), cursor="c1")
    await run.until("the message", lambda: "1" in run.log.message_ids())
    with pytest.raises(SendError, match="filekey mismatch"):
        await run.puppet.send_file(ALICE, OutboundFile("notes.txt", data=b"notes" * 200))
    assert len([r for r in run.script.requests if r.path.startswith("/c2c/upload")]) == 1
    assert not run.script.asked("sendmessage")


async def test_a_cdn_upload_after_a_server_error_is_tried_again(run: Run) -> None:
    run.script.upload_answers.put_nowait((500, "busy"))
    run.script.batch(msg(1, text("send me the notes")), cursor="c1")
    await run.until("the message", lambda: "1" in run.log.message_ids())
    await run.puppet.send_file(ALICE, OutboundFile("notes.txt", data=b"notes" * 200))
    assert len([r for r in run.script.requests if r.path.startswith("/c2c/upload")]) == 2
    assert len(run.script.asked("sendmessage")) == 1


async def test_a_send_the_lease_no_longer_allows_never_reaches_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a cluster's gateway paused after its check in Redis: its local view of the lease
    # refuses the request at the last moment
    allowed = [True]

    def before_send() -> None:
        if not allowed[0]:
            raise SendError("lease gone", transient=False, code="lease_lost")

    async with (
        scripted() as script,
        running(tmp_path, monkeypatch, script, before_send=before_send) as run,
    ):
        run.script.batch(msg(1, text("hi")), cursor="c1")
        await run.until("the message", lambda: "1" in run.log.message_ids())
        await run.puppet.send_text(ALICE, "allowed")
        allowed[0] = False
        with pytest.raises(SendError) as failed:
            await run.puppet.send_text(ALICE, "too late")
        assert failed.value.code == "lease_lost"
        asked = run.script.asked("sendmessage")
        sent = [r.body["msg"]["item_list"][0]["text_item"]["text"] for r in asked]
    assert sent == ["allowed"]
    # nor does its stop tell the server the bot stopped: another gateway runs it now
    assert script.asked("msg/notifystop") == []


async def test_a_stop_tells_the_server_the_bot_stopped_while_it_holds_the_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        scripted() as script,
        running(tmp_path, monkeypatch, script, before_send=lambda: None),
    ):
        pass
    assert len(script.asked("msg/notifystop")) == 1


async def test_a_text_that_went_out_is_sent_even_if_its_record_is_refused(
    run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    """iLink took the message; the store then refuses its record (the window's count, the
    sent message for quotes): the send is reported sent (it went), and the refusal is
    logged; the window still counts it."""
    run.script.batch(msg(1, text("hi")), cursor="c1")
    await run.until("the message", lambda: "1" in run.log.message_ids())
    assert run.puppet._state is not None

    async def refused(*_: Any) -> None:
        raise RuntimeError("the account's lease was lost")

    run.puppet._state.sent = refused  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR):
        message_id = await run.puppet.send_text(ALICE, "hello Alice")
    assert message_id and len(run.script.asked("sendmessage")) == 1
    assert "could not record" in caplog.text
    assert run.puppet.reply_window(ALICE).remaining == 9  # type: ignore[union-attr]


async def test_an_empty_context_token_keeps_the_peers_last_one(run: Run) -> None:
    """An empty token is none: the log says the peer's last one is kept, and it is (it
    was replaced by "", which the server refuses on the next reply)."""
    run.script.batch(msg(1, text("first")), cursor="c1")
    run.script.batch(msg(2, text("second"), context_token=""), cursor="c2")
    await run.until("both", lambda: {"1", "2"} <= set(run.log.message_ids()))
    assert any("no context_token (the peer's last one is kept)" in e for e in run.errors())
    await run.puppet.send_text(ALICE, "answer")
    assert run.script.asked("sendmessage")[0].body["msg"]["context_token"] == "ctx-1"


async def test_a_skipped_group_message_leaves_the_direct_chats_token_alone(run: Run) -> None:
    run.script.batch(msg(1, text("dm")), cursor="c1")
    run.script.batch(
        msg(2, text("in a group"), group_id="g1@chatroom", context_token="ctx-group"),
        cursor="c2",
    )
    await run.until("the dm", lambda: "1" in run.log.message_ids())
    await run.until("the group note", lambda: any("group message" in e for e in run.errors()))
    await run.puppet.send_text(ALICE, "answer")
    assert run.script.asked("sendmessage")[0].body["msg"]["context_token"] == "ctx-1"


async def test_a_group_message_leaves_the_senders_reply_window_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window is the user's direct chat's: a group message (never delivered to a bot,
    as far as anyone knows) neither gives back the places used nor moves its 24 h, and
    after a restart neither (the window as kept)."""
    said = int(time.time() * 1000) - 600_000  # ten minutes ago
    async with scripted() as script:
        async with running(tmp_path, monkeypatch, script) as run:
            script.batch(msg(1, text("dm"), create_time_ms=said), cursor="c1")
            await run.until("the dm", lambda: "1" in run.log.message_ids())
            for n in range(3):
                await run.puppet.send_text(ALICE, f"answer {n}")
            before = run.puppet.reply_window(ALICE)
            assert before is not None and before.remaining == 7
            script.batch(msg(2, text("in a group"), group_id="g1@chatroom"), cursor="c2")
            await run.until("the group note", lambda: any("group" in e for e in run.errors()))
            assert run.puppet.reply_window(ALICE) == before
        async with running(tmp_path, monkeypatch, script) as again:
            assert again.puppet.reply_window(ALICE) == before


async def test_an_answer_whose_msgs_is_not_a_list_is_said_and_the_cursor_stays(
    run: Run,
) -> None:
    """It was taken for "no messages": not a word, and the cursor moved past whatever it
    held."""
    body = {
        "ret": 0,
        "msgs": {"0": msg(1, text("lost?"))},
        "get_updates_buf": "c1",
        "longpolling_timeout_ms": 500,
    }
    run.script.updates.put_nowait((200, json.dumps(body).encode()))
    run.script.batch(msg(2, text("after")), cursor="c2")
    await run.until("the next message", lambda: "2" in run.log.message_ids())
    assert any("msgs is a dict, not a list" in e for e in run.errors())
    polls = [r.body["get_updates_buf"] for r in run.script.asked("getupdates")]
    assert "c1" not in polls
