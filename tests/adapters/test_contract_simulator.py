"""The Puppet contract suite on the simulator (the real Puppet Service: tests/e2e)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
from puppet_contract import CHECKS, Check, PuppetHarness, Sent

from simulator import SimulatedPuppet, SimulatedWeChat
from wechat_sdk.puppet import Puppet


class SimulatorHarness:
    """The contract harness over :class:`SimulatedWeChat` and its virtual clock."""

    def __init__(self) -> None:
        self.world = SimulatedWeChat(seed=7)
        self._accounts: dict[Puppet, str] = {}

    async def create_puppet(self, account: str = "default") -> Puppet:
        self.world.add_account(account)
        puppet = self.world.puppet_factory(account)
        self._accounts[puppet] = account
        return puppet

    async def settle(self) -> None:
        await self.world.run_until_idle()

    async def login(self, puppet: Puppet) -> None:
        await self.world.login(self._account_of(puppet))

    async def add_contact(self, name: str) -> str:
        return self.world.add_contact(name=name).id

    async def add_room(
        self, topic: str, member_ids: Sequence[str], aliases: dict[str, str] | None = None
    ) -> str:
        return self.world.add_room(topic=topic, members=member_ids, aliases=aliases).id

    async def say_dm(self, contact_id: str, text: str) -> None:
        await self.world.say(contact_id, text)

    async def say_group(
        self, contact_id: str, room_id: str, text: str, mention_ids: Sequence[str] = ()
    ) -> None:
        bots = {a.wxid for a in self.world.accounts.values()}
        if set(mention_ids) - bots:
            raise NotImplementedError("the simulator mentions only bot accounts")
        await self.world.say(contact_id, text, room=room_id, mention=bool(mention_ids))

    async def send_file_to_bot(self, contact_id: str, name: str, size: int) -> bytes:
        (msg_id,) = await self.world.say(
            contact_id, media={"kind": "file", "name": name, "size": size}
        )
        data = self.world.message_data(msg_id)
        assert data is not None
        return data

    async def sent(self, conversation_id: str) -> list[Sent]:
        entries = [e for e in self.world.sent() if conversation_id in (e.to, e.room)]
        return [
            Sent(
                text=e.text,
                file_name=e.media["name"] if e.media else None,
                file_size=e.media["size"] if e.media else None,
            )
            for e in entries
        ]

    async def force_logout(self, puppet: Puppet) -> None:
        self.world.fault("logout", account=self._account_of(puppet))

    async def close(self) -> None:
        for account in self.world.accounts.values():
            if account.puppet is not None:
                await account.puppet.stop()
        await self.world.run_until_idle()

    def _account_of(self, puppet: Puppet) -> str:
        assert isinstance(puppet, SimulatedPuppet)
        return self._accounts[puppet]


async def simulator_harness() -> SimulatorHarness:
    return SimulatorHarness()


HarnessFactory = Callable[[], Awaitable[PuppetHarness]]

#: In-process implementations of the port; the gRPC adapter on the real Node Puppet Service
#: runs the same checks in tests/e2e/test_contract_wechaty.py (nox session e2e).
IMPLEMENTATIONS: list[HarnessFactory] = [simulator_harness]


@pytest.fixture(params=IMPLEMENTATIONS, ids=lambda f: f.__name__.removesuffix("_harness"))
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[PuppetHarness]:
    made = await request.param()
    try:
        yield made
    finally:
        await made.close()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_puppet_contract(harness: PuppetHarness, check: Check) -> None:
    await check(harness)


def test_simulated_puppet_is_a_puppet() -> None:
    world = SimulatedWeChat(seed=0)
    assert isinstance(world.puppet_factory("default"), Puppet)
