"""The ``agent`` block: validation with the key named, `config check`, the choice of the
assistant by `gateway run`, and what importing the assistant loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from wechat_sdk.agents import echo
from wechat_sdk.assistants import ConfiguredAssistant
from wechat_sdk.assistants.openai_chat import ChatModel
from wechat_sdk.cli import cli
from wechat_sdk.config import ConfigError, accounts_of, parse_config
from wechat_sdk.config.assistant import AgentConfig
from wechat_sdk.config.reference import reference_rows
from wechat_sdk.gateway.service import agent_from_config

ROOT = Path(__file__).resolve().parents[2]


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env=env or {})
    return [str(p) for p in info.value.problems]


def test_an_unknown_provider_names_its_key() -> None:
    assert problems('{channels: {wechat: {agent: {provider: "anthropic", model: "m"}}}}') == [
        'channels.wechat.agent.provider: expected one of openai|webhook, got "anthropic"'
    ]


def test_a_missing_model_names_its_key_also_under_an_account() -> None:
    text = '{channels: {wechat: {accounts: {work: {agent: {baseUrl: "http://x/v1"}}}}}}'
    assert problems(text) == ["channels.wechat.accounts.work.agent.model: required key is missing"]


def test_an_mcp_server_needs_a_command_or_a_url() -> None:
    text = """{channels: {wechat: {agent: {model: "m", mcpServers: {
        both: {command: "uvx", url: "http://127.0.0.1:9/mcp"},
        neither: {args: ["x"]},
        ftp: {url: "ftp://host/mcp?key=Zq9SECRET"},
    }}}}}"""
    found = problems(text)
    assert [p.split(":")[0] for p in found] == [
        "channels.wechat.agent.mcpServers.both",
        "channels.wechat.agent.mcpServers.neither",
        "channels.wechat.agent.mcpServers.ftp",
    ]
    assert "one of them" in found[0]
    assert "http://" in found[2]
    assert "Zq9SECRET" not in found[2]  # (a url may hold a key: never repeated)


def agent_problems_of(agent: dict[str, object], env: dict[str, str] | None = None) -> list[str]:
    return problems(json.dumps({"channels": {"wechat": {"agent": agent}}}), env)


@pytest.mark.parametrize(
    ("key", "write"),
    [
        ("*", "a name such as 'docs'"),
        ("", "a name such as 'docs'"),
        ("my__docs", "'my_docs'"),
        ("docs_", "'docs'"),
        ("my.docs", "'my_docs'"),
        ("文档", "a name such as 'docs'"),
    ],
)
def test_an_mcp_server_key_a_tool_rule_cannot_name_plainly_is_refused(key: str, write: str) -> None:
    """A group's tools entry names a server by its key, and one of its tools as
    ``<key>__<tool>``: a key "*" (the wildcard of every rule), "" or one holding ``__``
    made those entries ambiguous, and one with characters a tool name cannot hold was
    renamed in the names the model sees."""
    server = {"command": "uvx", "args": ["mcp-server-time"]}
    (said,) = agent_problems_of({"model": "m", "mcpServers": {key: server, "time": server}})
    path, _, message = said.partition(": ")
    assert path == f"channels.wechat.agent.mcpServers.{key}"
    assert repr(key) in message
    assert "letters, digits, _ and -" in message
    assert message.endswith(f"write {write}")
    # the keys the docs show are taken
    ok = {"docs": server, "home-files": server, "my_docs2": server, "-x": server}
    parse_config(json.dumps({"channels": {"wechat": {"agent": {"model": "m", "mcpServers": ok}}}}))


def test_mcp_server_keys_that_differ_only_in_case_are_refused_at_the_later_one() -> None:
    """``Files`` and ``files`` were taken as two servers: the tools the model sees as
    ``Files__read`` and ``files__read`` pass for each other (to the model, to a person
    reading the log), and a rule entry ``files`` named one of them only."""
    server = {"command": "uvx", "args": ["mcp-server-time"]}
    text = json.dumps(
        {
            "channels": {
                "wechat": {
                    "agent": {"model": "m", "mcpServers": {"Files": server, "time": server}},
                    "accounts": {
                        "work": {
                            "agent": {
                                "model": "m",
                                "mcpServers": {"docs": server, "DOCS": server, "Docs": server},
                            }
                        }
                    },
                }
            }
        }
    )
    assert problems(text) == [
        "channels.wechat.accounts.work.agent.mcpServers.DOCS: differs from the server key "
        "'docs' only in case, and tool rules and the tool names the model sees would take "
        "one for the other: rename one of them, or remove it if they are the same server",
        "channels.wechat.accounts.work.agent.mcpServers.Docs: differs from the server key "
        "'docs' only in case, and tool rules and the tool names the model sees would take "
        "one for the other: rename one of them, or remove it if they are the same server",
    ]
    # one key in any case is taken
    ok = {"Files": server, "time": server}
    parse_config(json.dumps({"channels": {"wechat": {"agent": {"model": "m", "mcpServers": ok}}}}))


@pytest.mark.parametrize("base_url", ["127.0.0.1:11434/v1", "localhost:11434/v1", "ftp://h/v1"])
def test_a_base_url_no_http_client_can_use_names_its_key(base_url: str) -> None:
    """It failed at every message, as "cannot reach ://127.0.0.1:11434/v1"."""
    (said,) = agent_problems_of({"model": "m", "baseUrl": base_url})
    assert said.startswith("channels.wechat.agent.baseUrl: ")
    assert "http://" in said


@pytest.mark.parametrize(
    "extra",
    [
        {"mcpServers": {"docs": {"url": "https://mcp.example.com/mcp"}}},
        {"dmTools": ["add"]},
        {"systemPrompt": "Be brief."},
        {"apiKey": "sk-test-0123456789"},
        {"baseUrl": "https://api.example.com/v1"},
        {"maxToolRounds": 2},
        {"turnTimeout": 120},
    ],
    ids=lambda e: next(iter(e)),
)
def test_a_key_a_webhook_agent_never_reads_is_refused_there(extra: dict[str, object]) -> None:
    """They were taken, and did nothing: MCP servers on a webhook agent gave no tools."""
    secret = "whsec_" + "WFla" * 8
    webhook = {"provider": "webhook", "url": "https://hook.example.com/a", "secret": secret}
    (key,) = extra
    assert agent_problems_of({**webhook, **extra}) == [
        f'channels.wechat.agent.{key}: {key} goes with provider "openai"; a webhook agent '
        "reads url, secret, timeout and headers"
    ]
    # what it reads is taken
    mine = {**webhook, "timeout": 10, "headers": {"x-a": "b"}}
    parse_config(json.dumps({"channels": {"wechat": {"agent": mine}}}))


def test_a_header_or_api_key_with_a_line_break_is_refused_without_repeating_it() -> None:
    """A token read from a file often ends with a line break: the HTTP client refused to
    send it, and its error, repeating the header, reached the log and the status."""
    token = "n8n-header-token-0123456789"
    said = agent_problems_of(
        {
            "model": "m",
            "apiKey": "${KEY}",
            "headers": {"Authorization": f"Bearer {token}\n"},
            "mcpServers": {"docs": {"url": "https://m.example/mcp", "headers": {"X-K": "a\rb"}}},
        },
        env={"KEY": "sk-0123456789\n"},
    )
    assert [p.split(":")[0] for p in said] == [
        "channels.wechat.agent.apiKey",
        "channels.wechat.agent.headers.Authorization",
        "channels.wechat.agent.mcpServers.docs.headers.X-K",
    ]
    assert all("line break" in p for p in said)
    assert token not in "".join(said) and "sk-0123456789" not in "".join(said)


def test_a_header_or_api_key_the_http_client_cannot_send_is_refused_without_repeating_it() -> None:
    """A pasted token with a space after it passed, then every turn failed at the HTTP
    client, whose error repeats the whole header (the token) into the log and status."""
    token = "n8n-header-token-0123456789"
    said = agent_problems_of(
        {
            "model": "m",
            "apiKey": "sk-0123456789 ",
            "headers": {"Authorization": f"Bearer {token} ", "X-Name": "Zoë"},
            "mcpServers": {"docs": {"url": "https://m.example/mcp", "headers": {"X-K": " k"}}},
        }
    )
    assert [p.split(":")[0] for p in said] == [
        "channels.wechat.agent.apiKey",
        "channels.wechat.agent.headers.Authorization",
        "channels.wechat.agent.headers.X-Name",
        "channels.wechat.agent.mcpServers.docs.headers.X-K",
    ]
    assert "not ASCII (its character 3)" in said[2]
    assert all("space" in p for p in said[:2] + said[3:])
    assert token not in "".join(said) and "sk-0123456789" not in "".join(said)
    # a space or tab inside a value is a header's own ("Bearer x")
    agent = {"model": "m", "headers": {"Authorization": "Bearer\tx y"}}
    config = parse_config(json.dumps({"channels": {"wechat": {"agent": agent}}}), env={})
    assert accounts_of(config).default.settings.agent.headers["Authorization"] == "Bearer\tx y"


def test_the_api_key_comes_from_the_environment_and_stays_secret() -> None:
    config = parse_config(
        '{channels: {wechat: {agent: {model: "m", apiKey: "${MY_KEY}"}}}}',
        env={"MY_KEY": "sk-from-env-123456"},
    )
    agent = accounts_of(config).default.settings.agent
    assert agent is not None and agent.apiKey is not None
    assert agent.apiKey.get_secret_value() == "sk-from-env-123456"
    assert "sk-from-env" not in repr(config) + str(config.model_dump())
    assert problems('{channels: {wechat: {agent: {model: "m", apiKey: "${NO_SUCH}"}}}}') == [
        "channels.wechat.agent.apiKey: environment variable NO_SUCH is not set "
        "(set it, or write $${NO_SUCH} for a literal)"
    ]


def test_an_account_agent_replaces_the_top_level_one() -> None:
    config = parse_config(
        """{channels: {wechat: {agent: {model: "big", temperature: 0.2},
           accounts: {home: {}, work: {agent: {model: "small"}}}}}}"""
    )
    accounts = accounts_of(config)
    home, work = accounts["home"].settings.agent, accounts["work"].settings.agent
    assert home is not None and (home.model, home.temperature) == ("big", 0.2)
    assert work is not None and (work.model, work.temperature) == ("small", None)


def test_without_an_api_key_the_environment_one_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-1234567")
    assert ChatModel(AgentConfig(model="m")).api_key() == "sk-env-1234567"
    assert ChatModel(AgentConfig(model="m", apiKey="sk-own-123")).api_key() == "sk-own-123"
    monkeypatch.delenv("OPENAI_API_KEY")
    assert ChatModel(AgentConfig(model="m")).api_key() is None


def test_an_environment_api_key_with_a_line_break_is_refused_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$OPENAI_API_KEY read from a file often ends with a line break: the HTTP client
    refused to send it, every turn, as "cannot reach" the server (model_unreachable)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-0123456789\n")
    code, out = check(tmp_path, '{channels: {wechat: {puppet: "simulator", agent: {model: "m"}}}}')
    assert code != 0
    assert "channels.wechat.agent.apiKey" in out and "$OPENAI_API_KEY" in out
    assert "line break" in out and "sk-env-0123456789" not in out
    with pytest.raises(ValueError, match="OPENAI_API_KEY") as info:
        ChatModel(AgentConfig(model="m"))  # (a program starting the assistant itself)
    assert "sk-env" not in str(info.value)
    # an apiKey of the config's own is the key: the variable is not read
    code, out = check(
        tmp_path,
        '{channels: {wechat: {puppet: "simulator", agent: {model: "m", apiKey: "sk-abcdef123"}}}}',
    )
    assert code == 0, out


def test_the_reference_lists_the_agent_keys() -> None:
    keys = {row[0] for row in reference_rows()}
    assert {
        "channels.wechat.agent.model",
        "channels.wechat.agent.apiKey",
        "channels.wechat.agent.mcpServers.<id>.command",
        "channels.wechat.agent.mcpServers.<id>.url",
        "channels.wechat.agent.turnTimeout",
    } <= keys


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (0, "input should be greater than 0, got 0"),
        (-5, "input should be greater than 0, got -5"),
        (86401, "input should be less than or equal to 86400, got 86401"),
        ("soon", 'expected a number, got "soon"'),
    ],
)
def test_a_turn_timeout_that_is_no_positive_number_of_seconds_names_its_key(
    value: object, said: str
) -> None:
    assert agent_problems_of({"model": "m", "turnTimeout": value}) == [
        f"channels.wechat.agent.turnTimeout: {said}"
    ]


def test_turn_timeout_defaults_to_five_request_timeouts() -> None:
    assert AgentConfig(model="m").turn_timeout_s() == 300
    assert AgentConfig(model="m", timeout=10).turn_timeout_s() == 50
    assert AgentConfig(model="m", timeout=10, turnTimeout=600).turn_timeout_s() == 600


def test_gateway_run_without_agent_uses_the_config() -> None:
    with_agent = parse_config('{channels: {wechat: {agent: {model: "m"}}}}')
    without = parse_config("{channels: {wechat: {}}}")
    assert isinstance(agent_from_config(with_agent), ConfiguredAssistant)
    assert agent_from_config(without) is echo


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    file = tmp_path / "config.json5"
    file.write_text(text)
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(file)])
    return result.exit_code, result.output


def test_config_check_refuses_an_mcp_command_that_is_not_installed(tmp_path: Path) -> None:
    servers = {
        "time": {"command": "no-such-mcp-program-here", "args": ["x"]},
        "ok": {"command": sys.executable},
    }
    agent = {"model": "m", "mcpServers": servers}
    code, out = check(
        tmp_path, json.dumps({"channels": {"wechat": {"puppet": "simulator", "agent": agent}}})
    )
    assert code != 0
    assert "channels.wechat.agent.mcpServers.time.command" in out
    assert "no-such-mcp-program-here" in out and "PATH" in out
    assert "mcpServers.ok" not in out


def test_config_check_accepts_a_working_agent_block(tmp_path: Path) -> None:
    code, out = check(
        tmp_path,
        '{channels: {wechat: {puppet: "simulator", agent: {model: "m", apiKey: "sk-abcdef123"}}}}',
    )
    assert code == 0, out
    assert "sk-abcdef123" not in out
    agent = next(line for line in out.splitlines() if line.startswith("  agent: "))
    assert json.loads(agent.removeprefix("  agent: ")) == {
        "provider": "openai",
        "model": "m",
        "baseUrl": "https://api.openai.com/v1",
        "mcpServers": [],
    }


def test_config_check_names_only_the_type_of_a_secret_of_the_wrong_type(
    tmp_path: Path,
) -> None:
    code, out = check(
        tmp_path,
        """{channels: {wechat: {puppet: "simulator", agent: {model: "m",
             apiKey: 31415926535897932384,
             mcpServers: {t: {command: "python3", env: {GITHUB_TOKEN: 27182818284590452353}},
                          u: {url: "https://mcp.example.com/mcp",
                              headers: {"x-token": 12345678901234567890}}}}}}}""",
    )
    assert code != 0
    for path in ("apiKey", "mcpServers.t.env.GITHUB_TOKEN", "mcpServers.u.headers.x-token"):
        assert f"channels.wechat.agent.{path}: expected a string, got a number" in out
    for secret in ("31415926535897932384", "27182818284590452353", "12345678901234567890"):
        assert secret not in out


def test_importing_the_assistant_loads_neither_openai_nor_mcp() -> None:
    script = (
        "import wechat_sdk.assistants, wechat_sdk.gateway.gateway, sys, json\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('openai', 'mcp', 'httpx', 'aiohttp'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out.splitlines()[-1]) == []


WHSEC = "whsec_" + "WFla" * 8


def test_the_repr_of_a_config_holds_no_header_url_key_or_environment_value() -> None:
    """``repr(config)`` (a traceback's locals, a ``print`` while debugging) showed the
    headers' values, an MCP server's URL with its key and its environment."""
    agent = {
        "model": "m",
        "headers": {"Authorization": "Bearer hdr-0123456789", "x-org": "org-0123456789"},
        "mcpServers": {
            "remote": {
                "url": "https://u:pw-0123456789@mcp.example/mcp?key=key-0123456789",
                "headers": {"x-api-key": "mcphdr-0123456789"},
            },
            "local": {"command": "python3", "env": {"GITHUB_TOKEN": "env-0123456789"}},
        },
    }
    puppet = {"endpoint": "127.0.0.1:8788", "padlocalToken": "opt-0123456789", "name": "x"}
    hooks = [{"url": "https://hooks.example/in?token=hook-0123456789", "secret": WHSEC}]
    wechat = {"agent": agent, "puppetOptions": puppet, "webhooks": hooks}
    config = parse_config(json.dumps({"channels": {"wechat": wechat}}), env={})
    shown = repr(config) + str(config) + repr(accounts_of(config).default)
    # the model's base URL and a webhook agent's URL hold keys as well
    for other in (
        {"model": "m", "baseUrl": "https://u:base-0123456789@llm.example/v1?key=k-0123456789"},
        {
            "provider": "webhook",
            "url": "https://agent.example/t?key=url-0123456789",
            "secret": WHSEC,
        },
    ):
        shown += repr(parse_config(json.dumps({"channels": {"wechat": {"agent": other}}}), env={}))
    assert "0123456789" not in shown
    assert "mcpServers={'remote': McpServerConfig(command=None" in shown  # (still a repr)
    assert "endpoint='127.0.0.1:8788'" in shown and "name='x'" in shown


@pytest.mark.parametrize(
    ("block", "path"),
    [
        ('store: "redis://:pw-0123456789@db:6379/0"', "store"),
        ('api: "tok-0123456789abcdef"', "api"),
        ('webhooks: ["https://hooks.example/in?token=tok-0123456789"]', "webhooks.0"),
        (
            'agent: {model: "m", mcpServers: {r: "https://m.example/?key=key-0123456789"}}',
            "agent.mcpServers.r",
        ),
        ('puppetOptions: "tok-0123456789"', "puppetOptions"),
    ],
)
def test_a_string_where_a_block_goes_is_named_by_its_type_only(block: str, path: str) -> None:
    """A block written as its one secret (the Redis URL for ``store``, the token for
    ``api``) was repeated whole in the message."""
    (said,) = problems(f"{{channels: {{wechat: {{{block}}}}}}}")
    assert said.startswith(f"channels.wechat.{path}: expected an object {{...}}, got a string")
    assert "0123456789" not in said
