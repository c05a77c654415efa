"""A world on the real clock whose bot account ``default`` speaks iLink, and a gateway's
config for its server: for the tests that run a gateway against the world's iLink server
over real HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from simulator import SimulatedWeChat
from simulator.ilink import ILinkServer
from wechat_sdk import Config, parse_config
from wechat_sdk.clock import RealClock


@contextlib.asynccontextmanager
async def ilink_world(seed: int, contacts: dict[str, str]) -> AsyncIterator[SimulatedWeChat]:
    """The world, with these contacts (id to name); its iLink server, which the first
    gateway's login starts, is closed at the end."""
    world = SimulatedWeChat(seed=seed, clock=RealClock())
    world.add_account("default", transport="ilink")
    for contact_id, name in contacts.items():
        world.add_contact(contact_id, name)
    try:
        yield world
    finally:
        server = world.ilink_state.server
        if server is not None:
            await server.close()


def ilink_config(server: ILinkServer) -> Config:
    """One iLink account on ``server``, open to everyone, no QR drawn."""
    return parse_config(
        f"""{{ channels: {{ wechat: {{
            puppet: "ilink",
            puppetOptions: {{ baseUrl: "{server.base_url}", cdnBaseUrl: "{server.cdn_base_url}" }},
            dmPolicy: "open", allowFrom: ["*"], qrCode: false,
        }} }} }}"""
    )
