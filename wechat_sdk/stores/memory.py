"""In-memory stores: fast, per process, gone at exit. For tests and ``stateDir``-less runs."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence

from wechat_sdk.agent import HistoryEntry
from wechat_sdk.stores.base import (
    CHANNEL,
    DEFAULT_DEDUPE_MAX_ENTRIES,
    DEFAULT_MAX_CONVERSATIONS,
    ApprovedSender,
    IdempotentRequest,
    OutboxItem,
    OutboxState,
    PairingRequest,
    WebhookDelivery,
)

__all__ = [
    "MemoryDedupeStore",
    "MemoryHistoryStore",
    "MemoryIdempotencyStore",
    "MemoryOutboxStore",
    "MemoryPairingStore",
    "MemoryStore",
    "MemoryWebhookQueue",
]


def _norm(code: str) -> str:
    return code.strip().upper()


class MemoryPairingStore:
    """:class:`~wechat_sdk.stores.base.PairingStore` held in dicts."""

    def __init__(self, channel: str = CHANNEL) -> None:
        self.channel = channel
        self._requests: dict[str, PairingRequest] = {}  # by upper-case code
        self._approved: dict[tuple[str, str], ApprovedSender] = {}

    def add_request(self, request: PairingRequest) -> None:
        """See :meth:`PairingStore.add_request`."""
        code = _norm(request.code)
        if code in self._requests:
            raise ValueError(f"pairing code {code!r} is already pending")
        old = self.get_request_for_sender(request.account_id, request.sender_id)
        if old is not None:
            del self._requests[old.code]
        self._requests[code] = dataclasses.replace(request, code=code)

    def get_request_by_code(self, code: str) -> PairingRequest | None:
        """See :meth:`PairingStore.get_request_by_code`."""
        return self._requests.get(_norm(code))

    def get_request_for_sender(self, account_id: str, sender_id: str) -> PairingRequest | None:
        """See :meth:`PairingStore.get_request_for_sender`."""
        for r in self._requests.values():
            if r.account_id == account_id and r.sender_id == sender_id:
                return r
        return None

    def list_requests(self, account_id: str | None = None) -> list[PairingRequest]:
        """See :meth:`PairingStore.list_requests`."""
        rows = [
            r for r in self._requests.values() if account_id is None or r.account_id == account_id
        ]
        return sorted(rows, key=lambda r: r.created_at)  # stable: ties in insertion order

    def delete_request(self, code: str) -> PairingRequest | None:
        """See :meth:`PairingStore.delete_request`."""
        return self._requests.pop(_norm(code), None)

    def approve_request(
        self, code: str, now: float, account_id: str | None = None
    ) -> ApprovedSender | None:
        """See :meth:`PairingStore.approve_request`."""
        req = self._requests.get(_norm(code))
        if req is None or not req.is_live(now):
            return None
        if account_id is not None and req.account_id != account_id:
            return None
        # Add first, delete last: if adding fails, the request is still pending.
        approved = self._upsert_approved(req.account_id, req.sender_id, now)
        del self._requests[req.code]
        return approved

    def _upsert_approved(
        self, account_id: str, sender_id: str, approved_at: float
    ) -> ApprovedSender:
        row = ApprovedSender(account_id=account_id, sender_id=sender_id, approved_at=approved_at)
        self._approved.pop((account_id, sender_id), None)
        self._approved[(account_id, sender_id)] = row
        return row

    def add_approved(self, account_id: str, sender_id: str, approved_at: float) -> ApprovedSender:
        """See :meth:`PairingStore.add_approved`."""
        return self._upsert_approved(account_id, sender_id, approved_at)

    def remove_approved(self, account_id: str, sender_id: str) -> bool:
        """See :meth:`PairingStore.remove_approved`."""
        return self._approved.pop((account_id, sender_id), None) is not None

    def is_approved(self, account_id: str, sender_id: str) -> bool:
        """See :meth:`PairingStore.is_approved`."""
        return (account_id, sender_id) in self._approved

    def list_approved(self, account_id: str) -> list[ApprovedSender]:
        """See :meth:`PairingStore.list_approved`."""
        rows = [a for a in self._approved.values() if a.account_id == account_id]
        return sorted(rows, key=lambda a: (a.approved_at, a.sender_id))

    def purge_expired(self, now: float) -> int:
        """See :meth:`PairingStore.purge_expired`."""
        dead = [c for c, r in self._requests.items() if not r.is_live(now)]
        for c in dead:
            del self._requests[c]
        return len(dead)


class MemoryHistoryStore:
    """:class:`~wechat_sdk.stores.base.HistoryStore` (and
    :class:`~wechat_sdk.stores.base.RemovesHistory`) with an LRU of conversations per
    account."""

    def __init__(
        self, max_conversations: int = DEFAULT_MAX_CONVERSATIONS, channel: str = CHANNEL
    ) -> None:
        if max_conversations < 1:
            raise ValueError("max_conversations must be at least 1")
        self.channel = channel
        self.max_conversations = max_conversations
        self._accounts: dict[str, OrderedDict[str, deque[HistoryEntry]]] = {}

    def append(self, account_id: str, key: str, entry: HistoryEntry, limit: int) -> None:
        """See :meth:`HistoryStore.append`."""
        if limit <= 0:
            self.clear(account_id, key)
            return
        convs = self._accounts.setdefault(account_id, OrderedDict())
        entries = convs.pop(key, None)
        if entries is None or entries.maxlen != limit:
            entries = deque(entries or (), maxlen=limit)
        entries.append(entry)
        convs[key] = entries
        while len(convs) > self.max_conversations:
            convs.popitem(last=False)

    def get(self, account_id: str, key: str) -> list[HistoryEntry]:
        """See :meth:`HistoryStore.get`."""
        convs = self._accounts.get(account_id)
        entries = convs.get(key) if convs is not None else None
        return list(entries) if entries is not None else []

    def clear(self, account_id: str, key: str) -> None:
        """See :meth:`HistoryStore.clear`."""
        convs = self._accounts.get(account_id)
        if convs is not None:
            convs.pop(key, None)
            if not convs:
                del self._accounts[account_id]

    def remove(self, account_id: str, key: str, entries: Iterable[HistoryEntry]) -> None:
        """See :meth:`RemovesHistory.remove`."""
        gone = set(entries)  # (read whole before anything changes)
        convs = self._accounts.get(account_id)
        kept = convs.get(key) if convs is not None else None
        if kept is None or not gone:
            return
        left = [e for e in kept if e not in gone]
        if not left:
            self.clear(account_id, key)
        elif len(left) < len(kept):
            kept.clear()  # (in place: its place in the order of use stays)
            kept.extend(left)


class MemoryDedupeStore:
    """:class:`~wechat_sdk.stores.base.DedupeStore` as an insertion-ordered dict per account."""

    def __init__(
        self, max_entries: int = DEFAULT_DEDUPE_MAX_ENTRIES, channel: str = CHANNEL
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.channel = channel
        self.max_entries = max_entries
        #: each account's marks: message id to the time it was seen and its claim
        self._seen: dict[str, OrderedDict[str, tuple[float, str]]] = {}
        #: marks recorded so far (the store's mark position)
        self.recorded = 0

    def check_and_add(
        self, account_id: str, message_id: str, now: float, ttl: float, claim: str = ""
    ) -> bool:
        """See :meth:`DedupeStore.check_and_add`."""
        seen = self._seen.setdefault(account_id, OrderedDict())
        mark = seen.get(message_id)
        if mark is not None and now - mark[0] < ttl:
            return not (claim and mark[1] == claim)
        seen.pop(message_id, None)
        # Oldest first: drop the expired head cheaply, then enforce the bound.
        while seen:
            first_at = next(iter(seen.values()))[0]
            if now - first_at < ttl:
                break
            seen.popitem(last=False)
        seen[message_id] = (now, claim)
        while len(seen) > self.max_entries:
            seen.popitem(last=False)
        self.recorded += 1
        return False


class MemoryOutboxStore:
    """:class:`~wechat_sdk.stores.base.OutboxStore` in a dict (gone at exit, like the rest)."""

    def __init__(self, channel: str = CHANNEL) -> None:
        self.channel = channel
        self._items: dict[int, OutboxItem] = {}  # insertion order is id order
        self._next_id = 1

    def add(self, items: Sequence[OutboxItem]) -> list[OutboxItem]:
        """See :meth:`OutboxStore.add`."""
        return self._append(items)

    def items(self, account_id: str) -> list[OutboxItem]:
        """See :meth:`OutboxStore.items`."""
        return [i for i in self._items.values() if i.account_id == account_id]

    def set_state(self, item_id: int, state: OutboxState) -> None:
        """See :meth:`OutboxStore.set_state`."""
        item = self._items.get(item_id)
        if item is not None:
            self._items[item_id] = dataclasses.replace(item, state=state)

    def delete(self, item_id: int) -> bool:
        """See :meth:`OutboxStore.delete`."""
        return self._items.pop(item_id, None) is not None

    def replace(self, old: Sequence[OutboxItem], new: Sequence[OutboxItem]) -> list[OutboxItem]:
        """See :meth:`OutboxStore.replace`."""
        for item in old:
            self._items.pop(item.id, None)
        return self._append(new)

    def _append(self, items: Sequence[OutboxItem]) -> list[OutboxItem]:
        added = []
        for item in items:
            kept = dataclasses.replace(item, id=self._next_id)
            self._next_id += 1
            self._items[kept.id] = kept
            added.append(kept)
        return added


class MemoryWebhookQueue:
    """:class:`~wechat_sdk.stores.base.WebhookQueue` in a dict (gone at exit)."""

    def __init__(self, channel: str = CHANNEL) -> None:
        self.channel = channel
        self._rows: dict[int, WebhookDelivery] = {}  # insertion order is id order
        self._next_id = 1

    def add(self, deliveries: Sequence[WebhookDelivery]) -> list[WebhookDelivery]:
        """See :meth:`WebhookQueue.add`."""
        added = []
        for d in deliveries:
            row = dataclasses.replace(d, id=self._next_id)
            self._next_id += 1
            self._rows[row.id] = row
            added.append(row)
        return added

    def due(self, endpoint: str, now: float, limit: int = 100) -> list[WebhookDelivery]:
        """See :meth:`WebhookQueue.due`."""
        rows = [
            r for r in self._rows.values() if r.endpoint == endpoint and r.next_attempt_at <= now
        ]
        return sorted(rows, key=lambda r: (r.next_attempt_at, r.id))[:limit]

    def claim_due(
        self, endpoint: str, now: float, *, hold_s: float, limit: int = 1
    ) -> list[WebhookDelivery]:
        """See :meth:`WebhookQueue.claim_due`: one process owns this queue, so what is due
        is its own (a trivial claim)."""
        return self.due(endpoint, now, limit)

    def next_attempt_at(self, endpoint: str) -> float | None:
        """See :meth:`WebhookQueue.next_attempt_at`."""
        times = [r.next_attempt_at for r in self._rows.values() if r.endpoint == endpoint]
        return min(times) if times else None

    def retry_later(
        self, delivery_id: int, *, attempts: int, next_attempt_at: float, last_error: str
    ) -> None:
        """See :meth:`WebhookQueue.retry_later`."""
        row = self._rows.get(delivery_id)
        if row is not None:
            self._rows[delivery_id] = dataclasses.replace(
                row, attempts=attempts, next_attempt_at=next_attempt_at, last_error=last_error
            )

    def delete(self, delivery_id: int) -> bool:
        """See :meth:`WebhookQueue.delete`."""
        return self._rows.pop(delivery_id, None) is not None

    def delete_endpoint(self, endpoint: str) -> int:
        """See :meth:`WebhookQueue.delete_endpoint`."""
        ids = [i for i, r in self._rows.items() if r.endpoint == endpoint]
        for i in ids:
            del self._rows[i]
        return len(ids)

    def pending(self, endpoint: str | None = None) -> list[WebhookDelivery]:
        """See :meth:`WebhookQueue.pending`."""
        return [r for r in self._rows.values() if endpoint is None or r.endpoint == endpoint]

    def count(self, endpoint: str) -> int:
        """See :meth:`WebhookQueue.count`."""
        return sum(1 for r in self._rows.values() if r.endpoint == endpoint)


class MemoryIdempotencyStore:
    """:class:`~wechat_sdk.stores.base.IdempotencyStore` in a dict (gone at exit)."""

    def __init__(self, channel: str = CHANNEL) -> None:
        self.channel = channel
        self._keys: dict[str, IdempotentRequest] = {}

    def claim(self, key: str, fingerprint: str, now: float) -> IdempotentRequest | None:
        """See :meth:`IdempotencyStore.claim`."""
        known = self._keys.get(key)
        if known is not None:
            return known
        self._keys[key] = IdempotentRequest(key, fingerprint, now)
        return None

    def finish(self, key: str, status: int, response: str) -> None:
        """See :meth:`IdempotencyStore.finish`."""
        known = self._keys.get(key)
        if known is not None:
            self._keys[key] = dataclasses.replace(known, status=status, response=response)

    def release(self, key: str) -> None:
        """See :meth:`IdempotencyStore.release`."""
        self._keys.pop(key, None)

    def purge(self, before: float) -> int:
        """See :meth:`IdempotencyStore.purge`."""
        old = [k for k, r in self._keys.items() if r.created_at < before]
        for k in old:
            del self._keys[k]
        return len(old)


class MemoryStore:
    """The in-memory :class:`~wechat_sdk.stores.base.Store` bundle.

    Nothing outlives the process, so every dedupe mark is as durable as it will ever be
    once recorded: :meth:`marks_durable` returns at once.
    """

    def __init__(
        self,
        *,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
        dedupe_max_entries: int = DEFAULT_DEDUPE_MAX_ENTRIES,
        channel: str = CHANNEL,
    ) -> None:
        self.channel = channel
        self.pairing = MemoryPairingStore(channel)
        self.history = MemoryHistoryStore(max_conversations, channel)
        self.dedupe = MemoryDedupeStore(dedupe_max_entries, channel)
        self.outbox = MemoryOutboxStore(channel)
        self.webhooks = MemoryWebhookQueue(channel)
        self.idempotency = MemoryIdempotencyStore(channel)

    def mark_position(self) -> int:
        """See :meth:`Store.mark_position`."""
        return self.dedupe.recorded

    async def marks_durable(self, upto: int | None) -> None:
        """See :meth:`Store.marks_durable`: nothing to wait for."""

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
