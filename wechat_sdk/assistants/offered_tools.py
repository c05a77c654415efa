"""The tools offered to the model in one turn, and the calls it makes to them.

Two sources: the Python tools of the gateway's ``ToolRegistry`` (the turn carries the
ones the conversation allows: ``turn.tools``) and the tools of the configured MCP
servers, filtered here by the same rule: a group's ``tools`` entry names a tool (an MCP
tool by its own name on any server, by the name the model sees, or as ``server__tool``
for that server's tool only), or an MCP server's key meaning all its tools; DMs get
every tool unless ``agent.dmTools`` narrows them. An allow entry naming a Python tool
offered means it only, not also an MCP tool of that name (warned once). A call to a tool
that was not offered is refused and never run: the model is told, and the log says
``tool_not_allowed``.

A call is given up after ``agent.timeout`` (an MCP server's call by the server, a Python
tool's here: an async one is cancelled, a sync one, run in a worker thread, left to end
with its result dropped), and the model told so. A tool's result is cut at
:data:`MAX_RESULT_CHARS` (with a note saying how much was cut): it goes into every later
request of the turn. Its description is cut at the longest the API takes
(:func:`.tool_schema.described`), and its parameters get the ``"properties": {}`` it
needs when the schema has none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from wechat_sdk.agent import AgentTurn, ToolNotAllowed
from wechat_sdk.assistants.mcp_tools import McpServer, McpTool, McpToolFailed
from wechat_sdk.assistants.tool_schema import (
    BadToolArguments,
    describe_python_tool,
    described,
)
from wechat_sdk.config.accounts import ResolvedAccount
from wechat_sdk.inbound.groups import (
    api_tool_name,
    python_tool_names,
    resolve_group,
    tool_permitted,
)
from wechat_sdk.logtext import shown
from wechat_sdk.tool_calls import run_tool

__all__ = ["MAX_RESULT_CHARS", "OfferedTool", "ToolCallOutcome", "TurnTools", "tools_for_turn"]

log = logging.getLogger("wechat_sdk.assistant")

#: the longest tool result given to the model; a longer one is cut, with a note (as the
#: longest text of a message, ``MAX_TEXT_CHARS`` of iLink: it rides in every later request)
MAX_RESULT_CHARS = 100_000

_NO_KEYS: frozenset[str] = frozenset()

Runner = Callable[[str], Awaitable[str]]


class _ToolTimedOut(Exception):
    """A Python tool did not return within the call timeout (given up)."""


@dataclass(frozen=True, slots=True)
class OfferedTool:
    """A tool as the model sees it (``name`` is unique in the turn) and how to run it."""

    name: str
    description: str
    parameters: dict[str, Any]
    source: str  # "python", or the MCP server's key
    run: Runner

    def schema(self) -> dict[str, Any]:
        """The Chat Completions ``tools`` entry."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": described(self.description),
                # (OpenAI refuses an object schema without properties, HTTP 400: the
                # official Go SDK lists a tool without arguments as {"type": "object"})
                "parameters": {"type": "object", "properties": {}, **self.parameters},
            },
        }


@dataclass(frozen=True, slots=True)
class ToolCallOutcome:
    """What a call gave: the text the model reads, and whether the tool ran."""

    text: str
    ran: bool


class TurnTools:
    """The tools of one turn, by the name the model uses."""

    def __init__(self, tools: Iterable[OfferedTool], *, account_id: str, where: str) -> None:
        self.tools = {t.name: t for t in tools}
        self.account_id = account_id
        self.where = where

    def schemas(self) -> list[dict[str, Any]]:
        return [t.schema() for t in self.tools.values()]

    async def call(self, name: str, arguments: str) -> ToolCallOutcome:
        """Run a call of the model; never raises (the outcome's text says what went wrong)."""
        tool = self.tools.get(name)
        if tool is None:
            log.warning(
                "tool refused: '%s' is not offered here (%s) reason=tool_not_allowed",
                shown(name),
                shown(self.where),
                extra={"account": self.account_id},
            )
            return ToolCallOutcome(
                f"error: the tool {name!r} is not available in this conversation; "
                "answer without it",
                ran=False,
            )
        try:
            return ToolCallOutcome(_capped(await tool.run(arguments)), ran=True)
        except BadToolArguments as exc:
            log.warning(
                "tool '%s' called with bad arguments: %s (not run; the model is told) "
                "reason=tool_bad_arguments",
                shown(name),
                shown(exc, 300),
                extra={"account": self.account_id},
            )
            return ToolCallOutcome(f"error: bad arguments for {name!r}: {exc}", ran=False)
        except ToolNotAllowed:  # (AllowedTools logged it with its reason)
            return ToolCallOutcome(
                f"error: the tool {name!r} is not available in this conversation", ran=False
            )
        except (McpToolFailed, _ToolTimedOut) as exc:
            log.warning(
                "tool '%s' failed: %s reason=tool_failed",
                shown(name),
                shown(exc, 300),
                extra={"account": self.account_id},
            )
            return ToolCallOutcome(_capped(f"error: {exc}"), ran=True)
        except Exception as exc:  # a Python tool's own error: the model may recover
            log.warning(
                "tool '%s' raised %s: %s reason=tool_failed",
                shown(name),
                type(exc).__name__,
                shown(exc, 300),
                extra={"account": self.account_id},
            )
            return ToolCallOutcome(_capped(f"error: {type(exc).__name__}: {exc}"), ran=True)


