"""The Stores port: pairing rows, conversation history, the dedupe window, the outbox,
the webhook queue, the HTTP API's idempotency keys, and when dedupe marks are durable.

Every store is keyed by channel (``"wechat"``, fixed per store instance) and account
id, so several accounts share one store without seeing each other's rows. The
in-memory and SQLite implementations pass one shared contract test suite
(``tests/unit/test_stores_contract.py``); the behaviour documented here is that
contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol, runtime_checkable

from wechat_sdk.agent import HistoryEntry
from wechat_sdk.puppet import OutboundFile

__all__ = [
    "CHANNEL",
    "DEFAULT_DEDUPE_MAX_ENTRIES",
    "DEFAULT_MAX_CONVERSATIONS",
    "ApprovedSender",
    "DedupeStore",
    "HistoryStore",
    "IdempotencyStore",
    "IdempotentRequest",
    "LeaseLost",
    "OutboxItem",
    "OutboxKind",
    "OutboxState",
    "OutboxStore",
    "PairingRequest",
    "PairingStore",
    "RemovesHistory",
    "Store",
    "WebhookDelivery",
    "WebhookQueue",
]

#: The channel every store row belongs to unless a store is built for another one.
CHANNEL = "wechat"

#: Default bound on tracked history conversations per account.
DEFAULT_MAX_CONVERSATIONS = 1000

#: Default bound on remembered message ids per account: memory's safety only (marks go by
#: age, the dedupe window's hour, and a transport may hand on every message of that hour
#: again at a start, as iLink does): an hour of 28 messages a second; about 30 MB of
#: live marks in memory at the cap (memory and SQLite stores: 160 MB more resident memory
#: in bench/bench_gateway.py rss, whose 100,000 messages come within the hour), 31 MB on a
#: Redis server.
DEFAULT_DEDUPE_MAX_ENTRIES = 100_000


class LeaseLost(RuntimeError):
    """A write (or a send) refused: this gateway no longer holds the account's lease
    (another gateway runs the account now, or the lease expired). Nothing was written.
    Raised by a store that runs accounts by lease (the Redis store: its fence)."""

    #: the reason code of the log lines and errors that say it
    reason: Final = "lease_lost"

    def __init__(self, account_id: str, what: str = "write") -> None:
        super().__init__(
            f"account {account_id}: this gateway no longer holds the account's lease "
            f"(another gateway runs it now, or the lease expired): the {what} was refused, "
            "nothing written; the account stops here reason=lease_lost"
        )
        self.account_id = account_id


@dataclass(frozen=True, slots=True)
class PairingRequest:
    """A pending pairing request: a stranger asked to talk to the bot.

    ``code`` is stored upper case. Times are seconds since the epoch of the
    gateway's clock.
    """

    code: str
    account_id: str
    sender_id: str
    sender_name: str
    created_at: float
    expires_at: float
    #: the account the stranger wrote to, the one that can answer them: another than
    #: ``account_id`` when it shares that account's pairing list (``pairingAccount``);
    #: None for a request stored before wechat-sdk recorded it
    received_by: str | None = None

    def is_live(self, now: float) -> bool:
        """True while the request has not expired at ``now``."""
        return now < self.expires_at

    @property
    def reply_account(self) -> str:
        """The account to tell the sender through (``approve --notify``): the one they
        wrote to, or, for a request that does not record it, ``account_id``."""
        return self.received_by or self.account_id


@dataclass(frozen=True, slots=True)
class ApprovedSender:
    """A sender the owner approved for DMs on one account."""

    account_id: str
    sender_id: str
    approved_at: float


class PairingStore(Protocol):
    """Pending pairing requests and approved senders, per account.

    Codes are unique among pending requests of the channel (all accounts) and are
    looked up case-insensitively. A sender has at most one pending request per
    account.
    """

    def add_request(self, request: PairingRequest) -> None:
        """Store a pending request (its code upper-cased).

        Replaces an earlier request of the same sender on the same account.
        Raises :class:`ValueError` when another pending request already has the code.
        """
        ...

    def get_request_by_code(self, code: str) -> PairingRequest | None:
        """The pending request with ``code`` (case-insensitive, surrounding spaces
        ignored), expired or not; None if there is none."""
        ...

    def get_request_for_sender(self, account_id: str, sender_id: str) -> PairingRequest | None:
        """The sender's pending request on that account, expired or not."""
        ...

    def list_requests(self, account_id: str | None = None) -> list[PairingRequest]:
        """Pending requests (expired ones included until purged), oldest first (ties in
        the order they were added); every account's when ``account_id`` is None."""
        ...

    def delete_request(self, code: str) -> PairingRequest | None:
        """Remove the pending request with ``code`` (case-insensitive); return it,
        or None if there was none."""
        ...

    def approve_request(
        self, code: str, now: float, account_id: str | None = None
    ) -> ApprovedSender | None:
        """Atomically turn the live request ``code`` into an approved sender.

        In one transaction: the request is deleted and its sender added to the
        approved senders with ``approved_at=now``. Returns None, changing nothing,
        when no request has the code, it expired at ``now``, or ``account_id`` is
        given and the request belongs to another account.
        """
        ...

    def add_approved(self, account_id: str, sender_id: str, approved_at: float) -> ApprovedSender:
        """Approve a sender directly (an existing approval gets the new time)."""
        ...

    def remove_approved(self, account_id: str, sender_id: str) -> bool:
        """Revoke an approval; True if the sender was approved."""
        ...

    def is_approved(self, account_id: str, sender_id: str) -> bool:
        """True if the sender is approved on that account."""
        ...

    def list_approved(self, account_id: str) -> list[ApprovedSender]:
        """The account's approved senders, oldest approval first."""
        ...

    def purge_expired(self, now: float) -> int:
        """Delete every request expired at ``now``; return how many were deleted."""
        ...


