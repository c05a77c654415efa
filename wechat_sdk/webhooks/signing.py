"""Standard Webhooks signatures, by the ``standardwebhooks`` reference library.

A request carries ``webhook-id`` (the same on every retry of one event), ``webhook-timestamp``
(the attempt's wall time, in seconds: receivers refuse one more than 5 minutes off their
clock) and ``webhook-signature`` (``v1,`` and the base64 HMAC-SHA256 of
``id.timestamp.body`` under the endpoint's ``whsec_`` secret).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import secrets

__all__ = ["new_message_id", "signed_headers", "turn_message_id"]


def new_message_id() -> str:
    """A fresh ``webhook-id``: ``msg_`` and 128 random bits."""
    return "msg_" + secrets.token_hex(16)


def turn_message_id(account_id: str, message_id: str) -> str:
    """The ``webhook-id`` of the agent turn that answers ``message_id`` of ``account_id``:
    ``msg_`` and 128 bits of a SHA-256 of the two, so a turn asked again (kept by a stop,
    taken up after a restart or by another gateway) has the id it had, and a receiver that
    dedupes on it knows the repeat. A turn without a message id gets a fresh one."""
    if not message_id:
        return new_message_id()
    facts = json.dumps(["agent.turn", account_id, message_id], ensure_ascii=False)
    return "msg_" + hashlib.sha256(facts.encode("utf-8", "replace")).hexdigest()[:32]


def signed_headers(secret: str, message_id: str, body: bytes, at: float) -> dict[str, str]:
    """The three Standard Webhooks headers of ``body`` sent at ``at`` (epoch seconds)."""
    from standardwebhooks import Webhook  # (imported when a webhook goes out)

    timestamp = datetime.datetime.fromtimestamp(int(at), tz=datetime.UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at)),
        "webhook-signature": Webhook(secret).sign(message_id, timestamp, body),
    }
