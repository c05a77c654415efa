"""A reply whose ``sendmessage`` finds the iLink server refusing connections, or its
address swallowing them (a connect that never completes): nothing left the gateway (the
connection was never made), so it is sent again once the server answers, once; an
answer lost after the request went stays ``outcome_unknown``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ilink_worlds import ilink_config
from silent_servers import connects_hang
from waiting import until

from simulator import SimulatedWeChat
from simulator.ilink import ILinkServer
from wechat_sdk import AgentTurn, Config, Gateway, OutboundFile, Reply, WindowClosed, parse_config
from wechat_sdk.adapters.ilink import api as ilink_api
from wechat_sdk.adapters.ilink import sending
from wechat_sdk.clock import RealClock
from wechat_sdk.outbound.window import MORE_NOTICE

ALICE = "alice@im.wechat"


async def test_a_reply_the_server_refused_to_connect_for_goes_when_it_is_back(
    tmp_path: Path,
) -> None:
    world = SimulatedWeChat(clock=RealClock())
    world.add_account("default", transport="ilink")
    world.add_contact(ALICE, name="Alice")
    server = await world.ilink_server(poll_hold_s=0.3)
    back: list[ILinkServer] = []

    async def agent(turn: AgentTurn) -> str:
        await server.close()  # the server goes away while the answer is made

        async def again() -> None:
            await asyncio.sleep(1.0)
            restarted = ILinkServer(world, poll_hold_s=0.3)
            await restarted.start(port=server.port)
            back.append(restarted)

        asyncio.get_running_loop().create_task(again())
        return f"echo: {turn.text}"

    try:
        async with Gateway(ilink_config(server), agent=agent, state_dir=tmp_path) as gateway:
            await _ready(world, gateway)
            await world.say(ALICE, "are you there?", account="default", settle=False)
            await until("the answer", lambda: world.texts(to=ALICE) != [], 60)
            await asyncio.sleep(1.0)  # (and nothing more comes)
            assert world.texts(to=ALICE) == ["echo: are you there?"]
    finally:
        for restarted in back:
            await restarted.close()


async def test_a_reply_whose_connect_never_completed_goes_once_when_the_server_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the server's address swallows each SYN while the answer is made: the send's
    # connect never completes, so nothing left; it is not given up as may-have-gone-out
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(ilink_api, "CONNECT_S", 0.5)
    world = SimulatedWeChat(clock=RealClock())
    world.add_account("default", transport="ilink")
    world.add_contact(ALICE, name="Alice")
    server = await world.ilink_server(poll_hold_s=0.3)
    hung = contextlib.AsyncExitStack()

    async def agent(turn: AgentTurn) -> str:
        await server.close()
        await hung.enter_async_context(connects_hang(server.port))
        return f"echo: {turn.text}"

    def send_failed() -> bool:
        return any("send failed" in r.getMessage() for r in caplog.records)

    back = ILinkServer(world, poll_hold_s=0.3)
    try:
        async with Gateway(ilink_config(server), agent=agent, state_dir=tmp_path) as gateway:
            await _ready(world, gateway)
            await world.say(ALICE, "are you there?", account="default", settle=False)
            await until("the send's first attempt ended", send_failed, 60)
            await hung.aclose()
            await back.start(port=server.port)  # the server answers again
            await until("the answer", lambda: world.texts(to=ALICE) != [], 60)
            await asyncio.sleep(1.0)  # (and nothing more comes)
            assert world.texts(to=ALICE) == ["echo: are you there?"]
    finally:
        await hung.aclose()
        await back.close()


def _parts_then_echo(parts: list[str]) -> Any:
    """An agent answering "hi" with ``parts`` (one a paragraph), anything else with its
    echo."""

    async def agent(turn: AgentTurn) -> str:
        return "\n\n".join(parts) if turn.text == "hi" else f"echo: {turn.text}"

    return agent


async def _ready(world: SimulatedWeChat, gateway: Gateway) -> None:
    """The simulated phone scans the QR code of ``default``; the account is ready."""
    await world.login("default")
    await until("ready", lambda: gateway.status()[0].lifecycle == "ready")


@contextlib.asynccontextmanager
async def _gateway_on(
    world: SimulatedWeChat, agent: Any, state_dir: Path
) -> AsyncIterator[Gateway]:
    """The world's iLink server and a gateway on it, its account ``default`` ready."""
    async with (
        await world.ilink_server(poll_hold_s=0.3) as server,
        Gateway(ilink_config(server), agent=agent, state_dir=state_dir) as gateway,
    ):
        await _ready(world, gateway)
        yield gateway