class HistoryStore(Protocol):
    """Recent messages per conversation, handed to the agent as context.

    ``key`` names a conversation within an account (a room id or a contact id).
    At most ``max_conversations`` conversations are tracked per account: when
    appending to a new conversation exceeds it, the conversation appended to least
    recently is forgotten. Reads do not count as use. A store should also remove given
    entries in one step: :class:`RemovesHistory`.
    """

    def append(self, account_id: str, key: str, entry: HistoryEntry, limit: int) -> None:
        """Add ``entry`` and keep at most the ``limit`` newest entries of that
        conversation (``limit <= 0`` forgets the conversation)."""
        ...

    def get(self, account_id: str, key: str) -> list[HistoryEntry]:
        """The conversation's entries, oldest first (empty if unknown)."""
        ...

    def clear(self, account_id: str, key: str) -> None:
        """Forget the conversation."""
        ...


@runtime_checkable
class RemovesHistory(Protocol):
    """A :class:`HistoryStore` that removes given entries in one step: every store of
    wechat-sdk (memory, SQLite, Redis) is one, and a store of your own should be.

    Not part of :class:`HistoryStore`, so that a history store written before it still
    serves: ``isinstance(store, RemovesHistory)`` tells which. A group's history handed to
    a turn goes with :meth:`remove` once the turn is taken; a store without it is read,
    cleared, and appended again what stays (messages noted after the turn began), and a
    failure between that clear and those appends loses them (logged,
    ``reason=history_failed``).
    """

    def remove(self, account_id: str, key: str, entries: Iterable[HistoryEntry]) -> None:
        """Remove every entry of the conversation equal to one of ``entries``, keeping the
        others in their order; atomically: a removal that fails (``entries`` included)
        changes nothing. Not a use of the conversation (as reads); one left empty is
        forgotten. Nothing happens for an unknown conversation or entry."""
        ...


class DedupeStore(Protocol):
    """Recently seen message ids per account, bounded (oldest forgotten first)."""

    def check_and_add(
        self, account_id: str, message_id: str, now: float, ttl: float, claim: str = ""
    ) -> bool:
        """True if ``message_id`` was recorded less than ``ttl`` seconds before ``now``.

        Otherwise record it as seen at ``now`` and return False. A duplicate does
        not extend its own window.

        ``claim``: who checks (one delivery of a message, across its tries; "" for
        none). A mark recorded with the same non-empty claim is not a duplicate of its
        own check: a check whose answer was lost after the store recorded its mark (a
        timeout from Redis after its script ran) gets False again when tried again, and
        the mark keeps its time. A store keeps a mark's claim as long as the mark: the
        next process tells the mark of a delivery it takes in again (journaled with its
        claim: :attr:`OutboxItem.claim`) from an earlier copy's.
        """
        ...


