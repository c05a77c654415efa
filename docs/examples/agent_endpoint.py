"""The assistant endpoint of the Webhooks page (agent provider "webhook"), and its test."""

# --8<-- [start:endpoint]
import os

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

# the same secret as channels.wechat.agent: {provider: "webhook", url, secret}
webhook = Webhook(os.environ.get("AGENT_SECRET", "whsec_" + "WFla" * 8))


async def answer(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    try:
        turn = webhook.verify(body, dict(request.headers))["data"]
    except WebhookVerificationError:
        return web.Response(status=401)
    if turn["text"].startswith("/story"):  # a long answer, streamed: sent in blocks
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for part in ("Once upon a time, ", "a bot learned WeChat. ", "The end."):
            await response.write(f"data: {part}\n\n".encode())
        return response
    if not turn["text"]:
        return web.Response(status=204)  # nothing to say
    return web.json_response({"text": f"{turn['sender']['name']} said: {turn['text']}"})


app = web.Application()
app.router.add_post("/assistant", answer)

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=8790)
# --8<-- [end:endpoint]


from aiohttp.test_utils import TestServer  # noqa: E402  (the test below the shown example)

from wechat_sdk.assistants import ConfiguredAssistant  # noqa: E402


async def test_the_endpoint_is_the_assistant(wechat):
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        agent = {
            "provider": "webhook",
            "url": str(server.make_url("/assistant")),
            "secret": "whsec_" + "WFla" * 8,
        }
        config = {"channels": {"wechat": {"dmPolicy": "open", "allowFrom": ["*"], "agent": agent}}}
        gateway = await wechat.gateway(ConfiguredAssistant(), config)
        wechat.world.add_contact("wxid_alice", "Alice")
        for text in ("hello", "/story"):
            await wechat.world.say("wxid_alice", text)
            await wechat.world.drive(gateway.wait_idle())  # the POST is real HTTP
            await wechat.world.run_until_idle()
    finally:
        await server.close()
    assert wechat.world.texts(to="wxid_alice") == [
        "Alice said: hello",
        "Once upon a time, a bot learned WeChat. The end.",
    ]
