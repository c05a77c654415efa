"""The event catalogue's example payloads (docs/examples/webhook_events/*.json) are what a
gateway on the simulator really sends: this test runs a conversation that makes every event
type, receives them on a real endpoint, and compares each with its file in the docs.

Run it with ``WECHAT_SDK_WRITE_DOCS=1`` to write the files anew after a change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from webhook_receiver import Receiver, whsec

from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.agent import AgentTurn
from wechat_sdk.events import EVENT_TYPES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "examples" / "webhook_events"


async def echo(turn: AgentTurn) -> str:
    return f"echo: {turn.text}"


async def every_event(wechat: WeChatHarness, receiver: Receiver) -> dict[str, dict[str, Any]]:
    world = wechat.world
    world.add_contact("wxid_alice", "Alice")
    world.add_contact("wxid_bob", "Bob")
    gw = await wechat.gateway(
        echo,
        name="Molty",
        allowFrom=["wxid_alice"],
        webhooks=[{"url": receiver.url, "secret": receiver.secret, "events": ["*"]}],
    )
    await world.say("wxid_alice", "hello")
    await world.say("wxid_bob", "hi, who is this?")
    await world.run_until_idle()
    (request,) = gw.pairing.list()
    await gw.pairing.approve(request.code)
    world.fault("send_fail_permanent")
    await world.say("wxid_alice", "are you there?")
    await world.run_until_idle()
    world.fault("logout")  # on the phone
    await world.run_until_idle()
    await gw.stop()  # the owner restarts it and scans again
    await gw.start()
    await world.login()
    # what an iLink account's puppet says when its login is refused (errcode -14)
    world.puppet("default").forced_logout("session expired")
    await world.run_until_idle()
    await receiver.wait_for(1, "account.session_expired")
    first: dict[str, dict[str, Any]] = {}
    for event in receiver.events():
        first.setdefault(event["type"], event)
    return first


async def test_every_event_type_is_sent_and_its_docs_example_is_what_was_sent(
    wechat: WeChatHarness,
) -> None:
    receiver = await Receiver(whsec(9)).start()
    try:
        events = await every_event(wechat, receiver)
    finally:
        await receiver.close()
    assert all(r.error is None for r in receiver.received)
    assert set(events) == set(EVENT_TYPES)
    write = os.environ.get("WECHAT_SDK_WRITE_DOCS") == "1"
    for event_type, payload in events.items():
        text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
        file = DOCS / f"{event_type}.json"
        if write:
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text, encoding="utf-8")
        assert file.read_text(encoding="utf-8") == text, f"{file.name} differs from what was sent"