OutboxKind = Literal["text", "file", "turn", "message"]
OutboxState = Literal["pending", "sending", "waiting"]


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """Work a stopping gateway could not finish, kept for the next start.

    ``kind`` ``"text"``: one text message of a reply (``text``, as it goes out: formatted
    and cut by ``chunk_text``; ``mention_ids`` for the first chunk of a group reply).
    ``"file"``: one file of a reply (``file``: its name, kind, MIME type, duration, and
    its bytes, path or URL). For both, ``turn``: the id of the message the reply answers
    (None for a text that answers none, a pairing code say). ``"turn"``: a message whose
    agent had not answered yet (``turn``: the :class:`~wechat_sdk.agent.AgentTurn` as
    JSON); the agent is asked again.
    ``"message"``: a message on its way through the inbound steps (``turn``: its id; not
    in ``text``, which a gateway older than this kind would send), written before its
    dedupe mark and deleted when the steps end (it was dropped, or its turn stands for
    it): one a dead process left is taken through the steps again at the next start.
    ``dm``: the item belongs to a DM turn (what goes out joins the DM history).
    ``pairing_code``: for a text of a pairing request (the code to the stranger, the
    owner's notice of it), that request's code: it goes out only while the request is
    pending (not once it expired, or was approved or denied meanwhile).
    ``claim``: for a ``"message"`` item, the claim its delivery's dedupe check records
    with the mark (see :meth:`DedupeStore.check_and_add`): the next start tells the mark
    of this delivery (taken in again) from an earlier copy's (a duplicate); None in an
    item an earlier build kept.
    ``notice``: for a ``"text"`` item, a reply window's packing ended ``text`` with the
    notice that more follows (or it is that notice alone): it goes so only as the last
    message before the rest waits, and loses it when set to wait itself; False in an item
    an earlier build kept.
    ``id`` is given by the store (0 before it is added); items are kept in the order
    they were added. ``state`` is ``"sending"`` from just before an item is worked on
    until it is deleted: an item still ``"sending"`` at the next start may or may not have
    gone out, and is dropped rather than sent twice. ``"waiting"``: a message of a reply
    that did not fit the conversation's reply window (iLink); it goes out after the
    user's next message, not at the next start.
    """

    account_id: str
    conversation_id: str
    kind: OutboxKind
    created_at: float
    text: str | None = None
    mention_ids: tuple[str, ...] = ()
    file: OutboundFile | None = None
    turn: str | None = None
    dm: bool = False
    id: int = 0
    state: OutboxState = "pending"
    pairing_code: str | None = None
    claim: str | None = None
    notice: bool = False


