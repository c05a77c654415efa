"""A group's allow entry that names an MCP server (``docs``: all its tools) or one
server's tool (``docs__read_file``) means that server only: another server's tool whose
own name is the entry is not offered by it. A deny entry is read broadly: it denies such
a tool too (a deny never fails open)."""

from __future__ import annotations

from wechat_sdk.agent import AgentTurn
from wechat_sdk.assistants.mcp_tools import McpServer, McpTool
from wechat_sdk.assistants.offered_tools import tools_for_turn
from wechat_sdk.config import WechatConfig
from wechat_sdk.config.accounts import resolve_accounts
from wechat_sdk.config.assistant import McpServerConfig

ROOM = "123@chatroom"


def server(key: str, *names: str) -> McpServer:
    made = McpServer(key, McpServerConfig(url="http://127.0.0.1:9/mcp"))
    made.tools = tuple(McpTool(key, name, f"{key}/{name}", {}) for name in names)
    return made


def offered(tools: object, *servers: McpServer) -> set[str]:
    """The tools a group with this rule is offered, as ``server/tool``."""
    config = WechatConfig.model_validate(
        {"groupPolicy": "open", "groups": {ROOM: {"tools": tools, "requireMention": False}}}
    )
    turn = AgentTurn("default", "group", "wxid_carol", "Carol", "hi", room_id=ROOM)
    turn_tools = tools_for_turn(turn, resolve_accounts(config).default, None, servers)
    return {tool.description for tool in turn_tools.tools.values()}


def test_an_entry_naming_a_server_or_its_tool_offers_that_servers_tools_only() -> None:
    docs = server("docs", "read_file", "search")
    home = server("home", "docs", "docs__read_file", "wipe_disk")
    assert offered(["docs__read_file"], docs, home) == {"docs/read_file"}
    assert offered(["docs"], docs, home) == {"docs/read_file", "docs/search"}
    # a deny entry is read broadly: the other server's tool of that name is denied too
    denied = offered({"allow": ["home"], "deny": ["docs__read_file"]}, docs, home)
    assert denied == {"home/docs", "home/wipe_disk"}
    assert offered({"deny": ["docs"]}, docs, home) == {"home/docs__read_file", "home/wipe_disk"}


def test_a_tool_name_that_is_no_server_key_still_matches_on_any_server() -> None:
    docs = server("docs", "read_file")
    home = server("home", "read_file", "notes__today")
    assert offered(["read_file"], docs, home) == {"docs/read_file", "home/read_file"}
    assert offered(["notes__today"], docs, home) == {"home/notes__today"}
