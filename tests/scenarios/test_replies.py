"""Replies end to end on the simulator: chunking, markdown, streaming, pacing, failures,
media out, proactive sends and multi-account routing. Time is virtual throughout."""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from simulator.pytest_plugin import WeChatHarness
from simulator.world import SimulatedWeChat, TranscriptEntry
from wechat_sdk.agent import AgentTurn, Reply
from wechat_sdk.gateway import Gateway
from wechat_sdk.gateway.status import AccountStatus
from wechat_sdk.outbound.delivery import DeliveryFailed
from wechat_sdk.outbound.pipeline import fetch_url
from wechat_sdk.puppet import OutboundFile

OPEN: dict[str, Any] = {"dmPolicy": "open", "allowFrom": ["*"]}
NOTICE = "Sorry, something went wrong while answering. Please try again."
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4

LONG = " ".join(
    f"Sentence number {i} talks about {'pacing' if i % 3 else 'chunking'} at some length."
    + ("\n\n" if i % 4 == 0 else "")
    for i in range(1, 30)
)


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def outs(world: SimulatedWeChat, **where: str) -> list[TranscriptEntry]:
    return world.sent(**where)


def inbound_time(world: SimulatedWeChat, text: str) -> float:
    return next(e.t for e in world.transcript if e.direction == "in" and e.text == text)


def status_of(gw: Gateway, account: str = "default") -> AccountStatus:
    return next(s for s in gw.status() if s.account == account)


def replying(answer: str | Reply) -> Any:
    async def agent(turn: AgentTurn) -> str | Reply:
        return answer

    return agent


async def drive(world: SimulatedWeChat, coro: Any) -> Any:
    """Await ``coro`` while moving virtual time (pacing and retries sleep on it)."""
    task = asyncio.ensure_future(coro)
    async with asyncio.timeout(10):
        while not task.done():
            await world.run_until_idle()
            await asyncio.sleep(0.005)
    return task.result()


async def finish(world: SimulatedWeChat, gw: Gateway) -> None:
    """Every answer in flight delivered, even those waiting on a thread (URL downloads)."""
    await drive(world, gw.wait_idle())


# ---------------------------------------------------------------- chunking and markdown


async def test_long_reply_arrives_chunked_and_in_order(wechat: WeChatHarness) -> None:
    await wechat.gateway(replying(LONG), textChunkLimit=100, **OPEN)
    await wechat.world.say("wxid_alice", "tell me everything")
    texts = wechat.world.texts(to="wxid_alice")
    assert len(texts) >= len(LONG) // 100
    assert all(0 < len(t) <= 100 for t in texts)
    assert squash("".join(texts)) == squash(LONG)
    assert texts[0].startswith("Sentence number 1 ")


async def test_chunks_of_one_reply_keep_the_gap(wechat: WeChatHarness) -> None:
    await wechat.gateway(
        replying(LONG),
        textChunkLimit=100,
        pacing={"perSecond": 10, "burst": 10, "chunkGapMs": 2500, "jitterMs": 0},
        **OPEN,
    )
    await wechat.world.say("wxid_alice", "go")
    times = [e.t for e in outs(wechat.world, to="wxid_alice")]
    assert len(times) > 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 2.5 - 1e-3


async def test_default_gap_between_chunks_is_at_least_one_second(
    wechat: WeChatHarness,
) -> None:
    await wechat.gateway(replying(LONG), textChunkLimit=100, **OPEN)
    await wechat.world.say("wxid_alice", "go")
    times = [e.t for e in outs(wechat.world, to="wxid_alice")]
    assert min(b - a for a, b in itertools.pairwise(times)) >= 1.0 - 1e-3


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("plain", "This is bold and a link (https://example.com)."),
        ("keep", "This is **bold** and [a link](https://example.com)."),
    ],
)
async def test_markdown_mode(wechat: WeChatHarness, mode: str, expected: str) -> None:
    await wechat.gateway(
        replying("This is **bold** and [a link](https://example.com)."), markdown=mode, **OPEN
    )
    await wechat.world.say("wxid_alice", "hi")
    assert wechat.world.texts(to="wxid_alice") == [expected]


# ---------------------------------------------------------------- streaming


