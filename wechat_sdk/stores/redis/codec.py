"""Rows as Redis keeps them: JSON, bytes as base64."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from wechat_sdk.agent import HistoryEntry
from wechat_sdk.puppet import OutboundFile
from wechat_sdk.stores.base import IdempotentRequest, OutboxItem, WebhookDelivery

__all__ = [
    "entry_from_json",
    "entry_to_json",
    "idempotent_from_json",
    "idempotent_to_json",
    "item_from_json",
    "item_to_json",
    "webhook_from_json",
    "webhook_to_json",
]


def entry_to_json(entry: HistoryEntry) -> str:
    return json.dumps(
        [
            entry.role,
            entry.sender_id,
            entry.sender_name,
            entry.text,
            entry.timestamp,
            entry.message_id,
        ],
        ensure_ascii=False,
    )


def entry_from_json(raw: str | bytes) -> HistoryEntry:
    role, sender_id, sender_name, text, timestamp, message_id = json.loads(raw)
    return HistoryEntry(role, sender_id, sender_name, text, timestamp, message_id)


def _file_to_dict(f: OutboundFile) -> dict[str, Any]:
    return {
        "name": f.name,
        "kind": f.kind,
        "mime": f.mime,
        "duration_s": f.duration_s,
        "data": base64.b64encode(f.data).decode("ascii") if f.data is not None else None,
        "path": str(f.path) if f.path is not None else None,
        "url": f.url,
    }


def _file_from_dict(d: dict[str, Any]) -> OutboundFile:
    return OutboundFile(
        name=d["name"],
        kind=d["kind"],
        mime=d["mime"],
        duration_s=d["duration_s"],
        data=base64.b64decode(d["data"]) if d["data"] is not None else None,
        path=Path(d["path"]) if d["path"] is not None else None,
        url=d["url"],
    )


def item_to_json(item: OutboxItem) -> str:
    return json.dumps(
        {
            "id": item.id,
            "account_id": item.account_id,
            "conversation_id": item.conversation_id,
            "kind": item.kind,
            "state": item.state,
            "created_at": item.created_at,
            "dm": item.dm,
            "text": item.text,
            "mention_ids": list(item.mention_ids),
            "file": _file_to_dict(item.file) if item.file is not None else None,
            "turn": item.turn,
            "pairing_code": item.pairing_code,
            "claim": item.claim,
            "notice": item.notice,
        },
        ensure_ascii=False,
    )


def item_from_json(raw: str | bytes) -> OutboxItem:
    d = json.loads(raw)
    return OutboxItem(
        id=d["id"],
        account_id=d["account_id"],
        conversation_id=d["conversation_id"],
        kind=d["kind"],
        state=d["state"],
        created_at=d["created_at"],
        dm=d["dm"],
        text=d["text"],
        mention_ids=tuple(d["mention_ids"]),
        file=_file_from_dict(d["file"]) if d["file"] is not None else None,
        turn=d["turn"],
        pairing_code=d.get("pairing_code"),  # (not in an item an earlier build kept)
        claim=d.get("claim"),  # (nor this)
        notice=d.get("notice", False),  # (nor this)
    )


def webhook_to_json(d: WebhookDelivery) -> str:
    return json.dumps(
        [
            d.id,
            d.endpoint,
            d.message_id,
            d.event_type,
            d.body,
            d.created_at,
            d.next_attempt_at,
            d.attempts,
            d.last_error,
        ],
        ensure_ascii=False,
    )


def webhook_from_json(raw: str | bytes) -> WebhookDelivery:
    (id_, endpoint, message_id, event_type, body, created_at, next_at, attempts, last_error) = (
        json.loads(raw)
    )
    return WebhookDelivery(
        endpoint=endpoint,
        message_id=message_id,
        event_type=event_type,
        body=body,
        created_at=created_at,
        next_attempt_at=next_at,
        attempts=attempts,
        last_error=last_error,
        id=id_,
    )


def idempotent_to_json(r: IdempotentRequest) -> str:
    return json.dumps([r.fingerprint, r.created_at, r.status, r.response], ensure_ascii=False)


def idempotent_from_json(key: str, raw: str | bytes) -> IdempotentRequest:
    fingerprint, created_at, status, response = json.loads(raw)
    return IdempotentRequest(key, fingerprint, created_at, status, response)
