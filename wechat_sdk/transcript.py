"""Printing a simulator transcript for people (the demo and `simulate`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape

__all__ = ["format_entry", "print_transcript"]


def format_entry(e: Mapping[str, Any], names: Mapping[str, str] | None = None) -> str:
    """One rich-markup line: time, direction, who, where, text or media."""
    names = names or {}
    t = f"[dim]{e['t']:>8.2f}s[/]"
    who = names.get(e["from"], e["from"])
    where = f" in {names.get(e['room'], e['room'])}" if e.get("room") else ""
    if e["direction"] == "in":
        head = f"[cyan]{escape(who)}[/]{escape(where)} [dim]->[/] [dim]{e['account']}[/]"
    else:
        to = e.get("to")
        target = names.get(to, to) if to else names.get(e["room"], e["room"])
        head = f"[green]bot {e['account']}[/] [dim]->[/] [magenta]{escape(str(target))}[/]"
    if e.get("media"):
        m = e["media"]
        body = (
            f"[yellow]\\[{m.get('kind')}: {escape(str(m.get('name')))}, {m.get('size')} bytes][/]"
        )
    else:
        body = escape(e.get("text") or "")
    return f"{t} {head}: {body}"


def print_transcript(
    entries: list[dict[str, Any]], console: Console, names: Mapping[str, str] | None = None
) -> None:
    for e in entries:
        console.print(format_entry(e, names))
