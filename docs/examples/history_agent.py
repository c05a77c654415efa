"""The agent of the History page, and its test on the simulator."""

# --8<-- [start:agent]
from wechat_sdk import AgentTurn


async def agent(turn: AgentTurn) -> str:
    context = "\n".join(f"{h.sender_name}: {h.text}" for h in turn.history)
    prompt = f"Conversation so far:\n{context}\n\n{turn.sender_name} asks: {turn.text}"
    return await ask_model(prompt)  # your model


# --8<-- [end:agent]


async def ask_model(prompt: str) -> str:
    """A stand-in for a language model: says what it was given."""
    return f"I was given {len(prompt.splitlines())} lines:\n{prompt}"


async def test_group_history_reaches_the_agent(wechat):
    world = wechat.world
    world.add_contact("wxid_mum", name="Mum")
    world.add_contact("wxid_dad", name="Dad")
    room = world.add_room(topic="Family", members=["wxid_mum", "wxid_dad"])
    await wechat.gateway(agent)  # a mention is needed in groups; historyLimit 20
    await world.say("wxid_mum", "Dinner at 7?", room=room.id)
    await world.say("wxid_dad", "Yes, I'll cook", room=room.id)
    await world.say("wxid_mum", "what did we decide?", room=room.id, mention=True)
    (reply,) = world.texts(room=room.id)
    assert "Mum: Dinner at 7?\nDad: Yes, I'll cook" in reply
    assert reply.endswith("Mum asks: what did we decide?")