def streaming(pieces: list[tuple[float, str]], world: SimulatedWeChat, fail: bool = False) -> Any:
    """An agent yielding ``(pause_before, piece)`` pairs; optionally raising at the end."""

    def agent(turn: AgentTurn) -> AsyncIterator[str]:
        async def gen() -> AsyncIterator[str]:
            for pause, piece in pieces:
                if pause:
                    await world.clock.sleep(pause)
                yield piece
            if fail:
                raise RuntimeError("the model fell over")

        return gen()

    return agent


STREAM = [
    (0.0, "Checking the logs. "),
    (0.3, "Found it: the cache "),
    (0.3, "was stale."),
    (2.0, "\n\nFix: clear it with make clean, then restart the whole gateway. "),
    (0.2, "It should be back within a minute."),
]
STREAM_TEXT = "".join(p for _, p in STREAM)
STREAM_KEYS: dict[str, Any] = {
    "draftChunk": {"minChars": 20, "maxChars": 60, "idleMs": 1000},
    "pacing": {"chunkGapMs": 1000, "jitterMs": 0},
}


async def test_a_streamed_reply_goes_out_under_a_chunk_limit_below_min_chars(
    wechat: WeChatHarness,
) -> None:
    # textChunkLimit 150 clamps draftChunk.maxChars (800) and the default minChars (200)
    world = wechat.world
    await wechat.gateway(streaming(STREAM, world), textChunkLimit=150, **OPEN)
    await world.say("wxid_alice", "what happened?")
    blocks = world.texts(to="wxid_alice")
    assert squash("".join(blocks)) == squash(STREAM_TEXT)
    assert all(len(b) <= 150 for b in blocks)


async def test_streaming_agent_arrives_in_blocks(wechat: WeChatHarness) -> None:
    world = wechat.world
    await wechat.gateway(streaming(STREAM, world), **STREAM_KEYS, **OPEN)
    await world.say("wxid_alice", "what happened?")
    asked = inbound_time(world, "what happened?")
    sent = outs(world, to="wxid_alice")
    blocks = [e.text or "" for e in sent]
    assert len(blocks) >= 3
    assert all(len(b) <= 60 for b in blocks)
    assert all(len(b) >= 20 for b in blocks[:-1])
    assert squash("".join(blocks)) == squash(STREAM_TEXT)
    # the first block went out on the idle pause, long before the agent finished (2.8 s)
    assert blocks[0] == "Checking the logs. Found it: the cache was stale."
    assert sent[0].t - asked == pytest.approx(0.6 + 1.0, abs=0.01)
    times = [e.t for e in sent]
    assert min(b - a for a, b in itertools.pairwise(times)) >= 1.0 - 1e-3


CODE_LINES = [
    line
    for i in range(20)
    for line in (f"# step {i}: compute the value", f"    value_{i} = compute(arg_{i}, **options)")
]
CODE_REPLY = "Here is the script:\n\n```python\n" + "\n".join(CODE_LINES) + "\n```\n\nDone."


def fenced_lines(message: str) -> tuple[list[str], list[str]]:
    """A message's fence lines and the lines between them (its code)."""
    fences: list[str] = []
    code: list[str] = []
    for line in message.split("\n"):
        if line.startswith("```"):
            fences.append(line)
        elif len(fences) % 2 == 1:
            code.append(line)
    return fences, code


