"""An MCP server whose tools changed is listed again: a server answering with an error keeps
its last list; one that does not answer is marked broken (its supervisor restarts it)."""

from __future__ import annotations

import asyncio
import logging
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


async def test_a_line_of_the_servers_supervisor_names_no_account(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An MCP server is every account's that names it: a line logged in its supervisor
    that names no account itself (the MCP library's, say) shows ``-``. Started from an
    account's task (the gateway started or reloaded from there), it showed that account."""
    from wechat_sdk.gateway.runner import ACCOUNT_OF_TASK
    from wechat_sdk.gateway.service import _AccountField

    caplog.handler.addFilter(_AccountField())  # (the gateway's log: each line's account)
    made = McpServer("tools", McpServerConfig(url="http://127.0.0.1:9/mcp"), call_timeout_s=0.2)

    async def serve_once() -> None:
        logging.getLogger("mcp.client").warning("the session said something")  # (a library)
        made._first_try.set()
        await made._stopping.wait()

    monkeypatch.setattr(made, "_serve_once", serve_once)

    async def in_an_account() -> None:
        ACCOUNT_OF_TASK.set("work")
        await made.start(5.0)

    await asyncio.get_running_loop().create_task(in_an_account())
    await made.aclose()
    said = [r for r in caplog.records if r.getMessage() == "the session said something"]
    assert [getattr(r, "account", None) for r in said] == ["-"]
