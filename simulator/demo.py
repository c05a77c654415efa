"""`wechat-sdk demo`: a short story on the simulator, in virtual time, in a few seconds.

Part of the simulator, which it runs on; the CLI imports it when the command runs."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import re
import tempfile
import textwrap
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from simulator.fake_model import FakeModel, ModelStep
from simulator.world import SimulatedWeChat
from wechat_sdk.agent import AgentTurn, Reply
from wechat_sdk.gateway import Gateway
from wechat_sdk.gateway.qr import QR_URL_BASE
from wechat_sdk.gateway.status import AccountStatus
from wechat_sdk.pairing.service import PairingError
from wechat_sdk.puppet import OutboundFile, ScanStatus
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

FAMILY = "family@chatroom"

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
    # the note comes first, so a long message chunked into parts does not end on it alone
    context = f" (with {len(turn.history)} earlier messages as context)" if turn.history else ""
    return f"You said{where}{context}: {turn.text}"


#: the config of the assistant's chapter: an agent block, as a user would write it
AI_CONFIG = {
    "channels": {
        "wechat": {
            "puppet": "simulator",
            "dmPolicy": "open",
            "allowFrom": ["*"],
            "accounts": {"ai": {"name": "Assistant"}},
            "agent": {
                "baseUrl": "http://fake-model.invalid/v1",  # answered in process
                "model": "demo-model",
                "systemPrompt": "You are a helpful assistant on WeChat.",
            },
        }
    }
}


def _weather_model(body: dict[str, Any]) -> ModelStep:
    """The fake model: asks for the weather tool, then answers with what it said."""
    results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if results:
        return ModelStep(
            text=f"It will be {results[-1]} in Hangzhou tomorrow: a good day for West Lake."
        )
    return ModelStep(tool_calls=[("weather", {"city": "Hangzhou"})])


async def _assistant_chapter(
    world: SimulatedWeChat, state: Path, console: Console
) -> list[AccountStatus]:
    """Chapter 8, on a gateway of its own; its account's status at the end."""
    from wechat_sdk.assistants import ConfiguredAssistant

    world.add_account("ai", name="Assistant")
    model = FakeModel(_weather_model)
    gateway = world.gateway(
        AI_CONFIG, ConfiguredAssistant(http_client=model.http_client), state_dir=state
    )

    def weather(city: str) -> str:
        """Tomorrow's weather in a city."""
        return "sunny, 24 °C"

    gateway.tools.register("weather", weather)
    console.print('[dim]   agent: { model: "demo-model", baseUrl: ... }; a Python tool: weather[/]')
    try:
        await gateway.start()
        await world.login("ai")
        await world.say("wxid_owner", "Will it rain in Hangzhou tomorrow?", account="ai")
        # the model's client asks a thread once (its platform): virtual time moves in
        # small steps meanwhile, not to the world's next timer
        answered = asyncio.ensure_future(gateway.wait_idle())
        while not answered.done():
            await asyncio.sleep(0.002)
            await world.advance(0.01)
        call = model.requests[1]["messages"][-2]["tool_calls"][0]["function"]
        console.print(
            f"[dim]   the model called {call['name']}({call['arguments']}) and got "
            f"{weather('Hangzhou')!r}, then answered[/]"
        )
        return [dataclasses.replace(s) for s in gateway.status()]  # (as it is now)
    finally:
        await gateway.close()


