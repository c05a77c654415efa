"""``gateway.pairing``: the pairing requests of a running gateway, for the owner."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from wechat_sdk.agent import Reply
from wechat_sdk.pairing.service import Pairing, approved_message
from wechat_sdk.stores.base import ApprovedSender, PairingRequest

if TYPE_CHECKING:
    from wechat_sdk.gateway.gateway import Gateway

__all__ = ["PairingAPI"]


class PairingAPI:
    """Pairing requests of a running gateway: list, approve, deny, revoke.

    Changes reach the running gateway at once (the next message is checked against the
    store). ``approve(..., notify=True)`` tells the sender they were approved. An
    ``account`` is taken as the CLI takes ``--account`` (``" Work "`` is ``work``).
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
        approved = self._service().approve(code, account)
        self._gateway.events.pairing_approved(
            approved.account_id, code=code.strip().upper(), sender_id=approved.sender_id
        )
        if notify and approved.account_id in self._gateway.runners:
            await self.notify_approved(approved.account_id, approved.sender_id)
        return approved

    async def notify_approved(self, account: str, sender_id: str) -> None:
        """Tell an approved sender they were approved, through that (running) account."""
        runner = self._gateway._runner(account)
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