class OutboxStore(Protocol):
    """Pending work kept at a stop (the outbox), per account, durable at once.

    What a stop cuts short is kept here and taken up by the next start on the same
    store. Every write is committed (durable, for a store on disk) before the call
    returns, except that a store writing its dedupe marks behind (SQLite) may write
    ``"message"`` items (added alone) and their deletes behind too, as they come and go
    with every message: such an add is durable no later than any dedupe mark recorded
    after it, and such a delete before :meth:`Store.marks_durable` returns for a
    :meth:`Store.mark_position` taken after it.
    """

    def add(self, items: Sequence[OutboxItem]) -> list[OutboxItem]:
        """Append ``items`` in their order, in one transaction; return them with their
        ``id`` (increasing in that order), each in the state it was given (``"pending"``
        unless said: a stop journals the message with the puppet as ``"sending"`` in the
        same write as the rest of its reply)."""
        ...

    def items(self, account_id: str) -> list[OutboxItem]:
        """The account's items, in the order they were added."""
        ...

    def set_state(self, item_id: int, state: OutboxState) -> None:
        """Mark an item ``"sending"`` (before it is worked on) or ``"pending"`` again."""
        ...

    def delete(self, item_id: int) -> bool:
        """Forget an item (done with it); True if it was there."""
        ...

    def replace(self, old: Sequence[OutboxItem], new: Sequence[OutboxItem]) -> list[OutboxItem]:
        """Forget ``old`` and append ``new`` (as :meth:`add` does), in one transaction: a
        reply's rows swapped for the ones its delivery planned, with no moment where
        neither is kept (a kill then lost the reply) or both are (it went out twice)."""
        ...


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One event on its way to one webhook endpoint (the queue's row).

    ``endpoint`` is the endpoint's URL; ``message_id`` the ``webhook-id`` header, the same
    on every attempt; ``body`` the JSON payload exactly as it is signed and sent.
    ``attempts`` counts the attempts that failed; ``next_attempt_at`` is when the next
    one is due (the gateway's clock). ``id`` is given by the store (0 before it is added).
    """

    endpoint: str
    message_id: str
    event_type: str
    body: str
    created_at: float
    next_attempt_at: float
    attempts: int = 0
    last_error: str | None = None
    id: int = 0


class WebhookQueue(Protocol):
    """Events waiting for their webhook endpoint, durable at once (at least once: an
    event is deleted only after its endpoint took it, or after its last retry)."""

    def add(self, deliveries: Sequence[WebhookDelivery]) -> list[WebhookDelivery]:
        """Append ``deliveries`` in one transaction, committed before the call returns;
        return them with their ``id`` (increasing in that order)."""
        ...

    def due(self, endpoint: str, now: float, limit: int = 100) -> list[WebhookDelivery]:
        """Up to ``limit`` of the endpoint's deliveries due at ``now``
        (``next_attempt_at <= now``), the earliest due first (ties in the order added)."""
        ...

    def claim_due(
        self, endpoint: str, now: float, *, hold_s: float, limit: int = 1
    ) -> list[WebhookDelivery]:
        """What :meth:`due` gives, claimed for the caller until ``now + hold_s``, atomically.

        A queue that several gateways share (Redis) does not give a claimed delivery to
        another ``claim_due`` before its claim ends, unless :meth:`retry_later` or
        :meth:`delete` changed it first: one gateway POSTs it. A claim whose holder died
        ends by itself, and the delivery is due again (nothing lost).
        :meth:`next_attempt_at` counts a claimed delivery as due when its claim ends.
        A queue that one process owns (memory, SQLite) may claim trivially (as :meth:`due`).
        """
        ...

    def next_attempt_at(self, endpoint: str) -> float | None:
        """When the endpoint's earliest delivery is due; None when none is queued."""
        ...

    def retry_later(
        self, delivery_id: int, *, attempts: int, next_attempt_at: float, last_error: str
    ) -> None:
        """Record a failed attempt: the attempts so far, when to try again, and why."""
        ...

    def delete(self, delivery_id: int) -> bool:
        """Forget a delivery (its endpoint took it, or it was given up); True if it was there."""
        ...

    def delete_endpoint(self, endpoint: str) -> int:
        """Forget every delivery queued for ``endpoint`` (it answered ``410 Gone``), in one
        step; how many there were. On a shared queue that is every gateway's, those claimed
        included: the claim's holder then finds its delivery gone (its :meth:`delete` or
        :meth:`retry_later` changes nothing)."""
        ...

    def pending(self, endpoint: str | None = None) -> list[WebhookDelivery]:
        """The deliveries queued (for one endpoint, or all), in the order added."""
        ...

    def count(self, endpoint: str) -> int:
        """How many deliveries are queued for ``endpoint`` (claimed ones included), without
        reading them."""
        ...


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """An HTTP API request made with an ``Idempotency-Key``.

    ``fingerprint`` identifies the request the key was first used with (a hash of its
    method, path and body). ``status`` and ``response`` (its JSON body) are None while the
    request is being carried out.
    """

    key: str
    fingerprint: str
    created_at: float
    status: int | None = None
    response: str | None = None


class IdempotencyStore(Protocol):
    """Idempotency keys of the HTTP API, durable at once: a retried request is carried
    out once, and its answer given again."""

    def claim(self, key: str, fingerprint: str, now: float) -> IdempotentRequest | None:
        """Record ``key`` as in progress and return None, atomically; when the key is
        known, change nothing and return its record (in progress or finished)."""
        ...

    def finish(self, key: str, status: int, response: str) -> None:
        """Record the answer of the request made with ``key``."""
        ...

    def release(self, key: str) -> None:
        """Forget ``key`` (the request did nothing: a retry may carry it out)."""
        ...

    def purge(self, before: float) -> int:
        """Forget the keys first used before ``before``; return how many."""
        ...


@runtime_checkable
class Store(Protocol):
    """The bundle the gateway is given: one of each store, closed together.

    Durability is the store's: before anything goes out in answer to a message, the
    gateway awaits :meth:`marks_durable` with the :meth:`mark_position` taken when that
    message was checked, so a message is never answered twice after a crash. A store
    that writes at once (or keeps nothing across a restart, as the memory store) has
    nothing to wait for.

    Example (a store of your own, built around the in-memory one)::

        class MyStore:
            def __init__(self) -> None:
                inner = MemoryStore()
                self.pairing, self.history = inner.pairing, inner.history
                self.dedupe, self.outbox = inner.dedupe, inner.outbox
                self.webhooks, self.idempotency = inner.webhooks, inner.idempotency

            def mark_position(self) -> int:
                return 0

            async def marks_durable(self, upto: int | None) -> None:
                pass

            def close(self) -> None:
                pass
    """

    @property
    def pairing(self) -> PairingStore:
        """Pending pairing requests and approved senders."""
        ...

    @property
    def history(self) -> HistoryStore:
        """Conversation history."""
        ...

    @property
    def dedupe(self) -> DedupeStore:
        """The dedupe window."""
        ...

    @property
    def outbox(self) -> OutboxStore:
        """Work a stop cut short, kept for the next start."""
        ...

    @property
    def webhooks(self) -> WebhookQueue:
        """Events waiting for their webhook endpoints."""
        ...

    @property
    def idempotency(self) -> IdempotencyStore:
        """The HTTP API's idempotency keys."""
        ...

    def mark_position(self) -> int:
        """A position covering every dedupe mark recorded so far (by
        :meth:`DedupeStore.check_and_add`), and every ``"message"`` item deleted so far
        (see :class:`OutboxStore`); it never decreases."""
        ...

    async def marks_durable(self, upto: int | None) -> None:
        """Return once every dedupe mark up to the position ``upto`` (None: every mark
        recorded so far) is durable: it survives a crash or a power loss. Raises when
        they could not be made so (the disk failed); a later call tries again."""
        ...

    def close(self) -> None:
        """Release resources (idempotent)."""
        ...
