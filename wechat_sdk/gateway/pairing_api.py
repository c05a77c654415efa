"""``gateway.pairing``: the pairing requests of a running gateway, for the owner."""

from __future__ import annotations

import builtins
import logging
from typing import TYPE_CHECKING, Final

from wechat_sdk.agent import Reply
from wechat_sdk.config.accounts import asked_account_id
from wechat_sdk.outbound.delivery import DeliveryFailed
from wechat_sdk.pairing.service import Pairing, PairingError, approved_message
from wechat_sdk.puppet import WindowClosed
from wechat_sdk.stores.base import ApprovedSender, PairingRequest

log = logging.getLogger("wechat_sdk.pairing")

if TYPE_CHECKING:
    from wechat_sdk.gateway.gateway import Gateway

__all__ = ["NOT_TOLD", "PairingAPI"]

#: what :meth:`PairingAPI.notify_approved` raises when the sender could not be told (the
#: send failed, logged by the delivery; or, on iLink, the server refused its first message
#: as its reply window closed): the approval stands all the same
NOT_TOLD: Final = (DeliveryFailed, WindowClosed)


class PairingAPI:
    """Pairing requests of a running gateway: list, approve, deny, revoke.

    Changes reach the running gateway at once (the next message is checked against the
    store). ``approve(..., notify=True)`` tells the sender they were approved, through the
    account they wrote to (with ``pairingAccount``, not always the one whose list keeps
    the request), when it runs. An ``account`` is taken as the CLI takes ``--account``
    (``" Work "`` is ``work``).
    """

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def _service(self) -> Pairing:
        return self._gateway._pairing_service()

    def list(self, account: str | None = None) -> list[PairingRequest]:
        return self._service().list(account)

    async def approve(
        self, code: str, *, account: str | None = None, notify: bool = False
    ) -> ApprovedSender:
        approved, tell_through = self.approve_quietly(code, account=account)
        if notify:
            try:
                await self.notify_approved(tell_through, approved.sender_id)
            except (PairingError, *NOT_TOLD) as exc:  # (approved all the same: said)
                log.warning("approved %s; not notified: %s", approved.sender_id, exc)
        return approved

    def approve_quietly(
        self, code: str, *, account: str | None = None
    ) -> tuple[ApprovedSender, str]:
        """Approve (its ``pairing.approved`` event goes out) without telling the sender:
        the approval, and the account to tell them through (the one they wrote to; the
        approval's own for a request stored before wechat-sdk recorded it)."""
        request, approved = self._service().approve_request(code, account)
        self._gateway.events.pairing_approved(
            approved.account_id, code=code.strip().upper(), sender_id=approved.sender_id
        )
        return approved, request.reply_account

    async def notify_approved(self, account: str, sender_id: str) -> None:
        """Tell an approved sender they were approved, through ``account``: the one they
        wrote to. A :class:`PairingError` when it is not running (only it can tell them),
        one of :data:`NOT_TOLD` when the send failed."""
        try:
            runner = self._gateway._runner(account)
        except KeyError:
            running = ", ".join(self._gateway.runners) or "none"
            raise PairingError(
                f"account {asked_account_id(account)!r}, the one {sender_id} wrote to, is not "
                f"running (running: {running}): only it can tell them; they are approved "
                "all the same"
            ) from None
        # a proactive send: its caller waits, so it never waits for a next login
        await runner.outbound.deliver(
            sender_id,
            Reply(text=approved_message(runner.account.display_name)),
            wait_for_login=False,
        )

    def deny(self, code: str, *, account: str | None = None) -> PairingRequest:
        return self._service().deny(code, account)

    def revoke(self, account: str, sender_id: str) -> bool:
        return self._service().revoke(account, sender_id)

    def approved(self, account: str) -> builtins.list[ApprovedSender]:
        return self._service().approved(account)
