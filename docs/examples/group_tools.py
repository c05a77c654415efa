"""The "Group tools" examples of the Groups page, and their tests on the simulator."""

from pathlib import Path

# --8<-- [start:register]
from wechat_sdk import AgentTurn, Gateway, ToolNotAllowed


async def weather(city: str) -> str:
    return f"sunny in {city}"


def register_tools(gateway: Gateway) -> None:
    gateway.tools.register("weather", weather)

    @gateway.tools.register("search")  # register also works as a decorator
    def search(query: str) -> list[str]:
        return [f"a page about {query}"]


# --8<-- [end:register]


# --8<-- [start:agent]
async def agent(turn: AgentTurn) -> str:
    if "weather" in turn.tools.names:
        return await turn.tools.call("weather", city="Paris")
    try:
        await turn.tools.call("shell", "ls")
    except ToolNotAllowed:
        return "I can't do that here."
    return "..."


# --8<-- [end:agent]


# ---- tests: the groups-tools example config, with these tools registered

CONFIG = (Path(__file__).parent / "config" / "groups-tools.json5").read_text(encoding="utf-8")
FAMILY, WORK = "12345678901@chatroom", "98765432109@chatroom"


async def test_each_group_gets_its_tools(wechat, caplog):
    world = wechat.world
    world.add_room(FAMILY, topic="Family", members=["wxid_mum"])
    world.add_room(WORK, topic="Work", members=["wxid_boss"])
    gateway = await wechat.gateway(agent, CONFIG)
    register_tools(gateway)
    gateway.tools.register("calendar", lambda: "free at 3")
    gateway.tools.register("shell", lambda *args: "ran")

    await world.say("wxid_mum", "weather?", room=FAMILY, mention=True)
    assert world.texts(room=FAMILY) == ["sunny in Paris"]

    await world.say("wxid_boss", "run ls", room=WORK, mention=True)
    assert world.texts(room=WORK) == ["I can't do that here."]
    assert "reason=tool_not_allowed" in caplog.text
