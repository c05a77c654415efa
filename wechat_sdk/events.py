"""The gateway's events: what happened, in the words of the webhook catalogue.

The parts of the gateway that see something happen (the connection, the turns, delivery,
the pairing API) are each given one :class:`GatewayEvents` when they are built and call
it; it builds the event's ``data`` and hands it to ``publish`` (the webhook queue), but
only for the event types someone subscribed to, so a gateway without webhooks pays one
set lookup per event. ``publish`` never raises into the gateway: an event that cannot be
queued is logged and skipped.

Example:
    ```python
    seen = []
    events = GatewayEvents(lambda type, data: seen.append((type, data)), {"account.ready"})
    events.account_ready("default", "wxid_bot", "Molty")
    ```
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Iterable
from typing import Any, Literal

__all__ = ["EVENT_TYPES", "Decision", "GatewayEvents", "Publish", "iso_time"]

log = logging.getLogger("wechat_sdk.events")

#: Every event type, as ``channels.wechat.webhooks[].events`` names them.
EVENT_TYPES: tuple[str, ...] = (
    "message.received",
    "reply.sent",
    "delivery.failed",
    "pairing.requested",
    "pairing.approved",
    "account.qr",
    "account.ready",
    "account.logged_out",
    "account.session_expired",
)

Decision = Literal["answered", "dropped"]
#: queues one event: its type and its ``data``
Publish = Callable[[str, dict[str, Any]], None]


def iso_time(at: float) -> str:
    """``at`` (epoch seconds) as the events write times: ISO 8601 in UTC, to the ms."""
    stamp = datetime.datetime.fromtimestamp(at, tz=datetime.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class GatewayEvents:
    """The event sink every producing part of the gateway is given.

    ``wanted``: the event types someone listens to (others are not even built).
    """

    def __init__(self, publish: Publish | None = None, wanted: Iterable[str] = ()) -> None:
        self._publish = publish
        self.wanted = frozenset(wanted) if publish is not None else frozenset()

    def wants(self, event_type: str) -> bool:
        """True when ``event_type`` has a subscriber (so it is worth building)."""
        return event_type in self.wanted

    def emit(self, event_type: str, data: dict[str, Any]) -> None:
        """Queue one event (when it is wanted); a failure to queue is logged, not raised."""
        if self._publish is None or event_type not in self.wanted:
            return
        try:
            self._publish(event_type, data)
        except Exception as exc:  # an event is never worth a message
            log.error(
                "event %s not queued: %s account=%s reason=event_not_queued",
                event_type,
                exc,
                data.get("accountId", "-"),
            )

    # ------------------------------------------------------------ the catalogue

    def message_received(
        self,
        account_id: str,
        *,
        message_id: str,
        chat_type: str,
        sender_id: str,
        sender_name: str,
        room_id: str | None,
        text: str,
        decision: Decision,
        reason: str | None = None,
    ) -> None:
        """A message reached the gateway: handed to the agent (``answered``) or
        ``dropped`` with its reason code (``pairing_required``, ``no_mention``...)."""
        if "message.received" not in self.wanted:
            return
        self.emit(
            "message.received",
            {
                "accountId": account_id,
                "messageId": message_id,
                "chatType": chat_type,
                "senderId": sender_id,
                "senderName": sender_name,
                "roomId": room_id,
                "text": text,
                "decision": decision,
                "reason": reason,
            },
        )

    def reply_sent(
        self,
        account_id: str,
        *,
        conversation_id: str,
        in_reply_to: str,
        text: str,
        messages: int,
        files: int = 0,
    ) -> None:
        """The agent's reply to a message went out: ``text`` in ``messages`` WeChat text
        messages, and ``files`` files. A reply of nothing is no event."""
        if "reply.sent" not in self.wanted:
            return
        if not text and not files:
            return
        self.emit(
            "reply.sent",
            {
                "accountId": account_id,
                "conversationId": conversation_id,
                "inReplyTo": in_reply_to,
                "text": text,
                "messages": messages,
                "files": files,
            },
        )

    def delivery_failed(
        self, account_id: str, *, conversation_id: str, reason: str, error: str
    ) -> None:
        """A message was given up (a permanent error, or its retries ran out)."""
        if "delivery.failed" not in self.wanted:
            return
        self.emit(
            "delivery.failed",
            {
                "accountId": account_id,
                "conversationId": conversation_id,
                "reason": reason,
                "error": error,
            },
        )

    def pairing_requested(
        self, account_id: str, *, code: str, sender_id: str, sender_name: str, expires_at: float
    ) -> None:
        """A stranger got a pairing code: approve it with ``POST /v1/pairing/{code}/approve``."""
        if "pairing.requested" not in self.wanted:
            return
        self.emit(
            "pairing.requested",
            {
                "accountId": account_id,
                "code": code,
                "senderId": sender_id,
                "senderName": sender_name,
                "expiresAt": iso_time(expires_at),
            },
        )

    def pairing_approved(self, account_id: str, *, code: str | None, sender_id: str) -> None:
        """A sender was approved through the gateway (the HTTP or the Python API)."""
        if "pairing.approved" not in self.wanted:
            return
        self.emit(
            "pairing.approved", {"accountId": account_id, "code": code, "senderId": sender_id}
        )

    def account_qr(self, account_id: str, *, qr_url: str) -> None:
        """A new login QR code: open ``qrUrl`` and scan it with the phone."""
        if "account.qr" not in self.wanted:
            return
        self.emit("account.qr", {"accountId": account_id, "qrUrl": qr_url})

    def account_ready(self, account_id: str, user_id: str | None, user_name: str | None) -> None:
        """The account is logged in and serving."""
        if "account.ready" not in self.wanted:
            return
        self.emit(
            "account.ready", {"accountId": account_id, "userId": user_id, "userName": user_name}
        )

    def account_logged_out(self, account_id: str, *, reason: str) -> None:
        """WeChat logged the account out (on the phone, or the puppet said so; an expired
        session is ``account.session_expired`` instead)."""
        if "account.logged_out" not in self.wanted:
            return
        self.emit("account.logged_out", {"accountId": account_id, "reason": reason})

    def account_session_expired(self, account_id: str, *, qr_url: str | None) -> None:
        """The account's login ended without the user logging out: the puppet said the
        session expired (iLink's errcode -14), or asked for a new scan after the account
        had been ready. ``qrUrl``: the new QR code when already known (else the
        ``account.qr`` event that follows has it)."""
        if "account.session_expired" not in self.wanted:
            return
        self.emit("account.session_expired", {"accountId": account_id, "qrUrl": qr_url})
