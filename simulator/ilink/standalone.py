"""``wechat-sdk simulator serve``: a simulated WeChat on the real clock, serving iLink to
clients in any language, driven through its control API (:mod:`simulator.ilink.control`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterable

from simulator.ilink.server import POLL_HOLD_S, ILinkServer
from simulator.ilink.state import process_id_base
from simulator.world import SimulatedWeChat
from wechat_sdk.clock import RealClock

__all__ = ["guide", "serve"]


def guide(server: ILinkServer, seed: int) -> list[str]:
    """What ``serve`` prints: where the server is and how to drive it."""
    base = server.base_url
    accounts = [a for a in server.world.accounts.values() if a.transport == "ilink"]
    first = accounts[0].id if accounts else "bot"
    said = f'{{"from": "alice@im.wechat", "account": "{first}", "text": "hi"}}'
    lines = [
        f"iLink server at {base}",
        f"  simulated WeChat, seed {seed}, real time",
        f"  API base (baseUrl):     {base}",
        f"  CDN base (cdnBaseUrl):  {server.cdn_base_url}",
    ]
    for sim in accounts:
        lines.append(f"  bot account {sim.id!r}: ilink_bot_id {sim.wxid}, owner {sim.owner}")
    scan = server.world.auto_scan_s
    login = (
        [f"  log in: the phone scans each QR code {scan:g} s after a client asks for it"]
        if scan is not None
        else [
            "  log in (once your client asked get_bot_qrcode):",
            f"    curl -X POST {base}sim/accounts/{first}/login",
        ]
    )
    lines += [
        "Drive it (JSON over HTTP; all routes: GET /sim/):",
        *login,
        "  a user writes to the bot:",
        f"    curl -X POST {base}sim/messages -d '{said}'",
        "  what the bot sent:",
        f"    curl '{base}sim/sent?account={first}'",
        "  a fault (logout, rate_limit, duplicate_next, slow_poll, ...):",
        f'    curl -X POST {base}sim/faults -d \'{{"kind": "rate_limit", "account": "{first}"}}\'',
        "  another bot account:",
        f'    curl -X POST {base}sim/accounts -d \'{{"id": "bot2"}}\'',
        "Ctrl-C stops it.",
    ]
    return lines


async def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    seed: int = 0,
    accounts: Iterable[str] = ("bot",),
    poll_hold_s: float = POLL_HOLD_S,
    scan_after_s: float | None = None,
    say: Callable[[str], None] = print,
) -> None:
    """Serve until SIGINT or SIGTERM (or cancelled). ``scan_after_s``: the owner's phone
    scans and confirms each QR code after this many seconds (default: only when told)."""
    world = SimulatedWeChat(seed=seed, clock=RealClock(), auto_scan_s=scan_after_s)
    # numbers of its own: a client that outlives this process (a gateway rehearsing) takes
    # the next one's messages for new ones, not for those it had from this one
    world.ilink_state.id_base = process_id_base()
    for account_id in accounts:
        world.add_account(account_id, transport="ilink")
    server = await world.ilink_server(host=host, port=port, poll_hold_s=poll_hold_s)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        for line in guide(server, seed):
            say(line)
        await stop.wait()
    finally:
        await server.close()
