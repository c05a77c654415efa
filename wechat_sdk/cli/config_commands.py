"""``wechat-sdk config``: check the configuration, print the resolved accounts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from wechat_sdk.cli import _err, _escape, _out, cli, fail_config

if TYPE_CHECKING:
    from wechat_sdk.config import Config, ResolvedAccount
    from wechat_sdk.config.assistant import AgentConfig


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
    from wechat_sdk.gateway.service import check_agents, check_puppets

    try:
        config = load_config(config_file)
        accounts = accounts_of(config)
        check_puppets(accounts.accounts.values(), config_file)
        check_agents(accounts.accounts.values(), config_file)
    except ConfigError as exc:
        if as_json:  # (the human lines go to stderr as well)
            errors = [{"path": p.path, "message": p.message, "line": p.line} for p in exc.problems]
            invalid = {"ok": False, "file": exc.source, "errors": errors}
            click.echo(json.dumps(invalid, indent=2, ensure_ascii=False))
        fail_config(exc)
        return
    rows = [account_summary(a) for a in accounts.accounts.values()]
    api, webhooks = _api_summary(config), _webhooks_summary(config)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": True,
                    "defaultAccountId": accounts.default_id,
                    "store": config.channels.wechat.store.shown(),
                    "api": api,
                    "webhooks": webhooks,
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
        keys = ("name", "puppet", "dmPolicy", "allowFrom", "groupPolicy", "puppetOptions", "agent")
        for key, value in [*((k, r[k]) for k in keys), *r["settings"].items()]:
            if value is None:
                shown = "(not set)"
            elif isinstance(value, str):
                shown = value
            else:
                shown = json.dumps(value, ensure_ascii=False)
            if key == "allowFrom":
                shown += f" ({_who_may_dm(r['dmPolicy'], value)})"
            out.print(f"  {key}: {shown}", markup=False)
    store = config.channels.wechat.store.shown()
    out.print(f"store: {' '.join(store.values())}", markup=False)  # (no password in it)
    if api is not None:
        public = f", reached at {api['publicUrl']}" if "publicUrl" in api else ""
        out.print(f"api: {api['url']} (bearer token set{public})", markup=False)
    for hook in webhooks:  # (by origin: a path or query may hold a key)
        out.print(f"webhook {hook['origin']}: {', '.join(hook['events'])}", markup=False)
    for w in accounts.warnings:
        _err().print(f"[yellow]warning:[/] {_escape(w)}", markup=True)
    out.print("[green]config OK[/]")


def _api_summary(config: Config) -> dict[str, str] | None:
    """Where the HTTP API listens (port 0: a free one, named in the log), its token
    masked; None when there is none."""
    from wechat_sdk.config.integrations import host_port, origin_of

    api = config.channels.wechat.api
    if api is None:
        return None
    port = str(api.port) if api.port else "(a free port)"
    shown = {"url": f"http://{host_port(api.host, port)}", "token": "***"}
    if api.publicUrl is not None:
        shown["publicUrl"] = origin_of(api.publicUrl)
    return shown


def _webhooks_summary(config: Config) -> list[dict[str, Any]]:
    """Each webhook endpoint by its origin (its path and query may hold a key; its
    secret is never shown) and the event types it gets."""
    from wechat_sdk.config.integrations import origin_of

    return [
        {"origin": origin_of(hook.url), "events": list(hook.events)}
        for hook in config.channels.wechat.webhooks
    ]


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
        # the assistant from the config: what it talks to (its key and headers not shown)
        "agent": None if s.agent is None else _agent_summary(s.agent),
        # every other setting whose value is not the SDK's default: set in the file, or
        # by the transport (iLink's textChunkLimit)
        "settings": _changed_settings(account),
    }


#: the keys account_summary shows on their own (not among the other settings)
_SHOWN_APART = frozenset(
    ("enabled", "name", "puppet", "puppetOptions", "dmPolicy", "allowFrom", "groupPolicy", "agent")
)


def _changed_settings(account: ResolvedAccount) -> dict[str, Any]:
    """The account's settings not at the SDK's default, or not at its transport's (iLink's
    ``textChunkLimit`` is 4000: shown, and so is a 2048 written for it), as JSON values."""
    from wechat_sdk.config.accounts import TRANSPORT_DEFAULTS
    from wechat_sdk.config.models import AccountConfig

    def dumped(settings: AccountConfig) -> dict[str, Any]:
        return settings.model_dump(mode="json", exclude=set(_SHOWN_APART), exclude_none=True)

    sdk = dumped(AccountConfig())
    transport = dumped(
        AccountConfig.model_validate(TRANSPORT_DEFAULTS.get(account.settings.puppet, {}))
    )
    own = dumped(account.settings)
    return {k: v for k, v in own.items() if v != sdk.get(k) or v != transport.get(k)}


def _agent_summary(agent: AgentConfig) -> dict[str, Any]:
    from wechat_sdk.config.integrations import origin_of, without_query

    if agent.provider == "webhook":
        # the url's origin only: its path or query may hold a token (as in the webhooks'
        # log lines)
        return {"provider": "webhook", "url": origin_of(agent.url or "") + "/..."}
    return {
        "provider": agent.provider,
        "model": agent.model,
        # (a user and password in it, or a query, may be a key: as the assistant treats it)
        "baseUrl": without_query(agent.baseUrl or "https://api.openai.com/v1"),
        "mcpServers": sorted(agent.mcpServers),
    }


def mask_secrets(value: Any) -> Any:
    """Replace every secret value (a key named as
    :data:`~wechat_sdk.config.models.SECRET_KEY_NAME` says) with ``"***"``."""
    from wechat_sdk.config.models import SECRET_KEY_NAME

    if isinstance(value, dict):
        return {
            k: ("***" if SECRET_KEY_NAME.search(k) and v else mask_secrets(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    if isinstance(value, str) and "://" in value:
        from urllib.parse import urlsplit

        from wechat_sdk.config.integrations import without_query

        parts = urlsplit(value)
        if parts.query or parts.fragment or "@" in parts.netloc:
            return without_query(value)  # (a URL's user info or query may hold a token)
    return value
