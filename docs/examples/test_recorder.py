"""Recorder, the test agent that keeps every turn (Testing your bot)."""

from simulator import Recorder


async def test_the_agent_is_given_the_messages_before_the_mention(wechat):
    agent = Recorder()  # answers "echo: <text>" and keeps every AgentTurn
    room = wechat.world.add_room("family@chatroom", topic="Family", members=["wxid_bob"])
    await wechat.gateway(agent, historyLimit=10)
    await wechat.world.say("wxid_bob", "dinner at 7?", room=room.id)
    await wechat.world.say("wxid_bob", "are you there?", room=room.id, mention=True)
    (turn,) = agent.turns  # the first message had no mention: no turn
    assert turn.text == "are you there?" and turn.chat_type == "group"
    assert [entry.text for entry in turn.history] == ["dinner at 7?"]
    assert wechat.world.texts(room=room.id) == ["echo: are you there?"]
