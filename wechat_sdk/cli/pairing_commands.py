"""``wechat-sdk pairing``: list, approve and deny pending DM pairing requests."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from wechat_sdk.cli import (
    _err,
    _escape,
    _out,
    _state_dir,
    _with_state,
    account_id_option,
    cli,
)

if TYPE_CHECKING:
    from wechat_sdk.config import AccountSet
    from wechat_sdk.pairing.service import Pairing
    from wechat_sdk.stores.base import ApprovedSender, Store


class _NoStore(Exception):
    """No store where a pairing command looked: it makes none there (a mistyped place
    must not become an empty store that answers as if it were the gateway's)."""


def _pairing(config_file: Path | None, state_dir: Path | None) -> Any:
    """The pairing service on the gateway's store: the Redis server the config names
    (``store.kind: "redis"``: from any machine that reaches it), else the state
    directory's SQLite file (:class:`_NoStore` when there is none)."""
    from wechat_sdk.clock import RealClock
    from wechat_sdk.pairing.service import Pairing
    from wechat_sdk.stores.sqlite import DEFAULT_DB_NAME, SqliteStore

    directory = _state_dir(config_file, state_dir)
    redis = _redis_config(config_file)
    lists = _pairing_lists(config_file)
    store: Store
    if redis is not None:
        from wechat_sdk.stores.redis import RedisStore, RedisUnavailable

        try:
            store = RedisStore(redis[0], namespace=redis[1])
        except RedisUnavailable as exc:
            _err().print(f"[red]error:[/] {_escape(exc)}", markup=True)
            raise SystemExit(1) from None
    else:
        if not (directory / DEFAULT_DB_NAME).exists():
            place = _store_place(config_file, state_dir, directory)
            raise _NoStore(f"no pairing store in {place}; {_ANOTHER_STORE}")
        store = SqliteStore.in_state_dir(directory)
    return Pairing(store.pairing, RealClock(), lists=lists), store, directory


def _redis_config(config_file: Path | None) -> tuple[str, str] | None:
    """The config's Redis store URL and namespace, when its store is Redis."""
    from wechat_sdk.config import ConfigError, load_config

    try:
        store = load_config(config_file).channels.wechat.store
    except ConfigError:
        return None  # (a broken config: _state_dir has said so when it was named)
    if store.kind != "redis" or store.url is None:
        return None
    return store.url, store.namespace


def _config_accounts(config_file: Path | None) -> AccountSet | None:
    """The accounts of the config, when there is one and it reads (a broken one was said
    when the state directory was looked up); None otherwise: the store is all there is
    to go by."""
    from wechat_sdk.config import ConfigError, accounts_of, config_path, load_config

    if not config_path(config_file).exists():
        return None
    try:
        return accounts_of(load_config(config_file))
    except ConfigError:
        return None


def _pairing_lists(config_file: Path | None) -> dict[str, str]:
    """Each account of the config and the account whose pairing list it uses
    (``pairingAccount``), so that ``--account`` names either."""
    accounts = _config_accounts(config_file)
    if accounts is None:
        return {}
    return {a.id: a.pairing_id for a in accounts.accounts.values()}


#: how to name the store of a gateway run with another config
_ANOTHER_STORE = (
    "if the gateway runs with another config, name it with --config PATH (or its state "
    "directory with --state-dir DIR)"
)


def _looked_in(config_file: Path | None, state_dir: Path | None, directory: Path) -> str:
    """Which store a pairing command read, and why that one, with how to name another: a
    code the gateway gave may be in the store of a gateway run with another config."""
    return f"looked in {_store_place(config_file, state_dir, directory)}; {_ANOTHER_STORE}"


def _store_place(config_file: Path | None, state_dir: Path | None, directory: Path) -> str:
    """The store a pairing command reads, and why that one."""
    from wechat_sdk.config import config_path
    from wechat_sdk.config.integrations import origin_of
    from wechat_sdk.config.loader import load_state_dir

    config = config_path(config_file)
    redis = _redis_config(config_file)
    if redis is not None:
        place = f"the Redis store at {origin_of(redis[0])} (namespace {redis[1]}) of {config}"
    elif state_dir is not None:
        place = f"the state directory {directory} (--state-dir)"
    elif not config.exists():
        place = f"the state directory {directory} (the default: no config at {config})"
    elif load_state_dir(config_file) is None:
        place = f"the state directory {directory} (the default: {config} sets no stateDir)"
    else:
        place = f"the state directory {directory} (stateDir of {config})"
    return place


def _account_in_config(config_file: Path | None, account: str) -> None:
    """A usage error when the config (there is one, and it reads) has no such account: a
    mistyped ``--account`` must not read as "nothing pending"."""
    config = _config_accounts(config_file)
    if config is not None and account not in config.accounts:
        names = ", ".join(sorted(config.accounts))
        raise click.BadParameter(
            f"no account {account!r} in the config (accounts: {names})", param_hint="--account"
        )


@cli.group("pairing")
def pairing_group() -> None:
    """DM pairing: list, approve and deny pending requests; revoke an approval."""


@pairing_group.command("list")
@click.option("--account", default=None, help="Only this account.", callback=account_id_option)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_with_state
def pairing_list(
    account: str | None, as_json: bool, config_file: Path | None, state_dir: Path | None
) -> None:
    """List pending pairing requests."""
    import time

    from rich.table import Table
    from rich.text import Text

    try:
        service, store, directory = _pairing(config_file, state_dir)
    except _NoStore as exc:
        if account is not None:
            _account_in_config(config_file, account)
        if as_json:  # (the JSON stays JSON: the note goes to stderr)
            click.echo("[]")
            _err().print(str(exc), markup=False)
        else:
            _out().print(str(exc), markup=False)
        return
    try:
        requests = service.list(account)
    finally:
        store.close()
    if account is not None and not requests:
        _account_in_config(config_file, account)
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
        _out().print(_looked_in(config_file, state_dir, directory), markup=False)
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


@contextlib.contextmanager
def _decisions(
    config_file: Path | None, state_dir: Path | None
) -> Iterator[tuple[Pairing, Store, Path]]:
    """The pairing service on the store, closed after; a PairingError ends the command
    (exit 1), saying which store was read when the code is not in it, as does finding no
    store at all."""
    from wechat_sdk.pairing.service import NoPendingRequest, PairingError

    try:
        service, store, directory = _pairing(config_file, state_dir)
    except _NoStore as exc:
        _err().print(f"[red]error:[/] {_escape(exc)}", markup=True)
        raise SystemExit(1) from None
    try:
        yield service, store, directory
    except PairingError as exc:
        _err().print(f"[red]error:[/] {_escape(exc)}", markup=True)
        if isinstance(exc, NoPendingRequest):
            _err().print(_looked_in(config_file, state_dir, directory), markup=False)
        raise SystemExit(1) from None
    finally:
        store.close()


def _queue_approved(
    config_file: Path | None, store: Store, approved: ApprovedSender, code: str
) -> None:
    """No gateway runs on this state directory: the ``pairing.approved`` webhook is queued
    in the store, where the next gateway to start (on Redis: any gateway of the cluster,
    within a minute) sends it."""
    from wechat_sdk.clock import RealClock
    from wechat_sdk.config import ConfigError, config_path, load_config
    from wechat_sdk.events import GatewayEvents
    from wechat_sdk.webhooks import WebhookDispatcher

    try:
        endpoints = load_config(config_file).channels.wechat.webhooks
    except ConfigError as exc:
        if config_path(config_file).exists():  # (no config at all: no endpoints to tell)
            _err().print(
                "[yellow]pairing.approved not queued:[/] the config cannot be read here "
                f"(a variable set only for the gateway?):\n{_escape(exc.render())}",
                markup=True,
            )
        return
    if not endpoints:
        return
    dispatcher = WebhookDispatcher(endpoints, store.webhooks, RealClock())
    failed: list[Exception] = []

    def publish(event_type: str, data: dict[str, Any]) -> None:
        try:
            dispatcher.publish(event_type, data)
        except Exception as exc:  # (the store refused the write)
            failed.append(exc)

    events = GatewayEvents(publish, dispatcher.wanted)
    if not events.wants("pairing.approved"):
        return
    events.pairing_approved(approved.account_id, code=code, sender_id=approved.sender_id)
    if failed:
        _err().print(f"[yellow]pairing.approved not queued:[/] {_escape(failed[0])}", markup=True)
    else:
        _out().print("the pairing.approved webhook is queued for the next gateway to send")


@pairing_group.command("approve")
@click.argument("code")
@click.option(
    "--account", default=None, help="The account the code belongs to.", callback=account_id_option
)
@click.option(
    "--notify", is_flag=True, help="Tell the sender they were approved (needs a running gateway)."
)
@_with_state
def pairing_approve(
    code: str, account: str | None, notify: bool, config_file: Path | None, state_dir: Path | None
) -> None:
    """Approve a pending request: the sender may now talk to the assistant."""
    from wechat_sdk.gateway.control import ControlError, NoGateway, control_request
    from wechat_sdk.pairing.codes import normalize_code

    with _decisions(config_file, state_dir) as (service, store, directory):
        request, approved = service.approve_request(code, account)
        _out().print(
            f"approved {approved.sender_id} on account {approved.account_id}", markup=False
        )
        # a running gateway sends its pairing.approved webhook; with none, it is queued
        canonical = normalize_code(code)
        try:
            control_request(
                directory,
                {
                    "cmd": "pairing_approved",
                    "account": approved.account_id,
                    "sender": approved.sender_id,
                    "code": canonical,
                },
            )
        except NoGateway:
            _queue_approved(config_file, store, approved, canonical)
        except ControlError as exc:
            _err().print(f"[yellow]pairing.approved not sent:[/] {_escape(exc)}", markup=True)
    if notify:  # through the account the sender wrote to (only it can answer them)
        try:
            control_request(
                directory,
                {
                    "cmd": "notify_approved",
                    "account": request.reply_account,
                    "sender": approved.sender_id,
                },
            )
            _out().print("the sender was told")
        except ControlError as exc:
            _err().print(f"[yellow]not notified:[/] {_escape(exc)}", markup=True)


@pairing_group.command("deny")
@click.argument("code")
@click.option(
    "--account", default=None, help="The account the code belongs to.", callback=account_id_option
)
@_with_state
def pairing_deny(
    code: str, account: str | None, config_file: Path | None, state_dir: Path | None
) -> None:
    """Deny a pending request (the sender gets no reply)."""
    with _decisions(config_file, state_dir) as (service, _, _):
        denied = service.deny(code, account)
    _out().print(f"denied {denied.sender_id} on account {denied.account_id}", markup=False)


@pairing_group.command("revoke")
@click.argument("sender")
@click.option(
    "--account",
    default=None,
    help="The account whose approval goes (default: the config's default account).",
    callback=account_id_option,
)
@_with_state
def pairing_revoke(
    sender: str, account: str | None, config_file: Path | None, state_dir: Path | None
) -> None:
    """Withdraw an approval: the sender's next DM gets a pairing code again.

    SENDER is a WeChat id written as in allowFrom (wxid_kim, wechat:wxid_kim).
    """
    from wechat_sdk.config import DEFAULT_ACCOUNT_ID
    from wechat_sdk.config.allow_from import normalize_allow_entry

    if account is not None:
        _account_in_config(config_file, account)
    else:
        config = _config_accounts(config_file)
        account = config.default_id if config is not None else DEFAULT_ACCOUNT_ID
    owner = _pairing_lists(config_file).get(account, account)  # (a shared list's account)
    with _decisions(config_file, state_dir) as (service, _, directory):
        revoked = service.revoke(account, sender)
    shown = normalize_allow_entry(sender)
    if not revoked:
        _err().print(
            f"[red]error:[/] {_escape(shown)} is not an approved sender on account {owner} "
            "(nothing to revoke)",
            markup=True,
        )
        _err().print(_looked_in(config_file, state_dir, directory), markup=False)
        raise SystemExit(1)
    _out().print(f"revoked {shown} on account {owner}", markup=False)