def tools_for_turn(
    turn: AgentTurn,
    account: ResolvedAccount,
    dm_tools: list[str] | None,
    servers: Iterable[McpServer],
    *,
    call_timeout_s: float = 60.0,
) -> TurnTools:
    """The tools this conversation allows: the turn's Python tools (each call given up
    after ``call_timeout_s``), and the tools of the running MCP servers its rule permits."""
    if turn.room_id is not None:
        rule = resolve_group(account.settings, turn.room_id).tools
        where = f"group {turn.room_id}"
    else:
        rule = None if dm_tools is None else frozenset(dm_tools)
        where = f"DM with {turn.sender_id}"
    offered: list[OfferedTool] = []
    taken: set[str] = set()
    #: the names a rule gives the Python tools offered: an allow entry of one of them
    #: means that tool, not also an MCP tool of that name
    python_names: set[str] = set()
    for name in turn.tools.names:
        # (a group's rule chose them already, where the turn began: turn.tools)
        names = python_tool_names(name, turn.tools.names)
        if turn.room_id is None and not tool_permitted(rule, names):
            continue
        python_names.update(names)
        offered_as = _unique(api_tool_name(name) or "tool", taken)
        taken.add(offered_as)
        offered.append(_python_tool(turn.tools[name], offered_as, call_timeout_s))
    permitted: list[tuple[McpServer, McpTool]] = []
    #: MCP tools an allow entry naming a Python tool would have given too
    shadowed: list[tuple[McpServer, McpTool]] = []
    servers = list(servers)
    keys = frozenset(server.key for server in servers)
    python = frozenset(python_names)
    for server in servers:
        for tool in server.tools:
            # (a deny entry also by the tool's own names, whatever a server is called)
            denied_by = _rule_names(tool, _NO_KEYS)
            if not tool_permitted(rule, _rule_names(tool, keys, python), denied_by):
                if python and tool_permitted(rule, _rule_names(tool, keys), denied_by):
                    shadowed.append((server, tool))
                continue
            name = _model_name(tool, taken)
            taken.add(name)
            offered.append(_mcp_tool(server, tool, name))
            permitted.append((server, tool))
    if rule is not None:
        _warn_ambiguous(rule, permitted, keys, python, turn.account_id, where)
        _warn_python_named(rule, shadowed, keys, python, turn.account_id, where)
    return TurnTools(offered, account_id=turn.account_id, where=where)


def _rule_names(
    tool: McpTool, keys: frozenset[str], python: frozenset[str] = _NO_KEYS
) -> tuple[str, ...]:
    """The names an allow or deny entry may give an MCP tool: its own name (any server's
    tool of that name), the name the model sees (alone, or prefixed when another tool has
    it), ``server__tool`` (that server's tool only), and its server's key (all its tools).
    ``keys``: the account's MCP servers, ``python`` the names of the Python tools offered
    (see :func:`_bare_names`).

    >>> _rule_names(McpTool("docs", "run.shell", "", {}), frozenset({"docs"}))
    ('run.shell', 'run_shell', 'docs__run.shell', 'docs__run_shell', 'docs')
    """
    own = _bare_names(tool, keys, python)
    prefixed = f"{tool.server}__{tool.name}"
    names = (*own, prefixed, api_tool_name(prefixed), tool.server)
    return tuple(dict.fromkeys(names))  # (in order, each once)


def _bare_names(
    tool: McpTool, keys: frozenset[str], python: frozenset[str] = _NO_KEYS
) -> tuple[str, ...]:
    """A tool's names that any server's tool may share: its own, and as the model sees it;
    but for a name that is another of ``keys`` (a server's key), or begins with one and
    ``__``: such an entry means that server's tools only, never this one; and for a name
    of ``python`` (a Python tool's): such an entry means that tool only.

    >>> _bare_names(McpTool("home", "docs__read_file", "", {}), frozenset({"docs", "home"}))
    ()
    >>> _bare_names(McpTool("home", "add", "", {}), frozenset({"home"}), frozenset({"add"}))
    ()
    """
    names = dict.fromkeys((tool.name, api_tool_name(tool.name) or "tool"))
    # (the part before "__": the whole name when it has none)
    return tuple(
        n for n in names if n not in python and n.partition("__")[0] not in keys - {tool.server}
    )