@pytest.mark.parametrize(
    "pauses",
    [
        pytest.param({}, id="line-by-line"),
        # the agent stops for 1.5 s (over idleMs) inside the code, with over minChars buffered
        pytest.param({12: 1.5, 30: 1.5}, id="idle-pauses-inside-the-fence"),
    ],
)
async def test_a_streamed_code_block_longer_than_a_block_keeps_its_fences(
    wechat: WeChatHarness, pauses: dict[int, float]
) -> None:
    # default config: draftChunk 200..800, idle 1 s, markdown "plain"; the code is 1,300
    # characters, so it must be cut: closed at the end of a block, reopened in the next
    world = wechat.world
    lines = CODE_REPLY.splitlines(keepends=True)
    pieces = [(pauses.get(i, 0.0), line) for i, line in enumerate(lines)]
    await wechat.gateway(streaming(pieces, world), **OPEN)
    await world.say("wxid_alice", "go")
    messages = world.texts(to="wxid_alice")
    assert len(messages) >= 3
    code: list[str] = []
    for message in messages:
        assert len(message) <= 800
        fences, inside = fenced_lines(message)
        assert len(fences) % 2 == 0, f"unbalanced fence in {message!r}"
        assert fences[::2] == ["```python"] * (len(fences) // 2)  # reopened with its tag
        code += inside
    # every code line arrives once, in order, untouched by the markdown conversion
    assert code == CODE_LINES
    assert messages[0] == "Here is the script:"
    assert messages[-1].endswith("```\n\nDone.")


@pytest.mark.parametrize("keys", [{}, {"streamMode": "off"}])
async def test_a_streamed_reply_not_waiting_for_a_login_fails_at_once_when_logged_out(
    wechat: WeChatHarness, keys: dict[str, Any]
) -> None:
    # OutboundPipeline.deliver(..., wait_for_login=False) holds for a stream as for a
    # whole reply: nobody in WeChat waits for it, its caller does
    world = wechat.world

    async def quiet(turn: AgentTurn) -> str:
        return ""

    gw = await wechat.gateway(quiet, login=False, **keys, **OPEN)
    await world.run_until_idle()

    async def stream() -> AsyncIterator[str]:
        yield "A proactive note, "
        yield "streamed."

    delivery = asyncio.ensure_future(
        gw.runners["default"].outbound.deliver("wxid_alice", stream(), wait_for_login=False)
    )
    await world.run_until_idle()
    assert delivery.done(), "the stream waited for a login it was told not to wait for"
    with pytest.raises(DeliveryFailed) as failed:
        delivery.result()
    assert failed.value.code == "not_logged_in"
    await world.login()
    await world.run_until_idle()
    assert world.texts(to="wxid_alice") == []


@pytest.mark.parametrize("keys", [{"streamMode": "off"}, {"blockStreaming": False}])
async def test_streaming_off_sends_one_reply_chunked(
    wechat: WeChatHarness, keys: dict[str, Any]
) -> None:
    world = wechat.world
    await wechat.gateway(
        streaming(STREAM, world), textChunkLimit=100, **keys, **STREAM_KEYS, **OPEN
    )
    await world.say("wxid_alice", "what happened?")
    asked = inbound_time(world, "what happened?")
    sent = outs(world, to="wxid_alice")
    assert [len(e.text or "") <= 100 for e in sent] == [True] * len(sent)
    assert len(sent) == 2  # 140 characters, limit 100: chunked, not blocked by 60
    assert squash("".join(e.text or "" for e in sent)) == squash(STREAM_TEXT)
    assert sent[0].t - asked >= 2.8 - 1e-3  # nothing before the agent finished


@pytest.mark.parametrize("keys", [{}, {"streamMode": "off"}])
async def test_agent_failing_mid_stream(wechat: WeChatHarness, keys: dict[str, Any]) -> None:
    world = wechat.world
    pieces = [(0.0, "Here is the first part. "), (0.2, "And a second one.")]
    gw = await wechat.gateway(streaming(pieces, world, fail=True), **keys, **STREAM_KEYS, **OPEN)
    await world.say("wxid_alice", "go")
    assert world.texts(to="wxid_alice") == ["Here is the first part. And a second one.", NOTICE]
    assert "the model fell over" in (status_of(gw).last_error or "")


async def test_agent_failing_mid_stream_without_notice(wechat: WeChatHarness) -> None:
    world = wechat.world
    pieces = [(0.0, "Here is the first part. "), (0.2, "And a second one.")]
    await wechat.gateway(
        streaming(pieces, world, fail=True), errorNotice=False, **STREAM_KEYS, **OPEN
    )
    await world.say("wxid_alice", "go")
    assert world.texts(to="wxid_alice") == ["Here is the first part. And a second one."]


# ---------------------------------------------------------------- pacing and fairness


async def test_pacing_holds_under_a_burst_of_100_replies(wechat: WeChatHarness) -> None:
    world = wechat.world

    async def agent(turn: AgentTurn) -> str:
        return f"hello {turn.sender_id}"

    await wechat.gateway(agent, **OPEN)
    for i in range(100):
        await world.say(f"wxid_c{i:03d}", "hi", settle=False)
    await world.run_until_idle()
    times = [e.t for e in outs(world)]
    assert len(times) == 100
    burst, rate = 5, 1.0
    # the tightest window starts and ends on a send: check every such window
    for i in range(len(times)):
        for j in range(i, len(times)):
            assert j - i + 1 <= burst + rate * (times[j] - times[i]) + 1e-3, (i, j)
    assert times[-1] - times[0] >= (100 - burst) / rate - 1e-3


async def test_chatty_group_does_not_starve_a_dm(wechat: WeChatHarness) -> None:
    world = wechat.world
    world.add_room("r1@chatroom", topic="Chatty", members=["wxid_g1"])

    async def agent(turn: AgentTurn) -> str:
        return f"re: {turn.text}"

    await wechat.gateway(agent, **OPEN)
    for i in range(30):
        await world.say(
            "wxid_g1", f"group message {i}", room="r1@chatroom", mention=True, settle=False
        )
    await world.clock.advance(3)  # a few group replies went out; the queue is long
    await world.say("wxid_alice", "are you there?", settle=False)
    await world.run_until_idle()
    group = outs(world, room="r1@chatroom")
    dm = outs(world, to="wxid_alice")
    assert len(group) == 30 and len(dm) == 1
    asked = inbound_time(world, "are you there?")
    assert dm[0].t - asked <= 3.0  # at most about one group turn ahead of it
    assert group[-1].t - dm[0].t >= 15.0


# ---------------------------------------------------------------- failures


async def test_transient_failures_are_retried_and_arrive_once(wechat: WeChatHarness) -> None:
    gw = await wechat.gateway(replying("pong"), **OPEN)
    wechat.world.fault("send_fail", count=2)
    await wechat.world.say("wxid_alice", "ping")
    assert wechat.world.texts(to="wxid_alice") == ["pong"]
    status = status_of(gw)
    assert status.sent == 1
    assert status.send_failures == 0


async def test_lost_send_reply_is_not_sent_twice(wechat: WeChatHarness) -> None:
    gw = await wechat.gateway(replying("pong"), **OPEN)
    wechat.world.fault("send_lost_reply")
    await wechat.world.say("wxid_alice", "ping")
    assert wechat.world.texts(to="wxid_alice") == ["pong"]
    assert status_of(gw).send_failures == 0


async def test_permanent_failure_is_reported_and_later_messages_go_out(
    wechat: WeChatHarness,
) -> None:
    gw = await wechat.gateway(replying("pong"), **OPEN)
    wechat.world.fault("send_fail_permanent")
    await wechat.world.say("wxid_alice", "ping")
    assert wechat.world.texts(to="wxid_alice") == []
    status = status_of(gw)
    assert status.send_failures == 1
    assert status.last_error is not None and "cannot receive" in status.last_error
    await wechat.world.say("wxid_alice", "ping again")
    await wechat.world.say("wxid_bob", "ping")
    assert wechat.world.texts(to="wxid_alice") == ["pong"]
    assert wechat.world.texts(to="wxid_bob") == ["pong"]


async def test_rate_limit_waits_for_retry_after(wechat: WeChatHarness) -> None:
    await wechat.gateway(replying("pong"), **OPEN)
    wechat.world.fault("rate_limit")
    await wechat.world.say("wxid_alice", "ping")
    sent = outs(wechat.world, to="wxid_alice")
    assert [e.text for e in sent] == ["pong"]
    assert sent[0].t - inbound_time(wechat.world, "ping") >= 10.0


# ---------------------------------------------------------------- media out


async def test_media_arrives_after_its_caption_each_file_its_own_message(
    wechat: WeChatHarness,
) -> None:
    reply = Reply(
        text="Here are the charts",
        files=[
            OutboundFile(name="a.png", kind="image", data=PNG),
            OutboundFile(name="notes.txt", data=b"some notes"),
        ],
    )
    await wechat.gateway(replying(reply), **OPEN)
    await wechat.world.say("wxid_alice", "charts please")
    sent = outs(wechat.world, to="wxid_alice")
    assert [(e.text, e.media and e.media["name"]) for e in sent] == [
        ("Here are the charts", None),
        (None, "a.png"),
        (None, "notes.txt"),
    ]
    assert sent[1].media == {"kind": "image", "name": "a.png", "size": len(PNG)}
    assert sent[0].t < sent[1].t < sent[2].t


async def test_media_from_a_path(wechat: WeChatHarness, tmp_path: Any) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF-1.4 tiny")
    await wechat.gateway(
        replying(Reply(files=[OutboundFile(name="report.pdf", path=path)])), **OPEN
    )
    await wechat.world.say("wxid_alice", "report")
    sent = outs(wechat.world, to="wxid_alice")
    assert [e.media for e in sent] == [{"kind": "file", "name": "report.pdf", "size": 13}]


async def test_voice_without_duration_is_not_sent(wechat: WeChatHarness) -> None:
    reply = Reply(
        text="listen",
        files=[
            OutboundFile(name="v.silk", kind="audio", data=b"#!SILK_V3"),
            OutboundFile(name="a.png", kind="image", data=PNG),
        ],
    )
    gw = await wechat.gateway(replying(reply), **OPEN)
    await wechat.world.say("wxid_alice", "say it")
    sent = outs(wechat.world, to="wxid_alice")
    # the voice message is refused before sending; the caption and the image still go
    assert [(e.text, e.media and e.media["name"]) for e in sent] == [
        ("listen", None),
        (None, "a.png"),
    ]
    status = status_of(gw)
    assert status.send_failures == 1
    assert status.last_error is not None and "duration_s" in status.last_error


async def test_file_over_media_max_is_refused(wechat: WeChatHarness) -> None:
    reply = Reply(files=[OutboundFile(name="big.bin", data=b"x" * 5000)])
    gw = await wechat.gateway(replying(reply), mediaMaxMb=0.001, **OPEN)
    await wechat.world.say("wxid_alice", "big")
    assert outs(wechat.world, to="wxid_alice") == []
    assert "mediaMaxMb" in (status_of(gw).last_error or "")


class _Files(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/pic.png":
            self._send(200, PNG, "image/png")
        elif self.path == "/big.bin":
            self._send(200, b"x" * 5000, "application/octet-stream")
        elif self.path == "/stream.bin":  # no Content-Length: the cap must stop the read
            self.send_response(200)
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"y" * 1000)
        elif self.path in ("/to-ftp", "/to-pic"):
            self.send_response(302)
            self.send_header(
                "Location", "ftp://127.0.0.1/x" if self.path == "/to-ftp" else "/pic.png"
            )
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(404, b"not here", "text/plain")

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def files_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local HTTP server on 127.0.0.1 in a thread; stopped at the end of the test."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_media_by_url_is_downloaded_and_sent(
    wechat: WeChatHarness, files_server: str
) -> None:
    reply = Reply(
        text="a picture",
        files=[OutboundFile(name="pic.png", kind="image", url=f"{files_server}/pic.png")],
    )
    gw = await wechat.gateway(replying(reply), **OPEN)
    await wechat.world.say("wxid_alice", "picture")
    await finish(wechat.world, gw)
    sent = outs(wechat.world, to="wxid_alice")
    assert [e.text for e in sent] == ["a picture", None]
    assert sent[1].media == {
        "kind": "image",
        "name": "pic.png",
        "size": len(PNG),
        "mime": "image/png",
    }
    assert wechat.world.message_data(sent[1].message_id) == PNG


