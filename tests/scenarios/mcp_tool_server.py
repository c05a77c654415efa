"""A tiny MCP server for the tests, written with the mcp SDK's FastMCP.

``python mcp_tool_server.py`` serves over stdio; ``--http PORT`` over streamable HTTP on
127.0.0.1 (at /mcp); ``--never-answer FILE`` reads the client's first message, writes FILE
and never answers (a program stuck before it serves).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from mcp.server.fastmcp import Context, FastMCP
from mcp.types import Tool


class ToolServer(FastMCP):  # type: ignore[type-arg]
    async def list_tools(self) -> list[Tool]:
        tools = await super().list_tools()
        for tool in tools:
            if tool.name == "secret_word":
                # a tool without arguments as the official Go SDK lists it (FastMCP adds
                # "properties": {}), as kubernetes-mcp-server's or xiaohongshu-mcp's
                tool.inputSchema = {"type": "object"}
        return tools


server = ToolServer("test-tools", log_level="WARNING")


@server.tool()
def add(a: int, b: int) -> str:
    """Add two whole numbers."""
    return str(a + b)


@server.tool()
def secret_word() -> str:
    """The word of the day (only some groups may know it)."""
    return "pineapple"


@server.tool()
async def pause(seconds: float) -> str:
    """Answer after a while (a slow tool)."""
    await asyncio.sleep(seconds)
    return f"paused {seconds:g} s"


@server.tool()
def process_id() -> str:
    """The server's process id (a restart changes it)."""
    return str(os.getpid())


@server.tool(name="run.shell")
def run_shell(cmd: str) -> str:
    """Pretend to run a command (a name the model sees as run_shell: no dots there)."""
    return f"ran {cmd}"


@server.tool()
def long_text(chars: int) -> str:
    """A text of that many characters."""
    return "A" * chars


@server.tool()
async def learn_tool(name: str, ctx: Context) -> str:  # type: ignore[type-arg]
    """Add a tool of that name (it answers with its name), and tell the client so."""
    server.add_tool(lambda: name, name=name, description=f"Say {name}.")
    await ctx.session.send_tool_list_changed()
    return f"learned {name}"


#: a description as long as some servers write (sequential-thinking's, Sentry's): OpenAI
#: refuses one over 1024 characters
GUIDE = "Read this first. " + "Each step of the guide says what to do next. " * 60


@server.tool(description=GUIDE)
def guide() -> str:
    return "step one"


@server.tool()
def crash() -> str:
    """Exit at once, as a server that dies."""
    sys.stdout.flush()
    os._exit(3)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--never-answer":
        sys.stdin.readline()  # (initialize)
        Path(sys.argv[2]).write_text("asked", encoding="utf-8")
        time.sleep(3600)
    elif len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.settings.host = "127.0.0.1"
        server.settings.port = int(sys.argv[2])
        server.settings.log_level = "WARNING"
        server.run("streamable-http")
    else:
        server.run()
