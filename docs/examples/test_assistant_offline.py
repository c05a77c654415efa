"""The "Connect your assistant" page: the assistant of a config, tested offline on the
simulator with a fake model that calls a Python tool."""

# --8<-- [start:test]
from pathlib import Path

import json5

from simulator.fake_model import FakeModel, ModelStep
from wechat_sdk.assistants import ConfiguredAssistant

# the Ollama example above, saved as config/assistant-ollama.json5 next to this test
CONFIG = Path(__file__).parent / "config" / "assistant-ollama.json5"


def weather(city: str) -> str:
    """Tomorrow's weather in a city."""
    return f"sunny in {city}"


def model_script(request: dict) -> ModelStep:
    """The fake model: calls the weather tool, then answers with its result."""
    results = [m["content"] for m in request["messages"] if m["role"] == "tool"]
    if results:
        return ModelStep(text=f"Tomorrow it is {results[-1]}.")
    return ModelStep(tool_calls=[("weather", {"city": "Hangzhou"})])


async def test_the_assistant_answers_with_a_tool(wechat):
    model = FakeModel(model_script)
    config = json5.loads(CONFIG.read_text(encoding="utf-8"))
    config["channels"]["wechat"].update(dmPolicy="open", allowFrom=["*"])
    config["channels"]["wechat"]["agent"]["baseUrl"] = "http://fake-model.invalid/v1"
    # the fake model answers in process: no server, no network
    assistant = ConfiguredAssistant(http_client=model.http_client)
    gateway = await wechat.gateway(assistant, config, login=False)
    gateway.tools.register("weather", weather)
    await wechat.world.login()

    await wechat.world.say("wxid_alice", "Weather in Hangzhou tomorrow?")
    await wechat.world.drive(gateway.wait_idle())

    assert wechat.world.texts(to="wxid_alice") == ["Tomorrow it is sunny in Hangzhou."]
    first = model.requests[0]
    assert first["model"] == "qwen2.5:7b"
    assert [t["function"]["name"] for t in first["tools"]] == ["weather"]


# --8<-- [end:test]
