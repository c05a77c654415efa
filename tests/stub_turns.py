"""A :class:`~wechat_sdk.gateway.turns.Turns` over stubs (no account, no puppet, an agent
that answers nothing), for the unit tests of one of its steps."""

from __future__ import annotations

import logging
from typing import Any

from wechat_sdk.agent import AgentTurn
from wechat_sdk.clock import VirtualClock
from wechat_sdk.gateway.turns import Turns


def stub_turns(*, history: Any = Any, cut: Any = Any, journal_every_turn: bool = False) -> Turns:
    """Turns with ``history`` (a HistoryBook) and ``cut`` (its kept work) as given."""

    async def durable(upto: int | None) -> None: ...

    async def agent(turn: AgentTurn) -> None: ...

    return Turns(
        account=Any,  # type: ignore[arg-type]
        agent=agent,
        outbound=Any,  # type: ignore[arg-type]
        history=history,
        clock=VirtualClock(),
        self_id=lambda: "bot",
        marks_durable=durable,
        on_error=lambda error: None,
        cut=cut,
        log=logging.LoggerAdapter(logging.getLogger("test.turns")),
        journal_every_turn=journal_every_turn,
    )
