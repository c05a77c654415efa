"""The built-in agents, for trying the gateway without writing one.

``wechat-sdk gateway run --agent echo`` and a scenario file's ``agent: "echo"`` name them:

- ``echo`` replies with the text it was given;
- ``silent`` never replies;
- ``long`` replies with a text long enough to be sent in several messages.
"""

from __future__ import annotations

from wechat_sdk.agent import Agent, AgentTurn

__all__ = ["BUILTIN_AGENTS", "echo", "long", "silent"]


async def echo(turn: AgentTurn) -> str:
    """Replies with the text it was given."""
    return turn.text


async def silent(turn: AgentTurn) -> None:
    """Never replies."""
    return None


async def long(turn: AgentTurn) -> str:
    """Eight paragraphs, about 3,000 characters: more than one message at the default
    ``textChunkLimit``."""
    para = ("WeChat shows long answers in several messages. " * 8).strip()
    return "\n\n".join(f"{i}. {para}" for i in range(1, 9))


#: The built-in agents by name.
BUILTIN_AGENTS: dict[str, Agent] = {"echo": echo, "silent": silent, "long": long}
