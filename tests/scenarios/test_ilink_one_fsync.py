"""An iLink DM costs the disk one fsync: the batch the adapter recorded and the gateway's
dedupe mark of the message are made durable together, before the next poll, and the reply
finds its mark durable (the real adapter over HTTP to the simulator, the SQLite store)."""

from __future__ import annotations

from pathlib import Path

from simulator import SimulatedWeChat
from wechat_sdk.agents import echo
from wechat_sdk.stores.sqlite import SqliteStore

CONFIG = {
    "channels": {
        "wechat": {"puppet": "ilink", "dmPolicy": "open", "allowFrom": ["*"], "pacing": False}
    }
}


async def test_each_dm_and_its_reply_cost_one_fsync(
    tmp_path: Path, fsyncs: list[tuple[str, int]]
) -> None:
    world = SimulatedWeChat(seed=11)
    world.add_account("default", transport="ilink")
    alice = world.add_contact("alice@im.wechat", "Alice").id
    gateway = world.gateway(CONFIG, echo, state_dir=tmp_path)
    try:
        async with gateway:
            assert isinstance(gateway.store, SqliteStore)
            wal = f"{gateway.store.path}-wal"
            await world.login()
            await world.say(alice, "warm up")  # (the first message's peer and window rows)
            await world.run_until_idle()
            fsyncs.clear()
            for i in range(5):
                await world.say(alice, f"message {i}")
                await world.run_until_idle()
                await gateway.wait_idle()
            answered = [e.text for e in world.sent(to=alice)]
            assert answered[1:] == [f"message {i}" for i in range(5)]
            synced = [name for name, _ in fsyncs]
            assert synced.count(wal) == 5, synced  # not one for the batch and one for the mark
            assert set(synced) == {wal}  # (no file of the adapter's own)
    finally:
        await world.close()
    assert not list((tmp_path / "accounts").glob("*/*.sqlite3"))
