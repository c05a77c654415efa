"""The ``wechat-sdk`` command line (also ``python -m wechat_sdk``).

The outermost layer. It is the one module of ``wechat_sdk`` that uses the simulator, and
only inside the commands that run on it (``simulate``, ``demo``): importing ``wechat_sdk``
never loads the simulator (tests/unit/test_import_rules.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

# Each command imports what it needs when it runs (rich, the config's pydantic models, the
# gateway), so that `wechat-sdk --help` and `gateway status` start at once.
if TYPE_CHECKING:
    from rich.console import Console

    from wechat_sdk.config import ConfigError, ResolvedAccount
    from wechat_sdk.pairing.service import Pairing

R = TypeVar("R")

__all__ = ["cli", "main"]

SECRET_KEYS = frozenset({"token"})


def _out() -> Console:
    from rich.console import Console  # imported when first needed (start-up time)

    # piped output (CI, `| less`) gets room for whole table cells
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def _err() -> Console:
    from rich.console import Console  # imported when first needed (start-up time)

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _escape(value: object) -> str:
    """``value`` as text for a rich markup string: its brackets are not markup."""
    from rich.markup import escape  # imported when first needed (start-up time)

    return escape(str(value))


def fail_config(exc: ConfigError, *, code: int = 1) -> None:
    """Print every problem with its path and line, then exit."""
    err = _err()
    where = f" in {exc.source}" if exc.source else ""
    count = len(exc.problems)
    err.print(f"[bold red]config error{'s' if count > 1 else ''}{_escape(where)}:[/]")
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
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file (default: $WECHAT_SDK_CONFIG or ~/.clawdbot/config.json5).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the resolved accounts as JSON.")
def config_check(config_file: Path | None, as_json: bool) -> None:
    """Validate the config and print the resolved accounts (secrets masked)."""
    from wechat_sdk.config import ConfigError, accounts_of, load_config
    from wechat_sdk.gateway.service import check_puppets

    try:
        config = load_config(config_file)
        accounts = accounts_of(config)
        check_puppets(accounts.accounts.values(), config_file)
    except ConfigError as exc:
        fail_config(exc)
        return
    rows = [account_summary(a) for a in accounts.accounts.values()]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": True,
                    "defaultAccountId": accounts.default_id,
                    "accounts": rows,
                    "warnings": list(accounts.warnings),
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    out = _out()
    for r in rows:
        flags = ["enabled" if r["enabled"] else "disabled"] + (["default"] if r["default"] else [])
        out.print(f"[bold]account {_escape(r['id'])}[/] ({', '.join(flags)})")
        for key in ("name", "puppet", "dmPolicy", "allowFrom", "groupPolicy", "puppetOptions"):
            value = r[key]
            if value is None:
                shown = "(not set)"
            elif isinstance(value, str):
                shown = value
            else:
                shown = json.dumps(value, ensure_ascii=False)
            if key == "allowFrom":
                shown += f" ({_who_may_dm(r['dmPolicy'], value)})"
            out.print(f"  {key}: {shown}", markup=False)
    for w in accounts.warnings:
        _err().print(f"[yellow]warning:[/] {_escape(w)}", markup=True)
    out.print("[green]config OK[/]")


def _who_may_dm(policy: str, allow_from: list[str]) -> str:
    """What ``allowFrom`` means under the account's ``dmPolicy``, in words."""
    if policy == "open":
        return "dmPolicy open: anyone may DM"
    if policy == "disabled":
        return "dmPolicy disabled: nobody may DM"
    anyone = "*" in allow_from
    if policy == "allowlist":
        return "anyone may DM" if anyone else "only these"  # (an empty list is refused)
    # pairing
    if anyone:
        return "anyone may DM"
    return ("these and " if allow_from else "") + "senders approved by pairing"


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


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="wechat-sdk", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


# ---------------------------------------------------------------- simulate


