"""The "Media out" example of the Replies page, and its test (a local server stands in)."""

# --8<-- [start:agent]
from wechat_sdk import AgentTurn, OutboundFile, Reply

CHART_URL = "https://example.com/chart.png"


async def agent(turn: AgentTurn) -> Reply:
    return Reply(
        text="Today's chart and the raw data:",
        files=[
            OutboundFile(name="chart.png", kind="image", url=CHART_URL),
            OutboundFile(name="data.csv", data=b"day,visits\nmon,42\n"),
        ],
    )


# --8<-- [end:agent]


import functools  # noqa: E402  (the test below the shown example)
import http.server  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


async def test_caption_then_each_file(wechat, tmp_path, monkeypatch):
    (tmp_path / "chart.png").write_bytes(PNG)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/chart.png"
        monkeypatch.setattr(sys.modules[__name__], "CHART_URL", url)
        world = wechat.world
        gateway = await wechat.gateway(agent, dmPolicy="open", allowFrom=["*"])
        await world.say("wxid_alice", "numbers please")
        await world.drive(gateway.wait_idle())  # the download runs in a real thread
    finally:
        server.shutdown()
        server.server_close()
    caption, chart, data = world.sent(to="wxid_alice")
    assert caption.text == "Today's chart and the raw data:"
    assert (chart.media["kind"], chart.media["name"], chart.media["size"]) == (
        "image",
        "chart.png",
        len(PNG),
    )
    assert (data.media["kind"], data.media["name"]) == ("file", "data.csv")