@pytest.mark.parametrize(
    ("path", "code_word"),
    [
        ("/big.bin", "over the cap"),
        ("/stream.bin", "over the cap"),
        ("/missing.png", "HTTP 404"),
    ],
)
async def test_media_by_url_failures(
    wechat: WeChatHarness, files_server: str, path: str, code_word: str
) -> None:
    reply = Reply(text="caption", files=[OutboundFile(name="f.bin", url=files_server + path)])
    gw = await wechat.gateway(replying(reply), mediaMaxMb=0.004, **OPEN)  # ~4 KB
    await wechat.world.say("wxid_alice", "file")
    await finish(wechat.world, gw)
    assert wechat.world.texts(to="wxid_alice") == ["caption"]
    assert [e for e in outs(wechat.world) if e.media] == []
    status = status_of(gw)
    assert status.send_failures == 1
    assert code_word in (status.last_error or "")


def test_fetch_url_follows_only_http_redirects(files_server: str) -> None:
    data, mime = fetch_url(f"{files_server}/to-pic", 10_000, timeout=5)
    assert (data, mime) == (PNG, "image/png")
    with pytest.raises(DeliveryFailed, match="not http or https") as info:
        fetch_url(f"{files_server}/to-ftp", 10_000, timeout=5)
    assert info.value.code == "fetch_failed"