def _refusing_world(
    monkeypatch: pytest.MonkeyPatch, wait_s: float, *, refused_after_first: bool = False
) -> SimulatedWeChat:
    """A real-clock world with the iLink account ``default`` and Alice, the gateway's
    waits after a ``ret -2`` shortened to ``wait_s`` each; ``refused_after_first``: the
    server's window closes once the first message went (``ret -2`` from then on)."""
    monkeypatch.setattr(sending, "RATE_LIMIT_WAITS_S", (wait_s,) * 4)
    world = SimulatedWeChat(clock=RealClock())
    world.add_account("default", transport="ilink")
    world.add_contact(ALICE, name="Alice")
    if refused_after_first:
        record_out = world.record_out

        def refused_after_the_first(*args: Any, **kwargs: Any) -> str:
            world.fault("rate_limit", account="default", count=100)
            return record_out(*args, **kwargs)

        monkeypatch.setattr(world, "record_out", refused_after_the_first)
    return world


async def test_after_ilink_refuses_a_user_with_ret_2_all_along_nothing_goes_until_they_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """iLink's own reply window closed before the gateway's count says (it answers the
    same ``ret -2`` as for its rate limit): the reply is refused after the adapter's five
    tries (not five more rounds of the gateway's), the window is closed, and a send before
    the user writes again raises WindowClosed without asking the server; when they write
    again, the reply goes, then the answer to their new message."""
    world = _refusing_world(monkeypatch, 0.01)

    async def agent(turn: AgentTurn) -> str:
        return f"echo: {turn.text}"

    async with _gateway_on(world, agent, tmp_path) as gateway:
        world.fault("rate_limit", account="default", count=sending.SEND_ATTEMPTS)
        await world.say(ALICE, "hi", account="default", settle=False)
        faults = world.accounts["default"].faults
        await until("the refusals", lambda: faults["rate_limit"] == 0)
        await asyncio.sleep(2.0)  # (long enough for a retry of the gateway's to go)
        assert world.texts(to=ALICE) == []
        world.fault("rate_limit", account="default")  # (what the server would answer)
        with pytest.raises(WindowClosed):
            await gateway.send(ALICE, "a follow-up")
        assert faults["rate_limit"] == 1  # (the server was not asked)
        faults["rate_limit"] = 0
        await world.say(ALICE, "more", account="default", settle=False)
        await until("the answers", lambda: len(world.texts(to=ALICE)) == 2, 30)
        assert world.texts(to=ALICE) == ["echo: hi", "echo: more"]


@pytest.mark.parametrize("store", ["sqlite", "redis"])
async def test_the_rest_of_a_reply_ilink_refuses_mid_way_goes_after_the_users_next_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
    store: str,
) -> None:
    """iLink's window closes in the middle of a reply (its second message is refused with
    ``ret -2`` all along): that message is not given up but waits for the user's next
    message, as what a full window leaves does, and goes before the answer to it. So too
    on a Redis store, where the account is held by lease and each turn is journaled as it
    begins (as a stop journals the turns in flight)."""
    redis = ""
    if store == "redis":
        url, namespace = (request.getfixturevalue(f) for f in ("redis_url", "redis_namespace"))
        redis = f'store: {{ kind: "redis", url: "{url}", namespace: "{namespace}" }},'
    caplog.set_level(logging.INFO)
    world = _refusing_world(monkeypatch, 0.01, refused_after_first=True)

    async def agent(turn: AgentTurn) -> str:
        if turn.text == "hi":
            return "first part of the answer\n\nsecond part of the answer"
        return f"echo: {turn.text}"

    async with (
        await world.ilink_server(poll_hold_s=0.3) as server,
        Gateway(_short_chunks(server, redis), agent=agent, state_dir=tmp_path) as gateway,
    ):
        await _ready(world, gateway)
        await world.say(ALICE, "hi", account="default", settle=False)
        faults = world.accounts["default"].faults
        await until("the refusals", lambda: faults.get("rate_limit") == 100 - sending.SEND_ATTEMPTS)
        await until("kept", lambda: "reason=window_full" in caplog.text)
        assert world.texts(to=ALICE) == ["first part of the answer"]
        assert "send failed for good" not in caplog.text
        monkeypatch.delattr(world, "record_out")  # (the server's own again)
        faults["rate_limit"] = 0
        await world.say(ALICE, "more", account="default", settle=False)
        await until("the answer", lambda: len(world.texts(to=ALICE)) == 3, 30)
        assert world.texts(to=ALICE) == [
            "first part of the answer",
            "second part of the answer",
            "echo: more",
        ]


