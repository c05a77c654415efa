"""An agent for tests that keeps every turn it is given (the simulator's recording fake)."""

from __future__ import annotations

from wechat_sdk.agent import AgentTurn

__all__ = ["Recorder"]


class Recorder:
    """An agent that keeps every turn it is given and answers ``echo: <text>``.

    Assert on what the agent was given (``turns``: sender, room, history, media...) and on
    what went out (the world's transcript).

    Example:
        ```python
        async def test_the_agent_sees_the_text(wechat):
            agent = Recorder()
            await wechat.gateway(agent, dmPolicy="open", allowFrom=["*"])
            await wechat.world.say("wxid_alice", "hi")
            assert [turn.text for turn in agent.turns] == ["hi"]
            assert wechat.world.texts(to="wxid_alice") == ["echo: hi"]
        ```
    """

    def __init__(self) -> None:
        self.turns: list[AgentTurn] = []

    async def __call__(self, turn: AgentTurn) -> str:
        self.turns.append(turn)
        return f"echo: {turn.text}"
