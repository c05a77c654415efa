"""``wechat-sdk simulator serve`` in a process of its own, for tests and benchmarks.

Example:
    ```python
    async with serve_process("--poll-hold-ms", "300") as served:
        base = served.base_url  # "http://127.0.0.1:PORT/"
    ```
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

__all__ = ["ServedSimulator", "serve_process"]

_FIRST_LINE = re.compile(r"iLink server at (http://\S+/)")


@dataclass
class ServedSimulator:
    """A running ``simulator serve``: its base URL, its process, and (once stopped) what
    it printed after its first line."""

    base_url: str
    process: asyncio.subprocess.Process
    output: str = ""


@contextlib.asynccontextmanager
async def serve_process(
    *options: str, port: int = 0, start_timeout_s: float = 30.0
) -> AsyncIterator[ServedSimulator]:
    """Start ``python -m wechat_sdk simulator serve --port PORT *options`` (0: a free port),
    wait for its first line (``iLink server at <base URL>``), and stop it (SIGTERM) at the
    end of the block. RuntimeError when it does not start."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wechat_sdk", "simulator", "serve", "--port", str(port), *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        first = (await asyncio.wait_for(proc.stdout.readline(), start_timeout_s)).decode()
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    found = _FIRST_LINE.match(first)
    if found is None:
        rest = (await proc.communicate())[0].decode() if proc.returncode is not None else ""
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise RuntimeError(f"the simulator did not start: {first!r}{rest[:2000]}")
    served = ServedSimulator(found.group(1), proc)
    try:
        yield served
    finally:
        if proc.returncode is None:
            proc.terminate()
        served.output = (await asyncio.wait_for(proc.communicate(), 10))[0].decode()
