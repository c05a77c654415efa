"""Every account of a cluster with the gateway holding it, read from Redis: what
``wechat-sdk gateway status`` shows on any machine that reaches the store."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from wechat_sdk.cluster.leases import LeaseKeys
from wechat_sdk.gateway.status import AccountStatus
from wechat_sdk.stores.base import CHANNEL
from wechat_sdk.stores.redis.keys import Keys

if TYPE_CHECKING:
    from wechat_sdk.config import Config

__all__ = ["cluster_status"]


def cluster_status(config: Config) -> list[dict[str, Any]]:
    """Each account of ``config``: its status as its holder last wrote it, and
    ``gateway`` (the holder's id, None when no gateway runs it). Raises
    :class:`~wechat_sdk.stores.redis.RedisUnavailable` when Redis cannot be reached."""
    from wechat_sdk.config import accounts_of
    from wechat_sdk.stores.redis import connect

    store = config.channels.wechat.store
    assert store.url is not None
    keys = LeaseKeys(Keys(CHANNEL, store.namespace))
    accounts = accounts_of(config).accounts
    ids = list(accounts)
    client = connect(store.url)
    try:
        pipe = client.pipeline(transaction=False)
        for account_id in ids:
            pipe.get(keys.lease(account_id))
            pipe.get(keys.status(account_id))
        values = pipe.execute()
    finally:
        client.close()
    rows = []
    for n, account_id in enumerate(ids):
        lease, status = values[2 * n], values[2 * n + 1]
        holder = str(lease).rsplit(" ", 1)[0] if lease is not None else None
        if holder is not None and status is not None:
            # every field, whatever the holder wrote (only itself, while the account starts)
            written = {k: v for k, v in json.loads(status).items() if k != "holder"}
            row = {**AccountStatus(account=account_id).to_json(), **written}
            row["account"] = account_id
        else:
            detail = "" if accounts[account_id].enabled else "disabled"
            if holder is None and accounts[account_id].enabled:
                detail = "no gateway holds it"
            row = AccountStatus(account=account_id, detail=detail).to_json()
        rows.append({**row, "gateway": holder})
    return rows
