"""Messages waiting for the user's next message: what a reply window (iLink) did not take.

A reply that does not fit its conversation's window (:mod:`wechat_sdk.outbound.window`)
sends what fits now; the rest is kept here, in the store's outbox with state
``"waiting"`` (durable at once, through restarts), and goes out, in order, when the user
writes again, before the answer to that new message. Reply windows exist on direct chats
only (iLink has no groups), so what goes out later joins the DM history.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from wechat_sdk.clock import Clock
from wechat_sdk.outbound.message import OutboundMessage
from wechat_sdk.stores.base import OutboxItem, OutboxStore

__all__ = ["WaitingForUser"]


class WaitingForUser:
    """One account's messages that wait for a user to write again."""

    def __init__(
        self,
        outbox: OutboxStore,
        account_id: str,
        clock: Clock,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self.outbox = outbox
        self.account_id = account_id
        self.clock = clock
        self.log = log
        #: conversations with messages waiting (read from the store on first use)
        self._conversations: set[str] | None = None

    def keep(
        self,
        conversation_id: str,
        messages: Sequence[OutboundMessage],
        *,
        answers: str | None = None,
        pairing_code: str | None = None,
    ) -> list[OutboxItem]:
        """Keep ``messages`` (in order) until the user writes again, and return their rows;
        raises the store's error when it refused them (none is kept). ``answers``: the id
        of the message they answer (a kept turn of it is answered: see the gateway's kept
        work); None for a send of the bot's own (``gateway.send``, the HTTP API, a pairing
        code), which is no DM history. ``pairing_code``: for a text of a pairing request,
        its code (it goes only while the request is pending)."""
        if not messages:
            return []
        items = self.rows(conversation_id, messages, answers=answers, pairing_code=pairing_code)
        added = self.outbox.add(items)
        self.kept(conversation_id, len(items))
        return added

    def rows(
        self,
        conversation_id: str,
        messages: Sequence[OutboundMessage],
        *,
        answers: str | None = None,
        pairing_code: str | None = None,
    ) -> list[OutboxItem]:
        """The outbox rows that keep ``messages`` for the user's next message (for a
        caller that writes them with others, in one step: then :meth:`kept`)."""
        now = self.clock.now()
        return [
            OutboxItem(
                account_id=self.account_id,
                conversation_id=conversation_id,
                kind="file" if m.file is not None else "text",
                created_at=now,
                text=m.text,
                mention_ids=m.mention_ids,
                file=m.file,
                dm=answers is not None,  # (a reply's: it joins the DM history as it goes)
                state="waiting",
                turn=answers,
                pairing_code=pairing_code,
                notice=m.notice,
            )
            for m in messages
        ]

    def kept(self, conversation_id: str, count: int) -> None:
        """``count`` messages to the conversation were written to wait (see :meth:`rows`)."""
        self._known().add(conversation_id)
        self.log.info(
            "reply window full: %d message(s) to %s wait for the user's next message "
            "reason=window_full",
            count,
            conversation_id,
        )

    def has(self, conversation_id: str) -> bool:
        """Whether messages to this conversation are waiting (no store read after the
        first call)."""
        return conversation_id in self._known()

    def items(self, conversation_id: str) -> list[OutboxItem]:
        """The conversation's waiting messages, in order."""
        found = [
            i
            for i in self.outbox.items(self.account_id)
            if i.state == "waiting" and i.conversation_id == conversation_id
        ]
        if not found:
            self._known().discard(conversation_id)
        return found

    def _known(self) -> set[str]:
        if self._conversations is None:
            try:
                items = self.outbox.items(self.account_id)
            except Exception as exc:
                self.log.error("could not read the store's outbox: %s", exc)
                return set()
            self._conversations = {i.conversation_id for i in items if i.state == "waiting"}
        return self._conversations
