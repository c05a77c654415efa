"""Fixtures of the scenario tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from simulator.ilink.process import serve_process


@pytest.fixture
async def served() -> AsyncIterator[str]:
    """The base URL of a ``wechat-sdk simulator serve`` process on a free port."""
    async with serve_process("--poll-hold-ms", "300") as simulator:
        yield simulator.base_url
