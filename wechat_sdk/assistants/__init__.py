"""Assistants built from the config: ``channels.wechat.agent`` (an OpenAI-compatible model,
streamed, with the tools of MCP servers and of the gateway's ``ToolRegistry``).

Importing this package loads neither ``openai`` nor ``mcp``: they are imported when the
assistant first talks to a model or starts a server.
"""

from wechat_sdk.assistants.assistant import ConfiguredAssistant, configured_assistant

__all__ = ["ConfiguredAssistant", "configured_assistant"]
