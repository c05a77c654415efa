"""The receiver of the Webhooks page: the gateway's events, signature checked, and its test."""

# --8<-- [start:receiver]
import os

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

# the endpoint's secret, as in channels.wechat.webhooks: [{url, secret: "whsec_..."}];
# by default the one of the example config's endpoint http://127.0.0.1:8787/wechat-events
SECRET = os.environ.get("WEBHOOK_SECRET", "whsec_QUJDQUJDQUJDQUJDQUJDQUJDQUJDQUJDQUJDQUJD")
webhook = Webhook(SECRET)
seen: set[str] = set()  # webhook-ids handled: an event may come twice (at least once)


async def wechat_events(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        event = webhook.verify(body, dict(request.headers))
    except WebhookVerificationError:
        return web.Response(status=401)  # not signed with our secret: ignore it
    if request.headers["webhook-id"] in seen:
        return web.Response(status=204)  # a retry of one we handled: done already
    if event["type"] == "pairing.requested":
        data = event["data"]
        print(f"{data['senderName']} ({data['senderId']}) asks to talk: code {data['code']}")
    # handled: only now is it seen (had the handling failed, the 500 brings it again)
    seen.add(request.headers["webhook-id"])
    return web.Response(status=204)  # 2xx: taken; 410: send no more; else: sent again later


app = web.Application()
app.router.add_post("/wechat-events", wechat_events)

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=8787)
# --8<-- [end:receiver]


import asyncio  # noqa: E402  (the test below the shown example)
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import json5  # noqa: E402
import pytest  # noqa: E402
from aiohttp.test_utils import TestServer  # noqa: E402

PAGE_CONFIG = Path(__file__).parent / "config" / "webhooks.json5"


async def test_the_receiver_hears_of_a_pairing_request(wechat, capsys):
    # the page's endpoint for this receiver, with its secret: the receiver's default one
    hooks = json5.loads(PAGE_CONFIG.read_text(encoding="utf-8"))["channels"]["wechat"]["webhooks"]
    (ours,) = [h for h in hooks if h["url"] == "http://127.0.0.1:8787/wechat-events"]
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        hook = {"url": str(server.make_url("/wechat-events")), "secret": ours["secret"]}
        gateway = await wechat.gateway(lambda turn: "hi", webhooks=[hook])
        wechat.world.add_contact("wxid_bob", "Bob")
        await wechat.world.say("wxid_bob", "hello?")
        await wechat.world.run_until_idle()
        out = ""
        for _ in range(500):  # the event goes out in the background: wait for it
            out += capsys.readouterr().out
            if "asks to talk" in out:
                break
            await asyncio.sleep(0.01)
    finally:
        await server.close()
    (request,) = gateway.pairing.list()
    assert f"Bob (wxid_bob) asks to talk: code {request.code}" in out


@pytest.mark.asyncio  # no wechat fixture: marked for pytest-asyncio
async def test_an_event_whose_handling_failed_is_handled_when_it_comes_again(monkeypatch):
    # the handling breaks once (a bug, a service down): the gateway gets a 500 and sends
    # the event again, with the same webhook-id; that one must be handled, not taken
    # for one handled already
    from aiohttp.test_utils import TestClient

    from wechat_sdk.webhooks import signed_headers

    said = []

    def print_failing_once(line):
        if not said:
            said.append("broke")
            raise RuntimeError("the handling broke")
        said.append(line)

    monkeypatch.setattr(f"{__name__}.print", print_failing_once, raising=False)
    body = b'{"type":"pairing.requested","timestamp":"2026-01-01T00:00:00.000Z","data":'
    body += b'{"senderName":"Bob","senderId":"wxid_bob","code":"ABCD2345"}}'
    receiver = web.Application()  # (the page's app, on this test's loop)
    receiver.router.add_post("/wechat-events", wechat_events)
    async with TestClient(TestServer(receiver, host="127.0.0.1")) as client:
        statuses = []
        for _ in range(2):
            headers = signed_headers(SECRET, "msg_" + "7" * 32, body, time.time())
            response = await client.post("/wechat-events", data=body, headers=headers)
            statuses.append(response.status)
    assert statuses == [500, 204]
    assert said == ["broke", "Bob (wxid_bob) asks to talk: code ABCD2345"]