def _short_chunks(server: ILinkServer, more: str = "") -> Config:
    """:func:`ilink_config` with text cut into messages of at most 30 characters (and
    ``more`` keys)."""
    return _config(server, f"textChunkLimit: 30, {more}")


def _config(server: ILinkServer, more: str) -> Config:
    """:func:`ilink_config` with ``more`` keys."""
    return parse_config(
        f"""{{ channels: {{ wechat: {{
            puppet: "ilink",
            puppetOptions: {{ baseUrl: "{server.base_url}", cdnBaseUrl: "{server.cdn_base_url}" }},
            dmPolicy: "open", allowFrom: ["*"], qrCode: false, {more}
        }} }} }}"""
    )


async def test_a_reply_ilink_refuses_from_its_first_message_waits_in_its_own_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A reply longer than the reply window (its end waits for the user's next message
    from the start) whose first message iLink refuses with ``ret -2`` all along: all of it
    waits, and goes after the user writes again in the order the agent wrote it, not its
    end first."""
    caplog.set_level(logging.INFO)
    world = _refusing_world(monkeypatch, 0.01)
    parts = [f"part {n:02d} " + "x" * 1900 for n in range(1, 31)]  # (two a message)

    agent = _parts_then_echo(parts)

    async with _gateway_on(world, agent, tmp_path):
        world.fault("rate_limit", account="default", count=100)
        await world.say(ALICE, "hi", account="default", settle=False)
        faults = world.accounts["default"].faults
        await until("the refusals", lambda: faults.get("rate_limit") == 100 - sending.SEND_ATTEMPTS)
        await until("kept", lambda: caplog.text.count("reason=window_full") == 2)
        assert world.texts(to=ALICE) == []
        faults["rate_limit"] = 0
        await world.say(ALICE, "more", account="default", settle=False)
        await until("the first window", lambda: len(world.texts(to=ALICE)) >= 10, 30)
        await asyncio.sleep(1.0)
        sent = "\n".join(world.texts(to=ALICE))
        found = [p for p in parts if p in sent]
        assert found == sorted(found, key=sent.index)
        assert found[0] == parts[0]


@pytest.mark.parametrize("text", [None, "a note"], ids=["files only", "a text and files"])
async def test_a_proactive_send_refused_at_its_first_message_sends_and_keeps_none_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str | None
) -> None:
    """A proactive send whose first message iLink refuses with ``ret -2`` all along (of
    files only: its first file) raises WindowClosed, and none of it is sent or kept: the
    files after the first are not sent later, after the user's next message, behind the
    caller's back."""
    world = _refusing_world(monkeypatch, 0.01)

    async def agent(turn: AgentTurn) -> str:
        return f"echo: {turn.text}"

    files = [OutboundFile(name=f"note-{n}.txt", data=f"note {n}".encode()) for n in (1, 2, 3)]
    async with _gateway_on(world, agent, tmp_path) as gateway:
        await world.say(ALICE, "hi", account="default", settle=False)
        await until("the answer", lambda: world.texts(to=ALICE) == ["echo: hi"], 30)
        world.fault("rate_limit", account="default", count=sending.SEND_ATTEMPTS)
        waiting: list[Any] = []
        files_sent: list[str] = []
        with pytest.raises(WindowClosed, match="reply window closed"):
            await gateway.send(
                ALICE, Reply(text=text, files=files), files_sent=files_sent, waiting=waiting
            )
        assert (files_sent, waiting) == ([], [])
        await world.say(ALICE, "more", account="default", settle=False)
        await until("the answer", lambda: len(world.sent(to=ALICE)) >= 2, 30)
        await asyncio.sleep(1.0)  # (and nothing more comes)
        assert [(e.text, e.media) for e in world.sent(to=ALICE)] == [
            ("echo: hi", None),
            ("echo: more", None),
        ]


