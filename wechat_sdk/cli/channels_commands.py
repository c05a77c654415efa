"""``wechat-sdk channels``: what the WeChat channel can do; the number an iLink login's
phone shows, given to the running gateway."""

from __future__ import annotations

import json
from pathlib import Path

import click

from wechat_sdk.cli import (
    _control,
    _err,
    _escape,
    _out,
    _with_state,
    account_id_option,
    cli,
    fail_config,
)


@cli.group("channels")
def channels_group() -> None:
    """What the WeChat channel can do; an iLink login's number."""


@channels_group.command("verify-code")
@click.argument("number")
@click.option(
    "--account",
    "account_id",
    default=None,
    callback=account_id_option,
    help="The account logging in (default: the default).",
)
@_with_state
def channels_verify_code(
    number: str, account_id: str | None, config_file: Path | None, state_dir: Path | None
) -> None:
    """Give an iLink login the NUMBER its phone shows (when `gateway status` says "enter
    the number the phone shows"): to the gateway running on the state directory. Exit 1
    when the number was not taken (wrong, or the QR code moved on), 3 when no gateway runs."""
    request = {"cmd": "verify_code", "account": account_id, "code": number}
    answer = _control(config_file, state_dir, request)
    if answer.get("outcome") in ("accepted", "pending"):
        _out().print(str(answer.get("message", "")), markup=False)
        return
    _err().print(f"[red]not taken:[/] {_escape(answer.get('message', ''))}", markup=True)
    raise SystemExit(1)


@channels_group.command("capabilities")
@click.option("--json", "as_json", is_flag=True, help="Print the matrix as JSON.")
@click.option(
    "--account",
    "account_id",
    callback=account_id_option,
    help="Show this account's matrix (its transport's: iLink accounts are direct chats only).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file: its --account's matrix, or its default account's (default: "
    "$WECHAT_SDK_CONFIG or ~/.clawdbot/config.json5, with --account).",
)
def channels_capabilities(as_json: bool, account_id: str | None, config_file: Path | None) -> None:
    """Print the capability matrix (the seed's, Wechaty's; or an account's with --account,
    the default account's with --config alone)."""
    from rich.table import Table  # imported when first needed (start-up time)

    from wechat_sdk.capabilities import CAPABILITIES

    title = "WeChat channel capabilities"
    caps = CAPABILITIES
    if account_id is not None or config_file is not None:
        from wechat_sdk.config import ConfigError, accounts_of, load_config
        from wechat_sdk.puppets import capabilities_of

        try:
            accounts = accounts_of(load_config(config_file))
            account_id = account_id if account_id is not None else accounts.default_id
            if account_id not in accounts.accounts:
                names = ", ".join(sorted(accounts.accounts))
                raise click.BadParameter(
                    f"no account {account_id!r} in the config (accounts: {names})",
                    param_hint="--account",
                )
            account = accounts[account_id]
            caps = capabilities_of(account)
        except ConfigError as exc:
            fail_config(exc)
            return
        title += f": account {account.id} (puppet {account.settings.puppet})"
    data = caps.model_dump(by_alias=True)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    table = Table(title=title, title_justify="left")
    table.add_column("capability")
    table.add_column("supported")
    # (typing, beyond the seed's matrix, said either way to a person)
    for key, value in {**data, "typing": caps.typing}.items():
        shown = ", ".join(value) if isinstance(value, list) else ("yes" if value else "no")
        table.add_row(key, shown)
    _out().print(table)
