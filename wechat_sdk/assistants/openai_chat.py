"""A model behind the OpenAI Chat Completions API, streamed through the official ``openai``
SDK (``AsyncOpenAI``): text deltas go to WeChat as they come, tool calls are gathered
from their pieces, run, and their results given back until the model answers.

Retries: the SDK retries a request that failed before its answer began (timeouts,
connection errors, 429 and 5xx, with backoff, ``maxRetries`` times). A stream cut before
any text of it reached the user is asked again here (same budget); once text went out,
asking again would send it twice, so the reply ends with the failure notice instead.

A stream is cut when its connection breaks, when it ends without a ``finish_reason`` (a
proxy or a crashed worker can end the body cleanly mid-answer), or when the request has
waited on the server for more than ``agent.timeout`` in all (:mod:`.time_budget`).

The whole turn, every request, retry and tool call of it, waits ``agent.turnTimeout`` in
all (unset: 5 x ``agent.timeout``): past it, the wait under way is cancelled (a sync
tool's thread, which cannot be, is abandoned) and the turn fails (``turn_timeout``), never
asked again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wechat_sdk.agent import AgentFailed, AgentTurn
from wechat_sdk.assistants.offered_tools import TurnTools
from wechat_sdk.assistants.time_budget import TimeBudget
from wechat_sdk.config.assistant import AgentConfig
from wechat_sdk.config.integrations import without_query
from wechat_sdk.logtext import hide_in_library_logs, secret_forms, url_secrets

if TYPE_CHECKING:
    import httpx
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletionChunk

__all__ = ["ChatModel", "ModelFailed", "fill_placeholders"]

log = logging.getLogger("wechat_sdk.assistant")

#: pause before asking again after a cut stream; doubles each time
STREAM_RETRY_FIRST_S = 0.25
#: the most of a server's error message a failure shows
DETAIL_MAX_CHARS = 300
#: the most tool calls of one answer that are run (each in turn); the rest are not run,
#: and the model is told so: an answer asking for hundreds (a prompt injected by a group
#: member, a model in a loop) must not hold the turn for as many calls
MAX_CALLS_PER_ROUND = 16


class ModelFailed(AgentFailed):
    """The model gave no usable answer after its retries; ``reason`` is the log's code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail, reason=reason)


class _StreamEnded(Exception):
    """The stream ended without a ``finish_reason``: the answer was cut, not finished."""


@dataclass
class _Round:
    """One request's answer: its text, the tool calls gathered from their pieces, and the
    ``finish_reason`` that says it ended (none yet: it did not)."""

    text: list[str] = field(default_factory=list)
    #: the calls in the order they began
    calls: list[dict[str, str]] = field(default_factory=list)
    finish_reason: str | None = None
    #: each stream index's call (its place in ``calls``)
    _at: dict[int, int] = field(default_factory=dict)

    def clear(self) -> None:
        self.text.clear()
        self.calls.clear()
        self._at.clear()
        self.finish_reason = None

    def add_chunk(self, chunk: ChatCompletionChunk) -> str:
        """Take in one streamed chunk; the text it adds (empty for none)."""
        if not chunk.choices:
            return ""
        choice = chunk.choices[0]
        if choice.finish_reason:
            self.finish_reason = choice.finish_reason
        delta = choice.delta
        if delta is None:
            return ""
        for piece in delta.tool_calls or ():
            self.add_call_piece(piece)
        if delta.content:
            self.text.append(delta.content)
        return delta.content or ""

    def add_call_piece(self, piece: Any) -> None:
        at = self._at.get(piece.index)
        if at is None or (piece.id and self.calls[at]["id"] not in ("", piece.id)):
            # a call begins; so does a piece with a new id at an index already used (some
            # servers number every parallel call 0)
            self.calls.append({"id": "", "name": "", "arguments": ""})
            at = self._at[piece.index] = len(self.calls) - 1
        call = self.calls[at]
        if piece.id:
            call["id"] = piece.id
        function = piece.function
        if function is not None:
            # most servers send the name whole in the first piece; some split it, and
            # some (MiniMax via NVIDIA NIM, some GPT-5 streams) send it again in every
            # piece: a piece equal to the name so far repeats it, any other continues it
            if function.name and function.name != call["name"]:
                call["name"] += function.name
            if function.arguments:
                call["arguments"] += function.arguments


