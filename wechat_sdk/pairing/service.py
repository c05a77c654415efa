"""Pairing: strangers get a code, the owner approves it. Pure logic over a PairingStore.

The rules (see ``docs/pairing.md``): codes are 8 characters, unique among pending
ones, matched case-insensitively; a request lives 1 hour; at most 3 live requests
per account, and strangers beyond that get no reply and evict nobody; a sender with
a live request keeps its code and gets no second reply.
"""

from __future__ import annotations

import builtins
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from wechat_sdk.clock import Clock
from wechat_sdk.config.accounts import asked_account_id
from wechat_sdk.config.allow_from import WILDCARD, normalize_allow_entry
from wechat_sdk.pairing.codes import new_code, normalize_code
from wechat_sdk.peer_names import one_line_name
from wechat_sdk.stores.base import ApprovedSender, PairingRequest, PairingStore

__all__ = [
    "DEFAULT_MAX_PENDING",
    "DEFAULT_TTL_S",
    "Challenge",
    "NoPendingRequest",
    "Pairing",
    "PairingError",
    "approve_command",
    "approved_message",
    "owner_notice",
    "pairing_message",
]

#: Live pending requests allowed per account.
DEFAULT_MAX_PENDING = 3

#: Seconds a pending request lives.
DEFAULT_TTL_S = 3600.0

_CLI = "wechat-sdk pairing"


class PairingError(Exception):
    """A pairing command could not be carried out; the message says what to do."""


class NoPendingRequest(PairingError):
    """No request has that code in this store (never made here, or purged once expired):
    the CLI then says which store it looked in, as it may be another gateway's."""


@dataclass(frozen=True, slots=True)
class Challenge:
    """What :meth:`Pairing.challenge` decided for a sender who is not allowed yet.

    - ``"new"``: a request was created; send :func:`pairing_message` once.
    - ``"pending"``: the sender already has a live request (``request``); send nothing.
    - ``"capped"``: the account has too many live requests; send nothing, log it.
      ``request`` is None.
    """

    outcome: Literal["new", "pending", "capped"]
    request: PairingRequest | None


def _duration(seconds: float) -> str:
    s = round(seconds)
    for unit, size in (("day", 86_400), ("hour", 3600), ("minute", 60)):
        if s >= size and s % size == 0:
            n = s // size
            return f"{n} {unit}" if n == 1 else f"{n} {unit}s"
    return f"{s} second" if s == 1 else f"{s} seconds"


def _account_flag(account_id: str | None, default_account_id: str | None = None) -> str:
    if account_id is None or account_id == default_account_id:
        return ""
    return f" --account {account_id}"


def approve_command(code: str, account_id: str, default_account_id: str) -> str:
    """The exact owner command approving ``code`` (``--account`` only when not the default)."""
    return f"{_CLI} approve {code}{_account_flag(account_id, default_account_id)}"


def pairing_message(
    bot_name: str,
    sender_id: str,
    code: str,
    account_id: str,
    default_account_id: str,
    *,
    ttl_s: float = DEFAULT_TTL_S,
) -> str:
    """The one reply a stranger gets: what the bot is, their WeChat id, the code, and
    the command the owner runs to let them in."""
    return (
        f"Hi! This is {bot_name}, an AI assistant on WeChat. "
        "It only answers people its owner has approved.\n"
        "\n"
        f"Your WeChat id: {sender_id}\n"
        f"Pairing code: {code}\n"
        "\n"
        "Send this code to the owner. To let you in, they run:\n"
        f"{approve_command(code, account_id, default_account_id)}\n"
        "\n"
        f"The code expires in {_duration(ttl_s)}."
    )


def owner_notice(
    request: PairingRequest, default_account_id: str, *, ttl_s: float = DEFAULT_TTL_S
) -> str:
    """The note for the owner contact (``pairingNotify``) about a new request."""
    flag = _account_flag(request.account_id, default_account_id)
    where = f" (account {request.account_id})" if flag else ""
    return (
        f"New WeChat pairing request{where}: {request.sender_name} ({request.sender_id}) "
        "wants to talk to the bot.\n"
        f"Code: {request.code} (expires in {_duration(ttl_s)})\n"
        f"Approve: {approve_command(request.code, request.account_id, default_account_id)}\n"
        f"Deny: {_CLI} deny {request.code}{flag}"
    )


def approved_message(bot_name: str) -> str:
    """The message sent to a sender approved with ``--notify``."""
    return f"You're approved: {bot_name} will answer your messages from now on."


