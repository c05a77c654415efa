"""The health endpoints' answers (``channels.wechat.health``): served by the gateway's
HTTP server (:mod:`wechat_sdk.http.server`), with the API when ``channels.wechat.api`` is set.

- ``GET /healthz``: 200 while the process serves at all (liveness).
- ``GET /readyz``: 200 when every account this gateway runs is ``ready``, else 503
  (readiness), with each account's state in the body. The accounts it runs: the enabled
  ones (those ``--accounts`` names, when given); in a cluster, those it holds.

Bodies are JSON and hold account ids and lifecycle states only, never secrets.
"""

from __future__ import annotations

from typing import Any

from wechat_sdk.gateway.status import AccountStatus

__all__ = ["HEALTH_HOST", "readiness"]

#: where the health endpoints listen (``health.port``)
HEALTH_HOST = "127.0.0.1"


def readiness(
    statuses: list[AccountStatus], enabled: set[str], runs: set[str], *, cluster: bool = False
) -> tuple[bool, dict[str, Any]]:
    """Whether every account this gateway runs (``runs``) is ready, and the JSON body
    saying so.

    A gateway that runs no account is not ready (nothing would answer), unless it is a
    gateway of a cluster: the others hold the accounts, and it takes one up when one of
    them stops.
    """
    accounts = [
        {
            "account": s.account,
            "enabled": s.account in enabled,
            "lifecycle": s.lifecycle,
            "state": s.state,
        }
        for s in statuses
    ]
    live = [a for a in accounts if a["account"] in runs]
    ready = all(a["lifecycle"] == "ready" for a in live) and (bool(live) or cluster)
    body: dict[str, Any] = {"ready": ready, "accounts": accounts}
    if not live:
        body["reason"] = (
            "holds no account now: the cluster's other gateways hold them"
            if cluster
            else "no enabled WeChat account"
        )
    elif not ready:
        waiting = [f"{a['account']} ({a['state']})" for a in live if a["lifecycle"] != "ready"]
        body["reason"] = "not ready: " + ", ".join(waiting)
    return ready, body
