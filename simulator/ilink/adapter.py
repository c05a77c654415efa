"""A gateway account with ``puppet: "ilink"`` on a simulated world: the real iLink adapter
(:mod:`wechat_sdk.adapters.ilink`), pointed at the world's iLink server.

``world.gateway(config, ...)`` (so the pytest plugin and scenario files too) builds it for
every account whose ``puppet`` is ``"ilink"``: the world gets an iLink bot account of that
id, its server starts if it is not running, and the adapter talks to it over HTTP, unless
the account's ``puppetOptions`` name a ``baseUrl`` (or ``cdnBaseUrl``) of their own. A
simulated world never lets a bot reach Tencent.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wechat_sdk.config import ConfigError

if TYPE_CHECKING:
    from simulator.account import SimAccount
    from simulator.world import SimulatedWeChat
    from wechat_sdk.puppet import Puppet
    from wechat_sdk.stores.base import Store

__all__ = ["ilink_puppet", "is_ilink_account"]


def is_ilink_account(account: Any) -> bool:
    """Whether a gateway account (a ``ResolvedAccount``) uses the iLink transport."""
    settings = getattr(account, "settings", None)
    return getattr(settings, "puppet", None) == "ilink"


def _unused(sim: SimAccount) -> bool:
    return sim.puppet is None and not sim.history and not sim.offline and not sim.session


def ilink_puppet(
    world: SimulatedWeChat, account: Any, state_dir: Path | None, store: Store | None = None
) -> Puppet:
    """The iLink adapter of ``account``, served by ``world``; its state kept where a
    gateway on ``store`` keeps it (in the database of a SQLite store)."""
    from wechat_sdk.adapters.ilink.puppet import ILinkPuppet
    from wechat_sdk.adapters.ilink.service import ilink_options, kept_state
    from wechat_sdk.puppets import PuppetContext
    from wechat_sdk.stores.sqlite import SqliteStore

    if state_dir is None:
        raise RuntimeError(
            f"account {account.id!r} uses iLink, whose adapter keeps its login in the "
            "gateway's state directory: build the gateway with world.gateway(...)"
        )
    sim = world.accounts.get(account.id)
    if sim is not None and sim.transport != "ilink" and _unused(sim):
        # an account added as a simulator puppet (the pytest plugin's "default") and never
        # used: it becomes the iLink bot the config asks for
        del world.accounts[account.id]
        world.contacts.pop(sim.wxid, None)
        sim = None
    if sim is None:
        sim = world.add_account(account.id, name=account.settings.name, transport="ilink")
    elif sim.transport != "ilink":
        raise ConfigError.single(
            account.key_path("puppet"),
            f'is "ilink", but the world has account {account.id!r} as a simulator puppet: '
            'add it with world.add_account(id, transport="ilink")',
        )
    server = world.ilink_state.server
    if server is None:
        from simulator.ilink.server import ILinkServer

        server = ILinkServer(world)
        server.start_soon()
    options = ilink_options(account)
    sqlite = store if isinstance(store, SqliteStore) else None
    given = account.settings.puppetOptions.model_dump(exclude_none=True)
    if "baseUrl" not in given:
        options = dataclasses.replace(options, base_url=server.base_url_for(account.id).rstrip("/"))
    if "cdnBaseUrl" not in given:
        options = dataclasses.replace(options, cdn_base_url=server.cdn_base_url)
    return ILinkPuppet(
        account_id=account.id,
        account_dir=state_dir / "accounts" / account.id,
        options=options,
        clock=world.clock,
        qr_max_timeouts=account.settings.qrMaxTimeouts,
        **kept_state(account.id, PuppetContext(world.clock, state_dir, {}, sqlite=sqlite)),
    )
