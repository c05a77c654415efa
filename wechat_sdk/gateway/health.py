"""The health endpoints' answers (``channels.wechat.health``): served by the gateway's
HTTP server (:mod:`wechat_sdk.http.server`), with the API when ``channels.wechat.api`` is set.

- ``GET /healthz``: 200 while the process serves at all (liveness).
- ``GET /readyz``: 200 when every enabled account is ``ready``, else 503 (readiness), with
  each account's state in the body.

Bodies are JSON and hold account ids and lifecycle states only, never secrets.
"""

from __future__ import annotations

from typing import Any

from wechat_sdk.gateway.status import AccountStatus

__all__ = ["HEALTH_HOST", "readiness"]

#: where the health endpoints listen (``health.port``)
HEALTH_HOST = "127.0.0.1"


def readiness(statuses: list[AccountStatus], enabled: set[str]) -> tuple[bool, dict[str, Any]]:
    """Whether every enabled account is ready, and the JSON body saying so.

    A gateway without an enabled account is not ready: nothing would answer.
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
    live = [a for a in accounts if a["enabled"]]
    ready = bool(live) and all(a["lifecycle"] == "ready" for a in live)
    body: dict[str, Any] = {"ready": ready, "accounts": accounts}
    if not live:
        body["reason"] = "no enabled WeChat account"
    elif not ready:
        waiting = [f"{a['account']} ({a['state']})" for a in live if a["lifecycle"] != "ready"]
        body["reason"] = "not ready: " + ", ".join(waiting)
    return ready, body
