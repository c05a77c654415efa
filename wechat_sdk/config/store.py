"""The ``store`` block of ``channels.wechat`` (gateway-wide, top level only): where the
gateway keeps what it must not forget.

- ``{kind: "sqlite"}`` (the default): one file in the state directory.
- ``{kind: "memory"}``: nothing kept across a restart (tests, throwaway runs).
- ``{kind: "redis", url: "redis://..."}``: a Redis server several gateways share
  (docs/cluster.md). The URL's password is a secret: it never shows in a message, a log
  line or ``config check`` (:func:`shown_url` hides it).
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from wechat_sdk.config.strict import StrictModel

__all__ = ["REDIS_SCHEMES", "StoreConfig", "shown_url"]

#: URL schemes redis-py connects with
REDIS_SCHEMES = ("redis", "rediss", "unix")

StoreKind = Literal["sqlite", "memory", "redis"]


#: ``password=`` in a URL's query (redis-py reads it there: a socket's only way to give it)
_QUERY_PASSWORD = re.compile(r"(^|[&;])(password=)[^&;#]*", re.IGNORECASE)


def shown_url(url: str) -> str:
    """``url`` as it may be shown: its password, in the user info or the query, replaced
    by ``***``. Examples: ``redis://:s3cret@db:6379/0`` -> ``redis://:***@db:6379/0``,
    ``unix:///run/redis.sock?db=0&password=s3cret`` -> ``...?db=0&password=***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a URL that cannot be read)"
    # (the query as written: urlunsplit would turn unix:///path into unix:/path)
    base, mark, query = url.partition("?")
    shown = base + mark + _QUERY_PASSWORD.sub(r"\1\2***", query)
    if parts.password is None and "@" not in parts.netloc:
        return shown
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return shown.replace(f"//{parts.netloc}", f"//{user}:***@{host}", 1)


class StoreConfig(StrictModel):
    """Where the gateway keeps pairing, history, dedupe marks, the outbox and the queues."""

    kind: StoreKind = Field(
        "sqlite",
        description='"sqlite" (a file in the state directory, the default), "memory" '
        '(nothing kept across a restart) or "redis" (shared by several gateways)',
    )
    url: str | None = Field(
        None,
        description="the Redis server, for kind redis: redis://[:password@]host:port/db, "
        "rediss:// for TLS, or unix:///path/to/socket?password=... (its password is never "
        "shown)",
        repr=False,
    )

    namespace: str = Field(
        "wechat-sdk",
        min_length=1,
        description="the first part of every Redis key (<namespace>:<channel>:...): "
        "two clusters on one Redis server take two namespaces",
    )

    leaseTtlS: float = Field(
        15.0,
        ge=1.0,
        le=300.0,
        description="kind redis: seconds an account's lease lives without renewal (a "
        "gateway that dies gives up its accounts within this)",
    )

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value)
        except ValueError:
            parts = None
        # the message never repeats the URL: it may hold the password
        if parts is None or parts.scheme not in REDIS_SCHEMES:
            raise ValueError(
                "must be a redis:// URL (rediss:// for TLS, unix:// for a socket), "
                "e.g. redis://localhost:6379/0"
            )
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError("names no host: write it as redis://host:6379/0")
        if parts.scheme == "unix" and not parts.path:
            raise ValueError("names no socket: write it as unix:///path/to/redis.sock")
        from redis.connection import parse_url  # (redis: only for a config that uses it)

        try:  # its port, database and options, as the client will read them
            parse_url(value)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            why = str(exc)
            if why.startswith("Port could not be cast"):  # (it repeats what was written)
                why = "the port is not a number"
            raise ValueError(f"is not a URL the Redis client can use: {why}") from None
        return value

    @model_validator(mode="after")
    def _url_for_redis_only(self) -> StoreConfig:
        if self.kind == "redis" and self.url is None:
            raise ValueError('kind "redis" needs url: e.g. url: "redis://localhost:6379/0"')
        if self.kind != "redis" and self.url is not None:
            raise ValueError(f'url is for kind "redis" only; kind "{self.kind}" takes none')
        for key in ("namespace", "leaseTtlS"):
            if self.kind != "redis" and key in self.model_fields_set:
                raise ValueError(f'{key} is for kind "redis" only; kind "{self.kind}" takes none')
        return self

    def shown(self) -> dict[str, str]:
        """The block as ``config check`` and ``gateway status`` show it (no password)."""
        out: dict[str, str] = {"kind": self.kind}
        if self.url is not None:
            out["url"] = shown_url(self.url)
            out["namespace"] = self.namespace
        return out
