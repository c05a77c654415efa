"""Each webhook endpoint's state, as ``wechat-sdk gateway status`` and ``GET /v1/webhooks``
show it. Names an endpoint by its origin only: never a URL's path, query or user info (they
may hold a token), never its secret."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["STATE_MEANINGS", "STATE_WORDS", "EndpointState", "WebhookStatus", "endpoint_state"]

EndpointState = Literal["delivering", "retrying", "failing", "disabled"]

#: what each state means (the HTTP API's description of it)
STATE_MEANINGS: dict[EndpointState, str] = {
    "delivering": "its last attempt was taken, or none failed yet",
    "retrying": "its last attempt failed, and its events wait for their next attempt",
    "failing": "its last attempt failed and was its last: that event was given up, "
    "and nothing of it waits",
    "disabled": "it answered 410 Gone: nothing is queued for it or sent to it until a "
    "reload or restart",
}

#: how ``gateway status`` says each state
STATE_WORDS: dict[EndpointState, str] = {
    "delivering": "delivering",
    "retrying": "retrying after failures",
    "failing": "failing: its last event was given up",
    "disabled": "disabled: 410 Gone, until a restart",
}


def endpoint_state(*, gone: bool, failing: bool, queued: int) -> EndpointState:
    """An endpoint's state from what its dispatcher knows of it."""
    if gone:
        return "disabled"
    if failing:
        return "retrying" if queued else "failing"
    return "delivering"


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
