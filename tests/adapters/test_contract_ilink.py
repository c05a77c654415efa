"""The Puppet contract suite on the iLink adapter, against the simulator's iLink server over
real HTTP on the real clock (group checks skip: iLink is direct chats only)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from puppet_contract import CHECKS, Check, PuppetHarness, Sent

from simulator import SimulatedWeChat
from simulator.ilink import ILinkServer
from wechat_sdk.adapters.ilink.puppet import ILinkOptions, ILinkPuppet
from wechat_sdk.clock import RealClock
from wechat_sdk.puppet import Puppet

#: seconds the simulated server holds an empty long poll (short: stops are quick)
POLL_HOLD_S = 0.3


class ILinkHarness:
    """The contract harness over the simulator's iLink server and the iLink adapter."""

    def __init__(self, state_dir: Path) -> None:
        self.world = SimulatedWeChat(seed=11, clock=RealClock())
        self.state_dir = state_dir
        self.server: ILinkServer | None = None
        self.puppets: dict[Puppet, str] = {}
        self._names = itertools.count(1)

    async def create_puppet(self, account: str = "default") -> Puppet:
        self.world.add_account(account, transport="ilink")
        if self.server is None:
            self.server = await self.world.ilink_server(poll_hold_s=POLL_HOLD_S)
        options = ILinkOptions(
            base_url=self.server.base_url_for(account).rstrip("/"),
            cdn_base_url=self.server.cdn_base_url,
            bot_agent="contract/1",
        )
        puppet = ILinkPuppet(
            account_id=account,
            account_dir=self.state_dir / "accounts" / account,
            options=options,
            clock=RealClock(),
        )
        self.puppets[puppet] = account
        return puppet

    async def settle(self) -> None:
        await asyncio.sleep(0.05)

    async def login(self, puppet: Puppet) -> None:
        await self.world.login(self.puppets[puppet], within_s=5)

    async def add_contact(self, name: str) -> str:
        return self.world.add_contact(f"{name.lower()}{next(self._names)}@im.wechat", name).id

    async def add_room(
        self, topic: str, member_ids: Sequence[str], aliases: dict[str, str] | None = None
    ) -> str:
        raise NotImplementedError("iLink has no groups")

    async def say_dm(self, contact_id: str, text: str) -> None:
        await self.world.say(contact_id, text, account=self._account(), settle=False)

    async def say_group(
        self, contact_id: str, room_id: str, text: str, mention_ids: Sequence[str] = ()
    ) -> None:
        raise NotImplementedError("iLink has no groups")

    async def send_file_to_bot(self, contact_id: str, name: str, size: int) -> bytes:
        (msg_id,) = await self.world.say(
            contact_id,
            media={"kind": "file", "name": name, "size": size},
            account=self._account(),
            settle=False,
        )
        data = self.world.message_data(msg_id)
        assert data is not None
        return data

    async def sent(self, conversation_id: str) -> list[Sent]:
        return [
            Sent(
                text=e.text,
                file_name=e.media["name"] if e.media else None,
                file_size=e.media["size"] if e.media else None,
            )
            for e in self.world.sent(to=conversation_id)
        ]

    async def force_logout(self, puppet: Puppet) -> None:
        self.world.fault("logout", account=self.puppets[puppet])

    async def close(self) -> None:
        for puppet in self.puppets:
            await puppet.stop()
        if self.server is not None:
            await self.server.close()

    def _account(self) -> str:
        return next(iter(self.puppets.values()), "default")


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[PuppetHarness]:
    made = ILinkHarness(tmp_path)
    try:
        yield made
    finally:
        await made.close()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_puppet_contract_on_ilink(harness: PuppetHarness, check: Check) -> None:
    await check(harness)


def test_the_ilink_puppet_is_a_puppet(tmp_path: Path) -> None:
    options = ILinkOptions("http://127.0.0.1:9", "http://127.0.0.1:9/c2c", "t/1")
    puppet = ILinkPuppet(account_id="a", account_dir=tmp_path, options=options, clock=RealClock())
    assert isinstance(puppet, Puppet)