@cli.command("simulate")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object: ok, failures, transcript."
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed of the simulated world (default: the scenario's, else 0).",
)
def simulate(scenario: Path, as_json: bool, seed: int | None) -> None:
    """Run a scenario file on the simulator. Exit 1 if an expectation failed, 2 if invalid."""
    import asyncio

    from simulator.scenario import ScenarioError, run_scenario

    try:
        text = scenario.read_text(encoding="utf-8")
        result = asyncio.run(run_scenario(text, seed=seed))
    except ScenarioError as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "error": str(exc).splitlines()}))
        else:
            _err().print(f"[bold red]invalid scenario {_escape(scenario)}:[/]")
            for line in str(exc).splitlines():
                _err().print(f"  {line}", markup=False)
        raise SystemExit(2) from None
    if as_json:
        click.echo(json.dumps(result.model_dump(), ensure_ascii=False))
    else:
        from wechat_sdk.transcript import print_transcript

        print_transcript(result.transcript, _out())
        for failure in result.failures:
            _err().print(f"[red]FAIL[/] {_escape(failure)}", markup=True)
        _out().print("[green]ok[/]" if result.ok else f"[red]{len(result.failures)} failed[/]")
    raise SystemExit(0 if result.ok else 1)


# ---------------------------------------------------------------- pairing


def _state_dir(config_file: Path | None, state_dir: Path | None) -> Path:
    if state_dir is not None:
        return state_dir.expanduser()
    from wechat_sdk.config import ConfigError, load_config  # pydantic: only when needed
    from wechat_sdk.gateway.control import DEFAULT_STATE_DIR

    try:
        config = load_config(config_file)
        configured = config.channels.wechat.stateDir
    except ConfigError as exc:
        if config_file is not None:
            fail_config(exc)
        configured = None
    return Path(configured or DEFAULT_STATE_DIR).expanduser()


def _pairing(config_file: Path | None, state_dir: Path | None) -> Any:
    from wechat_sdk.clock import RealClock
    from wechat_sdk.pairing.service import Pairing
    from wechat_sdk.stores.sqlite import SqliteStore

    directory = _state_dir(config_file, state_dir)
    store = SqliteStore.in_state_dir(directory)
    return Pairing(store.pairing, RealClock()), store, directory


_state_options = [
    click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Config file (its stateDir is used).",
    ),
    click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="State directory (default: stateDir of the config, else ~/.clawdbot/wechat).",
    ),
]


def _with_state(f: Any) -> Any:
    for option in reversed(_state_options):
        f = option(f)
    return f


@cli.group("pairing")
def pairing_group() -> None:
    """Pending DM pairing requests: list, approve, deny."""


