"""The "Proactive sends" example of the Replies page, and its test on the simulator."""

# --8<-- [start:send]
from pathlib import Path

from wechat_sdk import Gateway, OutboundFile, Reply


async def morning_round(gateway: Gateway, report_path: Path) -> None:
    await gateway.send("wxid_alice", "Good morning! Your daily summary is ready.")
    await gateway.send(None, "Stand-up in 5 minutes", room="12345678901@chatroom")
    report = OutboundFile(name="report.pdf", path=report_path)
    await gateway.send("wxid_bob", Reply(text="Your report:", files=[report]), account="work")


# --8<-- [end:send]


async def silent(turn):
    return None


async def test_morning_round(wechat, tmp_path):
    world = wechat.world
    world.add_room("12345678901@chatroom", topic="Team", members=["wxid_alice", "wxid_bob"])
    config = {"channels": {"wechat": {"accounts": {"default": {}, "work": {}}}}}
    gateway = await wechat.gateway(silent, config)
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 a report")
    # --8<-- [start:drive]
    await world.drive(morning_round(gateway, report))
    # --8<-- [end:drive]
    assert world.texts(to="wxid_alice") == ["Good morning! Your daily summary is ready."]
    assert world.texts(room="12345678901@chatroom") == ["Stand-up in 5 minutes"]
    caption, file = world.sent(to="wxid_bob", account="work")
    assert caption.text == "Your report:"
    assert file.media["name"] == "report.pdf"