async def test_a_proactive_send_refused_at_its_first_message_keeps_not_what_overflowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A proactive send longer than the reply window (its end kept for the user's next
    message before its first message goes) whose first message iLink refuses with
    ``ret -2`` all along: none of it goes, its end included, and the caller is told
    (WindowClosed, nothing waiting)."""
    caplog.set_level(logging.INFO)
    world = _refusing_world(monkeypatch, 0.01)
    parts = [f"part {n:02d} " + "x" * 3_980 for n in range(1, 11)]  # (one a message)

    async def agent(turn: AgentTurn) -> str:
        return f"echo: {turn.text}"

    async with _gateway_on(world, agent, tmp_path) as gateway:
        await world.say(ALICE, "hi", account="default", settle=False)
        await until("the answer", lambda: world.texts(to=ALICE) == ["echo: hi"], 30)
        world.fault("rate_limit", account="default", count=sending.SEND_ATTEMPTS)
        waiting: list[Any] = []
        with pytest.raises(WindowClosed, match="reply window closed"):
            await gateway.send(ALICE, "\n\n".join(parts), waiting=waiting)
        assert "reason=window_full" in caplog.text  # (its end was kept, then taken back)
        assert waiting == []
        await world.say(ALICE, "more", account="default", settle=False)
        await until("the answer", lambda: len(world.texts(to=ALICE)) >= 2, 30)
        await asyncio.sleep(1.0)  # (and nothing more comes)
        assert world.texts(to=ALICE) == ["echo: hi", "echo: more"]


@pytest.mark.parametrize("size", [2_000, 3_980], ids=["notice at its end", "notice alone"])
async def test_a_refused_last_message_with_the_notice_goes_later_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, size: int
) -> None:
    """A reply longer than the reply window: its tenth message says that more follows
    (at its end, or as a message of its own when there is no room for it there), and its
    end waits for the user's next message. iLink refuses that tenth message with ``ret -2``
    all along: it waits too, before that end, and goes after the user's next message
    without the notice (the notice ends only a message that went before more waits; here
    nothing more went, and what goes later is the rest, as the agent wrote it)."""
    caplog.set_level(logging.INFO)
    world = _refusing_world(monkeypatch, 0.01)
    record_out = world.record_out
    went: list[str] = []

    def refused_after_nine(*args: Any, **kwargs: Any) -> str:
        went.append("")
        if len(went) == 9:  # the server's window closes once nine went: ret -2 from then on
            world.fault("rate_limit", account="default", count=100)
        return record_out(*args, **kwargs)

    monkeypatch.setattr(world, "record_out", refused_after_nine)
    parts = [f"part {n:02d} " + "x" * size for n in range(1, 13)]  # (one a message)

    agent = _parts_then_echo(parts)

    async with _gateway_on(world, agent, tmp_path):
        await world.say(ALICE, "hi", account="default", settle=False)
        faults = world.accounts["default"].faults
        await until("the refusals", lambda: faults.get("rate_limit") == 100 - sending.SEND_ATTEMPTS)
        assert world.texts(to=ALICE) == parts[:9]
        monkeypatch.setattr(world, "record_out", record_out)
        faults["rate_limit"] = 0
        await world.say(ALICE, "more", account="default", settle=False)
        await until("the answer", lambda: world.texts(to=ALICE)[-1:] == ["echo: more"], 30)
        await asyncio.sleep(1.0)  # (and nothing more comes)
        assert world.texts(to=ALICE) == [*parts, "echo: more"]


async def _restarted(
    world: SimulatedWeChat, config: Config, agent: Any, state_dir: Path
) -> Gateway:
    """A gateway started again on ``state_dir`` (the kept login: no scan), ready."""
    gateway = Gateway(config, agent=agent, state_dir=state_dir)
    await gateway.start()
    await until("ready", lambda: gateway.status()[0].lifecycle == "ready")
    return gateway


@pytest.mark.parametrize("grace_s", [10.0, 0.2], ids=["refused within", "refused after"])
async def test_the_rest_of_a_reply_refused_during_a_stop_goes_once_after_the_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, grace_s: float
) -> None:
    """A stop begins while iLink refuses the second message of a reply with ``ret -2``
    (the five tries take their time), and the refusals end within its grace period, or
    after it (the send under way is let land): what the stop journaled of the reply is
    not given up (it was dropped) but waits for the user's next message, as the rest of a
    refused reply does without a stop; after the restart it goes once, in order, before
    the answer to that message."""
    world = _refusing_world(monkeypatch, 0.3, refused_after_first=True)
    parts = ["first part of the answer", "second part of the answer", "third part of it"]

    agent = _parts_then_echo(parts)

    async with await world.ilink_server(poll_hold_s=0.3) as server:
        config = _short_chunks(server)
        gateway = Gateway(config, agent=agent, state_dir=tmp_path)
        await gateway.start()
        try:
            await _ready(world, gateway)
            await world.say(ALICE, "hi", account="default", settle=False)
            faults = world.accounts["default"].faults
            await until("the first refusal", lambda: faults.get("rate_limit", 100) < 100)
        finally:
            await gateway.close(grace_s=grace_s)  # (while the send is tried again)
        assert faults["rate_limit"] == 100 - sending.SEND_ATTEMPTS
        assert world.texts(to=ALICE) == parts[:1]
        monkeypatch.delattr(world, "record_out")  # (the server's own again)
        faults["rate_limit"] = 0
        gateway = await _restarted(world, config, agent, tmp_path)
        try:
            await asyncio.sleep(0.5)
            assert world.texts(to=ALICE) == parts[:1]  # (it waits for the user)
            await world.say(ALICE, "more", account="default", settle=False)
            await until("the answer", lambda: world.texts(to=ALICE)[-1:] == ["echo: more"], 30)
            await asyncio.sleep(1.0)  # (and nothing more comes)
            assert world.texts(to=ALICE) == [*parts, "echo: more"]
        finally:
            await gateway.close()


@pytest.mark.parametrize("answered", [False, True], ids=["before the stop", "during it"])
async def test_a_refused_reply_end_that_a_stop_journaled_goes_in_order_without_the_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answered: bool
) -> None:
    """A reply longer than the reply window (its end waits for the user's next message,
    kept as it was planned: before the stop began, or, answered during it, by the stop's
    journal), whose tenth message, the one that says that more follows, iLink refuses
    with ``ret -2`` while a stop journals the reply: that message waits before the end,
    without the notice, and after the restart all of it goes once, in order, after the
    user's next message."""
    world = _refusing_world(monkeypatch, 0.3)
    record_out = world.record_out
    went: list[str] = []

    def refused_after_nine(*args: Any, **kwargs: Any) -> str:
        went.append("")
        if len(went) == 9:
            world.fault("rate_limit", account="default", count=100)
        return record_out(*args, **kwargs)

    monkeypatch.setattr(world, "record_out", refused_after_nine)
    parts = [f"part {n:02d} " + "x" * 2_000 for n in range(1, 13)]  # (one a message)
    asked, answer = asyncio.Event(), asyncio.Event()

    async def agent(turn: AgentTurn) -> str:
        if turn.text != "hi":
            return f"echo: {turn.text}"
        asked.set()
        if answered:
            await answer.wait()
        return "\n\n".join(parts)

    async with await world.ilink_server(poll_hold_s=0.3) as server:
        config = ilink_config(server)
        gateway = Gateway(config, agent=agent, state_dir=tmp_path)
        await gateway.start()
        try:
            await _ready(world, gateway)
            await world.say(ALICE, "hi", account="default", settle=False)
            faults = world.accounts["default"].faults
            if answered:  # (the stop journals the turn, then its reply as it is planned)
                await asyncio.wait_for(asked.wait(), 30)
                closing = asyncio.ensure_future(gateway.close(grace_s=60))
                await asyncio.sleep(0.3)
                answer.set()
                await closing
            else:
                await until("the first refusal", lambda: faults.get("rate_limit", 100) < 100, 30)
        finally:
            await gateway.close()  # (while the send is tried again)
        assert faults["rate_limit"] == 100 - sending.SEND_ATTEMPTS
        assert world.texts(to=ALICE) == parts[:9]
        monkeypatch.setattr(world, "record_out", record_out)
        faults["rate_limit"] = 0
        gateway = await _restarted(world, config, agent, tmp_path)
        try:
            await world.say(ALICE, "more", account="default", settle=False)
            await until("the answer", lambda: world.texts(to=ALICE)[-1:] == ["echo: more"], 30)
            await asyncio.sleep(1.0)  # (and nothing more comes)
            assert world.texts(to=ALICE) == [*parts, "echo: more"]
        finally:
            await gateway.close()