#: what :func:`fill_placeholders` fills
_PLACEHOLDER = re.compile(r"\{(?:accountId|conversationId|chatType)\}")


def fill_placeholders(template: str, turn: AgentTurn) -> str:
    """``{accountId}``, ``{conversationId}`` and ``{chatType}`` of ``turn`` in ``template``."""
    return (
        template.replace("{accountId}", turn.account_id)
        .replace("{conversationId}", turn.conversation_id)
        .replace("{chatType}", turn.chat_type)
    )


class ChatModel:
    """The client of one ``agent`` block. ``http_client``: an ``httpx.AsyncClient`` of your
    own (a test's transport, a proxy)."""

    def __init__(
        self, config: AgentConfig, *, http_client: httpx.AsyncClient | None = None
    ) -> None:
        self.config = config
        self._http_client = http_client
        self._client: AsyncOpenAI | None = None
        secret = self.api_key() or ""
        #: values redacted from anything logged (the key, header values such as tokens)
        # (a header with a placeholder is filled per turn: its written parts are redacted)
        parts = [p for v in config.headers.values() for p in _PLACEHOLDER.split(v)]
        self._secrets = secret_forms([secret, *config.headers.values(), *parts])
        base_url = config.baseUrl or ""
        hide_in_library_logs([*self._secrets, *url_secrets(base_url)], urls=[base_url])

    @property
    def client(self) -> AsyncOpenAI:
        if self._client is None:
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(
                # a local server (Ollama, vLLM) wants no key, but the SDK needs one
                api_key=self.api_key() or "no-key",
                base_url=self.config.baseUrl,
                timeout=self.config.timeout,
                max_retries=self.config.maxRetries,
                http_client=self._http_client,
            )
        return self._client

    def api_key(self) -> str | None:
        """The key (:meth:`AgentConfig.api_key`): ``apiKey``, else ``$OPENAI_API_KEY``."""
        return self.config.api_key()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def answer(
        self, turn: AgentTurn, messages: list[dict[str, Any]], tools: TurnTools
    ) -> AsyncIterator[str]:
        """The answer's text pieces; tool calls run in between. Raises
        :class:`ModelFailed` (after what was said so far went out)."""
        whole = TimeBudget(self.config.turn_timeout_s(), expired=self._turn_over)
        rounds = 0
        max_rounds = self.config.maxToolRounds
        said = False  # text went out in an earlier round ("let me look that up")
        schemas = tools.schemas()
        while True:
            last = rounds >= max_rounds  # tools still described, but not to be called
            result = _Round()
            first = True
            async for piece in self._round(turn, messages, schemas, result, whole, last=last):
                if first and said:
                    piece = "\n\n" + piece.lstrip()  # a new round: a new paragraph
                first = False
                yield piece
            said = said or bool("".join(result.text).strip())
            if not result.calls:
                if not said:
                    # a deliberate silence, maybe; but a server that answers nothing to
                    # every message should not be silent in the log too
                    log.warning(
                        "the model's answer was empty (finish_reason=%s): nothing is sent "
                        "reason=model_empty_answer",
                        result.finish_reason,
                        extra={"account": turn.account_id},
                    )
                return
            if not schemas:
                # offered none (some servers invent a call anyway): each is refused as any
                # call to a tool not offered, but cannot be given back (a history with
                # calls needs their tools described): what the model said is the answer
                for call in result.calls[:MAX_CALLS_PER_ROUND]:
                    await whole.wait(tools.call(call["name"], call["arguments"]))
                if not said:
                    raise ModelFailed(
                        "tool_not_offered",
                        "the model answered only with a tool call, and no tool is offered here",
                    )
                return
            if last:
                log.warning(
                    "the model asked for tools after %d round(s), the most allowed "
                    "(agent.maxToolRounds) reason=tool_rounds_exhausted",
                    rounds,
                    extra={"account": turn.account_id},
                )
                if not "".join(result.text).strip():
                    raise ModelFailed("tool_rounds_exhausted", "no answer after the tool rounds")
                return
            rounds += 1
            calls = list(result.calls)
            for n, call in enumerate(calls):
                call["id"] = call["id"] or f"call_{rounds}_{n}"
            messages.append(
                {
                    "role": "assistant",
                    "content": "".join(result.text) or None,
                    "tool_calls": [
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["name"], "arguments": _given_back(c)},
                        }
                        for c in calls
                    ],
                }
            )
            if len(calls) > MAX_CALLS_PER_ROUND:
                log.warning(
                    "the model asked for %d tool calls in one answer: the first %d run, the "
                    "rest not (the model is told) reason=tool_calls_over",
                    len(calls),
                    MAX_CALLS_PER_ROUND,
                    extra={"account": turn.account_id},
                )
            for n, call in enumerate(calls):
                if n < MAX_CALLS_PER_ROUND:
                    text = (await whole.wait(tools.call(call["name"], call["arguments"]))).text
                    if _given_back(call) != (call["arguments"] or "{}"):
                        text += f" (the arguments were: {call['arguments'][:300]!r})"
                else:
                    text = (
                        f"error: not run: at most {MAX_CALLS_PER_ROUND} tool calls of one "
                        "answer are run; ask for the rest in the next one"
                    )
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": text})

    async def _round(
        self,
        turn: AgentTurn,
        messages: list[dict[str, Any]],
        offer: list[dict[str, Any]],
        result: _Round,
        whole: TimeBudget,
        *,
        last: bool = False,
    ) -> AsyncIterator[str]:
        """One request, streamed, within ``agent.timeout`` and what is left of the turn's
        time (``whole``); a stream cut (or out of its own time) before any text went out is
        asked again. ``last``: the tools are described (the history has their calls) but
        not offered."""
        attempt = 0
        while True:
            started = said = False
            result.clear()
            # agent.timeout for the whole request, its streamed answer included (httpx's
            # timeout bounds each read only), spent only while waiting on the server
            budget = TimeBudget(self.config.timeout, within=whole)
            try:
                request = self._request(turn, messages, offer, last=last)
                stream = await budget.wait(self.client.chat.completions.create(**request))
                started = True  # (the SDK retried what failed before this)
                async with stream:
                    self._check_streamed(stream.response)
                    chunks = aiter(stream)
                    # (each wait within the budget, not one around the loop: that would span
                    # the answer's yields, and could cut the gateway's send, not the request)
                    while (chunk := await budget.wait(anext(chunks, None))) is not None:
                        text = result.add_chunk(chunk)
                        if text:
                            said = True
                            yield text
                if result.finish_reason is None:
                    raise _StreamEnded("the stream ended before the answer did")
                return
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:
                failure = self._failure(exc)
                if not self._ask_again(exc, started=started, said=said, attempt=attempt):
                    raise failure from None
                attempt += 1
                log.info(
                    "the model's answer was cut (%s); asking again (%d of %d)",
                    failure,
                    attempt,
                    self.config.maxRetries,
                    extra={"account": turn.account_id},
                )
                await whole.wait(asyncio.sleep(STREAM_RETRY_FIRST_S * 2 ** (attempt - 1)))

    def _turn_over(self) -> ModelFailed:
        """The failure of a turn that ran out of ``agent.turnTimeout``."""
        return self._failed(
            "turn_timeout",
            f"no answer within {self.config.turn_timeout_s():g} s for the whole turn, its "
            "requests and tool calls in all (agent.turnTimeout): given up",
        )

    def _ask_again(self, exc: Exception, *, started: bool, said: bool, attempt: int) -> bool:
        """Whether a failed request is asked again here: never once its text went out
        (it would be sent twice), nor an answer that is not a stream (it would be the
        same again), nor what the SDK retried already (what failed before the stream
        began, except this module's own deadline)."""
        if said or attempt >= self.config.maxRetries or isinstance(exc, ModelFailed):
            return False
        return started or isinstance(exc, TimeoutError)

    def _check_streamed(self, response: httpx.Response) -> None:
        """Raise :class:`ModelFailed` when ``response`` is a whole document, not a stream
        of server-sent events: read as one, a web page or a whole JSON completion has no
        events at all, and would pass for a model choosing to say nothing. Other types
        are read as a stream, as the SDK does (a lax server may stream events as
        ``text/plain``); one without events ends without a finish_reason: a cut stream."""
        kind = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if kind == "application/json":
            hint = "the server ignores stream: true; the assistant needs one that streams"
        elif kind == "text/html":
            hint = "is baseUrl the API's address, ending in /v1?"
        else:
            return
        endpoint = self._endpoint()
        raise self._failed(
            "model_not_a_stream",
            f"the endpoint at {endpoint} answered {kind or 'no content type'}, "
            f"not a stream: {hint}",
        )

    def _endpoint(self) -> str:
        """The endpoint as messages name it: its origin and path (a user and password in
        ``baseUrl``, or a query, may be a key)."""
        return without_query(str(self.client.base_url)).rstrip("/")

    def _request(
        self,
        turn: AgentTurn,
        messages: list[dict[str, Any]],
        offer: list[dict[str, Any]],
        *,
        last: bool = False,
    ) -> dict[str, Any]:
        c = self.config
        request: dict[str, Any] = {"model": c.model, "messages": messages, "stream": True}
        if offer:
            request["tools"] = offer
            if last:
                request["tool_choice"] = "none"
        if c.temperature is not None:
            request["temperature"] = c.temperature
        if c.maxTokens is not None:
            request["max_tokens"] = c.maxTokens
        if c.user is not False:
            request["user"] = fill_placeholders(c.user, turn)
        if c.headers:
            request["extra_headers"] = {k: fill_placeholders(v, turn) for k, v in c.headers.items()}
        return request

    def _failure(self, exc: Exception) -> ModelFailed:
        """The error as one line with a reason code; secrets taken out."""
        import openai

        if isinstance(exc, ModelFailed):
            return exc
        if isinstance(exc, openai.APITimeoutError):
            reason = "model_timeout"
            detail = f"no answer within {self.config.timeout:g} s"
        elif isinstance(exc, TimeoutError):  # this module's deadline
            reason = "model_timeout"
            detail = f"no complete answer within {self.config.timeout:g} s (agent.timeout)"
        elif isinstance(exc, openai.APIConnectionError):
            reason, detail = "model_unreachable", f"cannot reach {self._endpoint()}"
        elif isinstance(exc, openai.RateLimitError):
            reason, detail = "model_rate_limited", f"429 from the server: {_message(exc)}"
        elif isinstance(exc, openai.APIStatusError):
            reason = "model_unavailable" if exc.status_code >= 500 else "model_refused"
            detail = f"{exc.status_code} from the server: {_message(exc)}"
        elif isinstance(exc, openai.APIError):
            reason, detail = "model_error", _message(exc)
        elif isinstance(exc, _StreamEnded):
            reason, detail = "model_stream_cut", f"{exc} (no finish_reason)"
        elif _stream_cut(exc):
            reason, detail = "model_stream_cut", f"{type(exc).__name__}: {exc}"
        else:
            reason, detail = "model_error", f"{type(exc).__name__}: {exc}"
        return self._failed(reason, detail)

    def _failed(self, reason: str, detail: str) -> ModelFailed:
        """A failure showing ``detail`` with the secrets taken out, then cut to length
        (in that order: a secret cut in half would no longer be recognised)."""
        for secret in self._secrets:
            detail = detail.replace(secret, "***")
        return ModelFailed(reason, detail[:DETAIL_MAX_CHARS])


def _given_back(call: dict[str, str]) -> str:
    """A call's arguments as the history gives them back to the model: ``{}`` in place of
    text that is no JSON object (servers that render calls with a chat template, vLLM's
    and llama.cpp's, parse them and would fail every later request of the turn; the
    call's tool reply quotes what the model sent)."""
    try:
        return call["arguments"] if isinstance(json.loads(call["arguments"]), dict) else "{}"
    except (ValueError, RecursionError):
        return "{}"


def _message(exc: Any) -> str:
    """The server's own words for ``exc``, whole (a failure scrubs, then cuts them)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return str(getattr(exc, "message", exc))


def _stream_cut(exc: BaseException) -> bool:
    """A connection that broke while the answer streamed."""
    import httpx

    return isinstance(exc, httpx.TransportError | json.JSONDecodeError)
