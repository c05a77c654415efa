"""The simulator under ``gateway run`` (puppet "simulator"): message ids are new in every
run on the same state directory, so the dedupe store (kept there) never takes a message of
a later run for one it has seen; a seeded world in a test keeps its ids, run after run."""

from __future__ import annotations

from pathlib import Path

from simulator.puppet_entry import make_puppet
from simulator.world import SimulatedWeChat
from wechat_sdk.clock import RealClock
from wechat_sdk.config import accounts_of, parse_config
from wechat_sdk.puppets import PuppetContext


async def ids_of_one_run(state_dir: Path) -> set[str]:
    """A gateway run's world, as the simulator's entry point builds it: a few messages in,
    a few replies out; the ids of them all."""
    config = parse_config('{channels: {wechat: {puppet: "simulator"}}}', env={})
    (account,) = accounts_of(config).enabled
    context = PuppetContext(clock=RealClock(), state_dir=state_dir, shared={})
    make_puppet(account, context)
    world: SimulatedWeChat = context.shared["world"]
    ids: set[str] = set()
    for text in ("hi", "are you there?", "hello?"):
        ids.update(await world.say("wxid_alice", text, settle=False))
    sim = world.accounts["default"]
    for text in ("hello", "yes"):
        ids.add(world.record_out(sim, "wxid_alice", text, None))
    assert len(ids) == 5
    return ids


async def test_three_runs_on_one_state_dir_have_disjoint_message_ids(tmp_path: Path) -> None:
    state = tmp_path / "state"
    runs = [await ids_of_one_run(state) for _ in range(3)]
    assert not runs[0] & runs[1]
    assert not runs[0] & runs[2]
    assert not runs[1] & runs[2]


async def test_a_seeded_world_gives_the_same_ids_every_time() -> None:
    def ids() -> list[str]:
        world = SimulatedWeChat(seed=3)
        world.add_account("default")
        sim = world.accounts["default"]
        return [world.record_out(sim, "wxid_alice", str(n), None) for n in range(3)]

    assert ids() == ids()
