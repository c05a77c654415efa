"""Choosing and reaching a Wechaty puppet from an account's config.

``puppet: "wechaty-puppet-service"`` connects to a running Puppet Service with
``puppetOptions: {token, endpoint, tls}``; without ``endpoint`` the token is resolved
through Wechaty's discovery service (``GET <discoveryUrl>/v0/hosties/<token>`` answers
``{"host", "port"}``). Like Wechaty, the environment fills what the config leaves out:
``WECHATY_PUPPET_SERVICE_TOKEN``, ``WECHATY_PUPPET_SERVICE_ENDPOINT``,
``WECHATY_PUPPET_SERVICE_NO_TLS_INSECURE_CLIENT=true`` and
``WECHATY_PUPPET_SERVICE_AUTHORITY`` (the discovery host).

Any other ``wechaty-puppet-*`` name runs that Node puppet in the sidecar; with a Redis
store, its memory card (the login session) is kept in Redis as well
(:mod:`~wechat_sdk.adapters.wechaty.memory_card`). A Puppet Service keeps its accounts'
sessions itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wechat_sdk.adapters.wechaty.client import (
    PuppetServiceClient,
    ServiceConnection,
    ServiceUnavailable,
)
from wechat_sdk.adapters.wechaty.sidecar import Sidecar, SidecarPuppet
from wechat_sdk.config import ConfigError, ResolvedAccount
from wechat_sdk.config.integrations import host_port
from wechat_sdk.config.models import PuppetOptions, TlsOptions
from wechat_sdk.puppet import Puppet

if TYPE_CHECKING:
    from wechat_sdk.puppets import SharedRedis

__all__ = [
    "DEFAULT_DISCOVERY_URL",
    "SERVICE_PUPPET",
    "ServiceSettings",
    "check_puppet",
    "discover_endpoint",
    "make_puppet",
    "service_settings",
]

SERVICE_PUPPET = "wechaty-puppet-service"
DEFAULT_DISCOVERY_URL = "https://api.chatie.io"
DISCOVERY_TIMEOUT_S = 15.0
_SIDECAR_KEYS = {"tls", "discoveryUrl"}


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """A Puppet Service to reach: the endpoint, or the discovery URL to find it."""

    token: str
    endpoint: str | None
    discovery_url: str
    tls: bool
    ca_file: Path | None
    server_name: str | None

    def connection(self, endpoint: str) -> ServiceConnection:
        return ServiceConnection(
            endpoint=endpoint,
            token=self.token,
            tls=self.tls,
            ca_file=self.ca_file,
            server_name=self.server_name,
        )

    def __repr__(self) -> str:  # the token stays out of logs
        return f"ServiceSettings(endpoint={self.endpoint!r}, token='***', tls={self.tls})"


def service_settings(
    options: PuppetOptions, key_path: str, env: Mapping[str, str] | None = None
) -> ServiceSettings:
    """Validate ``puppetOptions`` for a Puppet Service; errors name ``key_path``'s keys."""
    env = os.environ if env is None else env
    token = options.token or env.get("WECHATY_PUPPET_SERVICE_TOKEN")
    if not token:
        raise ConfigError.single(
            f"{key_path}.token",
            'puppet "wechaty-puppet-service" needs a token: set puppetOptions.token '
            "(or WECHATY_PUPPET_SERVICE_TOKEN)",
        )
    _check_token(token, f"{key_path}.token", from_env=not options.token)
    endpoint = options.endpoint or env.get("WECHATY_PUPPET_SERVICE_ENDPOINT") or None
    if endpoint is not None:
        _check_endpoint(endpoint, f"{key_path}.endpoint")
    authority = env.get("WECHATY_PUPPET_SERVICE_AUTHORITY")
    discovery = options.discoveryUrl or (
        f"https://{authority}" if authority else DEFAULT_DISCOVERY_URL
    )
    if urllib.parse.urlsplit(discovery).scheme not in ("http", "https"):
        raise ConfigError.single(f"{key_path}.discoveryUrl", f"{discovery!r} is not an http(s) URL")
    tls: bool = True
    ca_file: Path | None = None
    server_name: str | None = None
    if options.tls is False:
        tls = False
    elif isinstance(options.tls, TlsOptions):
        if options.tls.caFile:
            ca_file = Path(options.tls.caFile).expanduser()
            if not ca_file.is_file():
                raise ConfigError.single(
                    f"{key_path}.tls.caFile", f"{ca_file} does not exist or is not a file"
                )
        server_name = options.tls.serverName
    elif options.tls is None and env.get(
        "WECHATY_PUPPET_SERVICE_NO_TLS_INSECURE_CLIENT", ""
    ).lower() in ("true", "1"):
        tls = False
    if tls and server_name is None and token.startswith("insecure_"):
        server_name = "insecure"
    return ServiceSettings(
        token=token,
        endpoint=endpoint,
        discovery_url=discovery.rstrip("/"),
        tls=tls,
        ca_file=ca_file,
        server_name=server_name,
    )


def _check_token(token: str, path: str, *, from_env: bool) -> None:
    """gRPC metadata carries printable ASCII only: anything else fails every call with
    gRPC's bare "Invalid metadata". The error says where, never the token."""
    for n, char in enumerate(token, 1):
        if " " <= char <= "~":
            continue
        what = "is not ASCII" if ord(char) > 0x7F else "is a control character"
        where = " (it is set by WECHATY_PUPPET_SERVICE_TOKEN)" if from_env else ""
        raise ConfigError.single(
            path,
            "the token cannot be sent as gRPC metadata, which carries printable ASCII only: "
            f"its character {n} {what}; copy the token again{where}",
        )


