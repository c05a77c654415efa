"""Stores: pairing rows, conversation history, the dedupe window, the outbox, the webhook
queue and the HTTP API's idempotency keys.

The ports are in :mod:`wechat_sdk.stores.base`; :class:`MemoryStore` and
:class:`SqliteStore` implement them (the latter is the durable default).
"""

from __future__ import annotations

from wechat_sdk.stores.base import (
    CHANNEL,
    DEFAULT_DEDUPE_MAX_ENTRIES,
    DEFAULT_MAX_CONVERSATIONS,
    ApprovedSender,
    DedupeStore,
    HistoryStore,
    IdempotencyStore,
    IdempotentRequest,
    OutboxItem,
    OutboxKind,
    OutboxState,
    OutboxStore,
    PairingRequest,
    PairingStore,
    RemovesHistory,
    Store,
    WebhookDelivery,
    WebhookQueue,
)
from wechat_sdk.stores.memory import (
    MemoryDedupeStore,
    MemoryHistoryStore,
    MemoryIdempotencyStore,
    MemoryOutboxStore,
    MemoryPairingStore,
    MemoryStore,
    MemoryWebhookQueue,
)
from wechat_sdk.stores.sqlite import (
    DEFAULT_DB_NAME,
    DEFAULT_HISTORY_CACHE_CONVERSATIONS,
    SCHEMA_VERSION,
    SqliteStore,
    StoreSchemaError,
)

__all__ = [
    "CHANNEL",
    "DEFAULT_DB_NAME",
    "DEFAULT_DEDUPE_MAX_ENTRIES",
    "DEFAULT_HISTORY_CACHE_CONVERSATIONS",
    "DEFAULT_MAX_CONVERSATIONS",
    "SCHEMA_VERSION",
    "ApprovedSender",
    "DedupeStore",
    "HistoryStore",
    "IdempotencyStore",
    "IdempotentRequest",
    "MemoryDedupeStore",
    "MemoryHistoryStore",
    "MemoryIdempotencyStore",
    "MemoryOutboxStore",
    "MemoryPairingStore",
    "MemoryStore",
    "MemoryWebhookQueue",
    "OutboxItem",
    "OutboxKind",
    "OutboxState",
    "OutboxStore",
    "PairingRequest",
    "PairingStore",
    "RemovesHistory",
    "SqliteStore",
    "Store",
    "StoreSchemaError",
    "WebhookDelivery",
    "WebhookQueue",
]