@pairing_group.command("list")
@click.option("--account", default=None, help="Only this account.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_with_state
def pairing_list(
    account: str | None, as_json: bool, config_file: Path | None, state_dir: Path | None
) -> None:
    """List pending pairing requests."""
    import time

    from rich.table import Table
    from rich.text import Text

    service, store, _ = _pairing(config_file, state_dir)
    try:
        requests = service.list(account)
    finally:
        store.close()
    rows = [
        {
            "code": r.code,
            "account": r.account_id,
            "senderId": r.sender_id,
            "senderName": r.sender_name,
            "createdAt": r.created_at,
            "expiresAt": r.expires_at,
        }
        for r in requests
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        _out().print("no pending pairing requests")
        return
    table = Table(title="Pending pairing requests", title_justify="left")
    for col in ("code", "account", "sender", "name", "expires in"):
        table.add_column(col)
    now = time.time()
    for r in rows:
        left = max(0, int(r["expiresAt"] - now))
        cells = (r["code"], r["account"], r["senderId"], r["senderName"], f"{left // 60} min")
        table.add_row(*(Text(str(c)) for c in cells))  # names and ids as written, not markup
    _out().print(table)


def _decide(
    config_file: Path | None, state_dir: Path | None, decision: Callable[[Pairing], R]
) -> tuple[R, Path]:
    """Run one pairing decision on the store; a PairingError ends the command (exit 1)."""
    from wechat_sdk.pairing.service import PairingError

    service, store, directory = _pairing(config_file, state_dir)
    try:
        return decision(service), directory
    except PairingError as exc:
        _err().print(f"[red]error:[/] {_escape(exc)}", markup=True)
        raise SystemExit(1) from None
    finally:
        store.close()


@pairing_group.command("approve")
@click.argument("code")
@click.option("--account", default=None, help="The account the code belongs to.")
@click.option(
    "--notify", is_flag=True, help="Tell the sender they were approved (needs a running gateway)."
)
@_with_state
def pairing_approve(
    code: str, account: str | None, notify: bool, config_file: Path | None, state_dir: Path | None
) -> None:
    """Approve a pending request: the sender may now talk to the assistant."""
    approved, directory = _decide(config_file, state_dir, lambda p: p.approve(code, account))
    _out().print(f"approved {approved.sender_id} on account {approved.account_id}", markup=False)
    if notify:
        from wechat_sdk.gateway.control import ControlError, control_request

        try:
            control_request(
                directory,
                {
                    "cmd": "notify_approved",
                    "account": approved.account_id,
                    "sender": approved.sender_id,
                },
            )
            _out().print("the sender was told")
        except ControlError as exc:
            _err().print(f"[yellow]not notified:[/] {_escape(exc)}", markup=True)


@pairing_group.command("deny")
@click.argument("code")
@click.option("--account", default=None, help="The account the code belongs to.")
@_with_state
def pairing_deny(
    code: str, account: str | None, config_file: Path | None, state_dir: Path | None
) -> None:
    """Deny a pending request (the sender gets no reply)."""
    denied, _ = _decide(config_file, state_dir, lambda p: p.deny(code, account))
    _out().print(f"denied {denied.sender_id} on account {denied.account_id}", markup=False)


# ---------------------------------------------------------------- gateway


@cli.group("gateway")
def gateway_group() -> None:
    """Run the gateway and talk to a running one."""


@gateway_group.command("run")
@_with_state
@click.option(
    "--agent",
    "agent_spec",
    default="echo",
    show_default=True,
    help="The assistant: echo, or module:function (an async def agent(turn)).",
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
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="At a stop (and a restart), how long replies in flight may take to finish; what "
    "is left after that is kept in the store and sent after the next start.",
)
def gateway_run(
    config_file: Path | None,
    state_dir: Path | None,
    agent_spec: str,
    log_format: str,
    log_level: str,
    grace_s: float,
) -> None:
    """Run every enabled account in the foreground (Ctrl-C stops it gracefully)."""
    import asyncio

    from rich.markup import escape

    from wechat_sdk.config import ConfigError
    from wechat_sdk.gateway.control import ControlError
    from wechat_sdk.gateway.service import configure_logging, load_agent, serve

    configure_logging(log_format, log_level)
    try:
        agent = load_agent(agent_spec)
    except (ImportError, AttributeError, ValueError) as exc:
        _err().print(f"[red]error:[/] {escape(str(exc))}", markup=True)
        raise SystemExit(1) from None
    try:
        code = asyncio.run(serve(config_file, state_dir, agent, grace_s=grace_s, gc_tuning=True))
    except ConfigError as exc:
        fail_config(exc)
        return
    except ControlError as exc:
        _err().print(f"[red]error:[/] {_escape(exc)}", markup=True)
        raise SystemExit(1) from None
    raise SystemExit(code)


def _control(
    config_file: Path | None, state_dir: Path | None, request: dict[str, Any]
) -> dict[str, Any]:
    from wechat_sdk.gateway.control import ControlError, NoGateway, control_request

    directory = _state_dir(config_file, state_dir)
    try:
        return control_request(directory, request)
    except NoGateway as exc:
        _err().print(str(exc), markup=False)
        raise SystemExit(3) from None
    except ControlError as exc:
        _err().print(f"[red]error:[/] {_escape(exc)}", markup=True)
        raise SystemExit(1) from None


@gateway_group.command("status")
@_with_state
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def gateway_status(config_file: Path | None, state_dir: Path | None, as_json: bool) -> None:
    """Per-account status of the running gateway (exit 3 when none is running)."""
    import datetime

    response = _control(config_file, state_dir, {"cmd": "status"})
    accounts = response["accounts"]
    if as_json:
        click.echo(json.dumps(accounts, ensure_ascii=False, indent=2))
        return
    from rich.cells import cell_len  # the table's imports: --json does without them
    from rich.table import Table
    from rich.text import Text

    def when(ts: float | None) -> str:
        return datetime.datetime.fromtimestamp(ts).strftime("%H:%M:%S") if ts else "-"

    headers = ("account", "state", "user", "last in", "last out", "reconnects", "pairing", "queue")
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


# ---------------------------------------------------------------- demo


@cli.command("demo")
@click.option(
    "--interactive",
    is_flag=True,
    help="After the story, type as a contact and see the bot's replies live.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the world.")
def demo(interactive: bool, seed: int) -> None:
    """A gateway on the simulator: pairing, group mentions, chunking, media, two accounts."""
    import asyncio

    from rich.console import Console

    from simulator.demo import run_demo

    # no hard wrap at 80 columns when the output goes to a file: a link stays whole
    console = Console(highlight=False, soft_wrap=not sys.stdout.isatty())
    asyncio.run(run_demo(console, interactive=interactive, seed=seed))
