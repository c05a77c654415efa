"""The Puppet contract suite on the real Node Puppet Service with wechaty-puppet-mock.

The same checks as on the simulator (tests/adapters/puppet_contract.py), over gRPC,
in plaintext and in TLS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mock_peer import SidecarHarness
from puppet_contract import CHECKS, Check

pytestmark = pytest.mark.e2e


@pytest.fixture(params=[False, True], ids=["plaintext", "tls"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SidecarHarness]:
    made = SidecarHarness(tmp_path, tls=request.param)
    try:
        yield made
    finally:
        await made.close()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_puppet_contract_on_puppet_service(harness: SidecarHarness, check: Check) -> None:
    await check(harness)
