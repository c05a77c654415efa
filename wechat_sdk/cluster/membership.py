"""A gateway joining its cluster: the coordinator wired to the gateway's accounts (when
``store.kind`` is ``"redis"``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from wechat_sdk.clock import RealClock
from wechat_sdk.cluster.coordinator import ClusterCoordinator
from wechat_sdk.cluster.fence import LeaseGuard
from wechat_sdk.cluster.leases import LeaseKeys
from wechat_sdk.config.models import SECRET_KEY_NAME
from wechat_sdk.stores.base import CHANNEL
from wechat_sdk.stores.redis.keys import Keys

if TYPE_CHECKING:
    from wechat_sdk.config.accounts import ResolvedAccount
    from wechat_sdk.gateway.gateway import Gateway

__all__ = ["config_hash", "join_cluster"]


async def join_cluster(
    gateway: Gateway,
    only: Sequence[str] | None,
    *,
    gateway_id: str | None = None,
) -> ClusterCoordinator:
    """Start competing for the gateway's enabled accounts (``only`` these, when given).

    Leases live in Redis's real time, so the coordinator reads a real clock whatever the
    gateway's (a test's virtual clock does not move Redis's TTLs).
    """
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    from wechat_sdk.stores.redis.store import client_options, unreachable

    store = gateway.config.channels.wechat.store
    assert store.url is not None
    client = Redis.from_url(store.url, **client_options(5))
    accounts = [a.id for a in gateway.accounts.enabled if only is None or a.id in only]

    async def start_account(account_id: str, guard: LeaseGuard) -> Callable[[], dict[str, Any]]:
        runner = gateway.build_account(gateway.accounts.accounts[account_id], guard)
        runner.start()
        return lambda: runner.refresh_status().to_json()

    async def stop_account(account_id: str, grace_s: float) -> None:
        runner = gateway.runners.pop(account_id, None)
        if runner is not None:
            await runner.stop(grace_s)

    coordinator = ClusterCoordinator(
        client,
        LeaseKeys(Keys(CHANNEL, store.namespace)),
        accounts,
        start_account=start_account,
        stop_account=stop_account,
        clock=RealClock(),
        gateway_id=gateway_id,
        ttl_s=store.leaseTtlS,
        peers=[a.id for a in gateway.accounts.enabled],
        own_accounts=gateway.own_accounts,
        config_hashes={a.id: config_hash(a) for a in gateway.accounts.enabled},
    )
    gateway.cluster = coordinator  # (its puppets are made as it takes the first accounts)
    try:
        await coordinator.start()
    except RedisError as exc:
        gateway.cluster = None
        await client.aclose()
        raise unreachable(store.url, exc) from None
    except BaseException:
        gateway.cluster = None
        await client.aclose()
        raise
    return coordinator


#: settings each machine sets for itself, which do not change how an account answers: two
#: gateways cannot share a state directory or a health port, and a terminal draws the QR
#: code or not (left out of :func:`config_hash`)
MACHINE_KEYS = frozenset({"stateDir", "health", "qrCode"})


def config_hash(account: ResolvedAccount) -> str:
    """A short hash of the account's effective settings (its own keys over the top
    level's), each secret's value left out (an option named as one: ``token``,
    ``apiKey``...), and the machine's own settings (:data:`MACHINE_KEYS`): what the
    gateways of a cluster compare (docs/cluster.md)."""
    settings = _without_secrets(account.settings.model_dump(mode="json", exclude=set(MACHINE_KEYS)))
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))  # (ASCII: escaped)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: "***" if SECRET_KEY_NAME.search(k) and v else _without_secrets(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value
