async def agent(turn):
    return f"you said {turn.text}"


async def test_my_bot(wechat):
    await wechat.gateway(agent, dmPolicy="open", allowFrom=["*"])
    await wechat.world.say("wxid_alice", "hello")
    assert wechat.world.texts(to="wxid_alice") == ["you said hello"]
