"""DM access on the simulator: dmPolicy, allowFrom and the pairing challenge, end to end."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from simulator import Recorder
from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.pairing.codes import ALPHABET, CODE_LENGTH
from wechat_sdk.pairing.service import Pairing, pairing_message
from wechat_sdk.stores.sqlite import SqliteStore

CODE_RE = re.compile(rf"Pairing code: ([{ALPHABET}]{{{CODE_LENGTH}}})\b")


def code_in(text: str) -> str:
    found = CODE_RE.search(text)
    assert found is not None, f"no pairing code in {text!r}"
    return found.group(1)


async def test_unknown_sender_gets_exactly_one_pairing_message_and_agent_is_not_called(
    wechat: WeChatHarness,
) -> None:
    agent = Recorder()
    await wechat.gateway(agent)
    world = wechat.world

    await world.say("wxid_stranger", "hello bot")

    texts = world.texts(to="wxid_stranger")
    assert len(texts) == 1
    code = code_in(texts[0])
    assert len(code) == 8
    assert "wxid_stranger" in texts[0]
    assert f"wechat-sdk pairing approve {code}" in texts[0]
    assert "--account" not in texts[0]
    assert agent.turns == []


async def test_pending_sender_writing_again_gets_no_second_message(
    wechat: WeChatHarness,
) -> None:
    agent = Recorder()
    gw = await wechat.gateway(agent)
    world = wechat.world

    await world.say("wxid_stranger", "hello")
    await world.say("wxid_stranger", "hello again?")
    await world.say("wxid_stranger", "anyone?")

    assert len(world.texts(to="wxid_stranger")) == 1
    assert len(gw.pairing.list()) == 1
    assert agent.turns == []
    assert gw.status()[0].drops["pairing_required"] == 3


async def test_approved_sender_is_answered_without_restart_and_has_no_history(
    wechat: WeChatHarness,
) -> None:
    agent = Recorder()
    gw = await wechat.gateway(agent)
    world = wechat.world

    await world.say("wxid_stranger", "secret before approval")
    code = code_in(world.texts(to="wxid_stranger")[0])
    approved = await gw.pairing.approve(code.lower())  # codes match case-insensitively
    assert approved.sender_id == "wxid_stranger"
    # no notify: nothing more is sent on approval
    assert len(world.texts(to="wxid_stranger")) == 1

    await world.say("wxid_stranger", "now?")

    assert [t.text for t in agent.turns] == ["now?"]
    assert agent.turns[0].history == ()  # the dropped message never entered history
    assert world.texts(to="wxid_stranger")[-1] == "echo: now?"


async def test_approve_with_notify_sends_the_approved_message(wechat: WeChatHarness) -> None:
    agent = Recorder()
    gw = await wechat.gateway(agent)
    world = wechat.world

    await world.say("wxid_stranger", "hi")
    code = code_in(world.texts(to="wxid_stranger")[0])
    # the notice goes out paced, on the world's virtual clock: let time run meanwhile
    approving = asyncio.create_task(gw.pairing.approve(code, notify=True))
    await world.run_until_idle()
    await approving

    texts = world.texts(to="wxid_stranger")
    assert len(texts) == 2
    assert "approved" in texts[1].lower()
    assert agent.turns == []


async def test_pairing_request_expires_after_one_hour_and_a_new_code_is_sent(
    wechat: WeChatHarness,
) -> None:
    agent = Recorder()
    gw = await wechat.gateway(agent)
    world = wechat.world

    await world.say("wxid_stranger", "hi")
    first = code_in(world.texts(to="wxid_stranger")[0])

    await world.advance(3000)
    await world.say("wxid_stranger", "still pending")
    assert len(world.texts(to="wxid_stranger")) == 1  # not yet expired: no new reply

    await world.advance(601)  # now more than an hour after the request
    await world.say("wxid_stranger", "hi again")

    texts = world.texts(to="wxid_stranger")
    assert len(texts) == 2
    second = code_in(texts[1])
    assert second != first
    assert [r.code for r in gw.pairing.list()] == [second]
    assert agent.turns == []


async def test_fourth_stranger_is_ignored_while_three_requests_are_pending(
    wechat: WeChatHarness, caplog: pytest.LogCaptureFixture
) -> None:
    agent = Recorder()
    gw = await wechat.gateway(agent)
    world = wechat.world

    for n in range(3):
        await world.say(f"wxid_s{n}", "hi")
    with caplog.at_level(logging.WARNING, logger="wechat_sdk.inbound"):
        await world.say("wxid_s3", "me too")

    for n in range(3):
        assert len(world.texts(to=f"wxid_s{n}")) == 1
    assert world.texts(to="wxid_s3") == []
    assert sorted(r.sender_id for r in gw.pairing.list()) == ["wxid_s0", "wxid_s1", "wxid_s2"]
    assert any("pairing_capped" in r.getMessage() for r in caplog.records)
    assert agent.turns == []


async def test_approval_from_another_process_reaches_the_running_gateway(
    wechat: WeChatHarness,
) -> None:
    agent = Recorder()
    await wechat.gateway(agent)
    world = wechat.world

    await world.say("wxid_stranger", "hi")
    code = code_in(world.texts(to="wxid_stranger")[0])

    cli_store = SqliteStore.in_state_dir(wechat.state_dir)  # what the CLI opens
    try:
        Pairing(cli_store.pairing, world.clock).approve(code)
    finally:
        cli_store.close()

    await world.say("wxid_stranger", "let me in")
    assert [t.text for t in agent.turns] == ["let me in"]
    assert world.texts(to="wxid_stranger")[-1] == "echo: let me in"


async def test_allowlist_answers_listed_senders_and_silently_drops_others(
    wechat: WeChatHarness,
) -> None:
    agent = Recorder()
    gw = await wechat.gateway(agent, dmPolicy="allowlist", allowFrom=["wxid_friend"])
    world = wechat.world

    await world.say("wxid_friend", "hi")
    await world.say("wxid_stranger", "hi")

    assert world.texts(to="wxid_friend") == ["echo: hi"]
    assert world.texts(to="wxid_stranger") == []  # no pairing message either
    assert gw.pairing.list() == []
    assert [t.sender_id for t in agent.turns] == ["wxid_friend"]
    assert gw.status()[0].drops.get("dm_not_allowed") == 1


async def test_open_policy_answers_everyone(wechat: WeChatHarness) -> None:
    agent = Recorder()
    await wechat.gateway(agent, dmPolicy="open", allowFrom=["*"])
    world = wechat.world

    await world.say("wxid_a", "one")
    await world.say("wxid_b", "two")

    assert world.texts(to="wxid_a") == ["echo: one"]
    assert world.texts(to="wxid_b") == ["echo: two"]


async def test_disabled_policy_drops_every_dm(wechat: WeChatHarness) -> None:
    agent = Recorder()
    gw = await wechat.gateway(agent, dmPolicy="disabled", allowFrom=["wxid_owner"])
    world = wechat.world

    await world.say("wxid_owner", "hi")
    await world.say("wxid_stranger", "hi")

    assert world.sent() == []
    assert agent.turns == []
    assert gw.status()[0].drops.get("dm_disabled") == 2


async def test_allow_from_prefixes_and_numbers_match_contact_ids(wechat: WeChatHarness) -> None:
    agent = Recorder()
    await wechat.gateway(
        agent,
        dmPolicy="allowlist",
        allowFrom=["wx:wxid_a", " WeChat:wxid_b ", "WX:wxid_c", 12345],
    )
    world = wechat.world

    for sender in ("wxid_a", "wxid_b", "wxid_c", "12345", "wx:wxid_a", "wxid_d"):
        await world.say(sender, "hi")

    assert sorted(t.sender_id for t in agent.turns) == ["12345", "wxid_a", "wxid_b", "wxid_c"]


async def test_allow_from_never_matches_display_names(wechat: WeChatHarness) -> None:
    agent = Recorder()
    wechat.world.add_contact("wxid_impostor", name="wxid_owner")
    await wechat.gateway(agent, dmPolicy="allowlist", allowFrom=["wxid_owner"])

    await wechat.world.say("wxid_impostor", "it's me")

    assert agent.turns == []


async def test_pairing_notify_owner_gets_a_notice_with_the_code(wechat: WeChatHarness) -> None:
    agent = Recorder()
    await wechat.gateway(agent, allowFrom=["wxid_owner"], pairingNotify="wxid_owner")
    world = wechat.world
    world.add_contact("wxid_stranger", name="Stranger Sam")

    await world.say("wxid_stranger", "hi")

    code = code_in(world.texts(to="wxid_stranger")[0])
    notices = world.texts(to="wxid_owner")
    assert len(notices) == 1
    assert code in notices[0]
    assert "wxid_stranger" in notices[0]
    assert "Stranger Sam" in notices[0]
    assert f"wechat-sdk pairing approve {code}" in notices[0]

    await world.say("wxid_stranger", "again")
    assert len(world.texts(to="wxid_owner")) == 1  # once per request


async def test_a_strangers_name_cannot_forge_the_lines_the_owner_approves_by(
    wechat: WeChatHarness,
) -> None:
    # the owner approves on the id the notice and `pairing list` show; a display name is
    # the stranger's to set, and its line breaks, a right-to-left override (which shows
    # what follows backwards) or a terminal's escape codes made the notice name another id
    agent = Recorder()
    gw = await wechat.gateway(agent, allowFrom=["wxid_owner"], pairingNotify="wxid_owner")
    world = wechat.world
    forged = "Mom (wxid_mom) wants to talk to the bot.\n\n\n\u202eEnd\x1b[2J" + " " * 300
    world.add_contact("wxid_stranger", name=forged)

    await world.say("wxid_stranger", "hi")

    (notice,) = world.texts(to="wxid_owner")
    first, *rest = notice.split("\n")
    assert first == (
        "New WeChat pairing request: Mom (wxid_mom) wants to talk to the bot. End [2J "
        "(wxid_stranger) wants to talk to the bot."
    )
    assert [line.split(":")[0] for line in rest] == ["Code", "Approve", "Deny"]
    (request,) = gw.pairing.list()
    assert request.sender_name == "Mom (wxid_mom) wants to talk to the bot. End [2J"


async def test_pairing_message_of_a_non_default_account_names_the_account(
    wechat: WeChatHarness,
) -> None:
    agent = Recorder()
    world = wechat.world
    world.add_account("b")
    gw = await wechat.gateway(
        agent, {"channels": {"wechat": {"accounts": {"a": {}, "b": {}}, "defaultAccountId": "a"}}}
    )
    assert sorted(gw.runners) == ["a", "b"]

    await world.say("wxid_stranger", "hi b", account="b")
    await world.say("wxid_other", "hi a", account="a")

    (to_b,) = world.texts(to="wxid_stranger", account="b")
    code_b = code_in(to_b)
    assert f"wechat-sdk pairing approve {code_b} --account b" in to_b
    (to_a,) = world.texts(to="wxid_other", account="a")
    assert "--account" not in to_a
    assert world.texts(to="wxid_stranger", account="a") == []

    # the approval is per account: approving on b lets the sender talk to b only
    await gw.pairing.approve(code_b, account="b")
    await world.say("wxid_stranger", "hello b", account="b")
    await world.say("wxid_stranger", "hello a", account="a")
    assert [(t.account_id, t.text) for t in agent.turns] == [("b", "hello b")]


async def test_pairing_message_template_override(wechat: WeChatHarness) -> None:
    agent = Recorder()
    await wechat.gateway(
        agent,
        name="Molty",
        pairingMessage="{botName} needs approval for {senderId}: {command} ({code}) {{literal}}",
    )
    world = wechat.world

    await world.say("wxid_stranger", "hi")

    (text,) = world.texts(to="wxid_stranger")
    found = re.fullmatch(
        rf"Molty needs approval for wxid_stranger: wechat-sdk pairing approve "
        rf"([{ALPHABET}]{{8}}) \(\1\) \{{literal\}}",
        text,
    )
    assert found is not None, text


async def test_pairing_notify_is_written_as_an_allow_from_entry(wechat: WeChatHarness) -> None:
    # "wechat:wxid_owner" (as allowFrom takes it) sent the notice to a contact named
    # "wechat:wxid_owner", which does not exist: the owner was never told, without a word
    agent = Recorder()
    await wechat.gateway(
        agent, allowFrom=["wechat:wxid_owner"], pairingNotify=" WeChat:wxid_owner "
    )
    world = wechat.world

    await world.say("wxid_stranger", "hi")

    code = code_in(world.texts(to="wxid_stranger")[0])
    (notice,) = world.texts(to="wxid_owner")
    assert code in notice


async def test_a_dm_from_another_account_of_the_gateway_is_not_answered(
    wechat: WeChatHarness,
) -> None:
    # one bot sending to the other (a proactive send, a tool): answered, the answer was
    # answered back, for ever; and under pairing each would send the other a code
    world = wechat.world
    world.add_account("b")
    agent = Recorder()
    gw = await wechat.gateway(agent, dmPolicy="open", allowFrom=["*"])

    await world.drive(gw.send("wxid_bot_b", "hello b", account="default"))
    await world.clock.advance(300)  # bounded: bots answering each other never go idle

    assert [(e.account, e.to, e.text) for e in world.sent()] == [
        ("default", "wxid_bot_b", "hello b")
    ]
    assert agent.turns == []
    assert next(s.drops for s in gw.status() if s.account == "b") == {"own_account": 1}


async def test_a_tiny_text_chunk_limit_never_cuts_the_code_or_the_approve_command(
    wechat: WeChatHarness,
) -> None:
    # with textChunkLimit 30 the command was cut mid-line ("wechat-sdk pairing approve" in
    # one message, "ABCD2345 --account work" in the next): nothing to copy and run
    agent = Recorder()
    world = wechat.world
    world.add_account("work")
    await wechat.gateway(
        agent,
        accounts={"default": {}, "work": {}},
        textChunkLimit=30,
        allowFrom=["wxid_owner"],
        pairingNotify="wxid_owner",
    )
    await world.say("wxid_stranger", "hi", account="work")
    to_stranger = world.texts(to="wxid_stranger")
    code = code_in("\n".join(to_stranger))
    command = f"wechat-sdk pairing approve {code} --account work"
    assert command in to_stranger, to_stranger  # a message of its own, whole
    assert f"Pairing code: {code}" in "\n".join(to_stranger).split("\n")
    # each message is whole lines of the text, in order, nothing lost; a line longer than
    # the limit alone
    expected = pairing_message("WeChat assistant", "wxid_stranger", code, "work", "default")
    said = [line for m in to_stranger for line in m.split("\n") if line]
    assert said == [line for line in expected.split("\n") if line]
    assert all(len(m) <= 30 or "\n" not in m for m in to_stranger)
    notice = world.texts(to="wxid_owner")
    assert f"Approve: {command}" in notice
    assert f"Deny: wechat-sdk pairing deny {code} --account work" in notice

    await world.say("wxid_owner", "a reply of more than thirty characters, in chunks")
    assert all(len(m) <= 30 for m in world.texts(to="wxid_owner")[len(notice) :])


async def test_a_pairing_notify_contact_outside_allow_from_is_told_and_not_warned_about(
    wechat: WeChatHarness,
) -> None:
    # the notice is one way (the owner approves with the CLI, never by writing back):
    # an owner contact outside allowFrom is no config mistake, and is told all the same
    from wechat_sdk import parse_config
    from wechat_sdk.config import accounts_of

    config = '{ channels: { wechat: { allowFrom: ["wxid_alice"], pairingNotify: "wxid_owner" } } }'
    assert accounts_of(parse_config(config)).warnings == ()
    await wechat.gateway(Recorder(), allowFrom=["wxid_alice"], pairingNotify="wxid_owner")
    await wechat.world.say("wxid_stranger", "hi")
    code = code_in(wechat.world.texts(to="wxid_stranger")[0])
    (notice,) = wechat.world.texts(to="wxid_owner")
    assert f"Approve: wechat-sdk pairing approve {code}" in notice