async def test_a_reply_the_servers_own_full_window_refuses_waits_for_the_users_next_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's count of the reply window is ahead of the gateway's (messages another
    client sent with the bot's token, say): it refuses the reply as the real server does,
    with ``ret -2``, the answer it gives a rate limit too. The gateway tries five times,
    then takes the window as closed: the reply waits for the user's next message (it is
    not refused for good and lost), and goes before the answer to it."""
    world = _refusing_world(monkeypatch, 0.01)

    async def agent(turn: AgentTurn) -> str:
        if turn.text == "hi":  # (meanwhile ten messages went to Alice from elsewhere)
            world.ilink_state.bot("default").window(ALICE).sent_since = 10
        return f"echo: {turn.text}"

    async with _gateway_on(world, agent, tmp_path):
        await world.say(ALICE, "hi", account="default", settle=False)
        refusals = lambda: [e for e in world.events_log if e["event"] == "window_closed"]  # noqa: E731
        await until("the refusals", lambda: len(refusals()) == sending.SEND_ATTEMPTS)
        await asyncio.sleep(0.5)  # (and no more)
        assert len(refusals()) == sending.SEND_ATTEMPTS and world.texts(to=ALICE) == []
        await world.say(ALICE, "more", account="default", settle=False)
        await until("the answers", lambda: len(world.texts(to=ALICE)) == 2, 30)
        assert world.texts(to=ALICE) == ["echo: hi", "echo: more"]


@pytest.mark.parametrize("grace_s", [0.2, 3.0], ids=["during the refusals", "after them"])
async def test_a_later_turns_reply_a_stop_cut_goes_after_the_refused_rest_of_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, grace_s: float
) -> None:
    """iLink refuses the second message of a reply with ``ret -2`` while a stop waits
    (its grace period ends during the five tries, or after them), and the user's second
    message waits behind that reply: its turn is answered once the refusal landed, and the
    stop cuts its reply (a stream that said a sentence) before it went. After the
    restart, that reply goes after the first reply's refused rest, when the user writes
    again, not before it at the start: replies to one user go in the order of their
    turns."""
    world = _refusing_world(monkeypatch, 0.3, refused_after_first=True)
    parts = ["first part of the answer", "second part of the answer", "third part of it"]

    async def said_then_stalled() -> AsyncIterator[str]:
        yield "fine, and you?"
        await asyncio.sleep(3600)  # (the stop cuts it here)

    async def agent(turn: AgentTurn) -> str | AsyncIterator[str]:
        if turn.text == "hi":
            return "\n\n".join(parts)
        if turn.text == "how are you?":
            return said_then_stalled()
        return f"echo: {turn.text}"

    async with await world.ilink_server(poll_hold_s=0.3) as server:
        config = _short_chunks(server)
        gateway = Gateway(config, agent=agent, state_dir=tmp_path)
        await gateway.start()
        try:
            await _ready(world, gateway)
            await world.say(ALICE, "hi", account="default", settle=False)
            faults = world.accounts["default"].faults
            await until("the first refusal", lambda: faults.get("rate_limit", 100) < 100)
            heard = gateway.status()[0].last_inbound
            await world.say(ALICE, "how are you?", account="default", settle=False)
            await until("the second message", lambda: gateway.status()[0].last_inbound != heard)
            await asyncio.sleep(0.2)  # (its turn waits behind the first)
        finally:
            await gateway.close(grace_s=grace_s)  # (while the send is tried again)
        assert faults["rate_limit"] == 100 - sending.SEND_ATTEMPTS
        assert world.texts(to=ALICE) == parts[:1]
        monkeypatch.delattr(world, "record_out")  # (the server's own again)
        faults["rate_limit"] = 0
        gateway = await _restarted(world, config, agent, tmp_path)
        try:
            await asyncio.sleep(1.0)
            assert world.texts(to=ALICE) == parts[:1]  # (all of it waits for the user)
            await world.say(ALICE, "more", account="default", settle=False)
            await until("the answer", lambda: world.texts(to=ALICE)[-1:] == ["echo: more"], 30)
            await asyncio.sleep(1.0)  # (and nothing more comes)
            assert world.texts(to=ALICE) == [*parts, "fine, and you?", "echo: more"]
        finally:
            await gateway.close()


async def test_a_kept_message_with_the_notice_refused_at_the_restart_goes_later_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply longer than the reply window: its tenth message says that more follows,
    and its end waits for the user's next message. A stop cuts the reply before that
    tenth message went (it waited for its pacing), and keeps it, notice and all, for the
    start. At the restart iLink refuses it (``ret -2`` all along): it waits for the
    user's next message, before the end, and goes then without the notice (it went in
    the middle of the reply: the notice ends only the last message that went)."""
    world = _refusing_world(monkeypatch, 0.01)
    parts = [f"part {n:02d} " + "x" * 2_000 for n in range(1, 13)]  # (one a message)

    agent = _parts_then_echo(parts)

    async with await world.ilink_server(poll_hold_s=0.3) as server:
        # nine messages at once, then one each 5 s: the tenth waits when the stop comes
        config = _config(server, "pacing: { perSecond: 0.2, burst: 9, chunkGapMs: 0, jitterMs: 0 }")
        gateway = Gateway(config, agent=agent, state_dir=tmp_path)
        await gateway.start()
        try:
            await _ready(world, gateway)
            await world.say(ALICE, "hi", account="default", settle=False)
            await until("nine messages", lambda: len(world.texts(to=ALICE)) == 9, 30)
        finally:
            await gateway.close(grace_s=0.5)  # (while the tenth waits for its pacing)
        assert world.texts(to=ALICE) == parts[:9]
        world.fault("rate_limit", account="default", count=100)
        faults = world.accounts["default"].faults
        gateway = await _restarted(world, config, agent, tmp_path)
        try:
            await until("the refusals", lambda: faults["rate_limit"] == 100 - sending.SEND_ATTEMPTS)
            await asyncio.sleep(0.5)
            assert world.texts(to=ALICE) == parts[:9]
            faults["rate_limit"] = 0
            await world.say(ALICE, "more", account="default", settle=False)
            await until("the answer", lambda: world.texts(to=ALICE)[-1:] == ["echo: more"], 30)
            await asyncio.sleep(1.0)  # (and nothing more comes)
            assert not [t[-60:] for t in world.texts(to=ALICE) if MORE_NOTICE in t]
            assert world.texts(to=ALICE) == [*parts, "echo: more"]
        finally:
            await gateway.close()


