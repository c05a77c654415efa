"""An assistant behind any URL: ``agent: {provider: "webhook", url, secret}``.

Each turn is POSTed to ``url`` as JSON, signed like the gateway's webhooks (Standard
Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` under ``secret``; the
id made from the account and message ids, the same when a kept turn is asked again), in
the shape ``{"type": "agent.turn", "timestamp", "data": {...}}`` (:func:`turn_payload`):
the text, the sender, the chat, the history, and the media as short-lived signed links
served by the gateway's API server. What the endpoint answers is sent back:

- ``application/json``: ``{"text": "...", "files": [{"name", "url" or "data", "kind"}]}``
  (either may be left out);
- nothing (204, an empty body, ``{}``): the bot stays silent;
- ``text/event-stream``: each event's data is a piece of the answer (plain text, or JSON
  with ``text``), sent in blocks as they come like any streaming agent; an event named
  ``done`` ends it.

Any other status, or no whole answer within ``agent.timeout`` (a stream included: its
keep-alives do not extend it; the files an answer names by url are fetched within what is
left of it), is an agent failure (the account's ``errorNotice`` goes out,
after what a stream had sent). The HTTP client is httpx (which the openai client brings),
and server-sent events are read by ``httpx-sse``.

A file the answer gives by ``url`` is fetched here, under the rule for what a peer sends
(:mod:`wechat_sdk.media_fetch`: public addresses only, each redirect checked), unless the
account's ``mediaFetchAllowPrivate`` is true: the endpoint is often a service whose answer
a peer can steer (a Coze or Dify flow), and the gateway must not fetch an internal address
for it. A file that cannot be fetched, or not within what is left of ``agent.timeout``, is
left out, with a warning; the rest of the answer goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from wechat_sdk import media_fetch
from wechat_sdk.agent import AgentFailed, AgentResult, AgentTurn, Reply
from wechat_sdk.assistants.time_budget import TimeBudget
from wechat_sdk.config.integrations import origin_of, without_query
from wechat_sdk.events import iso_time
from wechat_sdk.file_data import file_data
from wechat_sdk.logtext import hide_in_library_logs, shown, url_secrets, without_secrets
from wechat_sdk.puppet import OutboundFile, voice_length_problem
from wechat_sdk.webhooks.signing import signed_headers, turn_message_id

if TYPE_CHECKING:
    import httpx

__all__ = ["WebhookAgent", "WebhookAgentError", "turn_payload"]

log = logging.getLogger("wechat_sdk.assistant")

T = TypeVar("T")

MediaLink = Callable[[Path], "str | None"]
_FILE_KINDS = ("image", "video", "audio", "file")
#: the most files of one answer that go (each is fetched and held whole until it is sent)
MAX_ANSWER_FILES = 10


class WebhookAgentError(AgentFailed):
    """The endpoint answered with an error, or with something that is not an answer, or
    could not be reached. ``reason``: ``agent_http_error`` (a status but 2xx),
    ``agent_timeout`` (no whole answer within ``agent.timeout``), ``agent_unreachable``
    (no connection, or it broke), ``agent_stream_error`` (its stream sent an ``error``
    event), ``agent_bad_answer`` (not an answer: its shape, its size)."""

    def __init__(self, message: str, *, reason: str = "agent_bad_answer") -> None:
        super().__init__(message, reason=reason)


def turn_payload(turn: AgentTurn, media_link: MediaLink | None = None) -> dict[str, Any]:
    """The JSON a webhook agent is POSTed for ``turn`` (``media_link`` makes each saved
    file's signed link)."""
    media = []
    for item in turn.media:
        link = media_link(item.path) if media_link is not None and item.path is not None else None
        media.append(
            {
                "kind": item.kind,
                "name": item.name,
                "mime": item.mime,
                "size": item.size,
                "url": link,
                "note": item.note,
            }
        )
    return {
        "type": "agent.turn",
        "timestamp": iso_time(turn.timestamp),
        "data": {
            "accountId": turn.account_id,
            "messageId": turn.message_id,
            "text": turn.text,
            "sender": {"id": turn.sender_id, "name": turn.sender_name},
            "chat": {
                "id": turn.conversation_id,
                "type": turn.chat_type,
                "roomId": turn.room_id,
                "roomTopic": turn.room_topic,
            },
            "mentioned": turn.mentioned,
            "history": [
                {
                    "role": h.role,
                    "senderId": h.sender_id,
                    "senderName": h.sender_name,
                    "text": h.text,
                    "timestamp": iso_time(h.timestamp),
                }
                for h in turn.history
            ],
            "media": media,
        },
    }


class WebhookAgent:
    """Answers each turn with what ``url`` answers (see the module's docstring).

    ``media_link`` makes the signed link of an inbound file (the gateway's
    ``media_links.link``); without it, files are described with no ``url``.
    ``http_client`` makes the ``httpx.AsyncClient`` used (a test's transport). Files the
    answer gives by url are fetched from public addresses only, unless ``allow_private``
    (the account's ``mediaFetchAllowPrivate``), and up to ``max_bytes`` each.

    Example:
        ```python
        agent = WebhookAgent("https://n8n.example.com/webhook/wechat", secret="whsec_...")
        gateway = Gateway(config, agent=agent)
        ```
    """

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout_s: float = 60.0,
        headers: dict[str, str] | None = None,
        media_link: MediaLink | None = None,
        http_client: Callable[[], httpx.AsyncClient] | None = None,
        allow_private: bool = False,
        max_bytes: int = 30 * 1024 * 1024,
    ) -> None:
        self.url = url
        self._secret = secret
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        # (its query and its path too, after its host: an n8n or Zapier webhook's path is
        # its key, and httpx's INFO line names each request's URL, as httpx writes it)
        hide_in_library_logs([*url_secrets(url), *self.headers.values()], url_paths=[url])
        self.media_link = media_link
        self.allow_private = allow_private
        self.max_bytes = max_bytes
        self._http_client = http_client
        self._client: httpx.AsyncClient | None = None

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = (
                self._http_client()
                if self._http_client is not None
                else httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s))
            )
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client (a later turn opens another)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __call__(self, turn: AgentTurn) -> AgentResult:
        # ("replace": half an emoji in a text, from a cut JSON escape, goes as a ?)
        body = json.dumps(turn_payload(turn, self.media_link), ensure_ascii=False).encode(
            "utf-8", "replace"
        )
        headers = {
            **self.headers,
            **signed_headers(
                self._secret, turn_message_id(turn.account_id, turn.message_id), body, time.time()
            ),
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        client = self._get_client()
        request = client.build_request("POST", self.url, content=body, headers=headers)
        # agent.timeout for the whole request, its streamed answer included (httpx's
        # timeout bounds each read only: keep-alives would extend it forever), spent only
        # while waiting on the endpoint
        budget = TimeBudget(self.timeout_s)
        response = await self._within(budget, client.send(request, stream=True))
        streaming = False
        try:
            if not 200 <= response.status_code < 300:
                raise WebhookAgentError(
                    f"the agent's endpoint answered HTTP {response.status_code}",
                    reason="agent_http_error",
                )
            kind = response.headers.get("content-type", "").partition(";")[0].strip().lower()
            if kind == "text/event-stream":
                streaming = True  # the stream closes the response
                return self._pieces(response, budget)
            raw = await self._read(response, budget)
        finally:
            if not streaming:
                await response.aclose()
        return await self._fetched(_reply(raw), turn.account_id, budget)

    @property
    def answer_max_bytes(self) -> int:
        """The most of a JSON answer read: room for a file at the cap (``max_bytes``) as
        base64, and more; a bigger answer is a failure (it is never held whole)."""
        return 2 * self.max_bytes + 1024 * 1024

    async def _read(self, response: httpx.Response, budget: TimeBudget) -> bytes:
        """The body of a JSON answer, within the budget and up to :attr:`answer_max_bytes`."""
        cap = self.answer_max_bytes
        too_big = WebhookAgentError(
            f"the agent's answer is over {cap} bytes (2 x mediaMaxMb + 1 MiB)"
        )
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > cap:
            raise too_big
        parts: list[bytes] = []
        total = 0
        chunks = aiter(response.aiter_bytes())
        while (chunk := await self._within(budget, anext(chunks, None))) is not None:
            total += len(chunk)
            if total > cap:
                raise too_big
            parts.append(chunk)
        return b"".join(parts)

    async def _within(self, budget: TimeBudget, waiting: Awaitable[T]) -> T:
        """``waiting`` within what is left of ``budget``; past it, the answer is late. A
        connection that fails (refused, reset, cut mid-answer) is the endpoint's failure."""
        import httpx

        try:
            return await budget.wait(waiting)
        except TimeoutError:
            raise WebhookAgentError(
                f"the agent's endpoint gave no whole answer within {self.timeout_s:g} s "
                "(agent.timeout)",
                reason="agent_timeout",
            ) from None
        except httpx.TransportError as exc:
            # (httpx's words may repeat the URL, whose path or query may hold a token)
            why = without_secrets(str(exc) or "no detail", 200)
            raise WebhookAgentError(
                f"the connection to the agent's endpoint {origin_of(self.url)} failed "
                f"({type(exc).__name__}: {why})",
                reason="agent_unreachable",
            ) from None

    async def _fetched(
        self, reply: Reply | None, account_id: str, budget: TimeBudget
    ) -> Reply | None:
        """``reply`` with each file given by url fetched (see the class), within what is
        left of the turn's ``budget``; one that cannot be fetched (in time) is left out with
        a warning, the rest of the answer goes. Of an answer with more than
        :data:`MAX_ANSWER_FILES` files, the first go (each is held whole until sent, and an
        answer a chat partner steers could list thousands)."""
        if reply is not None and len(reply.files) > MAX_ANSWER_FILES:
            log.warning(
                "the webhook agent's answer has %d files: the first %d go, the rest are "
                "left out reason=too_many_files",
                len(reply.files),
                MAX_ANSWER_FILES,
                extra={"account": account_id},
            )
            reply = replace(reply, files=reply.files[:MAX_ANSWER_FILES])
        if reply is None or all(f.url is None for f in reply.files):
            return reply
        files = []
        for index, f in enumerate(reply.files):
            if f.url is not None:
                try:
                    data, mime = await self._fetch(f.url, budget)
                except media_fetch.FetchFailed as exc:
                    log.warning(
                        "files[%d] of the webhook agent's answer ('%s') left out: %s reason=%s",
                        index,
                        shown(f.name),
                        shown(exc, 300),  # (its URL and the server's words: a peer's)
                        exc.code,
                        extra={"account": account_id},
                    )
                    continue
                f = replace(f, url=None, data=data, mime=f.mime or mime)
            files.append(f)
        return replace(reply, files=tuple(files))

    async def _fetch(self, url: str, budget: TimeBudget) -> tuple[bytes, str | None]:
        """The file at ``url`` and its type, fetched within what is left of ``budget`` (the
        fetch's own deadline ends its thread then); raises FetchFailed."""
        left = budget.left
        out_of_time = media_fetch.FetchFailed(
            f"cannot fetch {without_query(url)}: no time left of agent.timeout "
            f"({self.timeout_s:g} s), which bounds the whole answer, its files included"
        )
        if left <= 0:
            raise out_of_time
        fetch = asyncio.to_thread(
            media_fetch.fetch_url,
            url,
            self.max_bytes,
            min(media_fetch.FETCH_TIMEOUT_S, left),
            allow_private=self.allow_private,
            total_s=min(media_fetch.FETCH_DEADLINE_S, left),
        )
        try:
            return await budget.wait(fetch)
        except TimeoutError:
            raise out_of_time from None

    async def _pieces(self, response: httpx.Response, budget: TimeBudget) -> AsyncIterator[str]:
        from httpx_sse import EventSource

        counted = _CountedStream(response, self.answer_max_bytes)
        events = EventSource(counted).aiter_sse()  # type: ignore[arg-type]
        textless = False  # (said once a stream)
        try:
            while True:
                # each wait within the budget, not one around the loop: that would span
                # the yields, and cut the reader of the answer rather than the request
                event = await self._within(budget, anext(events, None))
                if event is None:
                    return
                counted.event_read()
                # (an OpenAI-style "data: [DONE]" ends it too: never sent as text)
                if event.event == "done" or event.data == "[DONE]":
                    return
                if event.event == "error":
                    raise WebhookAgentError(
                        f"the agent's stream failed: {event.data[:200]}",
                        reason="agent_stream_error",
                    )
                piece = _piece(event.data)
                if piece is None:
                    if not textless:
                        log.warning(
                            "the agent's stream sent a JSON event without 'text' "
                            "(skipped; each event's data is plain text, or JSON with "
                            "'text': see docs/webhooks.md) reason=textless_event"
                        )
                    textless = True
                elif piece:
                    yield piece
        finally:
            with contextlib.suppress(Exception):
                await response.aclose()


class _CountedStream:
    """A streamed answer as ``httpx_sse`` reads it, counting the bytes read since its
    last event: an event (held until its blank line) over ``cap`` is a failure, never
    buffered whole."""

    def __init__(self, response: httpx.Response, cap: int) -> None:
        self.headers = response.headers
        self._response = response
        self._cap = cap
        self._since_event = 0

    def event_read(self) -> None:
        self._since_event = 0

    async def aiter_text(self) -> AsyncIterator[str]:
        async for text in self._response.aiter_text():
            self._since_event += len(text.encode())
            if self._since_event > self._cap:
                raise WebhookAgentError(
                    f"an event of the agent's stream is over {self._cap} bytes "
                    "(2 x mediaMaxMb + 1 MiB)"
                )
            yield text


def _piece(data: str) -> str | None:
    """An event's text: its data, or the ``text`` of a JSON object (None: it has none)."""
    if data.startswith("{"):
        with contextlib.suppress(ValueError):
            value = json.loads(data)
            if isinstance(value, dict):
                text = value.get("text")
                return text if isinstance(text, str) else None
    return data


def _reply(raw: bytes) -> Reply | None:
    """The reply in a JSON answer; None for an empty one."""
    if not raw.strip():
        return None
    try:
        answer = json.loads(raw)
    except ValueError:
        raise WebhookAgentError(
            "the agent's endpoint answered something that is not JSON"
        ) from None
    if not isinstance(answer, dict):
        raise WebhookAgentError('the agent\'s answer must be a JSON object {"text", "files"}')
    if answer and "text" not in answer and "files" not in answer:
        # (an n8n agent's "output", Dify's "answer": not silence, a flow to fix)
        raise WebhookAgentError(
            'the agent\'s answer has neither "text" nor "files" (its keys: '
            f'{shown(", ".join(answer), 100)}): answer {{"text": "..."}}, or {{}} or 204 '
            "to say nothing"
        )
    text = answer.get("text")
    if text is not None and not isinstance(text, str):
        raise WebhookAgentError('"text" of the agent\'s answer must be a string')
    given = answer.get("files")
    if given is not None and not isinstance(given, list):
        raise WebhookAgentError('"files" of the agent\'s answer must be a list')
    files = [_file(i, f) for i, f in enumerate(given or [])]
    if not (text and text.strip()) and not files:
        return None
    return Reply(text=text, files=files)


def _file(index: int, f: Any) -> OutboundFile:
    where = f"files[{index}] of the agent's answer"
    if not isinstance(f, dict) or not isinstance(f.get("name"), str) or not f["name"]:
        raise WebhookAgentError(f"{where} needs a name")
    kind = f.get("kind", "file")
    if kind not in _FILE_KINDS:
        raise WebhookAgentError(f"{where}: kind must be one of {', '.join(_FILE_KINDS)}")
    url, data = f.get("url"), f.get("data")
    if (url is None) == (data is None):
        raise WebhookAgentError(f"{where} needs a url or its data (base64), one of them")
    if url is not None and not isinstance(url, str):
        raise WebhookAgentError(f"{where}: url must be a string")
    mime, duration = f.get("mime"), f.get("durationS")
    if mime is not None and not isinstance(mime, str):
        raise WebhookAgentError(f"{where}: mime must be a string")
    if duration is not None and (
        isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not 0 <= duration < math.inf  # (NaN too: JSON from Python may hold it)
    ):
        raise WebhookAgentError(f"{where}: durationS must be a finite number of seconds, 0 or more")
    # (checked with the rest of the answer: the text would go out before the file failed)
    voice_problem = voice_length_problem(kind, duration, key="durationS")
    if voice_problem is not None:
        raise WebhookAgentError(f"{where}: {voice_problem}")
    raw = None
    if data is not None:
        if not isinstance(data, str):
            raise WebhookAgentError(f"{where}: data is not valid base64")
        try:
            raw = file_data(data)
        except ValueError as exc:
            raise WebhookAgentError(f"{where}: data is {exc}") from None
    return OutboundFile(
        name=f["name"],
        kind=kind,
        data=raw,
        url=url,
        mime=mime,
        duration_s=float(duration) if duration is not None else None,
    )
