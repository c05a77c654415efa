"""Pairing requests and approvals in Redis: each change one transaction (WATCH/MULTI)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from wechat_sdk.stores.base import ApprovedSender, PairingRequest
from wechat_sdk.stores.redis.atomic import transact
from wechat_sdk.stores.redis.keys import Keys

if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline

__all__ = ["RedisPairingStore"]


def _norm(code: str) -> str:
    return code.strip().upper()


def _request(code: str, row: dict[str, str]) -> PairingRequest | None:
    if not row:
        return None
    return PairingRequest(
        code=code,
        account_id=row["account_id"],
        sender_id=row["sender_id"],
        sender_name=row["sender_name"],
        created_at=float(row["created_at"]),
        expires_at=float(row["expires_at"]),
        received_by=row.get("received_by"),  # (not in a request an earlier build kept)
    )


class RedisPairingStore:
    """:class:`~wechat_sdk.stores.base.PairingStore` in Redis (keys: ``pairing:*``)."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        self._r = client
        self._k = keys

    def _sender_field(self, account_id: str, sender_id: str) -> str:
        return json.dumps([account_id, sender_id], ensure_ascii=False)

    def add_request(self, request: PairingRequest) -> None:
        """See :meth:`PairingStore.add_request`."""
        k = self._k
        code = _norm(request.code)
        field = self._sender_field(request.account_id, request.sender_id)

        def change(pipe: Pipeline) -> None:
            if pipe.exists(k.pairing_request(code)):
                raise ValueError(f"pairing code {code!r} is already pending")
            old: str | None = pipe.hget(k.pairing_by_sender, field)  # type: ignore[assignment]
            order = int(self._r.incr(k.sequence))  # type: ignore[arg-type]  # (a number lost to a retry is harmless)
            pipe.multi()
            if old:
                pipe.delete(k.pairing_request(old))
                pipe.zrem(k.pairing_codes, old)
            row = {
                "account_id": request.account_id,
                "sender_id": request.sender_id,
                "sender_name": request.sender_name,
                "created_at": repr(request.created_at),
                "expires_at": repr(request.expires_at),
            }
            if request.received_by is not None:
                row["received_by"] = request.received_by
            pipe.hset(k.pairing_request(code), mapping=row)
            pipe.hset(k.pairing_by_sender, field, code)
            pipe.zadd(k.pairing_codes, {code: order})

        transact(self._r, change, k.pairing_request(code), k.pairing_by_sender)

    def get_request_by_code(self, code: str) -> PairingRequest | None:
        """See :meth:`PairingStore.get_request_by_code`."""
        code = _norm(code)
        return _request(code, self._r.hgetall(self._k.pairing_request(code)))  # type: ignore[arg-type]

    def get_request_for_sender(self, account_id: str, sender_id: str) -> PairingRequest | None:
        """See :meth:`PairingStore.get_request_for_sender`."""
        code = self._r.hget(self._k.pairing_by_sender, self._sender_field(account_id, sender_id))
        return None if code is None else self.get_request_by_code(str(code))

    def list_requests(self, account_id: str | None = None) -> list[PairingRequest]:
        """See :meth:`PairingStore.list_requests`."""
        codes: list[str] = self._r.zrange(self._k.pairing_codes, 0, -1)  # type: ignore[assignment]
        pipe = self._r.pipeline(transaction=False)
        for code in codes:
            pipe.hgetall(self._k.pairing_request(code))
        rows = [_request(c, row) for c, row in zip(codes, pipe.execute(), strict=True)]
        found = [
            r for r in rows if r is not None and (account_id is None or r.account_id == account_id)
        ]
        return sorted(found, key=lambda r: r.created_at)  # stable: ties in the order added

    def _forget(self, pipe: Pipeline, request: PairingRequest) -> None:
        k = self._k
        pipe.delete(k.pairing_request(request.code))
        pipe.zrem(k.pairing_codes, request.code)
        pipe.hdel(k.pairing_by_sender, self._sender_field(request.account_id, request.sender_id))

    def delete_request(self, code: str) -> PairingRequest | None:
        """See :meth:`PairingStore.delete_request`."""
        code = _norm(code)

        def change(pipe: Pipeline) -> PairingRequest | None:
            found = _request(code, pipe.hgetall(self._k.pairing_request(code)))  # type: ignore[arg-type]
            pipe.multi()
            if found is not None:
                self._forget(pipe, found)
            return found

        return transact(self._r, change, self._k.pairing_request(code))

    def approve_request(
        self, code: str, now: float, account_id: str | None = None
    ) -> ApprovedSender | None:
        """See :meth:`PairingStore.approve_request` (one MULTI/EXEC: all or nothing)."""
        code = _norm(code)

        def change(pipe: Pipeline) -> ApprovedSender | None:
            found = _request(code, pipe.hgetall(self._k.pairing_request(code)))  # type: ignore[arg-type]
            pipe.multi()
            if found is None or not found.is_live(now):
                return None
            if account_id is not None and found.account_id != account_id:
                return None
            approved = self._upsert_approved(pipe, found.account_id, found.sender_id, now)
            self._forget(pipe, found)
            return approved

        return transact(self._r, change, self._k.pairing_request(code))

    def _upsert_approved(
        self, client: Any, account_id: str, sender_id: str, approved_at: float
    ) -> ApprovedSender:
        client.hset(self._k.approved(account_id), sender_id, repr(approved_at))
        return ApprovedSender(account_id=account_id, sender_id=sender_id, approved_at=approved_at)

    def add_approved(self, account_id: str, sender_id: str, approved_at: float) -> ApprovedSender:
        """See :meth:`PairingStore.add_approved`."""
        return self._upsert_approved(self._r, account_id, sender_id, approved_at)

    def remove_approved(self, account_id: str, sender_id: str) -> bool:
        """See :meth:`PairingStore.remove_approved`."""
        return bool(self._r.hdel(self._k.approved(account_id), sender_id))

    def is_approved(self, account_id: str, sender_id: str) -> bool:
        """See :meth:`PairingStore.is_approved`."""
        return bool(self._r.hexists(self._k.approved(account_id), sender_id))

    def list_approved(self, account_id: str) -> list[ApprovedSender]:
        """See :meth:`PairingStore.list_approved`."""
        rows: dict[str, str] = self._r.hgetall(self._k.approved(account_id))  # type: ignore[assignment]
        found = [ApprovedSender(account_id, s, float(t)) for s, t in rows.items()]
        return sorted(found, key=lambda a: (a.approved_at, a.sender_id))

    def purge_expired(self, now: float) -> int:
        """See :meth:`PairingStore.purge_expired`."""
        dead = [r for r in self.list_requests() if not r.is_live(now)]
        return sum(self.delete_request(r.code) is not None for r in dead)
