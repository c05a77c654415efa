"""The iLink half of :class:`~simulator.world.SimulatedWeChat` (one of its base classes):
its iLink bot accounts and the server that serves them. Nothing here imports aiohttp until
a server starts."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from wechat_sdk.puppet import Contact

if TYPE_CHECKING:
    from simulator.account import SimAccount
    from simulator.ilink.server import ILinkServer
    from simulator.ilink.state import ILinkState
    from simulator.world import SimulatedWeChat

__all__ = ["ILinkServing"]


class ILinkServing:
    """Serving iLink, for the world that sets the attributes declared here."""

    if TYPE_CHECKING:
        seed: int
        auto_scan_s: float | None
        accounts: dict[str, SimAccount]
        contacts: dict[str, Contact]

    _ilink: ILinkState | None

    @property
    def ilink_state(self) -> ILinkState:
        """What the world's iLink server knows (bots, tokens, QR codes, CDN)."""
        if self._ilink is None:
            from simulator.ilink.state import ILinkState

            self._ilink = ILinkState(cast("SimulatedWeChat", self))
        return self._ilink

    async def ilink_server(
        self, *, host: str = "127.0.0.1", port: int = 0, poll_hold_s: float | None = None
    ) -> ILinkServer:
        """Serve this world's iLink accounts over HTTP (see :mod:`simulator.ilink`); the
        running server when there is one (a world has one: its bots' logins and files name
        its address), on ``host`` and on ``port`` (``0``: any port), with ``poll_hold_s``
        (left out: any), else ValueError naming what it runs with. ``poll_hold_s``: how
        long ``getupdates`` holds a request with nothing to give (default 30 s).

        Example:
            ```python
            world.add_account("bot", transport="ilink")
            async with await world.ilink_server() as server:
                ...  # a client with baseUrl server.base_url, cdnBaseUrl server.cdn_base_url
            ```
        """
        from simulator.ilink.server import start_ilink_server

        world = cast("SimulatedWeChat", self)
        return await start_ilink_server(world, host=host, port=port, poll_hold_s=poll_hold_s)

    async def close(self) -> None:
        """Stop what the world serves (its iLink server, when one runs)."""
        server = self._ilink.server if self._ilink is not None else None
        if server is not None:
            await server.close()

    def _add_ilink_account(self, id: str, wxid: str | None, name: str | None) -> SimAccount:
        from simulator.account import SimAccount
        from simulator.ilink.state import bot_id_for

        account = SimAccount(
            id=id, wxid=wxid or bot_id_for(self.seed, id), name=name or f"Bot {id}"
        )
        account.auto_scan_s = self.auto_scan_s
        account.transport = "ilink"
        account.owner = f"{id}.owner@im.wechat"
        self.accounts[id] = account
        self.contacts[account.wxid] = Contact(account.wxid, account.name)
        self.ilink_state.bot(id)
        return account

    def _is_ilink_world(self) -> bool:
        """Whether any account of the world is an iLink one."""
        return any(a.transport == "ilink" for a in self.accounts.values())

    def _is_ilink(self, account_id: str) -> bool:
        sim = self.accounts.get(account_id)
        return sim is not None and sim.transport == "ilink"