def _warn_ambiguous(
    rule: frozenset[str],
    permitted: list[tuple[McpServer, McpTool]],
    keys: frozenset[str],
    python: frozenset[str],
    account_id: str,
    where: str,
) -> None:
    """Warn (once while these servers run) of an allow entry naming a tool that several MCP
    servers have: each server's tool is offered, which may not be what the entry meant."""
    if tool_permitted(rule, ()):
        return  # a deny-only rule: its entries allow nothing
    servers_of: dict[str, dict[str, McpServer]] = {}
    for server, tool in permitted:
        for name in _bare_names(tool, keys, python):
            if name in rule:
                servers_of.setdefault(name, {})[server.key] = server
    for entry, servers in sorted(servers_of.items()):
        if len(servers) < 2 or not _first_warning(account_id, entry, servers):
            continue
        having = sorted(servers)
        log.warning(
            "tool rule entry '%s' (%s) allows the tools of that name of several MCP servers "
            "(%s): write %s to allow one of them reason=tool_rule_ambiguous",
            shown(entry),
            shown(where),
            ", ".join(shown(k) for k in having),
            shown(f"{having[0]}__{entry}"),
            extra={"account": account_id},
        )


def _warn_python_named(
    rule: frozenset[str],
    shadowed: list[tuple[McpServer, McpTool]],
    keys: frozenset[str],
    python: frozenset[str],
    account_id: str,
    where: str,
) -> None:
    """Warn (once while these servers run) of an allow entry naming a Python tool that
    an MCP server has a tool of that name too: the entry means the Python tool only."""
    servers_of: dict[str, dict[str, McpServer]] = {}
    for server, tool in shadowed:
        for name in _bare_names(tool, keys):
            if name in rule and name in python:
                servers_of.setdefault(name, {})[server.key] = server
    for entry, servers in sorted(servers_of.items()):
        if not _first_warning(account_id, entry, servers):
            continue
        having = sorted(servers)
        log.warning(
            "tool rule entry '%s' (%s) allows the Python tool of that name only, not the "
            "tool of that name of MCP server %s: write %s to allow it too "
            "reason=tool_rule_ambiguous",
            shown(entry),
            shown(where),
            ", ".join(shown(k) for k in having),
            " or ".join(shown(f"{k}__{entry}") for k in having),
            extra={"account": account_id},
        )


def _first_warning(account_id: str, entry: str, servers: dict[str, McpServer]) -> bool:
    """Whether the warning of a rule entry of the account naming tools of ``servers`` is
    due now (once while those servers run), marked as given."""
    key = (account_id, entry)
    if all(key in s.ambiguous_entries_warned for s in servers.values()):
        return False
    for server in servers.values():
        server.ambiguous_entries_warned.add(key)
    return True


def _python_tool(func: Callable[..., Any], offered_as: str, timeout_s: float) -> OfferedTool:
    """A tool of the registry (``func``), offered to the model as ``offered_as``, given up when
    it has not returned within ``timeout_s``: an async one is cancelled; a sync one runs
    in a thread of its own (on the event loop it would hold every account while it runs),
    which cannot be stopped: what it returns after that is dropped (see
    :mod:`wechat_sdk.tool_calls`, the one rule for custom agents' ``turn.tools.call`` too)."""
    spec = describe_python_tool(func)

    async def run(arguments: str) -> str:
        kwargs = spec.parse(arguments)
        deadline = asyncio.timeout(timeout_s)
        try:
            async with deadline:
                result = await run_tool(func, **kwargs)
        except TimeoutError:
            if not deadline.expired():
                raise  # the tool's own (a request of its that timed out): its error
            raise _ToolTimedOut(
                f"the tool {offered_as!r} did not answer within {timeout_s:g} s"
            ) from None
        return result if isinstance(result, str) else _as_text(result)

    return OfferedTool(offered_as, spec.description, spec.parameters, "python", run)


def _mcp_tool(server: McpServer, tool: McpTool, name: str) -> OfferedTool:
    async def run(arguments: str) -> str:
        import json

        try:
            data = json.loads(arguments or "{}")
        except ValueError as exc:
            raise BadToolArguments(f"the arguments are not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise BadToolArguments("the arguments must be a JSON object")
        return await server.call(tool.name, data)

    return OfferedTool(name, tool.description, tool.parameters, tool.server, run)


def _model_name(tool: McpTool, taken: set[str]) -> str:
    """The tool's name as the API allows it (letters, digits, _ and -, at most 64);
    prefixed with its server's key when another tool has it already."""
    name = api_tool_name(tool.name) or "tool"
    if name in taken:
        name = api_tool_name(f"{tool.server}__{tool.name}")
    return _unique(name, taken)


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or with ``_2``, ``_3``, ... at its end (within 64) until no tool has it."""
    n = 1
    candidate = name
    while candidate in taken:
        n += 1
        suffix = f"_{n}"
        candidate = name[: 64 - len(suffix)] + suffix
    return candidate


def _capped(text: str) -> str:
    """``text``, cut at MAX_RESULT_CHARS with a note saying how much more there was."""
    if len(text) <= MAX_RESULT_CHARS:
        return text
    more = len(text) - MAX_RESULT_CHARS
    return text[:MAX_RESULT_CHARS] + f"\n[cut: {more} characters more]"


def _as_text(value: Any) -> str:
    import json

    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)
