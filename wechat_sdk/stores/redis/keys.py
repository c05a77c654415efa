"""Every Redis key the gateway writes, in one place (docs/cluster.md lists them).

All keys start with ``<namespace>:<channel>:`` (``wechat-sdk:wechat:`` unless told
otherwise), so one Redis server can hold other programs' data, and several channels or
clusters side by side. An id inside a key (an account, a conversation, an endpoint) has
``%`` and ``:`` escaped as ``%25`` and ``%3A``: no two ids give the same key.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_NAMESPACE", "Keys", "escape"]

#: the first part of every key
DEFAULT_NAMESPACE: Final = "wechat-sdk"


def escape(part: str) -> str:
    """``part`` made safe between two ``:`` of a key."""
    return part.replace("%", "%25").replace(":", "%3A")


class Keys:
    """The key names of one channel in one namespace."""

    def __init__(self, channel: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.prefix = f"{escape(namespace)}:{escape(channel)}:"

    # pairing
    def pairing_request(self, code: str) -> str:
        """hash: one pending request (its code upper case)"""
        return f"{self.prefix}pairing:request:{escape(code)}"

    @property
    def pairing_codes(self) -> str:
        """zset: every pending code, scored in the order added"""
        return f"{self.prefix}pairing:codes"

    @property
    def pairing_by_sender(self) -> str:
        """hash: account and sender (JSON) -> their pending code"""
        return f"{self.prefix}pairing:by-sender"

    def approved(self, account_id: str) -> str:
        """hash: sender -> when approved"""
        return f"{self.prefix}pairing:approved:{escape(account_id)}"

    @property
    def sequence(self) -> str:
        """string: the counter giving ids and orders (outbox ids, webhook ids, ...)"""
        return f"{self.prefix}seq"

    # history
    def history(self, account_id: str, key: str) -> str:
        """list: one conversation's entries (JSON), oldest first"""
        return f"{self.prefix}history:{escape(account_id)}:{escape(key)}"

    def history_conversations(self, account_id: str) -> str:
        """zset: the account's conversations, scored by last append"""
        return f"{self.prefix}history-conversations:{escape(account_id)}"

    # dedupe
    def dedupe_seen(self, account_id: str) -> str:
        """hash: message id -> when first seen"""
        return f"{self.prefix}dedupe:{escape(account_id)}:seen"

    def dedupe_order(self, account_id: str) -> str:
        """zset: message ids, scored in the order recorded"""
        return f"{self.prefix}dedupe:{escape(account_id)}:order"

    def dedupe_claims(self, account_id: str) -> str:
        """hash: message id -> the claim of the check that recorded it (see
        :meth:`~wechat_sdk.stores.base.DedupeStore.check_and_add`)"""
        return f"{self.prefix}dedupe:{escape(account_id)}:claims"

    # outbox
    @property
    def outbox_items(self) -> str:
        """hash: item id -> the item (JSON; its state as added)"""
        return f"{self.prefix}outbox:items"

    @property
    def outbox_states(self) -> str:
        """hash: item id -> its state (pending, sending, waiting)"""
        return f"{self.prefix}outbox:states"

    def outbox_account(self, account_id: str) -> str:
        """zset: the account's item ids, scored by id"""
        return f"{self.prefix}outbox:account:{escape(account_id)}"

    # webhooks
    @property
    def webhook_rows(self) -> str:
        """hash: delivery id -> the delivery (JSON)"""
        return f"{self.prefix}webhooks:rows"

    def webhook_due(self, endpoint: str) -> str:
        """zset: the endpoint's delivery ids, scored by when due"""
        return f"{self.prefix}webhooks:due:{escape(endpoint)}"

    def serving_since(self, account_id: str) -> str:
        """string: when a gateway first served the account (its first login)"""
        return f"{self.prefix}serving-since:{escape(account_id)}"

    # the HTTP API
    @property
    def idempotency(self) -> str:
        """hash: Idempotency-Key -> the request's record (JSON)"""
        return f"{self.prefix}idempotency"

    @property
    def idempotency_since(self) -> str:
        """zset: the Idempotency-Keys, scored by when first used (what a purge reads)"""
        return f"{self.prefix}idempotency:since"
