"""The terminal asks for the number an iLink login's phone shows (``gateway run`` in a
terminal): with a fake keyboard, and once on a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import os
import pty
import sys

import pytest

from wechat_sdk.gateway.verify_code import TerminalCodePrompt, read_terminal_line
from wechat_sdk.puppet import VerifyCodeNotAsked, VerifyCodeOutcome, verify_number


class Keyboard:
    """Lines typed, one per prompt shown (None: the input ended)."""

    def __init__(self) -> None:
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        self.prompts: list[str] = []

    async def read_line(self, prompt: str) -> str | None:
        self.prompts.append(prompt)
        return await self.lines.get()


class Login:
    """A puppet whose login takes 424242 and nothing else."""

    def __init__(self) -> None:
        self.given: list[str] = []
        self.asking = True

    async def submit_verify_code(self, code: str) -> VerifyCodeOutcome:
        number = verify_number(code)
        if not self.asking:
            raise VerifyCodeNotAsked("its login asks for no number now")
        self.given.append(number)
        return "accepted" if number == "424242" else "wrong"


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_number_typed_goes_to_the_login_and_a_bad_one_is_asked_again() -> None:
    keyboard, written, login = Keyboard(), list[str](), Login()
    prompt = TerminalCodePrompt(keyboard.read_line, written.append)
    prompt.ask("dm", login, wrong=False)
    await settle()
    assert keyboard.prompts == ["[dm] Enter the number WeChat shows on the phone: "]
    keyboard.lines.put_nowait("")  # Enter alone: asked again
    keyboard.lines.put_nowait("forty-two")
    await settle()
    assert keyboard.prompts[-1] == "give the number the phone shows: digits only, e.g. 123456: "
    keyboard.lines.put_nowait("424 242\n")
    await settle()
    assert login.given == ["424242"]
    assert written == ["the number is right: the login goes on\n"]


async def test_after_a_wrong_number_the_prompt_says_so() -> None:
    keyboard, login = Keyboard(), Login()
    prompt = TerminalCodePrompt(keyboard.read_line, lambda _: None)
    prompt.ask("dm", login, wrong=False)
    await settle()
    keyboard.lines.put_nowait("111111")
    await settle()
    assert login.given == ["111111"]  # wrong: the login asks again, and the gateway says so
    prompt.ask("dm", login, wrong=True)
    await settle()
    assert keyboard.prompts[-1] == (
        "That number is not the one the phone shows. "
        "[dm] Enter the number WeChat shows on the phone: "
    )


async def test_a_number_given_elsewhere_ends_the_question() -> None:
    keyboard, login = Keyboard(), Login()
    prompt = TerminalCodePrompt(keyboard.read_line, lambda _: None)
    prompt.ask("dm", login, wrong=False)
    await settle()
    prompt.cancel("dm")  # the login moved on (the API gave the number)
    await settle()
    keyboard.lines.put_nowait("424242")
    await settle()
    assert login.given == []
    # a question still open when the login stops asking ends, saying so
    written: list[str] = []
    prompt = TerminalCodePrompt(keyboard.read_line, written.append)
    login.asking = False
    prompt.ask("dm", login, wrong=False)
    await settle()
    keyboard.lines.put_nowait("424242")
    await settle()
    assert login.given == []
    assert written == ["[dm] no number is asked for now\n"]


async def test_a_number_the_api_gave_and_the_login_took_ends_the_terminals_question() -> None:
    from types import SimpleNamespace

    from wechat_sdk.gateway.verify_code import submit_verify_code

    keyboard, login = Keyboard(), Login()
    prompt = TerminalCodePrompt(keyboard.read_line, lambda _: None)
    gateway = SimpleNamespace(
        runners={"dm": SimpleNamespace(puppet=login)},
        accounts=SimpleNamespace(default_id="dm"),
        code_prompt=prompt,
    )
    prompt.ask("dm", login, wrong=False)
    await settle()
    assert await submit_verify_code(gateway, "dm", "424242") == "accepted"  # type: ignore[arg-type]
    await settle()
    keyboard.lines.put_nowait("111111")  # typed later: no question is open any more
    await settle()
    assert login.given == ["424242"]


async def test_the_end_of_the_input_says_where_else_to_give_it() -> None:
    keyboard, written, login = Keyboard(), list[str](), Login()
    prompt = TerminalCodePrompt(keyboard.read_line, written.append)
    prompt.ask("dm", login, wrong=False)
    await settle()
    keyboard.lines.put_nowait(None)
    await settle()
    assert written == [
        "\nno number read; give it with: wechat-sdk channels verify-code --account dm NUMBER\n"
    ]


async def test_the_end_of_the_input_names_the_state_directory_when_not_the_default() -> None:
    # `channels verify-code` finds the gateway by its state directory: a gateway run on
    # another one (a rehearsal's stateDir, --state-dir) is reached only with it
    from pathlib import Path

    from wechat_sdk.gateway.control import DEFAULT_STATE_DIR

    said: dict[str, list[str]] = {}
    for name, state_dir in (("other", Path("/srv/wechat bot")), ("default", DEFAULT_STATE_DIR)):
        keyboard, written, login = Keyboard(), list[str](), Login()
        prompt = TerminalCodePrompt(keyboard.read_line, written.append, state_dir=state_dir)
        prompt.ask("dm", login, wrong=False)
        await settle()
        keyboard.lines.put_nowait(None)
        await settle()
        said[name] = written
    assert said["other"] == [
        "\nno number read; give it with: wechat-sdk channels verify-code "
        "--state-dir '/srv/wechat bot' --account dm NUMBER\n"
    ]
    assert said["default"] == [
        "\nno number read; give it with: wechat-sdk channels verify-code --account dm NUMBER\n"
    ]


async def test_one_account_asks_at_a_time() -> None:
    keyboard, login = Keyboard(), Login()
    prompt = TerminalCodePrompt(keyboard.read_line, lambda _: None)
    prompt.ask("a", login, wrong=False)
    prompt.ask("b", login, wrong=False)
    await settle()
    assert len(keyboard.prompts) == 1 and keyboard.prompts[0].startswith("[a]")
    keyboard.lines.put_nowait("424242")
    await settle()
    assert keyboard.prompts[-1].startswith("[b]")


async def test_a_line_typed_on_a_real_terminal_is_read_without_blocking_the_loop(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    controller, terminal = pty.openpty()
    with os.fdopen(terminal, "r") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        reading = asyncio.ensure_future(read_terminal_line("number: "))
        await settle()
        assert not reading.done()  # waiting for the keyboard, the loop free meanwhile
        os.write(controller, b"123456\n")
        assert await asyncio.wait_for(reading, 10) == "123456\n"
        # a question cancelled stops watching the terminal
        cancelled = asyncio.ensure_future(read_terminal_line("number: "))
        await settle()
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert not asyncio.get_running_loop().remove_reader(stdin.fileno())
    os.close(controller)
    assert capsys.readouterr().out == "number: number: "
