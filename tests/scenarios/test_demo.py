"""`wechat-sdk demo`: what a newcomer watches, and the interactive turn after it."""

from __future__ import annotations

import builtins
import re
import subprocess
import sys

import pytest
from rich.console import Console

from simulator.demo import run_demo


def recording_console() -> Console:
    return Console(record=True, width=200, highlight=False, soft_wrap=True, color_system=None)


async def test_the_qr_lines_come_under_their_heading_with_the_status_in_words() -> None:
    console = recording_console()
    await run_demo(console)
    lines = console.export_text().splitlines()
    heading = lines.index("1. QR login: two WeChat accounts scan their codes")
    first_qr = next(i for i, line in enumerate(lines) if "[WeChat]" in line)
    assert heading < first_qr
    statuses = [line for line in lines if "[WeChat] QR Code status:" in line]
    assert statuses, lines
    # the seed's exact line, and the meaning beside it
    assert all(re.search(r"\[WeChat\] QR Code status: \d  <- \w", line) for line in statuses)
    assert any("status: 2  <- waiting for a scan" in line for line in statuses)
    # the QR code is drawn with text blocks under its link
    link = next(i for i, line in enumerate(lines) if "Scan QR Code at:" in line)
    assert "█" in lines[link + 1] and "▄" in "".join(lines[link + 1 : link + 20])


async def test_the_assistant_chapter_shows_a_tool_call_and_its_answer() -> None:
    console = recording_console()
    await run_demo(console)
    lines = console.export_text().splitlines()
    chapter = lines[
        lines.index("8. An assistant from the config calls a tool (a fake model, offline)") :
    ]
    text = "\n".join(chapter)
    assert 'the model called weather({"city": "Hangzhou"})' in text
    answer = next(line for line in chapter if "bot ai -> Olivia (owner):" in line)
    assert answer.endswith(
        "It will be sunny, 24 °C in Hangzhou tomorrow: a good day for West Lake."
    )


def test_the_demo_written_to_a_file_keeps_each_link_on_one_line() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "wechat_sdk", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    links = [line for line in out.splitlines() if "Scan QR Code at:" in line]
    assert len(links) == 2
    assert all(re.search(r"https://wechaty\.js\.org/qrcode/\S+-[0-9a-f]{8}$", x) for x in links)
    # the closing line names every account the demo ran, chapter 8's assistant too
    assert re.search(
        r"^Done\. default: ready, \d+ sent, work: ready, 1 sent, ai: ready, 1 sent\.", out, re.M
    )


@pytest.fixture
def typed(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Lines for the interactive turn; a callable entry is given the output so far."""
    script: list[object] = []
    console_box: list[Console] = []

    def fake_input(prompt: str = "") -> str:
        if not script:
            raise EOFError
        entry = script.pop(0)
        if callable(entry):
            return str(entry(console_box[0].export_text(clear=False)))
        return str(entry)

    monkeypatch.setattr(builtins, "input", fake_input)
    script.append(console_box)  # the test puts its console here first
    return script


async def run_interactive(typed: list[object], lines: list[object]) -> list[str]:
    console = recording_console()
    box = typed.pop(0)
    assert isinstance(box, list)
    box.append(console)
    typed.extend(lines)
    await run_demo(console, interactive=True)
    text = console.export_text()
    return text[text.index("Your turn.") :].splitlines()


def bot_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if " bot default -> " in line]


async def test_a_mention_typed_with_the_bots_name_is_said_once(typed: list[object]) -> None:
    lines = await run_interactive(typed, ["@Helper are we still on?", "@ and tomorrow?"])
    said = [line for line in lines if "in Family group -> default" in line]
    assert [line.split(": ", 1)[1].replace("\u2005", " ") for line in said] == [
        "@Helper are we still on?",
        "@Helper and tomorrow?",
    ]
    replies = bot_lines(lines)
    assert replies[0].endswith("in Family: are we still on?"), replies
    assert replies[1].endswith("in Family: and tomorrow?"), replies
    assert not any("Helper Helper" in line or "said in Family: Helper" in line for line in lines)


async def test_a_group_message_without_a_mention_gets_no_answer(typed: list[object]) -> None:
    lines = await run_interactive(typed, ["# nobody asked the bot"])
    assert any("in Family group -> default: nobody asked the bot" in line for line in lines)
    assert bot_lines(lines) == []


async def test_you_can_be_a_stranger_get_a_code_and_approve_it(typed: list[object]) -> None:
    def approve_the_code(output: str) -> str:
        return "/approve " + re.findall(r"Pairing code: (\w+)", output)[-1]

    lines = await run_interactive(
        typed,
        ["/as riley", "hello there", approve_the_code, "hello again"],
    )
    replies = [line for line in lines if "bot default -> Riley" in line]
    assert "Pairing code:" in "\n".join(lines)
    assert "wechat-sdk pairing approve" in "\n".join(lines)
    assert any("You're approved" in line for line in replies)
    assert replies[-1].endswith("You said: hello again")


async def test_a_long_message_is_chunked_with_text_in_every_chunk(typed: list[object]) -> None:
    long_text = " ".join(f"word{i}" for i in range(900))
    lines = await run_interactive(typed, [long_text])
    replies = bot_lines(lines)
    assert len(replies) > 1
    assert all("word" in line for line in replies)
