"""Group rules: which groups are heard, whether a mention is needed, which tools apply."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from wechat_sdk.config.models import AccountConfig, GroupConfig, ToolPolicy

__all__ = [
    "GroupRule",
    "allowed_tool_names",
    "api_tool_name",
    "python_tool_names",
    "resolve_group",
    "tool_permitted",
]

WILDCARD = "*"
_NOT_IN_API_NAMES = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass(frozen=True, slots=True)
class GroupRule:
    """The effective settings of one group for one account."""

    allowed: bool
    reason: str  # why not allowed: group_disabled | group_not_allowed
    require_mention: bool
    tools: frozenset[str] | None  # None: every registered tool


def resolve_group(settings: AccountConfig, room_id: str) -> GroupRule:
    """Apply groupPolicy and the ``groups`` map (exact id first, then ``"*"``, key by key)."""
    groups = settings.groups
    exact = groups.get(room_id)
    star = groups.get(WILDCARD)
    require = _first(exact, star, "requireMention")
    enabled = _first(exact, star, "enabled")
    tools_cfg = _first(exact, star, "tools")
    rule = GroupRule(True, "", True if require is None else bool(require), None)
    if isinstance(tools_cfg, list | ToolPolicy):
        rule = GroupRule(True, "", rule.require_mention, _tool_names(tools_cfg))
    if settings.groupPolicy == "disabled":
        return _deny(rule, "group_disabled")
    listed = exact is not None or star is not None
    if settings.groupPolicy == "allowlist" and not listed:
        return _deny(rule, "group_not_allowed")
    if settings.groupPolicy == "open" and groups and star is None and exact is None:
        # a groups map without "*" lists specific groups: it acts as an allowlist
        return _deny(rule, "group_not_allowed")
    if enabled is False:
        return _deny(rule, "group_disabled")
    return rule


def _tool_names(tools: list[str] | ToolPolicy) -> frozenset[str] | None:
    if isinstance(tools, list):
        return frozenset(tools)
    if tools.allow is None and not tools.alsoAllow and not tools.deny:
        return None
    if tools.allow is None:
        # deny-only policy: everything registered but the denied; expressed at call time
        return _DenyOnly(tools.deny)
    allowed = _Allowed((frozenset(tools.allow) | frozenset(tools.alsoAllow)) - set(tools.deny))
    allowed.deny = frozenset(tools.deny)
    return allowed


class _DenyOnly(frozenset[str]):
    """Marker set: 'all registered tools except these'."""


class _Allowed(frozenset[str]):
    """The names a policy allows, keeping the ones it denies: a denied tool stays denied
    when an allowed name covers it (an MCP server's key, for all of its tools)."""

    deny: frozenset[str] = frozenset()


#: a rule's name for every tool: ``allow: ["*"]`` allows each, ``deny: ["*"]`` denies each
EVERY_TOOL = "*"


def _denied(unwanted: frozenset[str], deny: frozenset[str]) -> bool:
    """A deny entry is read broadly: ``*`` denies every tool, and a name denies the tool
    in any letter case (``Shell`` denies ``shell``: a deny that missed by a capital
    would let the tool through)."""
    if EVERY_TOOL in deny:
        return True
    folded = {d.casefold() for d in deny}
    return any(n.casefold() in folded for n in unwanted)


def _first(exact: GroupConfig | None, star: GroupConfig | None, key: str) -> object:
    for entry in (exact, star):
        if entry is not None and key in entry.model_fields_set:
            value = getattr(entry, key)
            if value is not None:
                return value
    return None


def _deny(rule: GroupRule, reason: str) -> GroupRule:
    return GroupRule(False, reason, rule.require_mention, rule.tools)


def api_tool_name(text: str) -> str:
    """``text`` as a tool name the Chat Completions API takes (letters, digits, _ and -,
    at most 64): the name the model sees a tool by, which a rule may name it by too.

    >>> api_tool_name("weather.today")
    'weather_today'
    """
    return _NOT_IN_API_NAMES.sub("_", text)[:64]


def allowed_tool_names(
    rule_tools: frozenset[str] | None, registered: Iterable[str]
) -> frozenset[str]:
    """Registered tools allowed by a resolved rule, each named in it by its registered
    name or by the name the model sees it by (a deny by either denies it)."""
    known = frozenset(registered)
    return frozenset(n for n in known if tool_permitted(rule_tools, python_tool_names(n, known)))


def python_tool_names(name: str, registered: Iterable[str] = ()) -> tuple[str, ...]:
    """The names a rule may give a registered (Python) tool: its own, and the name the
    model sees (``weather.today`` is ``weather_today``), unless another tool of
    ``registered`` has that name (a rule naming it means that one, and only that one)."""
    seen_as = api_tool_name(name) or "tool"
    if seen_as != name and seen_as in frozenset(registered):
        return (name,)
    return tuple(dict.fromkeys((name, seen_as)))


def tool_permitted(
    rule_tools: frozenset[str] | None,
    names: Iterable[str],
    denied_by: Iterable[str] | None = None,
) -> bool:
    """Whether a tool known by any of ``names`` (its own name, the key of the MCP server
    it comes from) is allowed by a resolved rule: listed under one of them, or, under a
    deny-only policy, denied under none. ``denied_by``: the names a deny entry may give
    it, when more than ``names`` (a deny entry is read broadly)."""
    if rule_tools is None:
        return True
    wanted = frozenset(names)
    unwanted = wanted if denied_by is None else wanted | frozenset(denied_by)
    if isinstance(rule_tools, _DenyOnly):
        return not _denied(unwanted, rule_tools)
    if isinstance(rule_tools, _Allowed) and _denied(unwanted, rule_tools.deny):
        return False
    return EVERY_TOOL in rule_tools or bool(wanted & rule_tools)