def _check_endpoint(endpoint: str, path: str) -> None:
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError.single(path, f'{endpoint!r} is not "host:port" (e.g. "127.0.0.1:8788")')
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        # (gRPC reads "::1:8788" as a host without a port: never reached)
        raise ConfigError.single(
            path,
            f'{endpoint!r} is not "host:port": write an IPv6 host in brackets, '
            f"{host_port(host, port)!r}",
        )


async def discover_endpoint(discovery_url: str, token: str) -> str:
    """Ask Wechaty's discovery service where the token's Puppet Service runs."""
    url = f"{discovery_url}/v0/hosties/{urllib.parse.quote(token, safe='')}"

    def get() -> bytes:
        request = urllib.request.Request(url, headers={"User-Agent": "wechat-sdk"})
        with urllib.request.urlopen(request, timeout=DISCOVERY_TIMEOUT_S) as response:
            body: bytes = response.read(64 * 1024)
            return body

    where = discovery_url  # never the URL with the token in it
    try:
        body = await asyncio.to_thread(get)
    except urllib.error.HTTPError as exc:
        if 400 <= exc.code < 500:
            raise ServiceUnavailable(
                f"the discovery service at {where} does not know this token (HTTP {exc.code}): "
                "check puppetOptions.token, or set puppetOptions.endpoint"
            ) from None
        raise ServiceUnavailable(
            f"the discovery service at {where} failed (HTTP {exc.code})"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ServiceUnavailable(f"the discovery service at {where} failed: {exc}") from None
    try:
        found: Any = json.loads(body.decode("utf-8"))
    # bad wire data: bytes that are not UTF-8, text that is not JSON, or JSON nested
    # deeper than the parser goes
    except (ValueError, RecursionError):
        raise ServiceUnavailable(
            f"the discovery service at {where} failed: its answer is not JSON: "
            "check puppetOptions.discoveryUrl, or set puppetOptions.endpoint"
        ) from None
    if not isinstance(found, dict):
        raise ServiceUnavailable(f"the discovery service at {where} gave no address")
    host, port = found.get("host") or found.get("ip"), found.get("port")
    if not isinstance(host, str) or not host or not isinstance(port, int) or port <= 0:
        raise ServiceUnavailable(f"the discovery service at {where} gave no address")
    return host_port(host, port)  # (an IPv6 host in brackets, as gRPC reads a target)


def check_puppet(account: ResolvedAccount) -> None:
    """Raise :class:`ConfigError` when the account's puppet settings cannot work.

    Checks what can be known without connecting: a service's token, endpoint and TLS files,
    or that a Node puppet's name is an npm package name. ``wechat-sdk config check`` runs it.
    """
    name = account.settings.puppet
    if name == SERVICE_PUPPET:
        service_settings(account.settings.puppetOptions, account.key_path("puppetOptions"))
    elif not _looks_like_npm_name(name):
        raise ConfigError.single(
            account.key_path("puppet"),
            f'"{name}" is not a puppet: use "simulator", "wechaty-puppet-service", or the npm '
            'name of a Wechaty puppet such as "wechaty-puppet-wechat"',
        )


def make_puppet(
    account: ResolvedAccount, state_dir: Path, redis: SharedRedis | None = None
) -> Puppet:
    """The Wechaty puppet for an account (the puppet registry sends every name it does not
    know otherwise here: see :mod:`wechat_sdk.puppets`). With ``redis`` (a Redis store), a
    Node puppet's memory card is kept there too."""
    name = account.settings.puppet
    options = account.settings.puppetOptions
    key_path = account.key_path("puppetOptions")
    # a file a peer sends as a URL is fetched from public addresses only, unless allowed
    allow_private = account.settings.mediaFetchAllowPrivate
    if name == SERVICE_PUPPET:
        settings = service_settings(options, key_path)
        if settings.endpoint is not None:
            connection = settings.connection(settings.endpoint)
            return PuppetServiceClient(
                connection, account_id=account.id, allow_private_hosts=allow_private
            )

        async def resolve() -> ServiceConnection:
            endpoint = await discover_endpoint(settings.discovery_url, settings.token)
            return settings.connection(endpoint)

        return PuppetServiceClient(
            None, resolver=resolve, account_id=account.id, allow_private_hosts=allow_private
        )
    check_puppet(account)
    # a Node puppet gets every option but the sidecar's own (tls), endpoint and token
    # included: they mean the puppet's own (a browser path, a padlocal token...)
    extra: dict[str, Any] = {
        k: v for k, v in options.model_dump(exclude_none=True).items() if k not in _SIDECAR_KEYS
    }
    account_dir = state_dir / "accounts" / account.id
    memory_card = None
    if redis is not None:
        from wechat_sdk.adapters.wechaty.memory_card import RedisMemoryCard, card_file

        memory_card = RedisMemoryCard(redis, account.id, card_file(account_dir))
    sidecar = Sidecar(
        puppet=name,
        state_dir=state_dir,
        account_dir=account_dir,
        puppet_options=extra,
        tls=options.tls is True,
        account_id=account.id,
        memory_card=memory_card,
    )
    return SidecarPuppet(sidecar, account_id=account.id, allow_private_hosts=allow_private)


def _looks_like_npm_name(name: str) -> bool:
    return re.fullmatch(r"(@[a-z0-9][\w.-]*/)?[a-z0-9][\w.-]*", name) is not None
