"""The assistant against servers that answer oddly, end to end on the simulator: a real
local HTTP server whose answers each test writes (keep-alive comments, a tool's name in
every piece, a stream that ends early, a web page, one JSON completion, an error that
repeats the key), read through the official client like any other."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.assistants import ConfiguredAssistant
from wechat_sdk.gateway import Gateway

OPEN: dict[str, Any] = {"dmPolicy": "open", "allowFrom": ["*"], "pacing": False}
KEY = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
NOTICE = "The assistant is unavailable right now."
#: the longest a test's server keeps a request waiting, when the SDK does not end it
SERVER_WAITS_S = 10.0

#: the answer to a request, given the JSON bodies of every request so far (its own last)
Answer = Callable[[web.Request, list[dict[str, Any]]], Awaitable[web.StreamResponse]]


class ModelServer:
    """An OpenAI-compatible endpoint on 127.0.0.1 answering with ``answer(request,
    bodies)``; ``requests``: each request's JSON body, in order."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None

    async def serve(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.json())
        return await self.answer(request, self.requests)


def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
    """One chunk of a streamed answer, as a server-sent event."""
    data = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "test-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(data)}\n\n".encode()


async def streaming(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    return response


async def finished(response: web.StreamResponse, text: str = "") -> web.StreamResponse:
    """``text`` (if any), then the end of the answer as a complete stream has it."""
    if text:
        await response.write(event({"content": text}))
    await response.write(event({}, "stop"))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def keep_alive(response: web.StreamResponse) -> None:
    """SSE comments only (as OpenRouter sends while its model is busy), for a while."""
    for _ in range(int(SERVER_WAITS_S / 0.1)):
        await response.write(b": OPENROUTER PROCESSING\n\n")
        await asyncio.sleep(0.1)


#: makes a server answering with the given answer (each closed at the test's end)
Servers = Callable[[Answer], ModelServer]


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    made: list[ModelServer] = []

    def make(answer: Answer) -> ModelServer:
        made.append(ModelServer(answer))
        return made[-1]

    yield make
    for server in made:
        await server.close()


async def calls_asked(response: web.StreamResponse) -> web.StreamResponse:
    """The end of a streamed answer that asked for tool calls."""
    await response.write(event({}, "tool_calls"))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def forecast_tool(gw: Gateway, answer: str = "sunny") -> list[str]:
    """A ``forecast(city)`` tool on ``gw`` answering ``answer`` (``{city}`` filled); the
    cities it was run for."""
    ran: list[str] = []

    def forecast(city: str) -> str:
        """The forecast for a city."""
        ran.append(city)
        return answer.format(city=city)

    gw.tools.register("forecast", forecast)
    return ran


async def start(
    wechat: WeChatHarness, server: ModelServer, agent: dict[str, Any] | None = None
) -> Gateway:
    block: dict[str, Any] = {
        "baseUrl": await server.serve(),
        "apiKey": KEY,
        "model": "test-model",
        "maxRetries": 1,
        "failureText": NOTICE,
        **(agent or {}),
    }
    keys = {**OPEN, "agent": block}
    return await wechat.gateway(ConfiguredAssistant(), {"channels": {"wechat": keys}})


async def say(wechat: WeChatHarness, gw: Gateway, sender: str, text: str) -> None:
    """``text`` from ``sender``, and every turn answered (the model answers in real time)."""
    await wechat.world.say(sender, text)
    task = asyncio.ensure_future(gw.wait_idle())
    async with asyncio.timeout(30):
        while not task.done():
            await wechat.world.run_until_idle()
            await asyncio.sleep(0.005)


def tool_replies(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


# ---------------------------------------------------------------- agent.timeout


async def test_a_request_kept_open_by_keep_alives_times_out_and_is_asked_again(
    wechat: WeChatHarness, servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    async def answer(request: web.Request, bodies: list[dict[str, Any]]) -> web.StreamResponse:
        response = await streaming(request)
        if len(bodies) == 1:
            await keep_alive(response)
            return await finished(response, "too late")
        return await finished(response, "All good.")

    server = servers(answer)
    gw = await start(wechat, server, {"timeout": 1})
    caplog.set_level(logging.INFO, "wechat_sdk")
    await say(wechat, gw, "wxid_alice", "hi")
    assert wechat.world.texts(to="wxid_alice") == ["All good."]
    assert len(server.requests) == 2
    assert "no complete answer within 1 s (agent.timeout)); asking again" in caplog.text


async def test_an_answer_trickling_past_the_timeout_keeps_its_half_and_gets_the_notice(
    wechat: WeChatHarness, servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    async def answer(request: web.Request, bodies: list[dict[str, Any]]) -> web.StreamResponse:
        response = await streaming(request)
        await response.write(event({"content": "The first half of the answer, "}))
        await keep_alive(response)
        return await finished(response, "and the rest of it.")

    server = servers(answer)
    gw = await start(wechat, server, {"timeout": 1})
    caplog.set_level(logging.INFO, "wechat_sdk")
    await say(wechat, gw, "wxid_alice", "hi")
    sent = "\n".join(wechat.world.texts(to="wxid_alice"))
    assert sent.count("The first half") == 1 and "the rest" not in sent
    assert sent.count(NOTICE) == 1 and sent.rstrip().endswith(NOTICE)
    assert len(server.requests) == 1  # text went out: asking again would repeat it
    assert "reason=model_timeout" in caplog.text


async def test_the_gateways_own_time_between_pieces_does_not_count_against_the_model(
    servers: Servers,
) -> None:
    """The model answers at once, whole; the reader takes its time between pieces (the
    gateway sends each block, paced, before it reads on): ``agent.timeout`` counts the
    waits on the server only, so the answer is complete, not a timeout."""
    from wechat_sdk.agent import AgentTurn
    from wechat_sdk.assistants.offered_tools import TurnTools
    from wechat_sdk.assistants.openai_chat import ChatModel
    from wechat_sdk.config.assistant import AgentConfig

    async def answer(request: web.Request, bodies: list[dict[str, Any]]) -> web.StreamResponse:
        response = await streaming(request)
        for i in range(4):
            await response.write(event({"content": f"part {i}. "}))
        return await finished(response)

    server = servers(answer)
    config = AgentConfig.model_validate(
        {"baseUrl": await server.serve(), "apiKey": KEY, "model": "m", "timeout": 1}
    )
    model = ChatModel(config)
    turn = AgentTurn(account_id="a", chat_type="dm", sender_id="u", sender_name="U", text="hi")
    pieces = []
    try:
        messages = [{"role": "user", "content": "hi"}]
        async for piece in model.answer(turn, messages, TurnTools([], account_id="a", where="dm")):
            pieces.append(piece)
            await asyncio.sleep(0.4)  # (four pieces: longer than agent.timeout in all)
    finally:
        await model.aclose()
    assert "".join(pieces) == "part 0. part 1. part 2. part 3. "
    assert len(server.requests) == 1


# ---------------------------------------------------------------- a tool's name


def calling_forecast(names: list[str]) -> Answer:
    """A model that calls ``forecast(city="Paris")`` in as many pieces as ``names``, each
    piece's name field from ``names`` ("": none), then answers with what the tool said."""

    async def answer(request: web.Request, bodies: list[dict[str, Any]]) -> web.StreamResponse:
        response = await streaming(request)
        replies = tool_replies(bodies[-1])
        if replies:
            return await finished(response, f"tool said: {replies[-1]}")
        raw = json.dumps({"city": "Paris"})
        size = -(-len(raw) // len(names))  # (rounded up: every piece has some)
        for i, name in enumerate(names):
            function = {"arguments": raw[i * size : (i + 1) * size]}
            if name:
                function["name"] = name
            piece: dict[str, Any] = {"index": 0, "function": function}
            if i == 0:
                piece |= {"id": "call_1", "type": "function"}
            await response.write(event({"tool_calls": [piece]}))
        return await calls_asked(response)

    return answer


@pytest.mark.parametrize(
    "names",
    [
        pytest.param(["forecast"] * 4, id="the-name-in-every-piece"),
        pytest.param(["fore", "cast", "", ""], id="the-name-split-over-pieces"),
        pytest.param(["forecast", "", "", ""], id="the-name-in-the-first-piece"),
    ],
)
async def test_a_tool_call_streamed_in_pieces_calls_the_tool_by_its_name(
    wechat: WeChatHarness, servers: Servers, names: list[str]
) -> None:
    server = servers(calling_forecast(names))
    gw = await start(wechat, server)
    ran = forecast_tool(gw)
    await say(wechat, gw, "wxid_alice", "Paris?")
    assert ran == ["Paris"]
    assert tool_replies(server.requests[1]) == ["sunny"]
    assert wechat.world.texts(to="wxid_alice") == ["tool said: sunny"]


async def test_parallel_calls_all_numbered_0_are_told_apart_by_their_ids(
    wechat: WeChatHarness, servers: Servers
) -> None:
    """Some OpenAI-compatible servers give every parallel call the index 0: a piece with
    a new id begins a new call (they were joined into one call, and refused)."""

    async def answer(request: web.Request, bodies: list[dict[str, Any]]) -> web.StreamResponse:
        response = await streaming(request)
        replies = tool_replies(bodies[-1])
        if replies:
            return await finished(response, " / ".join(replies))
        for n, city in enumerate(["Paris", "Oslo"]):
            head = {"index": 0, "id": f"call_{n}", "type": "function"}
            await response.write(
                event({"tool_calls": [{**head, "function": {"name": "forecast"}}]})
            )
            arguments = json.dumps({"city": city})
            for part in (arguments[:5], arguments[5:]):
                piece = {"index": 0, "function": {"arguments": part}}
                await response.write(event({"tool_calls": [piece]}))
        return await calls_asked(response)

    server = servers(answer)
    gw = await start(wechat, server)
    ran = forecast_tool(gw, "sunny in {city}")
    await say(wechat, gw, "wxid_alice", "Paris and Oslo?")
    assert ran == ["Paris", "Oslo"]
    assert wechat.world.texts(to="wxid_alice") == ["sunny in Paris / sunny in Oslo"]


async def test_an_answer_asking_for_too_many_tool_calls_runs_the_first_16_only(
    wechat: WeChatHarness, servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    """40 calls in one answer (a model in a loop, a prompt injected by a group member):
    the first 16 run, the model is told of each of the others that it did not."""

    async def answer(request: web.Request, bodies: list[dict[str, Any]]) -> web.StreamResponse:
        response = await streaming(request)
        replies = tool_replies(bodies[-1])
        if replies:
            ran = sum(r == "sunny" for r in replies)
            return await finished(response, f"{ran} ran, {len(replies) - ran} not")
        for n in range(40):
            head = {"index": n, "id": f"call_{n}", "type": "function"}
            function = {"name": "forecast", "arguments": json.dumps({"city": f"c{n}"})}
            await response.write(event({"tool_calls": [{**head, "function": function}]}))
        return await calls_asked(response)

    server = servers(answer)
    gw = await start(wechat, server)
    ran = forecast_tool(gw)
    caplog.set_level(logging.INFO, "wechat_sdk")
    await say(wechat, gw, "wxid_alice", "everywhere?")
    assert ran == [f"c{n}" for n in range(16)]
    replies = tool_replies(server.requests[1])
    assert len(replies) == 40  # every call answered, as the API wants
    assert all("not run: at most 16 tool calls" in r for r in replies[16:])
    assert "reason=tool_calls_over" in caplog.text
    assert wechat.world.texts(to="wxid_alice") == ["16 ran, 24 not"]


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        pytest.param("Let me look that up.", ["Let me look that up."], id="with-text"),
        pytest.param("", [NOTICE], id="without-text"),
    ],
)
async def test_a_call_when_no_tool_is_offered_is_refused_and_its_text_still_said(
    wechat: WeChatHarness,
    servers: Servers,
    caplog: pytest.LogCaptureFixture,
    text: str,
    sent: list[str],
) -> None:
    """Some OpenAI-compatible servers invent a call when offered no tools: it is refused
    as any call to a tool not offered, the text said with it is the answer, and an answer
    that is only the call gets the notice, saying why (not "after 0 rounds")."""

    async def answer(request: web.Request, bodies: list[dict[str, Any]]) -> web.StreamResponse:
        response = await streaming(request)
        if text:
            await response.write(event({"content": text}))
        head = {"index": 0, "id": "call_1", "type": "function"}
        function = {"name": "web_search", "arguments": '{"q": "weather"}'}
        await response.write(event({"tool_calls": [{**head, "function": function}]}))
        return await calls_asked(response)

    server = servers(answer)
    gw = await start(wechat, server)
    caplog.set_level(logging.INFO, "wechat_sdk")
    await say(wechat, gw, "wxid_alice", "weather?")
    assert "tools" not in server.requests[0]
    assert len(server.requests) == 1  # (a history with the call would need its tool)
    assert wechat.world.texts(to="wxid_alice") == sent
    assert "tool refused: 'web_search' is not offered here" in caplog.text
    assert "reason=tool_not_allowed" in caplog.text
    assert "tool_rounds_exhausted" not in caplog.text and "round(s)" not in caplog.text
    (status,) = gw.status()
    if text:
        assert status.last_error is None
    else:
        assert "reason=tool_not_offered" in caplog.text
        assert status.last_error is not None and "no tool is offered" in status.last_error


# ---------------------------------------------------------------- a stream that ends early


async def test_a_stream_ending_without_a_finish_reason_sends_the_half_and_the_notice_once(
    wechat: WeChatHarness, servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    async def answer(request: web.Request, bodies: list[dict[str, Any]]) -> web.StreamResponse:
        response = await streaming(request)
        await response.write(event({"role": "assistant", "content": ""}))
        for piece in ["The first half of the answer ", "is here, and the"]:
            await response.write(event({"content": piece}))
        await response.write_eof()  # the body ends: no finish_reason, no [DONE]
        return response

    server = servers(answer)
    gw = await start(wechat, server)
    await say(wechat, gw, "wxid_alice", "hi")
    sent = "\n".join(wechat.world.texts(to="wxid_alice"))
    assert sent.count("The first half") == 1
    assert sent.count(NOTICE) == 1 and sent.rstrip().endswith(NOTICE)
    assert len(server.requests) == 1  # text went out: asking again would repeat it
    assert "(no finish_reason) reason=model_stream_cut" in caplog.text


async def test_a_stream_ending_early_before_any_text_is_asked_again(
    wechat: WeChatHarness, servers: Servers
) -> None:
    async def answer(request: web.Request, bodies: list[dict[str, Any]]) -> web.StreamResponse:
        response = await streaming(request)
        if len(bodies) == 1:
            await response.write(event({"role": "assistant", "content": ""}))
            await response.write_eof()
            return response
        return await finished(response, "All good.")

    server = servers(answer)
    gw = await start(wechat, server)
    await say(wechat, gw, "wxid_alice", "hi")
    assert wechat.world.texts(to="wxid_alice") == ["All good."]
    assert len(server.requests) == 2


async def test_events_streamed_under_another_content_type_are_read_as_a_stream(
    wechat: WeChatHarness, servers: Servers
) -> None:
    """A lax server streams its events as ``text/plain``: read as the SDK reads them."""

    async def answer(request: web.Request, bodies: list[dict[str, Any]]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        return await finished(response, "All good.")

    server = servers(answer)
    gw = await start(wechat, server)
    await say(wechat, gw, "wxid_alice", "hi")
    assert wechat.world.texts(to="wxid_alice") == ["All good."]


# ---------------------------------------------------------------- not a stream, or empty


async def a_web_page(request: web.Request, bodies: list[dict[str, Any]]) -> web.StreamResponse:
    return web.Response(
        text="<html><body>Welcome to the dashboard</body></html>", content_type="text/html"
    )


async def one_json_completion(
    request: web.Request, bodies: list[dict[str, Any]]
) -> web.StreamResponse:
    message = {"role": "assistant", "content": "Hello from a server that does not stream"}
    return web.json_response(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "test-model",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        }
    )


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        pytest.param(
            a_web_page,
            "answered text/html, not a stream: is baseUrl the API's address",
            id="a-web-page",
        ),
        pytest.param(
            one_json_completion,
            "answered application/json, not a stream: the server ignores stream: true",
            id="one-json-completion",
        ),
    ],
)
async def test_an_answer_that_is_not_a_stream_is_a_failure_saying_what_to_change(
    wechat: WeChatHarness,
    servers: Servers,
    caplog: pytest.LogCaptureFixture,
    answer: Answer,
    said: str,
) -> None:
    server = servers(answer)
    gw = await start(wechat, server)
    await say(wechat, gw, "wxid_alice", "hi")
    assert wechat.world.texts(to="wxid_alice") == [NOTICE]
    assert len(server.requests) == 1  # asked again, the answer would be the same
    assert said in caplog.text and "reason=model_not_a_stream" in caplog.text
    (status,) = gw.status()
    assert status.last_error is not None and said in status.last_error


async def test_an_empty_finished_answer_is_silent_with_one_warning(
    wechat: WeChatHarness, servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    async def answer(request: web.Request, bodies: list[dict[str, Any]]) -> web.StreamResponse:
        response = await streaming(request)
        await response.write(event({"role": "assistant", "content": ""}))
        return await finished(response)

    server = servers(answer)
    gw = await start(wechat, server)
    caplog.set_level(logging.WARNING, "wechat_sdk")
    await say(wechat, gw, "wxid_alice", "hi")
    assert wechat.world.texts(to="wxid_alice") == []
    warnings = [r.getMessage() for r in caplog.records if r.name == "wechat_sdk.assistant"]
    assert warnings == [
        "the model's answer was empty (finish_reason=stop): nothing is sent "
        "reason=model_empty_answer"
    ]
    assert gw.status()[0].last_error is None


# ---------------------------------------------------------------- the key


async def test_the_api_key_never_shows_even_where_an_error_is_cut(
    wechat: WeChatHarness, servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    async def answer(request: web.Request, bodies: list[dict[str, Any]]) -> web.StreamResponse:
        # a proxy reporting the request it could not pass on, its headers included: the
        # key lies across the 300th character, where an error's text is cut
        message = "upstream rejected the request; " + "h" * 205
        message += f" authorization: {request.headers['authorization']}"
        response = await streaming(request)
        await response.write(f"data: {json.dumps({'error': {'message': message}})}\n\n".encode())
        await response.write_eof()
        return response

    server = servers(answer)
    gw = await start(wechat, server)
    caplog.set_level(logging.DEBUG)
    await say(wechat, gw, "wxid_alice", "hi")
    assert wechat.world.texts(to="wxid_alice") == [NOTICE]
    assert "authorization: Bearer ***" in caplog.text  # the line asking again, and the failure
    shown = [
        caplog.text,
        json.dumps([s.to_json() for s in gw.status()]),
        json.dumps([e.text for e in wechat.world.transcript]),
    ]
    assert all(KEY[:12] not in text for text in shown)


async def test_a_header_filled_per_turn_never_shows_either(
    wechat: WeChatHarness, servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    # a header written with a placeholder is another value at every turn: the parts
    # written in the config are what is secret
    token = "tk-0123456789abcdef"

    async def answer(request: web.Request, bodies: list[dict[str, Any]]) -> web.StreamResponse:
        message = f"bad tenant token: {request.headers['x-tenant-token']}"
        response = await streaming(request)
        await response.write(f"data: {json.dumps({'error': {'message': message}})}\n\n".encode())
        await response.write_eof()
        return response

    server = servers(answer)
    headers = {"X-Tenant-Token": f"{token}-{{accountId}}"}
    gw = await start(wechat, server, {"headers": headers})
    caplog.set_level(logging.DEBUG, "wechat_sdk")  # (the openai package's own debug log
    # shows a request's headers: not the gateway's to mask)
    await say(wechat, gw, "wxid_alice", "hi")
    assert wechat.world.texts(to="wxid_alice") == [NOTICE]
    assert "bad tenant token: ***" in caplog.text
    shown = [caplog.text, json.dumps([s.to_json() for s in gw.status()])]
    assert all(token not in text for text in shown)


# ---------------------------------------------------------------- odd tool calls


async def test_odd_tool_calls_are_refused_or_sent_back_logged_and_never_run(
    wechat: WeChatHarness, servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    """Names the tool is not offered by (case, whitespace, a Cyrillic "о"), and arguments
    that are not JSON: none runs, the model is told each, and the log says why."""
    calls = [
        ("Forecast", '{"city": "Paris"}'),
        ("forecast ", '{"city": "Paris"}'),
        ("f\u043erecast", '{"city": "Paris"}'),
        ("forecast", '{"city": "Par'),
    ]

    async def answer(request: web.Request, bodies: list[dict[str, Any]]) -> web.StreamResponse:
        response = await streaming(request)
        if len(bodies) > 1:
            return await finished(response, "answered without it")
        for index, (name, arguments) in enumerate(calls):
            head = {"index": index, "id": f"call_{index}", "type": "function"}
            await response.write(event({"tool_calls": [{**head, "function": {"name": name}}]}))
            piece = {"index": index, "function": {"arguments": arguments}}
            await response.write(event({"tool_calls": [piece]}))
        return await calls_asked(response)

    server = servers(answer)
    gw = await start(wechat, server)
    ran = forecast_tool(gw)
    caplog.set_level(logging.INFO, "wechat_sdk")
    await say(wechat, gw, "wxid_alice", "Paris?")
    assert ran == []
    replies = tool_replies(server.requests[1])
    assert len(replies) == 4
    assert all("not available" in r for r in replies[:3])
    assert "bad arguments" in replies[3] and "not JSON" in replies[3]
    assert """(the arguments were: '{"city": "Par')""" in replies[3]
    # the calls as given back: JSON objects (vLLM and llama.cpp parse them, and would
    # refuse the request), the bad one as {}
    (asked,) = [m for m in server.requests[1]["messages"] if m.get("tool_calls")]
    given = [c["function"]["arguments"] for c in asked["tool_calls"]]
    assert given == ['{"city": "Paris"}'] * 3 + ["{}"]
    assert caplog.text.count("reason=tool_not_allowed") == 3
    assert "tool 'forecast' called with bad arguments" in caplog.text
    assert "reason=tool_bad_arguments" in caplog.text
    assert wechat.world.texts(to="wxid_alice") == ["answered without it"]
