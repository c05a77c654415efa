"""``agent: {provider: "webhook", url, secret}``: each turn POSTed, signed, to a real HTTP
endpoint (an aiohttp server), and what it answers sent back: JSON text and files, nothing,
or a server-sent events stream sent in blocks. Inbound media come as signed links the
gateway's API server serves for a short while."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from silent_servers import never_answers
from standardwebhooks import Webhook
from webhook_receiver import whsec

from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.assistants import ConfiguredAssistant
from wechat_sdk.config import ConfigError, parse_config
from wechat_sdk.gateway import Gateway
from wechat_sdk.http.media_links import MEDIA_LINK_TTL_S, MediaLinks

SECRET = whsec(7)
TOKEN = "agent-test-token-0123456789"

Answer = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]


class AgentEndpoint:
    """The assistant's side: checks each request's signature, records its turn, answers
    with ``answer``."""

    def __init__(self, answer: Answer, path: str = "/agent") -> None:
        self.answer = answer
        self.path = path
        self.turns: list[dict[str, Any]] = []
        self.ids: list[str] = []  # each request's webhook-id
        app = web.Application()
        app.router.add_post(path, self._handle)
        self.server = TestServer(app, host="127.0.0.1")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        turn = Webhook(SECRET).verify(body, dict(request.headers))  # raises when unsigned
        self.turns.append(turn)
        self.ids.append(request.headers["webhook-id"])
        return await self.answer(request, turn)


@pytest.fixture
async def endpoint() -> AsyncIterator[AgentEndpoint]:
    async def say_hi(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
        return web.json_response({"text": f"hook got: {turn['data']['text']}"})

    e = AgentEndpoint(say_hi)
    await e.server.start_server()
    yield e
    await e.server.close()


async def gateway(
    wechat: WeChatHarness,
    endpoint: AgentEndpoint,
    agent_keys: dict[str, Any] | None = None,
    **wechat_keys: Any,
) -> Gateway:
    """A gateway whose config's agent is the endpoint (with ``agent_keys``), with the API
    (for media links)."""
    world = wechat.world
    config = parse_config(
        json.dumps(
            {
                "channels": {
                    "wechat": {
                        "dmPolicy": "open",
                        "allowFrom": ["*"],
                        "api": {"port": 0, "token": TOKEN},
                        "agent": {
                            "provider": "webhook",
                            "url": str(endpoint.server.make_url(endpoint.path)),
                            "secret": SECRET,
                            **(agent_keys or {}),
                        },
                        **wechat_keys,
                    }
                }
            }
        )
    )
    links = MediaLinks(wechat.state_dir / "media" / "inbound", world.clock)
    gw = world.gateway(
        config,
        ConfiguredAssistant(media_link=links.link),
        state_dir=wechat.state_dir,
        media_links=links,
    )
    wechat.gateways.append(gw)
    await gw.start()
    await world.login()
    return gw


async def answered(wechat: WeChatHarness, gw: Gateway) -> None:
    """Until every turn was answered (the POST is real I/O: driven, not just idled)."""
    await wechat.world.drive(gw.wait_idle())
    await wechat.world.run_until_idle()


async def test_the_endpoint_answers_with_json_text(
    wechat: WeChatHarness, endpoint: AgentEndpoint
) -> None:
    gw = await gateway(wechat, endpoint)
    world = wechat.world
    await world.say("wxid_alice", "hello")
    await answered(wechat, gw)
    await world.say("wxid_alice", "and again")
    await answered(wechat, gw)
    assert world.texts(to="wxid_alice") == ["hook got: hello", "hook got: and again"]
    first, second = endpoint.turns
    assert first["type"] == "agent.turn"
    data = second["data"]
    assert (data["text"], data["sender"]["id"], data["chat"]["type"]) == (
        "and again",
        "wxid_alice",
        "direct",
    )
    assert [h["text"] for h in data["history"]] == ["hello", "hook got: hello"]


async def test_a_turn_asked_again_after_a_restart_has_the_same_webhook_id(
    wechat: WeChatHarness, endpoint: AgentEndpoint
) -> None:
    # the endpoint is still thinking when the gateway stops: the turn is kept and asked
    # again by the next process; a receiver that dedupes on webhook-id (Standard Webhooks)
    # sees it as the same turn, and a new message as a new one
    thinking = asyncio.Event()

    async def slow_once(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
        if turn["data"]["text"] == "slow" and not thinking.is_set():
            thinking.set()
            await asyncio.Event().wait()  # (cut by the stop)
        return web.json_response({"text": f"hook got: {turn['data']['text']}"})

    endpoint.answer = slow_once
    first = await gateway(wechat, endpoint)
    world = wechat.world
    await world.say("wxid_alice", "slow", settle=False)
    await world.drive(thinking.wait())
    await world.drive(first.close(grace_s=2))
    assert world.texts(to="wxid_alice") == []

    second = await gateway(wechat, endpoint)
    await answered(wechat, second)
    await world.say("wxid_alice", "and now")
    await answered(wechat, second)
    assert world.texts(to="wxid_alice") == ["hook got: slow", "hook got: and now"]
    asked, again, new = endpoint.ids
    assert again == asked
    assert new != asked
    assert all(re.fullmatch(r"msg_[0-9a-f]{32}", i) for i in endpoint.ids)
    turns = endpoint.turns
    assert turns[0]["data"]["messageId"] == turns[1]["data"]["messageId"]


async def test_nothing_and_files_and_a_failure(
    wechat: WeChatHarness, endpoint: AgentEndpoint
) -> None:
    async def answer(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
        text = turn["data"]["text"]
        if text == "quiet":
            return web.Response(status=204)
        if text == "file":
            data = base64.b64encode(b"report body").decode()
            return web.json_response({"files": [{"name": "report.txt", "data": data}]})
        return web.Response(status=500)

    endpoint.answer = answer
    gw = await gateway(wechat, endpoint, errorNotice="sorry, try later")
    world = wechat.world
    for text in ("quiet", "file", "boom"):
        await world.say("wxid_alice", text)
        await answered(wechat, gw)
    sent = world.sent(to="wxid_alice")
    assert [e.media["name"] if e.media else e.text for e in sent] == [
        "report.txt",
        "sorry, try later",
    ]


async def test_an_expected_agent_failure_is_one_line_with_its_reason_no_traceback(
    wechat: WeChatHarness, endpoint: AgentEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """An endpoint answering 500, or gone, was logged with a traceback of the gateway's
    own code (``agent failed on message ...`` and 30 lines), as if a bug."""

    async def refuse(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
        return web.Response(status=500)

    endpoint.answer = refuse
    gw = await gateway(wechat, endpoint, errorNotice="sorry, try later")
    caplog.set_level(logging.INFO, "wechat_sdk")
    await wechat.world.say("wxid_alice", "hi")
    await answered(wechat, gw)
    await endpoint.server.close()  # (gone: its port refuses connections)
    await wechat.world.say("wxid_alice", "still there?")
    await answered(wechat, gw)
    assert wechat.world.texts(to="wxid_alice") == ["sorry, try later"] * 2
    failed = [r for r in caplog.records if "agent failed on message" in r.getMessage()]
    assert [r.exc_info for r in failed] == [None, None], caplog.text
    first, second = (r.getMessage() for r in failed)
    assert "answered HTTP 500" in first and first.endswith("reason=agent_http_error"), first
    assert second.endswith("reason=agent_unreachable"), second
    assert "Traceback" not in caplog.text


async def test_an_unexpected_agent_exception_is_logged_with_its_traceback(
    wechat: WeChatHarness, caplog: pytest.LogCaptureFixture
) -> None:
    async def buggy(turn: Any) -> str:
        return {"a": 1}["b"]  # type: ignore[no-any-return]

    gw = await wechat.gateway(buggy, dmPolicy="open", allowFrom=["*"], errorNotice="oops")
    await wechat.world.say("wxid_alice", "hi")
    await wechat.world.drive(gw.wait_idle())
    assert wechat.world.texts(to="wxid_alice") == ["oops"]
    (failed,) = [r for r in caplog.records if "agent failed on message" in r.getMessage()]
    assert failed.levelno == logging.ERROR and failed.exc_info is not None


@contextlib.contextmanager
def gateway_logging(level: str) -> Iterator[None]:
    """``gateway run``'s logging (configure_logging) at ``level``; the loggers it sets
    are put back after."""
    from wechat_sdk.gateway.service import LIBRARY_LOGGERS, LOGGERS, configure_logging

    loggers = [logging.getLogger(name) for name in (*LOGGERS, *LIBRARY_LOGGERS)]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    configure_logging("human", level)
    try:
        yield
    finally:
        for lg, handlers, lg_level, propagate in saved:
            lg.handlers[:], lg.level, lg.propagate = handlers, lg_level, propagate


async def test_the_agents_url_path_never_shows_in_the_log(
    wechat: WeChatHarness, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """An n8n webhook's path is its key (``/webhook/<uuid>``): httpx's INFO line ``HTTP
    Request: POST <url>`` showed it, in a program logging at INFO."""
    token = "tok-5f0c2b9e1d7a4c3b8a6e"

    async def say_hi(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
        return web.json_response({"text": f"hook got: {turn['data']['text']}"})

    endpoint = AgentEndpoint(say_hi, path=f"/webhook/{token}")
    await endpoint.server.start_server()
    try:
        gw = await gateway(wechat, endpoint)
        caplog.set_level(logging.INFO)  # (a program's own logging.basicConfig(level=INFO))
        await wechat.world.say("wxid_alice", "one")
        await answered(wechat, gw)
        requests = [r.getMessage() for r in caplog.records if r.name == "httpx"]
        assert requests and "HTTP Request: POST" in requests[0], caplog.text
        # (aiohttp.access: the test's endpoint's own log, not the gateway's)
        logged = [r.getMessage() for r in caplog.records if r.name != "aiohttp.access"]
        assert not [line for line in logged if token in line]
        for level in ("info", "debug"):  # gateway run's logging
            with gateway_logging(level):
                await wechat.world.say("wxid_alice", level)
                await answered(wechat, gw)
            err = capsys.readouterr().err
            assert token not in err
            if level == "info":  # (the default: no library's request lines at all)
                assert "HTTP Request" not in err and "hook got" not in err, err
        assert wechat.world.texts(to="wxid_alice") == [
            f"hook got: {t}" for t in ("one", "info", "debug")
        ]
    finally:
        await endpoint.server.close()


async def test_an_answer_listing_many_files_sends_the_first_ten(
    wechat: WeChatHarness, endpoint: AgentEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """Every file of an answer is held whole until it is sent, and an endpoint a chat
    partner steers could list thousands (each up to mediaMaxMb)."""
    data = base64.b64encode(b"page").decode()

    async def answer(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
        files = [{"name": f"p{n}.txt", "data": data} for n in range(12)]
        return web.json_response({"text": "the pages", "files": files})

    endpoint.answer = answer
    gw = await gateway(wechat, endpoint)
    with caplog.at_level(logging.WARNING, "wechat_sdk"):
        await wechat.world.say("wxid_alice", "pages please")
        await answered(wechat, gw)
    sent = wechat.world.sent(to="wxid_alice")
    assert [e.media["name"] if e.media else e.text for e in sent] == [
        "the pages",
        *(f"p{n}.txt" for n in range(10)),
    ]
    assert "has 12 files: the first 10 go" in caplog.text


@pytest.mark.parametrize("length", [{}, {"durationS": 0}])
async def test_a_voice_without_its_length_fails_the_answer_before_its_text_goes(
    wechat: WeChatHarness, endpoint: AgentEndpoint, length: dict[str, Any]
) -> None:
    """The text went out, then the voice failed (``needs duration_s``): the user got half
    an answer, where the HTTP API checks its files before any text goes."""
    voice = {"name": "note.silk", "kind": "audio", "data": base64.b64encode(b"v").decode()}

    async def answer(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
        return web.json_response({"text": "listen:", "files": [{**voice, **length}]})

    endpoint.answer = answer
    gw = await gateway(wechat, endpoint, errorNotice="sorry, try later")
    await wechat.world.say("wxid_alice", "a voice please")
    await answered(wechat, gw)
    assert [e.text for e in wechat.world.sent(to="wxid_alice")] == ["sorry, try later"]
    error = gw.status()[0].last_error or ""
    assert "files[0] of the agent's answer" in error and "durationS" in error, error


async def test_a_files_data_in_lines_of_base64_is_sent(
    wechat: WeChatHarness, endpoint: AgentEndpoint
) -> None:
    """Base64 broken into lines (as MIME encoders, Java's among them, and ``base64`` write
    it) failed the whole answer as "not valid base64"."""
    report = bytes(range(256)) * 2
    one_line = base64.b64encode(report).decode()
    wrapped = "\r\n".join(one_line[i : i + 76] for i in range(0, len(one_line), 76))

    async def answer(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
        file = {"name": "report.bin", "data": wrapped}
        return web.json_response({"text": "the report", "files": [file]})

    endpoint.answer = answer
    gw = await gateway(wechat, endpoint, errorNotice="sorry, try later")
    await wechat.world.say("wxid_alice", "report please")
    await answered(wechat, gw)
    sent = wechat.world.sent(to="wxid_alice")
    assert [e.media["size"] if e.media else e.text for e in sent] == ["the report", len(report)]


async def test_a_streamed_answer_goes_out_in_blocks(
    wechat: WeChatHarness, endpoint: AgentEndpoint
) -> None:
    paragraphs = [f"Paragraph {n}. " + "words " * 40 for n in range(3)]

    async def stream(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for n, p in enumerate(paragraphs):
            piece = p + "\n\n" if n < len(paragraphs) - 1 else p
            data = json.dumps({"text": piece}) if n % 2 else piece.replace("\n", "\\n")
            if n % 2 == 0:  # plain data lines: a newline is two data lines
                lines = "".join(f"data: {line}\n" for line in piece.split("\n"))
                await response.write(f"{lines}\n".encode())
            else:
                await response.write(f"data: {data}\n\n".encode())
        await response.write(b"event: done\ndata: \n\n")
        return response

    endpoint.answer = stream
    gw = await gateway(wechat, endpoint, draftChunk={"minChars": 50, "maxChars": 300})
    world = wechat.world
    await world.say("wxid_alice", "tell me")
    await answered(wechat, gw)
    sent = world.texts(to="wxid_alice")
    assert len(sent) >= 2  # blocks, not one message
    assert " ".join(s.strip() for s in sent).split() == " ".join(paragraphs).split()


async def test_a_done_data_ends_a_stream_and_textless_json_is_said_not_sent(
    wechat: WeChatHarness, endpoint: AgentEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """An OpenAI-style ``data: [DONE]`` went to the user as the text "[DONE]", and JSON
    events without ``text`` (a Dify stream's ``answer``) were skipped without a word."""

    async def stream(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for data in ('{"text": "Hello"}', '{"answer": " there"}', '{"answer": "!"}', "[DONE]"):
            await response.write(f"data: {data}\n\n".encode())
        return response

    endpoint.answer = stream
    gw = await gateway(wechat, endpoint)
    await wechat.world.say("wxid_alice", "hi")
    await answered(wechat, gw)
    assert wechat.world.texts(to="wxid_alice") == ["Hello"]
    said = [r.getMessage() for r in caplog.records if "reason=textless_event" in r.getMessage()]
    assert len(said) == 1


async def test_an_answer_with_neither_text_nor_files_but_other_keys_is_a_failure_naming_them(
    wechat: WeChatHarness, endpoint: AgentEndpoint
) -> None:
    """An n8n agent's ``{"output": ...}`` or Dify's ``{"answer": ...}`` was taken for
    "nothing to say": the bot stayed silent and no line said why. ``{}`` still is nothing."""

    async def answer(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
        if turn["data"]["text"] == "quiet":
            return web.json_response({})
        return web.json_response({"output": "Hello from n8n", "sessionId": "s-1"})

    endpoint.answer = answer
    gw = await gateway(wechat, endpoint, errorNotice="sorry, try later")
    for text in ("quiet", "hi"):
        await wechat.world.say("wxid_alice", text)
        await answered(wechat, gw)
    assert wechat.world.texts(to="wxid_alice") == ["sorry, try later"]
    error = gw.status()[0].last_error or ""
    assert "WebhookAgentError" in error and "output, sessionId" in error, error
    assert '"text"' in error


async def test_media_come_as_short_lived_signed_links(
    wechat: WeChatHarness, endpoint: AgentEndpoint
) -> None:
    gw = await gateway(wechat, endpoint)
    world = wechat.world
    await world.say("wxid_alice", "", media={"kind": "image", "name": "cat.png", "size": 2048})
    await answered(wechat, gw)
    (turn,) = endpoint.turns
    (item,) = turn["data"]["media"]
    url = item["url"]
    assert gw.http is not None and gw.http.api_url and url.startswith(gw.http.api_url + "/media/")
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:  # no bearer token: the signature is the key
            assert response.status == 200
            assert len(await response.read()) == 2048
        for bad in (url.replace("sig=", "sig=0"), url.replace("cat", "dog")):
            async with http.get(bad) as response:
                assert response.status == 404
        await world.advance(MEDIA_LINK_TTL_S + 1)
        async with http.get(url) as response:
            assert response.status == 404  # expired


async def test_a_media_link_serves_the_type_sniffed_from_the_bytes_never_the_names(
    wechat: WeChatHarness, endpoint: AgentEndpoint
) -> None:
    # a peer's "page.html" was served as text/html (and "pic.svg" as image/svg+xml), by its
    # name: opened in a browser, a page the peer wrote ran on the gateway's API origin
    gw = await gateway(wechat, endpoint)
    world = wechat.world
    for name in ("page.html", "pic.svg"):
        await world.say("wxid_alice", "", media={"kind": "file", "name": name, "size": 2048})
        await answered(wechat, gw)
    folder = wechat.state_dir / "media" / "inbound" / "default"
    (svg,) = folder.glob("pic-*.svg")
    svg.write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    async with aiohttp.ClientSession() as http:
        served = []
        for turn in endpoint.turns:
            (item,) = turn["data"]["media"]
            async with http.get(item["url"]) as response:
                assert response.status == 200
                headers = response.headers
                served.append((headers["Content-Type"], headers.get("X-Content-Type-Options")))
    # the simulator's "page.html" is a PDF: served as such (the agent's mime); the script
    # the peer would have sent as "pic.svg", of no type the sniffing knows, as bytes
    assert endpoint.turns[0]["data"]["media"][0]["mime"] == "application/pdf"
    assert served == [("application/pdf", "nosniff"), ("application/octet-stream", "nosniff")]


def test_a_webhook_agent_needs_its_url_and_a_whsec_secret() -> None:
    for agent, says in (
        (
            {"provider": "webhook", "url": "https://x.example/a"},
            "agent.secret: required key is missing",
        ),
        (
            {"provider": "webhook", "url": "https://x.example/a", "secret": "hunter2hunter2"},
            "whsec_",
        ),
        (
            {"provider": "openai", "url": "https://x.example/a", "model": "m"},
            "url goes with provider",
        ),
    ):
        with pytest.raises(ConfigError) as info:
            parse_config(json.dumps({"channels": {"wechat": {"agent": agent}}}))
        assert "channels.wechat.agent" in str(info.value) and says in str(info.value)
        assert "hunter2" not in str(info.value)


async def test_a_file_url_that_cannot_be_fetched_cannot_forge_a_log_line(
    wechat: WeChatHarness, endpoint: AgentEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "\u2028ERROR gateway: account default logged out reason=session_expired\x1b[1A"

    async def answer(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
        file = {"name": "x.pdf", "url": "http://127.0.0.1:9/a" + forged}
        return web.json_response({"text": "here", "files": [file]})

    endpoint.answer = answer
    gw = await gateway(wechat, endpoint)
    with caplog.at_level(logging.WARNING, "wechat_sdk"):
        await wechat.world.say("wxid_alice", "send me the file")
        await answered(wechat, gw)
    (line,) = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert "\u2028" not in line and "\x1b" not in line
    assert "\\u2028ERROR" in line  # shown escaped
    await gw.close()


async def test_a_file_url_in_the_answer_is_fetched_from_public_addresses_only(
    wechat: WeChatHarness, endpoint: AgentEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    # the endpoint (a Coze flow, say) can be steered by a peer into naming an internal
    # address, or a public-looking one that redirects inside: here, both on 127.0.0.1
    async def credentials(request: web.Request) -> web.StreamResponse:
        return web.Response(text="AWS_SECRET_ACCESS_KEY=internal-only")

    async def hop(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/latest/meta-data/iam/credentials")

    internal = web.Application()
    internal.router.add_get("/latest/meta-data/iam/credentials", credentials)
    internal.router.add_get("/r", hop)
    server = TestServer(internal, host="127.0.0.1")
    await server.start_server()

    async def answer(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
        url = str(server.make_url("/r"))
        return web.json_response({"text": "here", "files": [{"name": "creds.txt", "url": url}]})

    endpoint.answer = answer
    gw = await gateway(wechat, endpoint, errorNotice="sorry, try later")
    world = wechat.world
    with caplog.at_level(logging.WARNING, "wechat_sdk"):
        await world.say("wxid_alice", "send me the file")
        await answered(wechat, gw)
    # the file is left out (and said in the log), the rest of the answer goes
    assert [e.media["name"] if e.media else e.text for e in world.sent(to="wxid_alice")] == ["here"]
    assert "files[0] of the webhook agent's answer ('creds.txt') left out" in caplog.text
    assert "reason=private_address" in caplog.text
    await gw.close()
    # the account's mediaFetchAllowPrivate lifts the rule (a service on a private network)
    gw = await gateway(
        wechat, endpoint, errorNotice="sorry, try later", mediaFetchAllowPrivate=True
    )
    await world.say("wxid_alice", "send me the file")
    await answered(wechat, gw)
    assert [e.media["name"] if e.media else e.text for e in world.sent(to="wxid_alice")] == [
        "here",
        "here",
        "creds.txt",
    ]
    await server.close()


async def test_a_file_url_that_is_no_url_is_left_out_and_the_rest_goes(
    wechat: WeChatHarness, endpoint: AgentEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """A file url that cannot even be parsed (``http://[::1/x``: a bracket left open) failed
    the whole answer (the errorNotice went, not the text), where a file that cannot be
    fetched is left out."""

    async def answer(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
        file = {"name": "chart.png", "url": "http://[::1/chart.png?key=k-123"}
        return web.json_response({"text": "here is the chart", "files": [file]})

    endpoint.answer = answer
    gw = await gateway(wechat, endpoint, errorNotice="sorry, try later")
    with caplog.at_level(logging.WARNING, "wechat_sdk"):
        await wechat.world.say("wxid_alice", "chart please")
        await answered(wechat, gw)
    assert wechat.world.texts(to="wxid_alice") == ["here is the chart"]
    (line,) = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert "files[0] of the webhook agent's answer ('chart.png')" in line
    assert "reason=fetch_failed" in line and "k-123" not in line


async def test_the_files_of_an_answer_are_fetched_within_agent_timeout(
    wechat: WeChatHarness, endpoint: AgentEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """``timeout`` bounds the whole answer: a file the answer names on a server that never
    answers held the turn (and the conversation's next messages) up to 30 s per file,
    past it. The text goes; the file, out of time, is left out, and the log says why."""
    async with never_answers() as port:

        async def answer(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
            file = {"name": "chart.png", "url": f"http://127.0.0.1:{port}/chart.png"}
            return web.json_response({"text": "here is the chart", "files": [file]})

        endpoint.answer = answer
        gw = await gateway(
            wechat,
            endpoint,
            {"timeout": 1.5},
            errorNotice="sorry, try later",
            mediaFetchAllowPrivate=True,
        )
        with caplog.at_level(logging.WARNING, "wechat_sdk"):
            await wechat.world.say("wxid_alice", "chart please")
            async with asyncio.timeout(20):
                await answered(wechat, gw)
    assert [e.media["name"] if e.media else e.text for e in wechat.world.sent()] == [
        "here is the chart"
    ]
    (line,) = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert "files[0] of the webhook agent's answer ('chart.png') left out" in line
    assert "agent.timeout (1.5 s)" in line and "reason=fetch_failed" in line


async def test_a_message_with_half_an_emoji_still_reaches_the_endpoint(
    wechat: WeChatHarness, endpoint: AgentEndpoint
) -> None:
    # a lone surrogate (half an emoji, from a cut JSON escape) in the text: the turn goes
    # out as UTF-8 all the same, with a ? in its place
    gw = await gateway(wechat, endpoint)
    await wechat.world.say("wxid_alice", "half \ud83d")
    await answered(wechat, gw)
    assert wechat.world.texts(to="wxid_alice") == ["hook got: half ?"]


async def test_the_agents_headers_are_sent(wechat: WeChatHarness, endpoint: AgentEndpoint) -> None:
    async def answer(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Bearer n8n-header-auth":
            return web.json_response({"message": "Authorization data is wrong!"}, status=403)
        return web.json_response({"text": "ok"})

    endpoint.answer = answer
    gw = await gateway(wechat, endpoint, {"headers": {"Authorization": "Bearer n8n-header-auth"}})
    await wechat.world.say("wxid_alice", "hi")
    await answered(wechat, gw)
    assert wechat.world.texts(to="wxid_alice") == ["ok"]


async def test_a_stream_of_keep_alives_ends_at_agent_timeout(
    wechat: WeChatHarness, endpoint: AgentEndpoint
) -> None:
    async def stream(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: thinking...\n\n")
        for _ in range(200):  # keep-alives well within httpx's read timeout, for 10 s: far
            # past agent.timeout (2 s of waiting), which they must not extend
            await asyncio.sleep(0.05)
            await response.write(b": keep-alive\n\n")
        await response.write(b"data: done thinking\n\nevent: done\ndata: \n\n")
        return response

    endpoint.answer = stream
    gw = await gateway(wechat, endpoint, {"timeout": 2}, errorNotice="sorry, try later")
    await wechat.world.say("wxid_alice", "hi")
    await answered(wechat, gw)
    # what went out stays; the failure notice follows, once
    assert wechat.world.texts(to="wxid_alice") == ["thinking...", "sorry, try later"]


async def test_an_answer_over_its_size_cap_is_a_failure_not_read_whole(
    wechat: WeChatHarness, endpoint: AgentEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """An answer is read up to twice mediaMaxMb and 1 MiB (room for a file at the cap, as
    base64): a bigger one (an endpoint gone wrong) is a failure, never held in memory
    whole, nor sent."""

    async def huge(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"text": "')
        with contextlib.suppress(ConnectionError):
            for _ in range(64):  # 4 MiB, past 2 x 0.5 MiB + 1 MiB
                await response.write(b"a" * 65536)
            await response.write(b'"}')
        return response

    endpoint.answer = huge
    gw = await gateway(wechat, endpoint, mediaMaxMb=0.5, errorNotice="sorry, try later")
    await wechat.world.say("wxid_alice", "hi")
    await answered(wechat, gw)
    assert wechat.world.texts(to="wxid_alice") == ["sorry, try later"]
    assert "over 2097152 bytes" in caplog.text


async def test_a_streamed_event_over_the_size_cap_is_a_failure_not_buffered(
    wechat: WeChatHarness, endpoint: AgentEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream may be long, but no one event (held until its blank line) may be bigger
    than a JSON answer may."""

    async def huge(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            await response.write(b"data: first piece\n\n")
            for _ in range(64):  # one event of 4 MiB, past 2 x 0.5 MiB + 1 MiB
                await response.write(b"data: " + b"a" * 65536 + b"\n")
            await response.write(b"\nevent: done\ndata: \n\n")
        return response

    endpoint.answer = huge
    gw = await gateway(wechat, endpoint, mediaMaxMb=0.5, errorNotice="sorry, try later")
    await wechat.world.say("wxid_alice", "hi")
    await answered(wechat, gw)
    assert wechat.world.texts(to="wxid_alice") == ["first piece", "sorry, try later"]
    assert "over 2097152 bytes" in caplog.text


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ({"files": 5}, '"files" of the agent\'s answer must be a list'),
        ({"text": "t", "files": {"name": "a.txt", "data": "aGk="}}, '"files" of the agent'),
        ({"files": [{"name": "a.txt", "data": "aGk=", "mime": 5}]}, "mime must be a string"),
        ({"files": [{"name": "a.txt", "url": 5}]}, "url must be a string"),
        ({"files": [{"name": "a.txt", "data": 5}]}, "data is not valid base64"),
        *(
            (
                {"files": [{"name": "v.silk", "data": "aGk=", "kind": "audio", "durationS": d}]},
                "durationS must be a finite number of seconds, 0 or more",
            )
            # (NaN made the voice file fail on a Wechaty puppet: it cannot be a whole number)
            for d in (True, float("nan"), float("inf"), -1)
        ),
    ],
)
async def test_an_answer_of_the_wrong_shape_is_a_failure_saying_what_is_wrong(
    wechat: WeChatHarness, endpoint: AgentEndpoint, answer: dict[str, Any], words: str
) -> None:
    async def odd(request: web.Request, turn: dict[str, Any]) -> web.StreamResponse:
        return web.json_response(answer)

    endpoint.answer = odd
    gw = await gateway(wechat, endpoint, errorNotice="sorry, try later")
    await wechat.world.say("wxid_alice", "hi")
    await answered(wechat, gw)
    assert wechat.world.texts(to="wxid_alice") == ["sorry, try later"]
    assert [e for e in wechat.world.sent(to="wxid_alice") if e.media] == []
    error = gw.status()[0].last_error or ""
    assert "WebhookAgentError" in error and words in error, error
