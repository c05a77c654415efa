"""One account's life, in three rooms: the connection (puppet, events, reconnects), the turns
(agent -> outbound -> history) and the kept work (the outbox of what a stop cut short).

A stop lets the turns in flight finish for a grace period; a turn still running after
that is cut, and what is left of it goes to the store's outbox. The next start sends the
kept messages once the account is ready, before anything new goes to their conversation,
and then asks the agent again about the kept turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from wechat_sdk.agent import Agent, ToolRegistry
from wechat_sdk.clock import Clock
from wechat_sdk.config.accounts import ResolvedAccount
from wechat_sdk.events import GatewayEvents
from wechat_sdk.gateway.connection import Connection
from wechat_sdk.gateway.kept import KeptWork
from wechat_sdk.gateway.status import AccountStatus
from wechat_sdk.gateway.turns import Turns
from wechat_sdk.inbound.history import HistoryBook
from wechat_sdk.inbound.pipeline import InboundPipeline
from wechat_sdk.outbound.pipeline import Outbound
from wechat_sdk.puppet import Puppet
from wechat_sdk.stores.base import OutboxStore

__all__ = ["ACCOUNT_OF_TASK", "AccountRunner", "as_no_account"]

T = TypeVar("T")

#: the account whose work the running task does (its tasks, and the tasks they start): a
#: log line of the gateway that names no account of its own is shown with it
ACCOUNT_OF_TASK: contextvars.ContextVar[str] = contextvars.ContextVar(
    "wechat_sdk_account_of_task", default="-"
)


async def as_no_account(work: Coroutine[Any, Any, T]) -> T:
    """Await ``work`` in a task of a context of its own, no account's: what it leaves
    running (a server's listener, the connections it accepts and their tasks) logs with
    account ``-``, whichever task called it (an account's task that restarts the gateway).
    A request about one account says so itself (:meth:`Gateway.send`)."""
    return await asyncio.get_running_loop().create_task(work, context=contextvars.Context())


class AccountRunner:
    """Runs one enabled account until stopped."""

    def __init__(
        self,
        *,
        account: ResolvedAccount,
        puppet: Puppet,
        agent: Agent,
        clock: Clock,
        inbound: InboundPipeline,
        outbound: Outbound,
        history: HistoryBook,
        tools: ToolRegistry,
        outbox: OutboxStore,
        status: AccountStatus,
        mark_position: Callable[[], int],
        marks_durable: Callable[[int | None], Awaitable[None]],
        logged_in: asyncio.Event,
        state_dir: Path | None,
        rng: random.Random,
        show_terminal_qr: bool = True,
        events: GatewayEvents | None = None,
        journal_every_turn: bool = False,
        lease_lost: Callable[[], bool] = lambda: False,
        on_turn_failed: Callable[[BaseException], None] = lambda exc: None,
    ) -> None:
        self.account = account
        self.puppet = puppet
        self.inbound = inbound
        self.outbound = outbound
        self.status = status
        log = logging.LoggerAdapter(
            logging.getLogger("wechat_sdk.gateway"), {"account": account.id}
        )
        self.kept = KeptWork(
            account_id=account.id,
            outbox=outbox,
            outbound=outbound,
            history=history,
            tools=tools,
            recheck=inbound.recheck,
            pairing_pending=inbound.pairing.is_pending,
            clock=clock,
            log=log,
            lease_lost=lease_lost,
        )
        self.turns = Turns(
            account=account,
            agent=agent,
            outbound=outbound,
            history=history,
            clock=clock,
            self_id=lambda: puppet.self_id,
            marks_durable=marks_durable,
            on_error=self.record_error,
            cut=self.kept,
            log=log,
            events=events,
            journal_every_turn=journal_every_turn,
            on_turn_failed=on_turn_failed,
        )
        self.connection = Connection(
            account=account,
            puppet=puppet,
            clock=clock,
            inbound=inbound,
            echoes=inbound.echoes,
            turns=self.turns,
            kept=self.kept,
            mark_position=mark_position,
            logged_in=logged_in,
            status=status,
            rng=rng,
            state_dir=state_dir,
            show_terminal_qr=show_terminal_qr,
            log=log,
            events=events,
        )
        self._task: asyncio.Task[None] | None = None

    def record_error(self, error: str) -> None:
        """The account's last error, as status shows it (recorded when it happens, so an
        older one never overwrites a newer one)."""
        self.status.last_error = error

    # ------------------------------------------------------------ control

    def start(self) -> None:
        self.connection.stopping = False
        self.connection.ready = asyncio.Event()
        context = contextvars.copy_context()  # (the account's tasks start in it)
        context.run(ACCOUNT_OF_TASK.set, self.account.id)
        # before any new message
        context.run(self.kept.take_up, self.turns, self.connection.ready)
        self._task = asyncio.get_running_loop().create_task(
            self.connection.run(), name=f"account:{self.account.id}", context=context
        )

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop receiving; let in-flight replies finish for up to ``grace_s`` (clock time).

        A turn still running after that is cut short. What was sent is kept in DM
        history, and the message is not answered from scratch after a restart (it is in
        the dedupe store). What is left goes to the store's outbox: the messages of the
        reply not sent yet (a send the puppet already had is let finish), or the turn
        itself when the agent had not answered yet.
        """
        self.connection.stopping = True
        self.connection.stop_taking_in()  # (what they were for stays journaled)
        self.kept.cancel_waiting()  # kept work still waiting for the login: not started
        await self.turns.settle(grace_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self.puppet.stop()
        close = getattr(self.puppet, "close", None)  # adapters holding a process or socket
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
        if self.status.lifecycle != "failed":
            self.connection.set_lifecycle("stopped")

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    def refresh_status(self) -> AccountStatus:
        s = self.status
        stats = self.outbound.sender.stats
        s.queue_depth = self.outbound.queue_depth
        s.sent = stats.sent
        s.send_failures = stats.failed
        s.last_outbound = stats.last_outbound
        s.pending_pairing = len(self.inbound.pairing.list(self.account.pairing_id))
        s.drops = dict(self.inbound.drops)
        pacing = self.account.settings.pacing
        s.pacing = (
            "off"
            if pacing is False
            else f"{pacing.perSecond:g}/s, burst {pacing.burst}, gap {pacing.chunkGapMs} ms"
        )
        return s

    async def wait_idle(self) -> None:
        await self.turns.wait_idle()
