"""mybot.py: a first bot. Run it with `python run_mybot.py`, test it with `pytest`."""

from wechat_sdk import AgentTurn


async def agent(turn: AgentTurn) -> str | None:
    if turn.text.strip().lower() in ("hi", "hello"):
        return f"Hello {turn.sender_name}! Ask me anything."
    if turn.chat_type == "group":
        return f"{turn.sender_name} asked: {turn.text}"
    return f"you said {turn.text}"
