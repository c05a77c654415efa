"""``wechat-sdk gateway``: run the gateway; status, restart and stop a running one."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from wechat_sdk.cli import (
    _control,
    _err,
    _escape,
    _out,
    _state_options,
    _with_state,
    account_id_option,
    cli,
    fail_config,
)


def _account_ids(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    """``--accounts A,B`` as the account ids it names (lowercased, blanks skipped)."""
    if value is None:
        return None
    ids = [account_id_option(ctx, param, a) for a in value.split(",") if a.strip()]
    if not ids:
        raise click.BadParameter(
            f"names no account ({value!r}): give account ids separated by commas, "
            "e.g. --accounts work,home, or leave --accounts out to run every enabled account"
        )
    return [a for a in ids if a is not None]


def _seconds(value: float) -> float:
    """A number of seconds (``nan`` and ``inf`` pass FloatRange: no wait lasts them)."""
    if not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds: give one, e.g. 30")
    return value


@cli.group("gateway")
def gateway_group() -> None:
    """Run the gateway and talk to a running one."""


@gateway_group.command("run")
@_state_options(
    config_help="The config to run (default: $WECHAT_SDK_CONFIG or ~/.clawdbot/config.json5)."
)
@click.option(
    "--agent",
    "agent_spec",
    default=None,
    help="The assistant: echo, or module:function (an async def agent(turn)). Unset: the "
    "config's channels.wechat.agent, or echo without one.",
)
@click.option(
    "--log-format",
    type=click.Choice(["human", "json"]),
    default="human",
    show_default=True,
    help="Log line format.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Lowest level logged.",
)
@click.option(
    "--grace",
    "grace_s",
    type=click.FloatRange(min=0),
    callback=lambda _ctx, _param, value: _seconds(value),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="At a stop (and a restart), how long replies in flight may take to finish; what "
    "is left after that is kept in the store and sent after the next start.",
)
@click.option(
    "--accounts",
    "only_accounts",
    default=None,
    callback=_account_ids,
    metavar="A,B",
    help="Run only these enabled accounts (comma-separated ids). With store.kind redis, "
    "the accounts this gateway competes for; by default every enabled account.",
)
def gateway_run(
    config_file: Path | None,
    state_dir: Path | None,
    agent_spec: str | None,
    log_format: str,
    log_level: str,
    grace_s: float,
    only_accounts: list[str] | None,
) -> None:
    """Run every enabled account in the foreground (Ctrl-C stops it gracefully)."""
    import asyncio

    from rich.markup import escape

    from wechat_sdk.config import ConfigError
    from wechat_sdk.gateway.control import ControlError
    from wechat_sdk.gateway.gateway import UnknownAccounts
    from wechat_sdk.gateway.service import configure_logging, load_agent, serve
    from wechat_sdk.stores.redis import RedisUnavailable

    configure_logging(log_format, log_level)
    try:
        agent = load_agent(agent_spec) if agent_spec is not None else None
    except (ImportError, AttributeError, ValueError) as exc:
        _err().print(f"[red]error:[/] {escape(str(exc))}", markup=True)
        raise SystemExit(1) from None
    try:
        code = asyncio.run(
            serve(
                config_file,
                state_dir,
                agent,
                grace_s=grace_s,
                gc_tuning=True,
                only_accounts=only_accounts,
            )
        )
    except ConfigError as exc:
        fail_config(exc)
        return
    except UnknownAccounts as exc:  # (known once the config is read: a usage error still)
        raise click.UsageError(exc.named_by("--accounts")) from None
    except (ControlError, RedisUnavailable, ValueError) as exc:
        _err().print(f"[red]error:[/] {_escape(exc)}", markup=True)
        raise SystemExit(1) from None
    raise SystemExit(code)


@gateway_group.command("status")
@_with_state
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def gateway_status(config_file: Path | None, state_dir: Path | None, as_json: bool) -> None:
    """Per-account status of the running gateway, and its webhook endpoints' state (exit 3
    when none is running). With store.kind "redis": every account of the cluster and the
    gateway holding it, from any machine that reaches Redis (--state-dir alone asks that
    directory's gateway, which also shows its webhook endpoints)."""
    import datetime

    # --state-dir alone asks the gateway of that directory (no config read: a quick look)
    cluster = _cluster_config(config_file) if config_file or state_dir is None else None
    #: the webhook endpoints' state: a gateway's own, so None when read from Redis
    webhooks: list[dict[str, Any]] | None = None
    if cluster is not None:
        from wechat_sdk.cluster.status import cluster_status
        from wechat_sdk.stores.redis import RedisUnavailable

        try:
            accounts = cluster_status(cluster)
        except RedisUnavailable as exc:
            _err().print(f"[red]error:[/] {_escape(exc)}", markup=True)
            raise SystemExit(1) from None
    else:
        answer = _control(config_file, state_dir, {"cmd": "status"})
        accounts = answer["accounts"]
        webhooks = answer.get("webhooks")  # (a gateway of an older version has none)
    if as_json:  # (the accounts, as ever: the endpoints' JSON is GET /v1/webhooks)
        click.echo(json.dumps(accounts, ensure_ascii=False, indent=2))
        return
    from rich.cells import cell_len  # the table's imports: --json does without them
    from rich.table import Table
    from rich.text import Text

    def when(ts: float | None) -> str:
        return datetime.datetime.fromtimestamp(ts).strftime("%H:%M:%S") if ts else "-"

    headers: tuple[str, ...] = (
        "account",
        "state",
        "user",
        "last in",
        "last out",
        "reconnects",
        "pairing",
        "queue",
    )
    if cluster is not None:
        headers = (*headers, "gateway")
    rows = [
        [
            a["account"],
            a["state"],
            f"{a['user_name'] or ''} ({a['user_id']})" if a["user_id"] else "-",
            when(a["last_inbound"]),
            when(a["last_outbound"]),
            str(a["reconnects"]),
            str(a["pending_pairing"]),
            str(a["queue_depth"]),
            *([a["gateway"] or "-"] if cluster is not None else []),
        ]
        for a in accounts
    ]
    console = _out()
    # one line per account: the last error gets the room the other columns leave
    # (each column takes its width, 2 of padding and a border; the table ends with a border)
    taken = sum(max(cell_len(c) for c in column) + 3 for column in zip(headers, *rows, strict=True))
    room = max(ERROR_CELL_MIN, console.width - taken - 4)
    table = Table(title="WeChat accounts", title_justify="left")
    for col in headers:
        table.add_column(col)
    table.add_column("last error", no_wrap=True, overflow="ellipsis")
    for row, a in zip(rows, accounts, strict=True):
        # names and states as written (a WeChat name may hold brackets), not markup
        table.add_row(*(Text(c) for c in row), Text(error_cell(a["last_error"], room)))
    console.print(table)
    if webhooks:
        from wechat_sdk.webhooks.status import STATE_WORDS

        endpoints = Table(title="Webhook endpoints", title_justify="left")
        for col in ("#", "endpoint", "state", "queued", "last failure", "at"):
            endpoints.add_column(col)
        for w in webhooks:
            cells = (
                str(w["index"]),
                w["endpoint"],
                STATE_WORDS.get(w["state"], w["state"]),
                str(w["queued"]),
                w["last_failure"] or "-",
                when(w["last_failure_at"]),
            )
            endpoints.add_row(*(Text(c) for c in cells))
        console.print(endpoints)


def _cluster_config(config_file: Path | None) -> Any:
    """The config, when its store is Redis (a cluster); else None."""
    from wechat_sdk.config import ConfigError, load_config

    try:
        config = load_config(config_file)
    except ConfigError:
        return None
    return config if config.channels.wechat.store.kind == "redis" else None


#: the least room `gateway status` gives an account's last error (a narrower terminal wraps)
ERROR_CELL_MIN = 30


def error_cell(error: str | None, width: int) -> str:
    """An account's last error on one line of at most ``width`` characters.

    An error can be many lines (a Node stack): the status table shows the first, cut to
    fit; the gateway's log and ``gateway status --json`` have the whole of it.
    """
    from rich.cells import cell_len, set_cell_size

    lines = [" ".join(line.split()) for line in (error or "").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return "-"
    first = lines[0] + (" …" if len(lines) > 1 else "")
    if cell_len(first) <= width:
        return first
    return set_cell_size(first, width - 1).rstrip() + "…"


@gateway_group.command("restart")
@_with_state
def gateway_restart(config_file: Path | None, state_dir: Path | None) -> None:
    """Reload the config and restart the accounts (an invalid config is refused)."""
    _control(config_file, state_dir, {"cmd": "restart"})
    _out().print("gateway restarted with the new config")


@gateway_group.command("stop")
@_with_state
def gateway_stop(config_file: Path | None, state_dir: Path | None) -> None:
    """Stop the running gateway gracefully."""
    _control(config_file, state_dir, {"cmd": "stop"})
    _out().print("gateway stopping")
