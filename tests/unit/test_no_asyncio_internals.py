"""Nothing in wechat_sdk or simulator reads asyncio's private attributes.

asyncio's internals (a loop's ``_ready`` queue, a task's ``_fut_waiter``...) change between
Python versions without notice, and a loop that is not asyncio's own (uvloop) has none. The
virtual clock learns that the loop is idle through a public seam instead
(wechat_sdk/idle_loop.py). Read from the source (ast): an attribute with a private name of
asyncio's loop, task or future, on anything but ``self``/``cls``, or such a name given to
``getattr``/``hasattr``/``setattr`` as a string.
"""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("wechat_sdk", "simulator")
GENERATED = ROOT / "wechat_sdk" / "adapters" / "wechaty" / "_proto"


def asyncio_private_names() -> frozenset[str]:
    loop = asyncio.new_event_loop()
    try:
        objects: list[object] = [loop, type(loop), asyncio.Task, asyncio.Future, asyncio.Handle]
        names = {name for obj in objects for name in dir(obj)} | set(vars(loop))
    finally:
        loop.close()
    return frozenset(n for n in names if n.startswith("_") and not n.startswith("__"))


PRIVATE = asyncio_private_names()


def private_reads(source: str) -> list[str]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in PRIVATE
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append((node.lineno, f".{node.attr}"))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in PRIVATE
        ):
            found.append((node.lineno, f"{node.func.id}(..., {node.args[1].value!r})"))
    return [f"line {line}: {what}" for line, what in sorted(found)]


def test_the_check_finds_a_read_of_the_ready_queue() -> None:
    assert "_ready" in PRIVATE and "_fut_waiter" in PRIVATE
    source = (
        "loop = asyncio.get_running_loop()\n"
        "busy = len(loop._ready)\n"
        "queue = getattr(loop, '_ready', None)\n"
        "self._ready = []\n"
    )
    assert private_reads(source) == ["line 2: ._ready", "line 3: getattr(..., '_ready')"]


def test_no_module_reads_asyncio_internals() -> None:
    offences = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if GENERATED in path.parents:
                continue
            for read in private_reads(path.read_text(encoding="utf-8")):
                offences.append(f"{path.relative_to(ROOT)} {read}")
    assert offences == []
