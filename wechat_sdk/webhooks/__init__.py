"""Webhooks out: the gateway's events, signed per Standard Webhooks, delivered at least once
(see ``docs/webhooks.md``)."""

from __future__ import annotations

from wechat_sdk.webhooks.dispatcher import (
    ATTEMPT_TIMEOUT_S,
    CLAIM_MARGIN_S,
    RETRY_SCHEDULE_S,
    WebhookDispatcher,
    event_body,
)
from wechat_sdk.webhooks.signing import new_message_id, signed_headers
from wechat_sdk.webhooks.status import WebhookStatus

__all__ = [
    "ATTEMPT_TIMEOUT_S",
    "CLAIM_MARGIN_S",
    "RETRY_SCHEDULE_S",
    "WebhookDispatcher",
    "WebhookStatus",
    "event_body",
    "new_message_id",
    "signed_headers",
]