def test_fetch_url_stops_reading_at_the_cap(files_server: str) -> None:
    with pytest.raises(DeliveryFailed, match="download aborted") as info:
        fetch_url(f"{files_server}/stream.bin", 4096, timeout=5)
    assert info.value.code == "too_large"
    with pytest.raises(DeliveryFailed) as refused:
        fetch_url(f"{files_server}/big.bin", 4096, timeout=5)  # Content-Length says so
    assert refused.value.code == "too_large"
    assert len(fetch_url(f"{files_server}/big.bin", 5000, timeout=5)[0]) == 5000


async def test_media_url_must_be_http(wechat: WeChatHarness) -> None:
    reply = Reply(files=[OutboundFile(name="passwd", url="file:///etc/passwd")])
    gw = await wechat.gateway(replying(reply), **OPEN)
    await wechat.world.say("wxid_alice", "file")
    await finish(wechat.world, gw)
    assert outs(wechat.world) == []
    assert "only http and https" in (status_of(gw).last_error or "")


# ---------------------------------------------------------------- proactive and accounts


async def test_proactive_send_to_a_contact_and_a_room(wechat: WeChatHarness) -> None:
    world = wechat.world
    world.add_room("r1@chatroom", topic="Team")
    gw = await wechat.gateway(replying("unused"), **OPEN)
    assert await world.drive(gw.send("wxid_x", "hi")) == "hi"
    await world.drive(gw.send(None, "hi", room="r1@chatroom"))
    await world.drive(gw.send("wxid_x", Reply(text="**bold** news")))
    assert world.texts(to="wxid_x") == ["hi", "bold news"]
    assert world.texts(room="r1@chatroom") == ["hi"]
    with pytest.raises(ValueError, match="contact id"):
        await gw.send(None, "nobody")


