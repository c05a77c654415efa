"""``puppet: "ilink"``: an account's iLink options, checked, and its puppet.

``puppetOptions`` for iLink: ``baseUrl`` (default ``https://ilinkai.weixin.qq.com``; an
http(s) URL, for a server of your own or the simulator's), ``cdnBaseUrl`` (default
``https://novac2c.cdn.weixin.qq.com/c2c``), ``botAgent`` (the ``bot_agent`` every call
declares, like an HTTP User-Agent: ``Name/Version`` tokens, printable ASCII, at most 256
characters) and ``routeTag`` (sent as the ``SKRouteTag`` header when set). Any other key
is a :class:`~wechat_sdk.config.ConfigError` naming it.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypedDict

from wechat_sdk.adapters.ilink.api import DEFAULT_BASE_URL, DEFAULT_BOT_AGENT, DEFAULT_CDN_BASE_URL
from wechat_sdk.adapters.ilink.puppet import ILinkOptions, ILinkPuppet
from wechat_sdk.adapters.ilink.session import SessionFile
from wechat_sdk.adapters.ilink.state import STATE_FILE, ILinkState, SqliteILinkState
from wechat_sdk.config import ConfigError, ResolvedAccount
from wechat_sdk.config.errors import ConfigProblem

if TYPE_CHECKING:
    from wechat_sdk.puppets import PuppetContext

__all__ = [
    "ILINK_MAX_TEXT_CHARS",
    "ILINK_OPTIONS",
    "KeptState",
    "check_puppet",
    "ilink_options",
    "kept_state",
    "make_puppet",
]

#: the longest text one iLink message takes (the server refuses a longer one)
ILINK_MAX_TEXT_CHARS = 4000
#: the puppetOptions keys iLink reads
ILINK_OPTIONS = ("baseUrl", "cdnBaseUrl", "botAgent", "routeTag")
_BOT_AGENT = re.compile(r"[\x20-\x7e]{1,256}")
_ROUTE_TAG = re.compile(r"[\x21-\x7e]{1,128}")


def ilink_options(account: ResolvedAccount) -> ILinkOptions:
    """The account's iLink options; :class:`ConfigError` naming every wrong key."""
    options = account.settings.puppetOptions
    given: dict[str, Any] = {
        k: v for k, v in options.model_dump(exclude_none=True).items() if v is not None
    }
    problems: list[ConfigProblem] = []

    def path(key: str) -> str:
        return account.key_path(f"puppetOptions.{key}")

    for key in given:
        if key not in ILINK_OPTIONS:
            problems.append(
                ConfigProblem(
                    path(key),
                    f"is not an iLink option (iLink reads {', '.join(ILINK_OPTIONS)}; "
                    "endpoint, token and tls belong to Wechaty puppets)",
                )
            )
    base = _url(given.get("baseUrl", DEFAULT_BASE_URL), path("baseUrl"), problems)
    cdn = _url(given.get("cdnBaseUrl", DEFAULT_CDN_BASE_URL), path("cdnBaseUrl"), problems)
    agent = given.get("botAgent", DEFAULT_BOT_AGENT)
    if not isinstance(agent, str) or not _BOT_AGENT.fullmatch(agent):
        problems.append(
            ConfigProblem(
                path("botAgent"),
                'must be printable ASCII, 1-256 characters, like "MyBot/1.0"',
            )
        )
    tag = given.get("routeTag")
    if isinstance(tag, int) and not isinstance(tag, bool):
        tag = str(tag)
    if tag is not None and (not isinstance(tag, str) or not _ROUTE_TAG.fullmatch(tag)):
        problems.append(
            ConfigProblem(path("routeTag"), "must be a string (or number) without spaces")
        )
    if problems:
        raise ConfigError(problems)
    route_tag = tag if isinstance(tag, str) else None
    return ILinkOptions(base_url=base, cdn_base_url=cdn, bot_agent=str(agent), route_tag=route_tag)


def _url(value: object, where: str, problems: list[ConfigProblem]) -> str:
    if isinstance(value, str):
        parsed = urllib.parse.urlsplit(value.strip())
        if parsed.scheme in ("http", "https") and parsed.hostname and not parsed.query:
            return value.strip().rstrip("/")
    problems.append(
        ConfigProblem(where, f"must be an http(s) URL such as {DEFAULT_BASE_URL!r}, got {value!r}")
    )
    return ""


def check_puppet(account: ResolvedAccount) -> None:
    """Raise :class:`ConfigError` when the account's iLink options cannot work (or its
    ``textChunkLimit`` is more than an iLink message holds)."""
    ilink_options(account)
    limit = account.settings.textChunkLimit
    if limit > ILINK_MAX_TEXT_CHARS:
        raise ConfigError.single(
            account.key_path("textChunkLimit"),
            f"{limit} is more than an iLink message holds: at most {ILINK_MAX_TEXT_CHARS}",
        )


def make_puppet(account: ResolvedAccount, context: PuppetContext) -> ILinkPuppet:
    """The iLink puppet of an account; its login lives in ``accounts/<id>/`` and its state
    in the store's SQLite database (``context.sqlite``), or both on the store's Redis
    server when the gateway's store is Redis (``context.redis``); with another store, the
    state has a database of its own in ``accounts/<id>/``."""
    return ILinkPuppet(
        account_id=account.id,
        account_dir=context.state_dir / "accounts" / account.id,
        options=ilink_options(account),
        clock=context.clock,
        qr_max_timeouts=account.settings.qrMaxTimeouts,
        before_send=context.redis.before_send if context.redis is not None else None,
        **kept_state(account.id, context),
    )


class KeptState(TypedDict):
    """Where an iLink puppet keeps its login and its state (None: its own files)."""

    sessions: SessionFile | None
    open_state: Callable[[], ILinkState] | None


def kept_state(account_id: str, context: PuppetContext) -> KeptState:
    """Where the account's login and state are kept, by the gateway's store (see
    :func:`make_puppet`)."""
    redis, sqlite = context.redis, context.sqlite
    if redis is not None:
        from wechat_sdk.adapters.ilink.redis_state import RedisILinkState, RedisSessionFile

        def on_redis() -> ILinkState:
            return RedisILinkState(redis, account_id)

        return KeptState(sessions=RedisSessionFile(redis, account_id), open_state=on_redis)
    if sqlite is not None:  # beside the dedupe marks: one fsync for both
        legacy = context.state_dir / "accounts" / account_id / STATE_FILE

        def in_store() -> ILinkState:
            return SqliteILinkState(
                sqlite.database, account_id, channel=sqlite.channel, legacy=legacy
            )

        return KeptState(sessions=None, open_state=in_store)
    return KeptState(sessions=None, open_state=None)
