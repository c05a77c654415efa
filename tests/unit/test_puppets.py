"""Puppets by name: built-ins, entry points (the simulator is one) and register_puppet."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from simulator import SimulatedWeChat
from simulator.world import SimulatedPuppet
from wechat_sdk import puppets
from wechat_sdk.agents import echo
from wechat_sdk.clock import VirtualClock
from wechat_sdk.config import ConfigError, ResolvedAccount, accounts_of, parse_config
from wechat_sdk.gateway import Gateway
from wechat_sdk.gateway.service import check_puppets
from wechat_sdk.puppet import Puppet
from wechat_sdk.puppets import PuppetContext, check_puppet, register_puppet


@pytest.fixture(autouse=True)
def own_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Registrations made by a test end with it."""
    monkeypatch.setattr(puppets, "_registry", dict(puppets._registry))
    yield


def accounts(wechat: dict[str, Any]) -> list[ResolvedAccount]:
    return accounts_of(parse_config(json.dumps({"channels": {"wechat": wechat}}))).enabled


def test_a_name_that_is_no_puppet_is_a_config_error_on_the_puppet_key() -> None:
    [account] = accounts({"puppet": "Not A Puppet!"})
    with pytest.raises(ConfigError, match=r"^channels\.wechat\.puppet: .*not a puppet"):
        check_puppet(account)


def test_a_registered_puppet_serves_every_account_of_a_gateway_with_one_shared_dict(
    tmp_path: Path,
) -> None:
    world = SimulatedWeChat(seed=0)
    contexts: list[PuppetContext] = []

    def make(account: ResolvedAccount, context: PuppetContext) -> Puppet:
        contexts.append(context)
        context.shared.setdefault("made", []).append(account.id)
        return world.puppet_factory(account)

    register_puppet("mine", make)
    config = parse_config(
        '{ channels: { wechat: { puppet: "mine", accounts: { a: {}, b: {} } } } }'
    )
    clock = VirtualClock()
    first = Gateway(config, agent=echo, state_dir=tmp_path, clock=clock)
    second = Gateway(config, agent=echo, state_dir=tmp_path / "other", clock=clock)
    for account in first.accounts.enabled:
        assert isinstance(first.puppet_factory(account), SimulatedPuppet)
    second.puppet_factory(second.accounts["a"])

    a, b, other = contexts
    assert (a.clock, a.state_dir) == (clock, tmp_path)
    assert a.shared is b.shared and a.shared["made"] == ["a", "b"]
    assert other.shared is not a.shared and other.state_dir == tmp_path / "other"


def test_a_registered_puppet_check_runs_in_config_checks() -> None:
    def refuse(account: ResolvedAccount) -> None:
        raise ConfigError.single(account.key_path("puppetOptions.colour"), "must be blue")

    register_puppet(
        "picky", lambda account, context: SimulatedWeChat().puppet_factory(account), check=refuse
    )
    with pytest.raises(ConfigError, match=r"channels\.wechat\.puppetOptions\.colour: must be blue"):
        check_puppets(accounts({"puppet": "picky"}))


def test_the_simulator_is_a_puppet_through_its_entry_point() -> None:
    (point,) = (
        p for p in puppets.entry_points(group=puppets.ENTRY_POINT_GROUP) if p.name == "simulator"
    )
    assert point.value == "simulator.puppet_entry:SIMULATOR_PUPPET"
    # its options are checked before a gateway starts (config check, gateway run)
    [account] = accounts({"puppet": "simulator", "puppetOptions": {"scanAfterMs": "soon"}})
    with pytest.raises(ConfigError, match=r"puppetOptions\.scanAfterMs: must be"):
        check_puppet(account)
    [account] = accounts({"puppet": "simulator", "puppetOptions": {"scanAfterMs": 200}})
    check_puppet(account)


def test_gateways_on_the_simulator_puppet_get_a_world_each(tmp_path: Path) -> None:
    config = parse_config('{ channels: { wechat: { puppet: "simulator" } } }')
    clock = VirtualClock()
    first = Gateway(config, agent=echo, state_dir=tmp_path / "1", clock=clock)
    second = Gateway(config, agent=echo, state_dir=tmp_path / "2", clock=clock)
    one = first.puppet_factory(first.accounts.default)
    two = second.puppet_factory(second.accounts.default)
    assert isinstance(one, SimulatedPuppet) and isinstance(two, SimulatedPuppet)
    assert one.world is not two.world
    assert one.world.session_dir == tmp_path / "1" / "accounts"


def test_an_installed_puppet_that_cannot_be_loaded_says_which(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = EntryPoint("broken", "no_such_package.puppet:make", puppets.ENTRY_POINT_GROUP)
    monkeypatch.setattr(
        puppets, "entry_points", lambda group, name: [broken] if name == "broken" else []
    )
    [account] = accounts({"puppet": "broken"})
    with pytest.raises(
        ConfigError, match=r'channels\.wechat\.puppet: puppet "broken" is installed .* cannot be'
    ):
        check_puppet(account)
