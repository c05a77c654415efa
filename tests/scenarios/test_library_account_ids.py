"""An error a program gets about the accounts it named says what it passed, not a CLI
option."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator import SimulatedWeChat
from wechat_sdk import AgentTurn
from wechat_sdk.gateway.gateway import UnknownAccounts

CONFIG = """{channels: {wechat: {
    dmPolicy: "pairing", pacing: false, accounts: {default: {}, Work: {}},
}}}"""


async def agent(turn: AgentTurn) -> str:
    return f"{turn.account_id}: {turn.text}"


def test_only_accounts_naming_no_account_names_only_accounts(tmp_path: Path) -> None:
    # it said "--accounts names nope", an option a program calling Gateway never passed
    world = SimulatedWeChat(seed=1)
    with pytest.raises(UnknownAccounts) as error:
        world.gateway(CONFIG, agent, state_dir=tmp_path, only_accounts=["work", "nope"])
    assert str(error.value) == (
        "only_accounts names nope, not an account of the config (its accounts: default, work)"
    )
    assert error.value.unknown == ["nope"]
    assert error.value.configured == ["default", "work"]
