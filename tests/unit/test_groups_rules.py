"""resolve_group and allowed_tool_names: groupPolicy, the groups map key by key, tools."""

from __future__ import annotations

from typing import Any

import pytest

from wechat_sdk.config import AccountConfig
from wechat_sdk.inbound.groups import allowed_tool_names, resolve_group

R1 = "r1@chatroom"
R2 = "r2@chatroom"
TOOLS = frozenset({"weather", "search", "shell"})


def settings(**keys: Any) -> AccountConfig:
    return AccountConfig.model_validate(keys)


@pytest.mark.parametrize(
    ("keys", "room", "allowed", "reason", "require"),
    [
        ({}, R1, True, "", True),
        ({"groupPolicy": "open", "groups": {"*": {}}}, R1, True, "", True),
        ({"groups": {R2: {}}}, R1, False, "group_not_allowed", True),
        ({"groups": {R1: {"requireMention": False}}}, R1, True, "", False),
        ({"groups": {"*": {"requireMention": False}}}, R1, True, "", False),
        ({"groupPolicy": "allowlist"}, R1, False, "group_not_allowed", True),
        ({"groupPolicy": "allowlist", "groups": {R2: {}}}, R1, False, "group_not_allowed", True),
        ({"groupPolicy": "allowlist", "groups": {R1: {}}}, R1, True, "", True),
        (
            {"groupPolicy": "allowlist", "groups": {"*": {"requireMention": False}}},
            R1,
            True,
            "",
            False,
        ),
        ({"groupPolicy": "disabled"}, R1, False, "group_disabled", True),
        ({"groupPolicy": "disabled", "groups": {R1: {}}}, R1, False, "group_disabled", True),
        ({"groups": {"*": {}, R1: {"enabled": False}}}, R1, False, "group_disabled", True),
        ({"groups": {"*": {"enabled": False}, R1: {"enabled": True}}}, R1, True, "", True),
        (
            {"groups": {"*": {"enabled": False}, R1: {"enabled": True}}},
            R2,
            False,
            "group_disabled",
            True,
        ),
        # key by key: the exact entry wins, "*" fills in what it does not set
        (
            {"groups": {"*": {"requireMention": False}, R1: {"requireMention": True}}},
            R1,
            True,
            "",
            True,
        ),
        (
            {"groups": {"*": {"requireMention": False}, R1: {"tools": ["weather"]}}},
            R1,
            True,
            "",
            False,
        ),
        (
            {"groups": {"*": {"requireMention": False}, R1: {"requireMention": None}}},
            R1,
            True,
            "",
            False,
        ),
    ],
)
def test_resolve_group(
    keys: dict[str, Any], room: str, allowed: bool, reason: str, require: bool
) -> None:
    rule = resolve_group(settings(**keys), room)
    assert (rule.allowed, rule.reason, rule.require_mention) == (allowed, reason, require)


@pytest.mark.parametrize(
    ("groups", "room", "expected"),
    [
        ({}, R1, TOOLS),
        ({"*": {}}, R1, TOOLS),
        ({R1: {"tools": ["weather", "unknown"]}}, R1, {"weather"}),
        ({R1: {"tools": []}}, R1, set()),
        (
            {
                R1: {
                    "tools": {
                        "allow": ["weather", "shell"],
                        "alsoAllow": ["search"],
                        "deny": ["shell"],
                    }
                }
            },
            R1,
            {"weather", "search"},
        ),
        ({R1: {"tools": {"deny": ["shell"]}}}, R1, {"weather", "search"}),
        ({R1: {"tools": {"allow": []}}}, R1, set()),
        ({R1: {"tools": {}}}, R1, TOOLS),
        ({R1: {"tools": {"alsoAllow": ["search"]}}}, R1, TOOLS),
        ({R1: {"tools": {"allow": ["weather"], "deny": ["weather"]}}}, R1, set()),
        # the exact group's tools win over "*"
        ({"*": {"tools": ["shell"]}, R1: {"tools": ["weather"]}}, R1, {"weather"}),
        ({"*": {"tools": ["shell"]}, R1: {"requireMention": False}}, R1, {"shell"}),
        ({"*": {"tools": {"deny": ["shell"]}}, R1: {}}, R2, {"weather", "search"}),
    ],
)
def test_allowed_tool_names(groups: dict[str, Any], room: str, expected: set[str]) -> None:
    rule = resolve_group(settings(groups=groups), room)
    assert rule.allowed
    assert allowed_tool_names(rule.tools, TOOLS) == expected


def test_tools_are_resolved_even_for_a_denied_group() -> None:
    rule = resolve_group(settings(groupPolicy="disabled", groups={R1: {"tools": ["weather"]}}), R1)
    assert not rule.allowed
    assert allowed_tool_names(rule.tools, TOOLS) == {"weather"}


def test_allowed_tool_names_only_returns_registered_tools() -> None:
    assert allowed_tool_names(frozenset({"weather", "ghost"}), ["weather"]) == {"weather"}
    assert allowed_tool_names(None, []) == frozenset()


def test_a_registered_tool_is_named_by_the_name_the_model_sees_too() -> None:
    """``weather.today`` is offered to a model as ``weather_today``: a rule naming it so
    means it (a deny by that name let it through)."""
    registered = ["weather.today", "search"]
    deny = resolve_group(settings(groups={R1: {"tools": {"deny": ["weather_today"]}}}), R1)
    assert allowed_tool_names(deny.tools, registered) == {"search"}
    allow = resolve_group(settings(groups={R1: {"tools": ["weather_today"]}}), R1)
    assert allowed_tool_names(allow.tools, registered) == {"weather.today"}
    both = {"allow": ["weather_today"], "deny": ["weather.today"]}
    denied = resolve_group(settings(groups={R1: {"tools": both}}), R1)
    assert allowed_tool_names(denied.tools, registered) == set()


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        # "*" names every tool: a deny of it denied none (it was read as a tool's name)
        ({"deny": ["*"]}, set()),
        ({"allow": ["*"]}, {"shell", "search", "weather.today"}),
        (["*"], {"shell", "search", "weather.today"}),
        ({"allow": ["*"], "deny": ["shell"]}, {"search", "weather.today"}),
        ({"allow": ["*"], "deny": ["*"]}, set()),
        # a deny is read in any letter case: "Shell" let shell through
        ({"deny": ["Shell"]}, {"search", "weather.today"}),
        ({"allow": ["search", "shell"], "deny": ["SHELL"]}, {"search"}),
        # an allow is exact: it offers nothing it does not name
        ({"allow": ["Search"]}, set()),
    ],
)
def test_every_tool_and_a_deny_in_another_case(tools: Any, expected: set[str]) -> None:
    registered = ["shell", "search", "weather.today"]
    rule = resolve_group(settings(groups={R1: {"tools": tools}}), R1)
    assert allowed_tool_names(rule.tools, registered) == expected


def test_a_rule_naming_a_registered_tool_means_that_one_not_another_seen_so() -> None:
    """``weather.today`` is seen as ``weather_today``; with a tool registered under that
    very name too, a rule naming ``weather_today`` means that tool only (it offered both)."""
    registered = ["weather.today", "weather_today"]
    allow = resolve_group(settings(groups={R1: {"tools": ["weather_today"]}}), R1)
    assert allowed_tool_names(allow.tools, registered) == {"weather_today"}
    deny = resolve_group(settings(groups={R1: {"tools": {"deny": ["weather_today"]}}}), R1)
    assert allowed_tool_names(deny.tools, registered) == {"weather.today"}
