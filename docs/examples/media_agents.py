"""The agents of the Media page, and their tests on the simulator."""

# --8<-- [start:outbound]
from pathlib import Path

from wechat_sdk import AgentTurn, OutboundFile, Reply

CHART = Path("/tmp/chart.png")  # a file your code made


async def send_chart(turn: AgentTurn) -> Reply:
    return Reply(
        text="Here is the chart:",
        files=[OutboundFile(name="chart.png", kind="image", path=CHART)],
    )


# --8<-- [end:outbound]


# --8<-- [start:inbound]
async def describe_media(turn: AgentTurn) -> str | None:
    for item in turn.media:
        if item.path is None:
            return f"I couldn't get {item.name}: {item.note}"
        if item.mime and item.mime.startswith("image/"):
            return f"a {item.size}-byte {item.mime} image, saved as {item.path.name}"
    return None


# --8<-- [end:inbound]


import sys  # noqa: E402  (the tests below the shown examples)

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


async def test_inbound_image_and_too_large_file(wechat):
    world = wechat.world
    await wechat.gateway(describe_media, dmPolicy="open", allowFrom=["*"], mediaMaxMb=1)
    await world.say("wxid_alice", media={"kind": "image", "name": "cat.png", "size": 40_000})
    await world.say("wxid_alice", media={"kind": "file", "name": "big.zip", "size": 5_000_000})
    image_reply, big_reply = world.texts(to="wxid_alice")
    assert image_reply.startswith("a 40000-byte image/png image, saved as cat-")
    assert big_reply.startswith("I couldn't get big.zip: file too large")


async def test_outbound_chart(wechat, tmp_path, monkeypatch):
    chart = tmp_path / "chart.png"
    chart.write_bytes(PNG)
    monkeypatch.setattr(sys.modules[__name__], "CHART", chart)
    world = wechat.world
    await wechat.gateway(send_chart, dmPolicy="open", allowFrom=["*"])
    await world.say("wxid_alice", "the chart please")
    caption, image = world.sent(to="wxid_alice")
    assert caption.text == "Here is the chart:"
    assert image.media is not None
    assert (image.media["kind"], image.media["name"]) == ("image", "chart.png")