class Pairing:
    """Pairing decisions and owner commands over a :class:`PairingStore`.

    ``clock`` gives the time of every decision (the virtual clock in tests). The owner
    commands (list, approve, deny, revoke, approved) take an account id as the CLI and the
    HTTP API do (:func:`~wechat_sdk.config.asked_account_id`: ``" Work "`` is ``work``; one
    that can be no account's id is a ValueError). ``lists`` maps an account to the one
    whose pairing list it shares (``pairingAccount``): an owner command naming the account
    works on that list, the one its strangers' codes and approvals are kept in.
    """

    def __init__(
        self,
        store: PairingStore,
        clock: Clock,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        ttl_s: float = DEFAULT_TTL_S,
        code_rng: random.Random | None = None,
        lists: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self._lists = dict(lists or {})
        self.clock = clock
        self.max_pending = max_pending
        self.ttl_s = ttl_s
        self._code_rng = code_rng

    def is_approved(self, account_id: str, sender_id: str) -> bool:
        """True if the owner approved this sender on this account."""
        return self.store.is_approved(account_id, sender_id)

    def is_pending(self, code: str) -> bool:
        """True while the request with ``code`` waits for the owner: not expired, nor
        approved or denied (a code kept by a stop is sent only then)."""
        request = self.store.get_request_by_code(normalize_code(code))
        return request is not None and request.is_live(self.clock.now())

    def challenge(
        self,
        account_id: str,
        sender_id: str,
        sender_name: str,
        *,
        received_by: str | None = None,
    ) -> Challenge:
        """Decide what to do about a DM from a sender who is not allowed.

        ``account_id`` is the pairing list's account; ``received_by`` the account the
        sender wrote to, when another (it shares that list): a new request records it, as
        the account to tell the sender through. Expired requests are purged first. Does
        not check approval: call it only for senders that are neither in ``allowFrom``
        nor approved.
        """
        now = self.clock.now()
        self.store.purge_expired(now)
        existing = self.store.get_request_for_sender(account_id, sender_id)
        if existing is not None and existing.is_live(now):
            return Challenge("pending", existing)
        live = [r for r in self.store.list_requests(account_id) if r.is_live(now)]
        if len(live) >= self.max_pending:
            return Challenge("capped", None)
        taken = {r.code for r in self.store.list_requests(None)}
        for _ in range(10):
            request = PairingRequest(
                code=new_code(taken, self._code_rng),
                account_id=account_id,
                sender_id=sender_id,
                sender_name=one_line_name(sender_name, sender_id),
                created_at=now,
                expires_at=now + self.ttl_s,
                received_by=received_by or account_id,
            )
            try:
                self.store.add_request(request)
            except ValueError:  # another process took the code meanwhile
                taken.add(request.code)
                continue
            return Challenge("new", request)
        raise PairingError("could not store a new pairing request")  # pragma: no cover

    def list(self, account_id: str | None = None) -> builtins.list[PairingRequest]:
        """Live pending requests, oldest first (every account's when ``account_id`` is None)."""
        now = self.clock.now()
        asked = self._lists_of(account_id)
        return [r for r in self.store.list_requests(asked) if r.is_live(now)]

    def _live_request(self, code: str, account_id: str | None) -> PairingRequest:
        norm = normalize_code(code)
        req = self.store.get_request_by_code(norm)
        list_cmd = f"{_CLI} list{_account_flag(account_id)}"
        ttl = _duration(self.ttl_s)
        if req is None:
            raise NoPendingRequest(
                f'no pending pairing request with code "{norm}" '
                f"(codes expire after {ttl}; list them with: {list_cmd})"
            )
        if not req.is_live(self.clock.now()):
            raise PairingError(
                f'pairing request "{norm}" from {req.sender_name} ({req.sender_id}) has '
                f"expired (codes expire after {ttl}); the sender gets a new code by writing "
                f"to the bot again; list pending codes with: {list_cmd}"
            )
        if account_id is not None and req.account_id != account_id:
            raise PairingError(
                f'pairing code "{norm}" belongs to account "{req.account_id}", not '
                f'"{account_id}" (use --account {req.account_id}, or list them with: '
                f"{list_cmd})"
            )
        return req

    def approve(self, code: str, account_id: str | None = None) -> ApprovedSender:
        """Approve the sender of a live request (atomically removing the request).

        Raises :class:`PairingError` for an unknown or expired code, or one of another
        account when ``account_id`` is given.
        """
        return self.approve_request(code, account_id)[1]

    def approve_request(
        self, code: str, account_id: str | None = None
    ) -> tuple[PairingRequest, ApprovedSender]:
        """:meth:`approve`, with the request it approved (its
        :attr:`~wechat_sdk.stores.base.PairingRequest.reply_account` tells the sender)."""
        account_id = self._lists_of(account_id)
        req = self._live_request(code, account_id)
        approved = self.store.approve_request(req.code, self.clock.now(), req.account_id)
        if approved is None:  # expired or handled by another process meanwhile
            self._live_request(code, account_id)
            raise PairingError(f'pairing request "{req.code}" was just handled elsewhere')
        return req, approved

    def deny(self, code: str, account_id: str | None = None) -> PairingRequest:
        """Delete a live request; the sender stays unapproved. Errors as :meth:`approve`."""
        req = self._live_request(code, self._lists_of(account_id))
        deleted = self.store.delete_request(req.code)
        if deleted is None:
            raise PairingError(f'pairing request "{req.code}" was just handled elsewhere')
        return deleted

    def revoke(self, account_id: str, sender_id: str) -> bool:
        """Withdraw an approval; True if the sender was approved.

        ``sender_id`` is taken as an ``allowFrom`` entry is (``" wechat:wxid_kim"`` is
        ``wxid_kim``); an empty one or ``"*"`` is a :class:`PairingError`.
        """
        sender = normalize_allow_entry(sender_id)
        if sender in ("", WILDCARD):
            raise PairingError(
                f"expected one sender's WeChat id (as in allowFrom), got {sender_id!r}"
            )
        return self.store.remove_approved(self._list_of(account_id), sender)

    def approved(self, account_id: str) -> builtins.list[ApprovedSender]:
        """The account's approved senders, oldest approval first."""
        return self.store.list_approved(self._list_of(account_id))

    def _list_of(self, account_id: str) -> str:
        """The pairing list an owner's account id names: the one the account shares, or
        its own."""
        asked = asked_account_id(account_id)
        return self._lists.get(asked, asked)

    def _lists_of(self, account_id: str | None) -> str | None:
        """As :meth:`_list_of`; None (every account, or the code's own) stays None."""
        return None if account_id is None else self._list_of(account_id)
