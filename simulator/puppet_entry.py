"""The simulator as the puppet ``"simulator"`` (wechat_sdk's puppets, :mod:`wechat_sdk.puppets`).

An account with ``puppet: "simulator"`` in a gateway built without a ``puppet_factory``
(``wechat-sdk gateway run``) gets its puppet here, through the entry point ``simulator`` of
the group ``wechat_sdk.puppets`` (pyproject.toml). Every such account of one gateway lives in
one world, on the gateway's clock (real time under ``gateway run``), its login kept in
``<stateDir>/accounts/<id>/``; the world's simulated phone scans each QR code after a second
unless ``puppetOptions.scanAfterMs`` says otherwise. Its message ids carry a random tag of
the process (``msg-<tag>-...``): each run's world starts from the same seed, and the state
directory's dedupe store would otherwise take a later run's messages for ones it has seen.
"""

from __future__ import annotations

import os

from simulator.account import _path_option, _scan_after
from simulator.world import SimulatedWeChat
from wechat_sdk.config import ResolvedAccount
from wechat_sdk.puppet import Puppet
from wechat_sdk.puppets import PuppetContext, PuppetEntry

__all__ = ["SCAN_AFTER_S", "SIMULATOR_PUPPET", "check_options", "make_puppet"]

#: seconds after which the simulated phone scans a QR code (``puppetOptions.scanAfterMs``)
SCAN_AFTER_S = 1.0


def make_puppet(account: ResolvedAccount, context: PuppetContext) -> Puppet:
    """The account's puppet, in the gateway's one world (made with the first account)."""
    world: SimulatedWeChat | None = context.shared.get("world")
    if world is None:
        world = context.shared["world"] = SimulatedWeChat(
            seed=0,
            clock=context.clock,
            session_dir=context.state_dir / "accounts",
            auto_scan_s=SCAN_AFTER_S,
            run_tag=os.urandom(4).hex(),
        )
    return world.puppet_factory(account)


def check_options(account: ResolvedAccount) -> None:
    """The simulator's own ``puppetOptions`` (``scanAfterMs``, ``inbox``, ``transcript``),
    checked before any account starts."""
    options = account.settings.puppetOptions.model_extra or {}
    if "scanAfterMs" in options:
        _scan_after(options["scanAfterMs"], account)
    for key in ("inbox", "transcript"):
        if key in options:
            _path_option(options[key], account, key)


SIMULATOR_PUPPET = PuppetEntry(make_puppet, check_options)
