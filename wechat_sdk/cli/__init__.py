"""The ``wechat-sdk`` command line (also ``python -m wechat_sdk``).

The outermost layer. It is the one part of ``wechat_sdk`` that uses the simulator, and
only inside the commands that run on it (``simulate``, ``demo``): importing ``wechat_sdk``
never loads the simulator (tests/unit/test_import_rules.py).

This module holds the root group ``cli``, ``main`` and what the commands share (the
consoles, ``fail_config``, the state directory and its options). Each command group lives
in a module of its own, which registers it on ``cli`` when imported (at the end of this
module): ``config_commands``, ``channels_commands``, ``pairing_commands``,
``gateway_commands``, ``simulator_commands`` (``simulate`` and ``demo``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

# Each command imports what it needs when it runs (rich, the config's pydantic models, the
# gateway), so that `wechat-sdk --help` and `gateway status` start at once. The command
# modules imported below follow the same rule: click and the standard library at the top.
if TYPE_CHECKING:
    from rich.console import Console

    from wechat_sdk.config import ConfigError

__all__ = ["cli", "main"]


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


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="wechat-sdk", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


# ---------------------------------------------------------------- the state directory
# (pairing and gateway commands: the store, the running gateway's control socket)


def _state_dir(config_file: Path | None, state_dir: Path | None) -> Path:
    if state_dir is not None:
        return state_dir.expanduser()
    from wechat_sdk.config import ConfigError, config_path  # pydantic: only when needed
    from wechat_sdk.config.loader import load_state_dir
    from wechat_sdk.gateway.control import DEFAULT_STATE_DIR

    # (only its stateDir: a config wrong elsewhere still names the running gateway's
    # directory, which then refuses it for a restart, with its problems)
    try:
        configured = load_state_dir(config_file)
    except ConfigError as exc:
        if config_file is not None or config_path(None).exists():
            fail_config(exc)
        configured = None  # no config file: the default directory
    return Path(configured or DEFAULT_STATE_DIR).expanduser()


def _looked_in(config_file: Path | None, directory: Path, request: dict[str, Any]) -> str | None:
    """Where a command given no ``--state-dir`` looked for the gateway, as a config file
    chose it; and, as that config's stateDir may have changed since its gateway started
    (the CLI cannot know the old one), how to reach or move that gateway."""
    from wechat_sdk.config import config_path
    from wechat_sdk.config.loader import load_state_dir

    file = config_path(config_file)
    if not file.exists():  # (no config: the default directory, as the first line says)
        return None

    why = (
        f"the stateDir of {file}"
        if load_state_dir(file)
        else f"the default state directory, as {file} sets no stateDir"
    )
    if request.get("cmd") == "restart":
        then = (
            ", and a restart cannot move a gateway to another state directory: stop it with "
            "`wechat-sdk gateway stop --state-dir OLD_DIR`, then start it with "
            f"`wechat-sdk gateway run --config {file}`"
        )
    else:
        then = ": name that directory with --state-dir OLD_DIR"
    return (
        f"It looked in {directory}, {why}. A gateway started before that config's stateDir "
        f"was changed runs on its old state directory{then}."
    )


def account_id_option(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> str | None:
    """An ``--account`` value as the account id it names (:func:`asked_account_id`, the
    HTTP API's rule too); one that is no possible id is a usage error."""
    if value is None:
        return None
    from wechat_sdk.config.accounts import asked_account_id

    try:
        return asked_account_id(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _control(
    config_file: Path | None, state_dir: Path | None, request: dict[str, Any]
) -> dict[str, Any]:
    """Ask the gateway running on the state directory (its control socket); exit 3 when
    none runs, 1 when it answered with an error."""
    from wechat_sdk.gateway.control import ControlError, NoGateway, control_request

    directory = _state_dir(config_file, state_dir)
    try:
        return control_request(directory, request)
    except NoGateway as exc:
        _err().print(str(exc), markup=False)
        hint = None if state_dir is not None else _looked_in(config_file, directory, request)
        if hint:
            _err().print(hint, markup=False)
        raise SystemExit(3) from None
    except ControlError as exc:
        _err().print(f"[red]error:[/] {_escape(exc)}", markup=True)
        raise SystemExit(1) from None


F = TypeVar("F", bound=Callable[..., Any])


def _state_options(config_help: str = "Config file (its stateDir is used).") -> Callable[[F], F]:
    """The ``--config`` and ``--state-dir`` options (``config_help`` for a command that
    uses more of the config than its stateDir)."""

    def add(f: F) -> F:
        f = click.option(
            "--state-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="State directory (default: stateDir of the config, else ~/.clawdbot/wechat).",
        )(f)
        return click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False, path_type=Path),
            help=config_help,
        )(f)

    return add


_with_state = _state_options()


# ---------------------------------------------------------------- the command groups
# Imported last: each registers its commands on `cli`, defined above.
from wechat_sdk.cli import (  # noqa: E402, F401
    channels_commands,
    config_commands,
    gateway_commands,
    pairing_commands,
    simulator_commands,
)