class _QrLines(logging.Handler):
    """Shows the gateway's QR log lines: each status in words beside the seed's exact line,
    and the first QR code drawn."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console
        self.drawn = False

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not message.startswith("[WeChat]"):
            return
        account = getattr(record, "account", "-")
        note = ""
        status = _STATUS.fullmatch(message)
        if status:
            note = f"  [dim]<- {ScanStatus(int(status[1])).meaning}[/]"
        self.console.print(
            f"[dim]   log \\[{escape(str(account))}]:[/] [blue]{escape(message)}[/]{note}",
            highlight=False,
        )
        url = message.removeprefix("[WeChat] Scan QR Code at: ")
        if url != message and not self.drawn:
            self.drawn = True
            self.console.print(_qr_drawing(url), markup=False, highlight=False)


_STATUS = re.compile(r"\[WeChat\] QR Code status: (\d+)")


def _qr_drawing(url: str) -> str:
    """The QR code behind a Wechaty QR page link, drawn with text blocks."""
    import segno

    out = io.StringIO()
    segno.make(urllib.parse.unquote(url.removeprefix(QR_URL_BASE)), error="m").terminal(
        out=out, compact=True, border=2
    )
    return textwrap.indent(out.getvalue().rstrip("\n"), "   ")


async def run_demo(console: Console, *, interactive: bool = False, seed: int = 0) -> None:
    world = SimulatedWeChat(seed=seed)
    names = {
        "wxid_owner": "Olivia (owner)",
        "wxid_stranger": "Sam",
        "wxid_colleague": "Chen",
        "wxid_riley": "Riley",
        "family@chatroom": "Family group",
        "wxid_bot_default": "Helper",
        "wxid_bot_work": "Work Bot",
        "wxid_bot_ai": "Assistant",
    }
    world.add_contact("wxid_owner", "Olivia")
    world.add_contact("wxid_stranger", "Sam")
    world.add_contact("wxid_colleague", "Chen")
    world.add_account("default", name="Helper")
    world.add_account("work", name="Work Bot")
    world.add_contact("wxid_riley", "Riley")
    world.add_room(
        FAMILY, "Family", ["wxid_owner", "wxid_stranger", "wxid_riley", "wxid_bot_default"]
    )
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
        gateway = world.gateway(DEMO_CONFIG, demo_agent, state_dir=tmp, rng=world.rng_for("demo"))
        try:
            chapter("1. QR login: two WeChat accounts scan their codes")
            await gateway.start()
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

            chapter("8. An assistant from the config calls a tool (a fake model, offline)")
            gw_log.removeHandler(handler)  # (its account's QR login was shown in 1.)
            assistant = await _assistant_chapter(world, Path(tmp) / "ai", console)
            show_new()
            if interactive:
                await _interactive(world, gateway, console, show_new)
            status = ", ".join(
                f"{s.account}: {s.state}, {s.sent} sent" for s in [*gateway.status(), *assistant]
            )
            console.print(
                f"\n[bold green]Done.[/] {status}. {world.elapsed:.0f} s of virtual time."
            )
        finally:
            await gateway.close()
            gw_log.removeHandler(handler)
            gw_log.setLevel(old_level)


_PEOPLE = {
    "olivia": ("wxid_owner", "Olivia, the owner"),
    "sam": ("wxid_stranger", "Sam, approved in the story"),
    "riley": ("wxid_riley", "Riley, a stranger"),
}

_HELP = """\
[bold]Your turn.[/] You are {who}. What you type goes to Helper:
  [bold]text[/]            a direct message
  [bold]@Helper text[/]    in the Family group, mentioning the bot ([bold]@ text[/] works too)
  [bold]# text[/]          in the Family group, without a mention: the bot stays quiet
  [bold]/as riley[/]       become Riley, a stranger, to see pairing
                  ([bold]/as sam[/] and [bold]/as olivia[/] switch back)
  [bold]/approve CODE[/]   approve a pairing code, as the owner would
  [bold]/help[/]           this list; an empty line quits"""


async def _interactive(
    world: SimulatedWeChat, gateway: Gateway, console: Console, show_new: Callable[[], None]
) -> None:
    person = "olivia"
    console.print("\n" + _HELP.format(who=_PEOPLE[person][1]))
    while True:
        try:
            line = await asyncio.to_thread(input, f"{person}> ")
        except EOFError:
            break
        if not line.strip():
            break
        if line.startswith("/"):
            person = await _command(line, person, gateway, world, console)
            show_new()
            continue
        sender = _PEOPLE[person][0]
        if line.startswith("@"):
            text = line[1:].strip()
            # "@Helper text" and "@ text" both mention the bot once
            text = text.removeprefix("Helper").strip()
            await world.say(sender, text, room=FAMILY, mention=True)
        elif line.startswith("#"):
            await world.say(sender, line[1:].strip(), room=FAMILY)
        else:
            await world.say(sender, line)
        show_new()


async def _command(
    line: str, person: str, gateway: Gateway, world: SimulatedWeChat, console: Console
) -> str:
    """Runs one /command; returns who the person is now."""
    name, _, arg = line[1:].strip().partition(" ")
    arg = arg.strip()
    if name == "as" and arg.lower() in _PEOPLE:
        person = arg.lower()
        console.print(f"[dim]   you are now {_PEOPLE[person][1]}[/]")
    elif name == "approve" and arg:
        try:
            await world.drive(gateway.pairing.approve(arg.upper(), notify=True))
        except PairingError as exc:
            console.print(f"[red]   {escape(str(exc))}[/]")
    elif name == "help":
        console.print(_HELP.format(who=_PEOPLE[person][1]))
    else:
        console.print("[red]   unknown command[/] (try /help)")
    return person
