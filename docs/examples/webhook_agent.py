"""The "Webhook integration" example of the gateway page, and its test (a local server)."""

# --8<-- [start:agent]
import asyncio
import json
import urllib.request

from wechat_sdk import AgentTurn

WEBHOOK_URL = "https://bots.example.com/wechat"  # your service


def post(payload: dict) -> str:
    request = urllib.request.Request(
        WEBHOOK_URL,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read().decode()


async def agent(turn: AgentTurn) -> str:
    payload = {
        "account": turn.account_id,
        "chatType": turn.chat_type,
        "from": turn.sender_id,
        "room": turn.room_id,
        "text": turn.text,
    }
    return await asyncio.to_thread(post, payload)  # the reply is the response body


# --8<-- [end:agent]


import http.server  # noqa: E402  (the test below the shown example)
import sys  # noqa: E402
import threading  # noqa: E402


async def test_the_webhook_answers(wechat, monkeypatch):
    received = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body)
            answer = f"hook got: {body['text']}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/wechat"
        monkeypatch.setattr(sys.modules[__name__], "WEBHOOK_URL", url)
        gateway = await wechat.gateway(agent, dmPolicy="open", allowFrom=["*"])
        await wechat.world.say("wxid_alice", "hello")
        await wechat.world.drive(gateway.wait_idle())  # the POST runs in a real thread
    finally:
        server.shutdown()
        server.server_close()
    assert received == [
        {
            "account": "default",
            "chatType": "direct",
            "from": "wxid_alice",
            "room": None,
            "text": "hello",
        }
    ]
    assert wechat.world.texts(to="wxid_alice") == ["hook got: hello"]