@pytest.mark.parametrize("through", ["python", "http"])
async def test_an_approval_whose_notice_ilink_refuses_is_approved_and_not_notified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, through: str
) -> None:
    """The owner approves a stranger with ``notify`` while iLink refuses the notice with
    ``ret -2`` all along (its window closed before the gateway's count says): the sender
    is approved all the same, and the approval answers so (``PairingAPI.approve`` returns
    it, the HTTP API ``notified: false``), as when the notice fails otherwise; not an
    error out of the approval (the HTTP API answered 500)."""
    import aiohttp

    world = _refusing_world(monkeypatch, 0.01)
    token = "test-token-0123456789abcdef"

    async def agent(turn: AgentTurn) -> str:
        return f"echo: {turn.text}"

    async with await world.ilink_server(poll_hold_s=0.3) as server:
        cdn = server.cdn_base_url
        config = parse_config(
            f"""{{ channels: {{ wechat: {{
                puppet: "ilink", api: {{ port: 0, token: "{token}" }},
                puppetOptions: {{ baseUrl: "{server.base_url}", cdnBaseUrl: "{cdn}" }},
                dmPolicy: "pairing", qrCode: false,
            }} }} }}"""
        )
        async with Gateway(config, agent=agent, state_dir=tmp_path) as gateway:
            await _ready(world, gateway)
            await world.say(ALICE, "hi", account="default", settle=False)
            await until("the code", lambda: gateway.pairing.list() != [], 30)
            await until("the code sent", lambda: len(world.texts(to=ALICE)) == 1, 30)
            (request,) = gateway.pairing.list()
            world.fault("rate_limit", account="default", count=sending.SEND_ATTEMPTS)
            if through == "python":
                approved = await gateway.pairing.approve(request.code, notify=True)
                assert approved.sender_id == ALICE
            else:
                assert gateway.http is not None and gateway.http.api_url
                async with (
                    aiohttp.ClientSession() as http,
                    http.post(
                        f"{gateway.http.api_url}/v1/pairing/{request.code}/approve",
                        json={"notify": True},
                        headers={"Authorization": f"Bearer {token}"},
                    ) as response,
                ):
                    body = await response.json()
                    assert (response.status, body["notified"]) == (200, False), body
            assert world.accounts["default"].faults["rate_limit"] == 0  # (it was tried)
            assert [a.sender_id for a in gateway.pairing.approved("default")] == [ALICE]
