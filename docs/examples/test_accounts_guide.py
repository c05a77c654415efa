"""The "Multiple accounts" guide, run on the simulator."""

# --8<-- [start:setup]
from pathlib import Path

# the example above, saved as config/accounts.json5 next to this test
CONFIG = (Path(__file__).parent / "config" / "accounts.json5").read_text(encoding="utf-8")


async def agent(turn):
    return f"[{turn.account_id}] you said {turn.text}"


# --8<-- [end:setup]


# --8<-- [start:test]
async def test_each_account_answers_for_itself(wechat):
    gateway = await wechat.gateway(agent, CONFIG)  # logs in "personal" and "work"
    world = wechat.world

    await world.say("wxid_colleague", "hi", account="work")
    assert world.texts(to="wxid_colleague", account="work") == ["[work] you said hi"]

    # approvals are per account: on "personal" the colleague still needs a code
    await world.say("wxid_colleague", "hi", account="personal")
    (code_message,) = world.texts(to="wxid_colleague", account="personal")
    assert "Pairing code:" in code_message

    # a stranger on the non-default account is told the command with --account
    await world.say("wxid_stranger", "hello", account="work")
    (work_code,) = gateway.pairing.list("work")
    assert (
        f"wechat-sdk pairing approve {work_code.code} --account work"
        in (world.texts(to="wxid_stranger")[0])
    )


# --8<-- [end:test]


async def test_disabled_account_is_not_started(wechat):
    gateway = await wechat.gateway(agent, CONFIG)
    states = {s.account: s.state for s in gateway.status()}
    assert states == {"personal": "ready", "work": "ready", "old": "stopped: disabled"}


async def test_proactive_sends(wechat):
    gateway = await wechat.gateway(agent, CONFIG)
    world = wechat.world
    await world.drive(send_examples(gateway))
    assert world.texts(to="wxid_owner", account="personal") == ["Good morning!"]
    assert world.texts(to="wxid_colleague", account="work") == ["Stand-up in 5 minutes"]


async def send_examples(gateway):
    # --8<-- [start:send]
    await gateway.send("wxid_owner", "Good morning!")  # the default account, "personal"
    await gateway.send("wxid_colleague", "Stand-up in 5 minutes", account="work")
    # --8<-- [end:send]
