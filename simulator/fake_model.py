"""A scripted model behind the OpenAI Chat Completions API, for tests, the demo and the
benchmarks: it streams real server-sent events (text deltas, tool calls split over
several chunks), answers with errors (429, 500) or cuts its stream in the middle.

Two ways to reach it, both through the official ``openai`` client:

- :meth:`FakeModel.serve`: a real HTTP server on 127.0.0.1 (aiohttp), for an
  ``agent.baseUrl`` like any other;
- :meth:`FakeModel.http_client`: an ``httpx.AsyncClient`` whose transport answers in
  process, with no socket (the demo stays offline).

Example:
    ```python
    model = FakeModel([ModelStep(tool_calls=[("get_time", {"tz": "UTC"})]),
                       ModelStep(text="It is noon.")])
    base_url = await model.serve()
    ```
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx
    from aiohttp import web

__all__ = ["FakeModel", "ModelStep"]


@dataclass(frozen=True)
class ModelStep:
    """One answer of the model.

    ``text`` streams in pieces of ``piece_chars`` characters; ``tool_calls`` are
    ``(name, arguments)`` pairs, each streamed as its name then its JSON arguments in
    pieces; ``status`` other than 200 answers with that error instead; ``cut_after``
    closes the connection after that many chunks, without the end of the stream.
    """

    text: str = ""
    tool_calls: Sequence[tuple[str, dict[str, Any]]] = ()
    status: int = 200
    cut_after: int | None = None
    piece_chars: int = 4


Script = Sequence[ModelStep] | Callable[[dict[str, Any]], ModelStep]


@dataclass
class FakeModel:
    """Answers each request with the next step of ``script`` (a list; the last one
    repeats), or with ``script(request_body)``. ``token_delay_s`` is the pause before
    each chunk (a model's token rate)."""

    script: Script
    token_delay_s: float = 0.0
    #: each request's JSON body, in order
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: each request's headers (lowercase names)
    headers: list[dict[str, str]] = field(default_factory=list)
    #: ``time.monotonic()`` as each chunk of the last streamed answer was handed over
    chunk_times: list[float] = field(default_factory=list)
    _runner: Any = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    # ------------------------------------------------------------ the answers

    def next_step(self, body: dict[str, Any], headers: dict[str, str]) -> ModelStep:
        self.requests.append(body)
        self.headers.append(headers)
        if callable(self.script):
            return self.script(body)
        steps = list(self.script)
        return steps[min(len(self.requests), len(steps)) - 1]

    def chunks(self, step: ModelStep, model: str) -> list[bytes]:
        """The server-sent events of a streamed answer, ``data: [DONE]`` last."""
        ident = f"chatcmpl-{next(self._ids)}"

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            data = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()

        out = [event({"role": "assistant", "content": ""})]
        n = max(1, step.piece_chars)
        for i in range(0, len(step.text), n):
            out.append(event({"content": step.text[i : i + n]}))
        for index, (name, arguments) in enumerate(step.tool_calls):
            call_id = f"call_{ident[-6:]}_{index}"
            head = {"index": index, "id": call_id, "type": "function"}
            out.append(event({"tool_calls": [{**head, "function": {"name": name}}]}))
            raw = json.dumps(arguments, ensure_ascii=False)
            for i in range(0, len(raw), n):
                piece = {"index": index, "function": {"arguments": raw[i : i + n]}}
                out.append(event({"tool_calls": [piece]}))
        out.append(event({}, "tool_calls" if step.tool_calls else "stop"))
        out.append(b"data: [DONE]\n\n")
        return out

    @staticmethod
    def error_body(status: int, headers: dict[str, str]) -> bytes:
        """An error as OpenAI words it; a 401 repeats the key it got, as OpenAI's does."""
        if status == 401:
            key = headers.get("authorization", "").removeprefix("Bearer ")
            kind, message = "invalid_api_key", f"Incorrect API key provided: {key}"
        elif status == 429:
            kind, message = "rate_limit_exceeded", "Rate limit reached"
        else:
            kind, message = "server_error", "The server had an error"
        return json.dumps({"error": {"message": message, "type": kind, "code": kind}}).encode()

    # ------------------------------------------------------------ over HTTP

    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start the HTTP server; its base URL (``http://127.0.0.1:PORT/v1``)."""
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1]
        from wechat_sdk.config.integrations import host_port

        return f"http://{host_port(host, bound)}/v1"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        body = await request.json()
        headers = {k.lower(): v for k, v in request.headers.items()}
        step = self.next_step(body, headers)
        if step.status != 200:
            return web.Response(
                status=step.status,
                body=self.error_body(step.status, headers),
                content_type="application/json",
                headers={"retry-after-ms": "10"},
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        self.chunk_times = times = []
        for i, chunk in enumerate(self.chunks(step, str(body.get("model", "")))):
            if step.cut_after is not None and i >= step.cut_after:
                # the connection drops with the stream unfinished
                assert request.transport is not None
                request.transport.abort()
                return response
            if self.token_delay_s:
                await asyncio.sleep(self.token_delay_s)
            await response.write(chunk)
            times.append(time.monotonic())
        await response.write_eof()
        return response

    # ------------------------------------------------------------ in process

    def http_client(self) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` answering from this model with no network."""
        import httpx

        async def handle(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content or b"{}")
            headers = {k.lower(): v for k, v in request.headers.items()}
            step = self.next_step(body, headers)
            if step.status != 200:
                return httpx.Response(
                    step.status,
                    content=self.error_body(step.status, headers),
                    headers={"content-type": "application/json", "retry-after-ms": "10"},
                )
            chunks = self.chunks(step, str(body.get("model", "")))
            return httpx.Response(
                200,
                headers={"content-type": "text/event-stream"},
                stream=_chunk_stream(self, chunks, step.cut_after),
            )

        return httpx.AsyncClient(transport=httpx.MockTransport(handle))


def _chunk_stream(model: FakeModel, chunks: list[bytes], cut_after: int | None) -> Any:
    """A response body streamed chunk by chunk (an ``httpx.AsyncByteStream``)."""
    import httpx

    class Chunks(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            model.chunk_times = times = []
            for i, chunk in enumerate(chunks):
                if cut_after is not None and i >= cut_after:
                    raise httpx.RemoteProtocolError("peer closed connection mid-stream")
                if model.token_delay_s:
                    await asyncio.sleep(model.token_delay_s)
                times.append(time.monotonic())
                yield chunk

    return Chunks()
