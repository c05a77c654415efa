"""``wechat-sdk channels``: what the WeChat channel can do."""

from __future__ import annotations

import json

import click

from wechat_sdk.cli import _out, cli


@cli.group("channels")
def channels_group() -> None:
    """What the WeChat channel can do."""


@channels_group.command("capabilities")
@click.option("--json", "as_json", is_flag=True, help="Print the matrix as JSON.")
def channels_capabilities(as_json: bool) -> None:
    """Print the capability matrix."""
    from rich.table import Table  # imported when first needed (start-up time)

    from wechat_sdk.capabilities import CAPABILITIES

    data = CAPABILITIES.model_dump(by_alias=True)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    table = Table(title="WeChat channel capabilities", title_justify="left")
    table.add_column("capability")
    table.add_column("supported")
    for key, value in data.items():
        shown = ", ".join(value) if isinstance(value, list) else ("yes" if value else "no")
        table.add_row(key, shown)
    _out().print(table)
