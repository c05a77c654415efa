"""`wechat-sdk demo`: a short story on the simulator, in virtual time, in a few seconds."""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from pathlib import Path

from rich.console import Console

from simulator.world import SimulatedWeChat
from wechat_sdk.agent import AgentTurn, Reply
from wechat_sdk.config import parse_config
from wechat_sdk.gateway import Gateway
from wechat_sdk.puppet import OutboundFile
from wechat_sdk.transcript import format_entry

__all__ = ["DEMO_CONFIG", "demo_agent", "run_demo"]

DEMO_CONFIG = {
    "channels": {
        "wechat": {
            "puppet": "simulator",
            "name": "Helper",
            "dmPolicy": "pairing",
            "allowFrom": ["wxid_owner"],
            "groups": {"*": {"requireMention": True}},
            "textChunkLimit": 400,
            "defaultAccountId": "default",
            "accounts": {
                "default": {},
                "work": {"name": "Work Bot", "dmPolicy": "open", "allowFrom": ["*"]},
            },
        }
    }
}

_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


async def demo_agent(turn: AgentTurn) -> str | Reply:
    """The demo's assistant: echoes, tells a long story, and answers images with one."""
    if turn.media:
        item = turn.media[0]
        return Reply(
            text=f"Thanks for the {item.kind} ({item.mime}, {item.size} bytes). Here is mine:",
            files=[OutboundFile(name="reply.png", kind="image", data=_PNG)],
        )
    if "story" in turn.text.lower():
        paragraph = (
            "Once upon a time a bot learned that WeChat wants short messages, "
            "sent at a calm pace, in the right order. "
        )
        return "\n\n".join(f"**Part {i}.** " + paragraph * 2 for i in range(1, 5))
    where = f" in {turn.room_topic}" if turn.room_topic else ""
    history = f" ({len(turn.history)} earlier messages as context)" if turn.history else ""
    return f"You said{where}: {turn.text}{history}"


class _QrLines(logging.Handler):
    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("[WeChat]"):
            self.console.print(f"[dim]   log:[/] [blue]{message}[/]", markup=True, highlight=False)


async def run_demo(console: Console, *, interactive: bool = False, seed: int = 0) -> None:
    world = SimulatedWeChat(seed=seed)
    names = {
        "wxid_owner": "Olivia (owner)",
        "wxid_stranger": "Sam",
        "wxid_colleague": "Chen",
        "family@chatroom": "Family group",
        "wxid_bot_default": "Helper",
        "wxid_bot_work": "Work Bot",
    }
    world.add_contact("wxid_owner", "Olivia")
    world.add_contact("wxid_stranger", "Sam")
    world.add_contact("wxid_colleague", "Chen")
    world.add_account("default", name="Helper")
    world.add_account("work", name="Work Bot")
    world.add_room("family@chatroom", "Family", ["wxid_owner", "wxid_stranger", "wxid_bot_default"])
    config = parse_config(json.dumps(DEMO_CONFIG))
    shown = 0

    def show_new() -> None:
        nonlocal shown
        for entry in world.transcript[shown:]:
            console.print(format_entry(entry.to_json(), names), highlight=False)
        shown = len(world.transcript)

    def chapter(title: str) -> None:
        show_new()
        console.print(f"\n[bold underline]{title}[/]")

    handler = _QrLines(console)
    gw_log = logging.getLogger("wechat_sdk.gateway")
    gw_log.addHandler(handler)
    old_level = gw_log.level
    gw_log.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="wechat-sdk-demo-") as tmp:
        gateway = Gateway(
            config,
            agent=demo_agent,
            puppet_factory=world.puppet_factory,
            state_dir=Path(tmp),
            clock=world.clock,
            rng=world.rng_for("demo"),
            show_terminal_qr=False,
        )
        try:
            await gateway.start()
            chapter("1. QR login: two WeChat accounts scan their codes")
            await world.login("default")
            await world.login("work")
            console.print("[dim]   both accounts are ready[/]")

            chapter("2. A stranger writes: the bot answers with a pairing code, never the AI")
            await world.say("wxid_stranger", "Hi! Can you help me?")
            await world.say("wxid_stranger", "Hello??")
            show_new()
            console.print(
                "[dim]   (the second message got no second code: one reply per request)[/]"
            )
            code = gateway.pairing.list("default")[0].code

            chapter("3. The owner approves the code")
            console.print(f"[bold]   $ wechat-sdk pairing approve {code} --notify[/]")
            await world.drive(gateway.pairing.approve(code, notify=True))
            await world.say("wxid_stranger", "Great, thanks!")

            chapter("4. In a group the bot answers only when mentioned")
            await world.say("wxid_owner", "Dinner at 7?", room="family@chatroom")
            await world.say("wxid_stranger", "Yes, I'll bring dessert", room="family@chatroom")
            await world.say(
                "wxid_owner", "what did we decide?", room="family@chatroom", mention=True
            )

            chapter("5. A long reply arrives in chunks, paced (virtual time on the left)")
            await world.say("wxid_owner", "Tell me a story")

            chapter("6. An image in, an image out (each file its own message, after its caption)")
            await world.say(
                "wxid_owner", "", media={"kind": "image", "name": "cat.png", "size": 48_000}
            )

            chapter("7. A second account answers through itself")
            await world.say("wxid_colleague", "Is the report ready?", account="work")
            show_new()
            if interactive:
                await _interactive(world, console, show_new)
            status = ", ".join(f"{s.account}: {s.state}, {s.sent} sent" for s in gateway.status())
            console.print(
                f"\n[bold green]Done.[/] {status}. {world.elapsed:.0f} s of virtual time."
            )
        finally:
            await gateway.close()
            gw_log.removeHandler(handler)
            gw_log.setLevel(old_level)


async def _interactive(world: SimulatedWeChat, console: Console, show_new: object) -> None:
    console.print(
        "\n[bold]Your turn.[/] You are Olivia (the owner). Type a message for "
        "Helper; start it with [bold]@[/] to say it in the Family group with a "
        "mention; an empty line quits."
    )
    assert callable(show_new)
    while True:
        try:
            line = await asyncio.to_thread(input, "olivia> ")
        except EOFError:
            break
        if not line.strip():
            break
        if line.startswith("@"):
            await world.say("wxid_owner", line[1:].strip(), room="family@chatroom", mention=True)
        else:
            await world.say("wxid_owner", line)
        show_new()
