"""MCP servers: started once with the gateway, restarted when they die, stopped with it.

Each configured server (``agent.mcpServers.<key>``) has a supervisor task that connects
(a program over stdio, or a streamable HTTP server, through the official ``mcp`` SDK),
lists the server's tools and keeps the session until the gateway stops; a server that says
its tools changed (``notifications/tools/list_changed``) has them listed again, and the
next turn is offered the new list (through the same group allowlists). A session that
breaks (the program exited, a call found the connection closed, a health ping got no
answer) is opened again, with a growing pause between attempts; so is one that does not
answer its opening (``initialize``, then the list of its tools) within the call timeout
(at most :data:`OPEN_WAIT_MAX_S`). While a server is down its tools are not offered to
the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from wechat_sdk.assistants.tool_schema import MAX_DESCRIPTION_CHARS
from wechat_sdk.config.assistant import McpServerConfig
from wechat_sdk.config.integrations import origin_of
from wechat_sdk.logtext import (
    as_httpx_writes,
    hide_in_library_logs,
    secret_forms,
    shown,
    url_secrets,
)

if TYPE_CHECKING:
    from mcp import ClientSession

__all__ = ["McpServer", "McpTool", "McpToolFailed"]

log = logging.getLogger("wechat_sdk.assistant")

#: pause before the first reconnection; it doubles up to RESTART_MAX_S
RESTART_FIRST_S = 0.5
RESTART_MAX_S = 30.0
#: how often a quiet session is pinged to learn that its server died
PING_EVERY_S = 15.0
#: the longest wait for a server's answer to its opening (``initialize``, the first list
#: of its tools); less when the call timeout is shorter. Longer is a failure: tried again
OPEN_WAIT_MAX_S = 30.0
#: the longest wait for a ping's answer, or for the list of tools that changed
ANSWER_WAIT_MAX_S = 10.0
#: the longest wait for a running session to close when the gateway stops
STOP_WAIT_S = 10.0


class McpToolFailed(RuntimeError):
    """A tool call that did not give a result (the message is for the model)."""


@dataclass(frozen=True, slots=True)
class McpTool:
    """A tool of an MCP server, as the server describes it."""

    server: str
    name: str
    description: str
    parameters: dict[str, Any]


class McpServer:
    """One configured MCP server and its supervised session."""

    def __init__(
        self,
        key: str,
        config: McpServerConfig,
        *,
        call_timeout_s: float = 60.0,
        ping_every_s: float = PING_EVERY_S,
    ) -> None:
        self.key = key
        self.config = config
        hide_in_library_logs(_secrets_of(config), urls=[] if config.url is None else [config.url])
        self.call_timeout_s = call_timeout_s
        self.ping_every_s = ping_every_s
        self.tools: tuple[McpTool, ...] = ()
        #: sessions opened so far (1 after the first start; more after restarts)
        self.sessions_opened = 0
        #: (account, rule entry) already warned of for naming this server's tool along with
        #: another server's (offered_tools: one warning, not one a turn)
        self.ambiguous_entries_warned: set[tuple[str, str]] = set()
        self._session: ClientSession | None = None
        self._broken = asyncio.Event()
        #: set when the server says its tools changed: the watcher lists them again
        self._tools_changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._first_try = asyncio.Event()
        self._up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool:
        return self._session is not None

    async def wait_up(self) -> None:
        """Return once a session is open (at once when it is)."""
        await self._up.wait()

    async def start(self, wait_s: float) -> None:
        """Start the supervisor; wait up to ``wait_s`` for the first connection (or its
        failure: the supervisor keeps trying in the background)."""
        if self._task is None:
            # (in a context of its own: the server is every account's that names it; in
            # the context of the task that started it, an account's, its lines showed it)
            self._task = asyncio.get_running_loop().create_task(
                self._supervise(), name=f"mcp:{self.key}", context=contextvars.Context()
            )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await self._first_try.wait()

    async def aclose(self) -> None:
        """Close the session and stop the server (a program gets its stdin closed, then
        SIGTERM if it lingers, as the SDK does)."""
        self._stopping.set()
        self._broken.set()
        task, self._task = self._task, None
        if task is None:
            return
        if not self.up:
            # opening (a server that may never answer) or pausing: nothing to finish
            task.cancel()
        # (asyncio.wait: the task's end, cancelled or not, is never raised here)
        done, _ = await asyncio.wait({task}, timeout=STOP_WAIT_S)
        if not done:
            task.cancel()
            await asyncio.wait({task})

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        """Call a tool; its result as text for the model. Raises :class:`McpToolFailed`."""
        import anyio
        from mcp.shared.exceptions import McpError
        from mcp.types import CONNECTION_CLOSED

        session = self._session
        if session is None:
            raise McpToolFailed(f"the tool server {self.key!r} is not running right now")
        try:
            async with asyncio.timeout(self.call_timeout_s):
                result = await session.call_tool(
                    name, arguments, read_timeout_seconds=timedelta(seconds=self.call_timeout_s)
                )
        except TimeoutError:
            raise McpToolFailed(
                f"the tool {name!r} did not answer within {self.call_timeout_s:g} s"
            ) from None
        except McpError as exc:
            if exc.error.code == CONNECTION_CLOSED:
                self._mark_broken("connection closed during a call")
                raise McpToolFailed(
                    f"the tool server {self.key!r} stopped; it is being restarted"
                ) from None
            raise McpToolFailed(f"the tool {name!r} failed: {exc.error.message}") from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            self._mark_broken("connection lost during a call")
            raise McpToolFailed(
                f"the tool server {self.key!r} stopped; it is being restarted"
            ) from None
        text = _result_text(result)
        if result.isError:
            raise McpToolFailed(f"the tool {name!r} failed: {text}")
        return text

    # ------------------------------------------------------------ supervision

    def _mark_broken(self, why: str) -> None:
        if self._session is not None and not self._broken.is_set():
            log.warning(
                "MCP server %r: %s reason=mcp_server_down",
                self.key,
                why,
                extra={"account": "-"},
            )
        # no call uses it from now on; the supervisor closes it and opens a new one
        self._session = None
        self._up.clear()
        self._broken.set()

    async def _supervise(self) -> None:
        delay = RESTART_FIRST_S
        while not self._stopping.is_set():
            self._broken.clear()
            try:
                await self._serve_once()
                delay = RESTART_FIRST_S  # it ran: the next failure starts the pauses again
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # (anyio raises exception groups: ExceptionGroup)
                if self._stopping.is_set():
                    break
                log.warning(
                    "MCP server %r could not be used: %s; trying again in %g s reason=mcp_failed",
                    self.key,
                    self._describe(exc),
                    delay,
                    extra={"account": "-"},
                )
            finally:
                self._session = None
                self._up.clear()
                self.tools = ()
                self._first_try.set()
            if self._stopping.is_set():
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
            delay = min(delay * 2, RESTART_MAX_S)

    def _describe(self, exc: BaseException) -> str:
        """One line for an error (the first of a group), without a traceback, and without
        the server's URL (its path, query or user part may hold a key: named by its origin)
        or the values of its headers and environment."""
        import httpx

        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        config = self.config
        if isinstance(exc, httpx.HTTPStatusError) and config.url is not None:
            # (httpx's own text repeats the whole URL it asked)
            return f"HTTP {exc.response.status_code} from {origin_of(config.url)}"
        lines = str(exc).strip().splitlines()
        text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        if config.url is not None:
            for form in dict.fromkeys((config.url, as_httpx_writes(config.url))):
                text = text.replace(form, origin_of(config.url))
        for secret in secret_forms(_secrets_of(config)):
            text = text.replace(secret, "***")
        return text

    async def _serve_once(self) -> None:
        from mcp import ClientSession

        async with (
            self._transport() as (read, write),
            ClientSession(read, write, message_handler=self._on_message) as session,
        ):
            await self._open(session)
            self._session = session
            self._up.set()
            self.sessions_opened += 1
            self._first_try.set()
            log.info(
                "MCP server %r ready: %d tool(s)%s",
                self.key,
                len(self.tools),
                " (restarted)" if self.sessions_opened > 1 else "",
                extra={"account": "-"},
            )
            await self._watch(session)

    async def _open(self, session: ClientSession) -> None:
        """Initialize the session and list the tools; a server that does not answer in
        time fails this attempt (TimeoutError), as one that cannot start."""
        limit = min(self.call_timeout_s, OPEN_WAIT_MAX_S)
        step = "initialize"
        try:
            async with asyncio.timeout(limit):
                await session.initialize()
                step = "tools/list"
                self._tools_changed.clear()  # (listed now)
                self.tools = tuple(await _list_tools(self.key, session))
        except TimeoutError:
            raise TimeoutError(f"no answer to {step} within {limit:g} s") from None

    async def _on_message(self, message: Any) -> None:
        """What the server sends on its own: a change of its tools is noted (listed again
        by the watcher: not here, where the session's reading waits for this to end)."""
        from mcp.types import ServerNotification, ToolListChangedNotification

        if isinstance(message, ServerNotification) and isinstance(
            message.root, ToolListChangedNotification
        ):
            self._tools_changed.set()

    async def _watch(self, session: ClientSession) -> None:
        """Return when the session broke or the gateway stops; list the tools again when
        the server says they changed."""
        loop = asyncio.get_running_loop()
        ping_at = loop.time() + self.ping_every_s
        while not self._broken.is_set():
            if self._tools_changed.is_set():
                self._tools_changed.clear()
                await self._list_again(session)
                continue
            changed = asyncio.ensure_future(self._tools_changed.wait())
            broken = asyncio.ensure_future(self._broken.wait())
            try:
                done, _ = await asyncio.wait(
                    (changed, broken),
                    timeout=max(0.0, ping_at - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                changed.cancel()
                broken.cancel()
            if broken in done:
                return
            if changed in done:
                continue  # (the ping keeps its time: changes never put it off)
            ping_at = loop.time() + self.ping_every_s
            try:
                async with asyncio.timeout(min(self.call_timeout_s, ANSWER_WAIT_MAX_S)):
                    await session.send_ping()
            except Exception:
                self._mark_broken("no answer to a ping")

    async def _list_again(self, session: ClientSession) -> None:
        """The server said its tools changed: list them again. A server that does not
        answer is restarted; one that answers with an error keeps its last list."""
        from mcp.shared.exceptions import McpError

        try:
            async with asyncio.timeout(min(self.call_timeout_s, ANSWER_WAIT_MAX_S)):
                tools = tuple(await _list_tools(self.key, session))
        except McpError as exc:
            log.warning(
                "MCP server %r: its tools changed, but listing them failed: %s (the last "
                "list stays) reason=mcp_failed",
                self.key,
                exc.error.message,
                extra={"account": "-"},
            )
            return
        except Exception:  # (no answer, or the connection is gone)
            self._mark_broken("no answer when its tools were listed again")
            return
        self.tools = tools
        log.info(
            "MCP server %r: its tools changed: %d tool(s)",
            self.key,
            len(self.tools),
            extra={"account": "-"},
        )

    @contextlib.asynccontextmanager
    async def _transport(self) -> AsyncIterator[tuple[Any, Any]]:
        config = self.config
        if config.command is not None:
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            params = StdioServerParameters(
                command=config.command, args=list(config.args), env=dict(config.env) or None
            )
            async with stdio_client(params) as (read, write):
                yield read, write
            return
        import httpx
        from mcp.client.streamable_http import streamable_http_client

        assert config.url is not None
        client = httpx.AsyncClient(headers=config.headers, timeout=httpx.Timeout(30.0, read=300.0))
        async with client, streamable_http_client(config.url, http_client=client) as streams:
            yield streams[0], streams[1]


async def _list_tools(key: str, session: ClientSession) -> list[McpTool]:
    tools: list[McpTool] = []
    cursor: str | None = None
    while True:
        page = await session.list_tools(cursor)
        for tool in page.tools:
            description = tool.description or ""
            if len(description) > MAX_DESCRIPTION_CHARS:
                log.info(
                    "MCP server %r: the description of its tool '%s' is %d characters: the "
                    "model is given its first %d (the most the API takes)",
                    key,
                    shown(tool.name),
                    len(description),
                    MAX_DESCRIPTION_CHARS,
                    extra={"account": "-"},
                )
            tools.append(McpTool(key, tool.name, description, dict(tool.inputSchema or {})))
        cursor = page.nextCursor
        if not cursor:
            return tools


def _result_text(result: Any) -> str:
    """A tool result's content as text (pictures and other content named, not shown)."""
    parts: list[str] = []
    for item in result.content:
        kind = getattr(item, "type", "")
        if kind == "text":
            parts.append(item.text)
        elif kind == "resource" and hasattr(item.resource, "text"):
            parts.append(item.resource.text)
        else:
            parts.append(f"[{kind or 'content'} not shown]")
    if not parts and getattr(result, "structuredContent", None) is not None:
        import json

        parts.append(json.dumps(result.structuredContent, ensure_ascii=False))
    return "\n".join(parts)


def _secrets_of(config: McpServerConfig) -> list[str]:
    """What of a server's config is a key: its URL's user part and query (as written and
    as httpx writes them), its headers' and environment's values."""
    urls = [] if config.url is None else [config.url, as_httpx_writes(config.url)]
    return [
        *(s for url in urls for s in url_secrets(url)),
        *config.headers.values(),
        *config.env.values(),
    ]