async def test_a_failed_proactive_send_says_what_went_out(wechat: WeChatHarness) -> None:
    world = wechat.world
    gw = await wechat.gateway(replying("unused"), **OPEN)
    reply = Reply(
        text="the text goes", files=[OutboundFile(name="v.silk", kind="audio", data=b"#!SILK_V3")]
    )
    with pytest.raises(DeliveryFailed) as info:
        await world.drive(gw.send("wxid_x", reply))
    assert info.value.code == "bad_file"
    assert info.value.sent == "the text goes"
    assert world.texts(to="wxid_x") == ["the text goes"]


async def test_proactive_send_through_another_account(wechat: WeChatHarness) -> None:
    world = wechat.world
    world.add_account("b")
    gw = await wechat.gateway(replying("unused"), accounts={"a": {}, "b": {}}, **OPEN)
    await world.drive(gw.send("wxid_x", "from b", account="b"))
    await world.drive(gw.send("wxid_x", "from the default"))
    assert [(e.account, e.text) for e in outs(world, to="wxid_x")] == [
        ("b", "from b"),
        (gw.accounts.default_id, "from the default"),
    ]
    with pytest.raises(KeyError, match="not running"):
        await gw.send("wxid_x", "hi", account="zzz")


async def test_replies_leave_through_the_receiving_account(wechat: WeChatHarness) -> None:
    world = wechat.world
    world.add_account("b")

    async def agent(turn: AgentTurn) -> str:
        return f"this is {turn.account_id}"

    await wechat.gateway(agent, accounts={"a": {}, "b": {}}, **OPEN)
    await world.say("wxid_alice", "hello b", account="b")
    await world.say("wxid_bob", "hello a", account="a")
    assert [(e.account, e.sender, e.text) for e in outs(world, to="wxid_alice")] == [
        ("b", world.accounts["b"].wxid, "this is b")
    ]
    assert [(e.account, e.text) for e in outs(world, to="wxid_bob")] == [("a", "this is a")]
