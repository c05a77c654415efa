"""The real peer for end-to-end tests: the Node sidecar with the official wechaty-puppet-mock.

:class:`MockControl` drives the mock's ``Mocker`` through the sidecar's test-only control
channel (JSON over HTTP on 127.0.0.1, on only with ``WECHAT_SDK_TEST_CONTROL``).
:class:`SidecarHarness` is the Puppet contract harness over it, so the contract suite runs
the same assertions on the simulator and on the real Puppet Service.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from puppet_contract import Sent

from wechat_sdk.adapters.wechaty.sidecar import Sidecar, SidecarPuppet
from wechat_sdk.puppet import Puppet

__all__ = ["MockControl", "SidecarHarness", "mock_sidecar"]


class MockControl:
    """The mock's Mocker, driven over the sidecar's control channel."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/"

    async def __call__(self, op: str, **args: Any) -> dict[str, Any]:
        body = json.dumps({"op": op, **args}).encode()

        def post() -> dict[str, Any]:
            request = urllib.request.Request(
                self.url, data=body, headers={"content-type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                result: dict[str, Any] = json.loads(response.read())
            return result

        result = await asyncio.to_thread(post)
        if not result.get("ok"):
            raise AssertionError(f"mock control {op} failed: {result.get('error')}")
        return result


def mock_sidecar(state_dir: Path, account: str = "default", *, tls: bool = False) -> Sidecar:
    return Sidecar(
        puppet="wechaty-puppet-mock",
        state_dir=state_dir,
        account_dir=state_dir / "accounts" / account,
        tls=tls,
        test_control=True,
    )


def control_of(puppet: Puppet) -> MockControl:
    assert isinstance(puppet, SidecarPuppet)
    port = puppet.sidecar.control_port
    assert port is not None, "the sidecar runs without its test control channel"
    return MockControl(port)


class SidecarHarness:
    """The contract harness over the Node sidecar and wechaty-puppet-mock."""

    def __init__(self, state_dir: Path, *, tls: bool = False) -> None:
        self.state_dir = state_dir
        self.tls = tls
        self.puppets: list[SidecarPuppet] = []

    @property
    def control(self) -> MockControl:
        assert self.puppets, "no puppet started yet"
        return control_of(self.puppets[-1])

    async def create_puppet(self, account: str = "default") -> Puppet:
        n = len(self.puppets)
        puppet = SidecarPuppet(
            mock_sidecar(self.state_dir / f"p{n}", account, tls=self.tls), account_id=account
        )
        self.puppets.append(puppet)
        return puppet

    async def settle(self) -> None:
        await asyncio.sleep(0.1)

    async def login(self, puppet: Puppet) -> None:
        await control_of(puppet)("login")

    async def add_contact(self, name: str) -> str:
        return str((await self.control("createContact", name=name))["id"])

    async def add_room(
        self, topic: str, member_ids: Sequence[str], aliases: dict[str, str] | None = None
    ) -> str:
        made = await self.control(
            "createRoom", topic=topic, memberIds=list(member_ids), aliases=aliases or {}
        )
        return str(made["id"])

    async def say_dm(self, contact_id: str, text: str) -> None:
        await self.control("sayDm", **{"from": contact_id, "text": text})

    async def say_group(
        self, contact_id: str, room_id: str, text: str, mention_ids: Sequence[str] = ()
    ) -> None:
        await self.control(
            "sayGroup",
            **{"from": contact_id, "room": room_id, "text": text, "mentionIds": list(mention_ids)},
        )

    async def send_file_to_bot(self, contact_id: str, name: str, size: int) -> bytes:
        data = os.urandom(size)
        await self.control(
            "sendFile",
            **{"from": contact_id, "name": name, "base64": base64.b64encode(data).decode()},
        )
        return data

    async def sent(self, conversation_id: str) -> list[Sent]:
        rows = (await self.control("sent", conversation=conversation_id))["sent"]
        return [
            Sent(text=r.get("text"), file_name=r.get("fileName"), file_size=r.get("fileSize"))
            for r in rows
        ]

    async def force_logout(self, puppet: Puppet) -> None:
        await control_of(puppet)("logout")

    async def close(self) -> None:
        for puppet in self.puppets:
            await puppet.close()
