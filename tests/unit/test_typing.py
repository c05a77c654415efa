"""'typing...' for a turn: a call under way when the turn ends is let finish, then cancelled."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from wechat_sdk.clock import RealClock
from wechat_sdk.outbound.typing import Typing


class SlowTyping:
    """A puppet whose typing calls take until the test lets them finish."""

    capabilities = SimpleNamespace(typing=True)

    def __init__(self) -> None:
        self.calls: list[tuple[bool, str]] = []  # (typing, "began" | "ended" | "cut")
        self.release = asyncio.Event()
        self.shown = asyncio.Event()  # a "typing" call began
        self.on = asyncio.Event()  # a "typing" call ended

    async def set_typing(self, conversation_id: str, typing: bool) -> None:
        self.calls.append((typing, "began"))
        if typing:
            self.shown.set()
        try:
            if typing:
                await self.release.wait()
        except asyncio.CancelledError:
            self.calls.append((typing, "cut"))
            raise
        self.calls.append((typing, "ended"))
        if typing:
            self.on.set()


async def test_a_typing_call_under_way_when_the_turn_ends_is_let_finish_then_cancelled() -> None:
    puppet = SlowTyping()
    showing: dict[str, Typing] = {}
    async with Typing(puppet, RealClock(), "alice", showing):  # type: ignore[arg-type]
        await puppet.shown.wait()
    # the turn ended (a fast answer) while "typing" was still on its way
    task = showing["alice"].task
    assert task is not None
    puppet.release.set()
    await asyncio.wait_for(task, 5)
    assert puppet.calls == [(True, "began"), (True, "ended"), (False, "began"), (False, "ended")]


async def test_a_turn_that_ends_before_its_typing_began_shows_none() -> None:
    puppet = SlowTyping()
    showing: dict[str, Typing] = {}
    before: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    last = SimpleNamespace(task=asyncio.ensure_future(before))  # its cancel, not out yet
    showing["alice"] = last  # type: ignore[assignment]
    async with Typing(puppet, RealClock(), "alice", showing):  # type: ignore[arg-type]
        pass
    task = showing["alice"].task
    assert task is not None
    before.set_result(None)
    await asyncio.wait_for(task, 5)
    assert puppet.calls == []


async def test_typing_is_refreshed_while_the_turn_goes_on_and_cut_between_calls() -> None:
    puppet = SlowTyping()
    puppet.release.set()
    showing: dict[str, Typing] = {}
    async with Typing(puppet, RealClock(), "alice", showing):  # type: ignore[arg-type]
        await puppet.on.wait()
        task = showing["alice"].task
    assert task is not None
    done, _ = await asyncio.wait({task}, timeout=5)  # cut in its sleep, not waited out
    assert task in done
    assert puppet.calls[-2:] == [(False, "began"), (False, "ended")]
    assert (True, "cut") not in puppet.calls


async def test_a_turn_cut_by_a_stop_cuts_its_typing_call_too() -> None:
    """A stop does not wait for a typing call (the puppet is about to close)."""
    puppet = SlowTyping()
    showing: dict[str, Typing] = {}

    async def turn() -> None:
        async with Typing(puppet, RealClock(), "alice", showing):  # type: ignore[arg-type]
            await asyncio.Event().wait()  # the agent thinks until the stop cuts it

    cut = asyncio.ensure_future(turn())
    await puppet.shown.wait()
    task = showing["alice"].task
    assert task is not None
    cut.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done
    assert (True, "cut") in puppet.calls


async def test_a_reply_that_goes_out_before_typing_could_is_sent_without_it() -> None:
    puppet = SlowTyping()
    puppet.release.set()
    showing: dict[str, Typing] = {}
    async with Typing(puppet, RealClock(), "alice", showing) as typing:  # type: ignore[arg-type]
        typing.replying()  # the reply went to the puppet at once ...
        await asyncio.sleep(0.05)  # ... and the turn goes on: its typing task runs meanwhile
        task = typing.task
    assert task is not None
    await asyncio.wait_for(task, 5)
    assert puppet.calls == []


async def test_typing_shown_before_the_reply_stays_until_the_turn_ends() -> None:
    puppet = SlowTyping()
    puppet.release.set()
    showing: dict[str, Typing] = {}
    async with Typing(puppet, RealClock(), "alice", showing):  # type: ignore[arg-type]
        await puppet.on.wait()
        showing["alice"].replying()  # the first message of the reply goes out
        task = showing["alice"].task
    assert task is not None
    done, _ = await asyncio.wait({task}, timeout=5)  # (cut in its sleep, then cancelled)
    assert task in done
    assert puppet.calls == [(True, "began"), (True, "ended"), (False, "began"), (False, "ended")]
