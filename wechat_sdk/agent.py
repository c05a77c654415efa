"""The Agent port: what the assistant receives and what it may answer.

An agent is any callable taking an :class:`AgentTurn` and returning ``str``, a
:class:`Reply`, ``None`` (stay silent), or an async iterator of text pieces (a
streaming agent). A plain ``async def`` is enough::

    async def agent(turn: AgentTurn) -> str:
        return f"you said {turn.text}"
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from wechat_sdk.puppet import OutboundFile

if TYPE_CHECKING:
    from wechat_sdk.config import Config

__all__ = [
    "Agent",
    "AgentFailed",
    "AgentLifecycle",
    "AgentResult",
    "AgentTurn",
    "AllowedTools",
    "HistoryEntry",
    "MediaItem",
    "Reply",
    "ReportsFailures",
    "ToolNotAllowed",
    "ToolRegistry",
    "resolve_agent_result",
]

log = logging.getLogger("wechat_sdk.agent")

ChatType = Literal["direct", "group"]


@dataclass(frozen=True, slots=True)
class MediaItem:
    """A file that came with the message, saved locally."""

    kind: str
    path: Path | None
    mime: str | None
    size: int
    name: str
    duration_s: float | None = None
    note: str | None = None  # e.g. "file too large (45.0 MB > 30 MB): not downloaded"
    #: a voice message's text, where the transport gives one
    transcript: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One earlier message given to the agent as context."""

    role: Literal["user", "assistant"]
    sender_id: str
    sender_name: str
    text: str
    timestamp: float
    message_id: str = ""


class AgentFailed(RuntimeError):
    """A failure of the agent that is expected, not a bug: the service it asks refused or
    could not be reached. The gateway sends the account's ``errorNotice`` and logs one
    line, ``agent failed on message <id>: <message> reason=<reason>``, without a
    traceback (any other exception is logged with its traceback). The message is logged:
    keep secrets and message text out of it.

    Example:
        ```python
        async def agent(turn: AgentTurn) -> str:
            answer = await ask_my_service(turn.text)
            if answer.status == 503:
                raise AgentFailed("my service is down (503)", reason="my_service_down")
            return answer.text
        ```
    """

    def __init__(self, message: str, *, reason: str = "agent_failed") -> None:
        super().__init__(message)
        #: the log line's reason code
        self.reason = reason


class ToolNotAllowed(PermissionError):
    """The agent called a tool that is not allowed in this conversation."""


ToolFunc = Callable[..., Any]


class ToolRegistry:
    """The tools the gateway knows. Groups allow a subset (``groups.<id>.tools``)."""

    def __init__(self) -> None:
        self._tools: dict[str, ToolFunc] = {}

    def register(self, name: str, func: ToolFunc | None = None) -> Any:
        """Register ``func`` under ``name``; usable as ``@registry.register("weather")``."""
        if func is None:

            def deco(f: ToolFunc) -> ToolFunc:
                self._tools[name] = f
                return f

            return deco
        self._tools[name] = func
        return func

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._tools)

    def allowed(self, names: Iterable[str] | None, *, where: str = "") -> AllowedTools:
        """The subset ``names`` (None: every registered tool)."""
        if names is None:
            return AllowedTools(dict(self._tools), where=where)
        wanted = set(names)
        return AllowedTools({n: f for n, f in self._tools.items() if n in wanted}, where=where)


class AllowedTools(Mapping[str, ToolFunc]):
    """The tools the agent may call in this turn. Calling any other is refused and logged."""

    def __init__(self, tools: Mapping[str, ToolFunc] | None = None, *, where: str = "") -> None:
        self._tools = dict(tools or {})
        self._where = where

    def __getitem__(self, name: str) -> ToolFunc:
        if name not in self._tools:
            log.warning(
                "tool refused: %r is not allowed here (%s) reason=tool_not_allowed",
                name,
                self._where or "this conversation",
            )
            raise ToolNotAllowed(f"tool {name!r} is not allowed in {self._where or 'this chat'}")
        return self._tools[name]

    def __iter__(self) -> Any:
        return iter(sorted(self._tools))

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def names(self) -> list[str]:
        return sorted(self._tools)

    async def call(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call a tool by name, as the configured assistant runs one: an async tool is
        awaited; a sync one runs in a thread of its own, so that a slow one holds no other
        conversation. Wrap the call in ``asyncio.timeout(...)`` to bound it: a sync tool
        given up cannot be stopped, and what it returns after that is dropped."""
        from wechat_sdk.tool_calls import run_tool  # (asyncio: not loaded by the import)

        return await run_tool(self[name], *args, **kwargs)


@dataclass(frozen=True, slots=True)
class AgentTurn:
    """Everything the agent is given for one inbound message."""

    account_id: str
    chat_type: ChatType
    sender_id: str
    sender_name: str
    text: str
    message_id: str = ""
    room_id: str | None = None
    room_topic: str | None = None
    raw_text: str = ""
    mentioned: bool = False
    timestamp: float = 0.0
    media: tuple[MediaItem, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    tools: AllowedTools = field(default_factory=AllowedTools)
    #: the text of the message this one quotes (replies to), where the transport gives it
    quoted_text: str | None = None

    @property
    def conversation_id(self) -> str:
        """The id replies go to: the room for groups, the sender for DMs."""
        return self.room_id if self.room_id is not None else self.sender_id


@dataclass(frozen=True)
class Reply:
    """A reply with optional files. Each file is its own WeChat message, after the text."""

    text: str | None = None
    files: tuple[OutboundFile, ...] = ()
    mention_ids: tuple[str, ...] = ()

    def __init__(
        self,
        text: str | None = None,
        files: Iterable[OutboundFile] = (),
        mention_ids: Iterable[str] = (),
    ) -> None:
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "files", tuple(files))
        object.__setattr__(self, "mention_ids", tuple(mention_ids))


AgentResult = str | Reply | AsyncIterator[str] | None
Agent = Callable[[AgentTurn], Awaitable[AgentResult] | AsyncIterator[str]]


@runtime_checkable
class AgentLifecycle(Protocol):
    """An agent with something to start and stop (MCP servers, model clients).

    The gateway calls ``start`` with its config when it starts (a reload stops the agent
    and starts it again with the new config) and ``aclose`` once its accounts stopped.
    """

    async def start(self, config: Config) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ReportsFailures(Protocol):
    """An agent that answers some failures itself (the model failed: it sends its failure
    text) and reports them, so that the account's status shows them (``last_error``). The
    gateway sets ``on_failure`` to a function of (account id, what failed)."""

    on_failure: Callable[[str, str], None] | None


async def resolve_agent_result(value: Any) -> Reply | AsyncIterator[str] | None:
    """Normalise whatever an agent returned (awaiting it first when needed)."""
    if inspect.isawaitable(value):
        value = await value
    if value is None:
        return None
    if isinstance(value, str):
        return Reply(text=value) if value.strip() else None
    if isinstance(value, Reply):
        return value
    if hasattr(value, "__aiter__"):
        it: AsyncIterator[str] = value.__aiter__()
        return it
    raise TypeError(
        f"agent returned {type(value).__name__}; expected str, Reply, an async iterator "
        "of str, or None"
    )
