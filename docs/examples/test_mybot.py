from mybot import agent


async def test_greets_by_name(wechat):
    wechat.world.add_contact("wxid_alice", name="Alice")
    await wechat.gateway(agent, dmPolicy="open", allowFrom=["*"])
    await wechat.world.say("wxid_alice", "hello")
    assert wechat.world.texts(to="wxid_alice") == ["Hello Alice! Ask me anything."]


async def test_answers_in_a_group_only_when_mentioned(wechat):
    room = wechat.world.add_room("family@chatroom", topic="Family", members=["wxid_bob"])
    await wechat.gateway(agent)  # groups: open, a mention is required by default
    await wechat.world.say("wxid_bob", "dinner at 7?", room=room.id)
    await wechat.world.say("wxid_bob", "are you there?", room=room.id, mention=True)
    assert len(wechat.world.texts(room=room.id)) == 1
    assert wechat.world.texts(room=room.id)[0].endswith("asked: are you there?")


async def test_strangers_get_a_pairing_code(wechat):
    await wechat.gateway(agent)  # dmPolicy "pairing" is the default
    await wechat.world.say("wxid_stranger", "hello")
    (message,) = wechat.world.texts(to="wxid_stranger")
    assert "Pairing code:" in message
