"""The number the phone shows at an iLink QR login (``need_verifycode``), from the person
to the login that waits for it.

The login takes it from one source, the puppet's
:meth:`~wechat_sdk.puppet.TakesVerifyCode.submit_verify_code`; two things feed it:

- the terminal, while ``gateway run`` runs in one (:class:`TerminalCodePrompt`: asked
  like Tencent's client asks, the account named);
- the running gateway's control plane, for a gateway in the background
  (:func:`submit_verify_code`): ``POST /v1/accounts/{id}/login/verify-code`` and
  ``wechat-sdk channels verify-code --account ID NUMBER``.

The number is no secret, but it is never logged: the log says that one was given and
what became of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from wechat_sdk.gateway.control import state_dir_option
from wechat_sdk.puppet import TakesVerifyCode, VerifyCodeNotAsked, VerifyCodeOutcome

if TYPE_CHECKING:
    from wechat_sdk.gateway.gateway import Gateway

__all__ = [
    "ASKED",
    "OUTCOME_WORDS",
    "WRONG",
    "CodePrompt",
    "TerminalCodePrompt",
    "VerifyCodeProblem",
    "cli_command",
    "read_terminal_line",
    "submit_verify_code",
]

log = logging.getLogger("wechat_sdk.gateway")

#: the account's state detail while its login waits for the number (``gateway status``)
ASKED = "enter the number the phone shows"
#: ... after a wrong one
WRONG = "wrong number: enter the number the phone shows"
#: what became of a number, in words (the API's ``message``, the CLI's line)
OUTCOME_WORDS: dict[VerifyCodeOutcome, str] = {
    "accepted": "the number is right: the login goes on",
    "wrong": "wrong number: it is not the one the phone shows; give the number it shows now",
    "blocked": "too many wrong numbers: this QR code is blocked; scan the new QR code",
    "expired": "the QR code expired before the number was checked: scan the new QR code",
    "pending": "the number was given; the login has not answered yet (see the account's state)",
}


def cli_command(account_id: str, state_dir: Path | None) -> str:
    """The command that gives the number to a gateway on ``state_dir`` from another shell.

    The CLI finds the running gateway by its state directory, so a gateway on another one
    than the default (a rehearsal's ``stateDir``, ``--state-dir``) is named with it.
    """
    where = state_dir_option(state_dir)
    return f"wechat-sdk channels verify-code{where} --account {account_id} NUMBER"


class VerifyCodeProblem(Exception):
    """A number the gateway cannot give to a login; ``code`` for programs (the HTTP API's
    error code), the message says what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def submit_verify_code(
    gateway: Gateway, account_id: str | None, code: str
) -> VerifyCodeOutcome:
    """Give the number to the login of ``account_id`` (None: the default account) on
    ``gateway``; what became of it. Raises :class:`VerifyCodeProblem`."""
    account = account_id or gateway.accounts.default_id
    runner = gateway.runners.get(account)
    if runner is None:
        running = ", ".join(gateway.runners) or "none"
        raise VerifyCodeProblem(
            "account_not_running",
            f"account {account!r} is not running here (running: {running})",
        )
    puppet = runner.puppet
    if not isinstance(puppet, TakesVerifyCode):
        raise VerifyCodeProblem(
            "verify_code_not_supported",
            f"account {account!r} uses puppet {runner.account.settings.puppet!r}, whose "
            "login never asks for a number (only iLink's does): scan and confirm on the phone",
        )
    try:
        outcome = await puppet.submit_verify_code(code)
    except ValueError as exc:
        raise VerifyCodeProblem("invalid_request", str(exc)) from None
    except VerifyCodeNotAsked as exc:
        raise VerifyCodeProblem(
            "verify_code_not_asked", f"account {account!r} is not waiting for a number: {exc}"
        ) from None
    log.info(
        "a number was given for the login: %s", OUTCOME_WORDS[outcome], extra={"account": account}
    )
    if outcome == "accepted" and gateway.code_prompt is not None:
        gateway.code_prompt.cancel(account)  # the terminal no longer asks for it
    return outcome


class CodePrompt(Protocol):
    """Asks a person for the number (the connection calls it when the login waits)."""

    def ask(self, account_id: str, puppet: TakesVerifyCode, *, wrong: bool) -> None:
        """Ask (again, after a wrong number, when ``wrong``); returns at once."""
        ...

    def cancel(self, account_id: str) -> None:
        """Stop asking: the login moved on (the number came from elsewhere, a new QR code)."""
        ...


#: reads one line typed after showing a prompt; None at the end of the input
ReadLine = Callable[[str], Awaitable[str | None]]


class TerminalCodePrompt:
    """Asks on the terminal, as Tencent's client does: ``gateway run`` with stdin a terminal.

    One account asks at a time (one keyboard); a number typed goes to the puppet, a wrong
    one is said and asked again (the login says so), and a number given through the API
    or CLI meanwhile ends the question. ``read_line`` and ``write``: the terminal (tests
    give their own); ``state_dir``: the gateway's, for the command given when the input
    ends.
    """

    def __init__(
        self,
        read_line: ReadLine | None = None,
        write: Callable[[str], None] | None = None,
        *,
        state_dir: Path | None = None,
    ) -> None:
        self._read = read_line or read_terminal_line
        self._write = write or _write_stdout
        self._state_dir = state_dir
        self._asking: dict[str, asyncio.Task[None]] = {}
        self._turn: asyncio.Lock | None = None

    def ask(self, account_id: str, puppet: TakesVerifyCode, *, wrong: bool) -> None:
        self.cancel(account_id)
        task = asyncio.get_running_loop().create_task(self._ask(account_id, puppet, wrong))
        self._asking[account_id] = task
        task.add_done_callback(lambda t: self._done(account_id, t))

    def cancel(self, account_id: str) -> None:
        task = self._asking.pop(account_id, None)
        if task is not None:
            task.cancel()

    def _done(self, account_id: str, task: asyncio.Task[None]) -> None:
        if self._asking.get(account_id) is task:
            del self._asking[account_id]

    async def _ask(self, account_id: str, puppet: TakesVerifyCode, wrong: bool) -> None:
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:
            note = "That number is not the one the phone shows. " if wrong else ""
            prompt = f"{note}[{account_id}] Enter the number WeChat shows on the phone: "
            while True:
                line = await self._read(prompt)
                if line is None:  # the input ended (Ctrl-D): the control plane still can
                    command = cli_command(account_id, self._state_dir)
                    self._write(f"\nno number read; give it with: {command}\n")
                    return
                if not line.strip():
                    continue
                try:
                    outcome = await puppet.submit_verify_code(line)
                except ValueError as exc:
                    prompt = f"{exc}: "
                    continue
                except VerifyCodeNotAsked:  # given elsewhere meanwhile, or the code moved on
                    self._write(f"[{account_id}] no number is asked for now\n")
                    return
                if outcome in ("accepted", "pending"):
                    self._write(f"{OUTCOME_WORDS[outcome]}\n")
                return  # wrong: the login asks again (a new prompt); blocked: a new QR code


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


async def read_terminal_line(prompt: str) -> str | None:
    """Show ``prompt`` on stdout and read one line from stdin, without blocking the event
    loop (the loop watches stdin); None at the end of the input or when stdin cannot be
    watched. Cancelling stops watching."""
    _write_stdout(prompt)
    loop = asyncio.get_running_loop()
    line: asyncio.Future[str] = loop.create_future()

    def readable() -> None:
        if not line.done():
            line.set_result(sys.stdin.readline())

    try:
        fd = sys.stdin.fileno()
        loop.add_reader(fd, readable)
    except (OSError, ValueError, NotImplementedError, AttributeError):
        return None
    try:
        text = await line
    finally:
        with contextlib.suppress(Exception):
            loop.remove_reader(fd)
    return text or None
