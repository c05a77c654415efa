"""The lowest versions pyproject.toml allows have what the code uses: pip may install them
(another package pinning an older release), and a name missing there fails only on the
path that uses it."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def floor(name: str) -> Version:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (req,) = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == name]
    (lowest,) = [Version(s.version) for s in req.specifier if s.operator == ">="]
    return lowest


def test_aiohttp_floor_has_the_connect_timeout_error_the_ilink_client_catches() -> None:
    """``aiohttp.ConnectionTimeoutError`` (iLink: a connection not made within CONNECT_S)
    came with aiohttp 3.10; under 3.9 each failed iLink call raised AttributeError from
    the ``except`` that names it, instead of NotConnected, TimedOut or Unreachable."""
    assert floor("aiohttp") >= Version("3.10")
