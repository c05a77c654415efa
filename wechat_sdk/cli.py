"""The ``wechat-sdk`` command line (also ``python -m wechat_sdk``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from wechat_sdk.capabilities import CAPABILITIES
from wechat_sdk.config import ConfigError, ResolvedAccount, accounts_of, load_config

__all__ = ["cli", "main"]

SECRET_KEYS = frozenset({"token"})


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def fail_config(exc: ConfigError, *, code: int = 1) -> None:
    """Print every problem with its path and line, then exit."""
    err = _err()
    where = f" in {exc.source}" if exc.source else ""
    count = len(exc.problems)
    err.print(f"[bold red]config error{'s' if count > 1 else ''}{where}:[/]")
    for line in exc.render().splitlines():
        err.print(f"  {line}", markup=False)
    raise SystemExit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wechat-sdk", prog_name="wechat-sdk")
def cli() -> None:
    """WeChat channel of a personal AI assistant gateway."""


# ---------------------------------------------------------------- config


@cli.group("config")
def config_group() -> None:
    """Check the configuration."""


@config_group.command("check")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Config file (default: $WECHAT_SDK_CONFIG or ~/.clawdbot/config.json5).")
@click.option("--json", "as_json", is_flag=True, help="Print the resolved accounts as JSON.")
def config_check(config_file: Path | None, as_json: bool) -> None:
    """Validate the config and print the resolved accounts (secrets masked)."""
    try:
        config = load_config(config_file)
        accounts = accounts_of(config)
    except ConfigError as exc:
        fail_config(exc)
        return
    rows = [account_summary(a) for a in accounts.accounts.values()]
    if as_json:
        click.echo(json.dumps({"ok": True, "defaultAccountId": accounts.default_id,
                               "accounts": rows, "warnings": list(accounts.warnings)},
                              indent=2, ensure_ascii=False))
        return
    out = _out()
    for r in rows:
        flags = ["enabled" if r["enabled"] else "disabled"] + (["default"] if r["default"] else [])
        out.print(f"[bold]account {r['id']}[/] ({', '.join(flags)})")
        for key in ("name", "puppet", "dmPolicy", "allowFrom", "groupPolicy", "puppetOptions"):
            value = r[key]
            shown = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
            out.print(f"  {key}: {shown}", markup=False)
    for w in accounts.warnings:
        _err().print(f"[yellow]warning:[/] {w}", markup=True)
    out.print("[green]config OK[/]")


def account_summary(account: ResolvedAccount) -> dict[str, Any]:
    """A JSON-able view of an account with secrets masked."""
    s = account.settings
    return {
        "id": account.id,
        "enabled": account.enabled,
        "default": account.is_default,
        "name": s.name,
        "puppet": s.puppet,
        "dmPolicy": s.dmPolicy,
        "allowFrom": [str(x) for x in s.allowFrom or []],
        "groupPolicy": s.groupPolicy,
        "puppetOptions": mask_secrets(s.puppetOptions.model_dump(exclude_none=True)),
    }


def mask_secrets(value: Any) -> Any:
    """Replace every secret value (tokens) with ``"***"``."""
    if isinstance(value, dict):
        return {k: ("***" if k in SECRET_KEYS and v else mask_secrets(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


# ---------------------------------------------------------------- channels


@cli.group("channels")
def channels_group() -> None:
    """What the WeChat channel can do."""


@channels_group.command("capabilities")
@click.option("--json", "as_json", is_flag=True, help="Print the matrix as JSON.")
def channels_capabilities(as_json: bool) -> None:
    """Print the capability matrix."""
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


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="wechat-sdk", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
