"""An MCP server whose tools changed is listed again: a server answering with an error keeps
its last list; one that does not answer is marked broken (its supervisor restarts it)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mcp.shared.exceptions import McpError
from mcp.types import ErrorData, ListToolsResult, Tool

from wechat_sdk.assistants.mcp_tools import McpServer, McpTool
from wechat_sdk.config.assistant import McpServerConfig

OLD = (McpTool("tools", "add", "Add.", {}),)


class Session:
    """A session whose tools/list answers as told."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    async def list_tools(self, cursor: str | None = None) -> ListToolsResult:
        if isinstance(self.answer, BaseException):
            raise self.answer
        if self.answer == "never":
            await asyncio.Event().wait()
        return ListToolsResult(tools=[Tool(name="sub", inputSchema={"type": "object"})])


def server() -> McpServer:
    made = McpServer("tools", McpServerConfig(url="http://127.0.0.1:9/mcp"), call_timeout_s=0.2)
    made.tools = OLD
    made._session = Session(None)  # type: ignore[assignment]  # (up)
    return made


async def test_the_new_list_replaces_the_old() -> None:
    made = server()
    await made._list_again(Session("ok"))  # type: ignore[arg-type]
    assert [t.name for t in made.tools] == ["sub"]


async def test_an_error_keeps_the_last_list_and_the_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    made = server()
    refused = McpError(ErrorData(code=-32603, message="tools are being reloaded"))
    await made._list_again(Session(refused))  # type: ignore[arg-type]
    assert made.tools == OLD and made.up
    assert "the last list stays" in caplog.text and "tools are being reloaded" in caplog.text


@pytest.mark.parametrize("answer", ["never", ConnectionResetError("gone")])
async def test_no_answer_marks_the_server_broken(answer: Any) -> None:
    made = server()
    await made._list_again(Session(answer))  # type: ignore[arg-type]
    assert not made.up and made._broken.is_set()  # (the supervisor opens a new session)
