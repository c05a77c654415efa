"""Each webhook endpoint's state, as ``wechat-sdk gateway status`` and ``GET /v1/webhooks``
show it. Names an endpoint by its origin only: never a URL's path, query or user info (they
may hold a token), never its secret."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["EndpointState", "WebhookStatus"]

#: ``delivering``: its last attempt was taken (or none failed yet); ``retrying``: its last
#: attempt failed, and its events are retried on the schedule; ``disabled``: it answered
#: ``410 Gone``, and nothing is queued for it or sent to it until a reload or restart
EndpointState = Literal["delivering", "retrying", "disabled"]


@dataclass(frozen=True)
class WebhookStatus:
    """One endpoint of ``channels.wechat.webhooks``: ``index`` is its place in that list,
    ``endpoint`` its scheme, host and port. The state and the last failure are this
    gateway's (in memory, since it started); ``queued`` is what the store holds for it."""

    index: int
    endpoint: str
    state: EndpointState
    queued: int
    #: why its last failed attempt failed (``HTTP 503``, ``no answer within 15 s``...)
    last_failure: str | None = None
    #: when that was (epoch seconds, the gateway's clock)
    last_failure_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
