"""What a library's log line may show: URLs cut to their origin, credentials masked, cut
short (``without_secrets``, for the lines of mcp, httpx, grpc... under ``gateway run``)."""

from __future__ import annotations

import logging

import pytest

from wechat_sdk.logtext import without_secrets


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (
            "401 for url 'https://u:pw@m.example/mcp?key=k1' Bearer sk-1",
            "401 for url 'https://m.example' Bearer ***",
        ),
        # an authorization's value is all secret, whatever its scheme (gRPC's to Wechaty)
        ("authorization: Wechaty puppet_service_abc123, next", "authorization: ***, next"),
        ("{'Authorization': 'Token abc def', 'x': 1}", "{'Authorization': '***', 'x': 1}"),
        ("api-key: sk-123 and more", "api-key: *** and more"),
        ("token=abc&x=1", "token=***&x=1"),
        ("password = hunter2", "password = ***"),
        ("'api_key': 'Bearer sk-9'", "'api_key': 'Bearer ***'"),
        ("X-Tenant-Token: tk-0123-default", "X-Tenant-Token: ***"),
        ("retrying in 2 s", "retrying in 2 s"),
    ],
)
def test_a_library_line_shows_no_secret(line: str, shown: str) -> None:
    assert without_secrets(line) == shown


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("apiKey: sk-1, X-Api-Key: sk-2", "apiKey: ***, X-Api-Key: ***"),
        (
            "APIKEY=sk-3 accessToken=t-4 client_secret=s-5",
            "APIKEY=*** accessToken=*** client_secret=***",
        ),
        ("proxy-authorization: Basic dXNlcjpwYXNz", "proxy-authorization: ***"),
        ("auth: user:pw, passwd=pw2", "auth: ***, passwd=***"),
        # a secret after another name's value: "user=bob password=hunter2" showed it
        ("user=bob password=hunter2 retry=1 token=t-6", "user=bob password=*** retry=1 token=***"),
        ("headers: Authorization: Wechaty tok-7", "headers: Authorization: ***"),
        ("proxyAuthorization: Basic dXNlcjpwYXNzcw==", "proxyAuthorization: ***"),
        ("api_key: Bearer abc, token: Basic xyz", "api_key: Bearer ***, token: Basic ***"),
        ("Authorization failed: Bearer eyJhbGciOi.e30.sig", "Authorization failed: Bearer ***"),
        ("basic dXNlcjpwYXNz", "basic ***"),
        ("Bearer abcdefghijklmnopqrstuvwxyz", "Bearer ***"),
        # a plural, or a secret's word before another (secret_value), is a secret too
        (
            "api_keys=k1 apiKeys: k2 tokens: t3 passwords=p4",
            "api_keys=*** apiKeys: *** tokens: *** passwords=***",
        ),
        (
            "secret_value=v5, tokenValue=v6, auth_header=h7",
            "secret_value=***, tokenValue=***, auth_header=***",
        ),
        # after a scheme written as a header writes it, any word: a token may be all letters
        ("sent Bearer mysecrettoken", "sent Bearer ***"),
        ("Basic auth failed; Bearer Token required", "Basic *** failed; Bearer *** required"),
    ],
)
def test_a_credential_in_any_usual_spelling_is_masked(line: str, shown: str) -> None:
    assert without_secrets(line) == shown


@pytest.mark.parametrize(
    "line",
    [
        # a secret's name inside another word: "monkey: ***" (key), "author: ***" (auth)
        "monkey: 3, turkey=1, hotkey=F1, keyboard=us",
        "author: Jane, tokenizer: bpe, secretary: Bob, passwordless: true",
        # a name that only starts with one: its last word says what the value is
        "token_count: 512, key_id=7, auth_url: local, password_policy=strict",
        # a scheme's name as a word of prose, in small letters: "a basic ***"
        "a basic question, a bearer of bad news",
    ],
)
def test_a_word_that_only_looks_like_a_secret_is_shown(line: str) -> None:
    assert without_secrets(line) == line


@pytest.mark.parametrize(
    "line",
    [
        "key-" * 5000,
        "x " + "api-key-" * 2500,
        "a-" * 50_000,
        "basic " * 10_000,
        "x " + "authorization-" * 5000,
        "x " + "monkeyKey" * 5000 + ": 1",
        "Bearer " + " " * 50_000 + "x",
    ],
)
def test_a_long_line_is_read_once_and_cut(line: str) -> None:
    # (names are tried only where a word begins: such a line took minutes to mask)
    out = without_secrets(line, limit=100)
    assert len(out) == 100 and out.endswith("…")


def shown_by_library(lines: dict[str, str]) -> list[str]:
    """Each of ``lines`` (by the name of the logger that logs it) as a program's own
    handler is given it (``logging.basicConfig(level=logging.DEBUG)``)."""
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    for name, line in lines.items():
        logger = logging.getLogger(name)
        keep = Keep()
        logger.addHandler(keep)
        old, logger.level = logger.level, logging.DEBUG
        try:
            logger.info("%s", line)
        finally:
            logger.removeHandler(keep)
            logger.setLevel(old)
    return seen


def test_a_webhook_agents_url_path_is_masked_in_its_requests_lines_only() -> None:
    """The agent's path (an n8n webhook's key) was masked wherever it showed: a common path
    (``/api/chat``) then showed as ``***`` in every library's lines, an Ollama's too."""
    from wechat_sdk.assistants.webhook_agent import WebhookAgent

    WebhookAgent("https://N8N.example.com:443/api/chat?tenant=t-5f0c2b9e", secret="whsec_x")
    lines = {
        "httpx": 'HTTP Request: POST https://n8n.example.com/api/chat?tenant=t-5f0c2b9e "200 OK"',
        "openai._base_client": "Request options: {'url': 'http://127.0.0.1:11434/api/chat'}",
        "mcp.client.streamable_http": "Connecting to StreamableHTTP endpoint: http://h/api/chat",
    }
    agents, ollamas, mcps = shown_by_library(lines)
    assert agents == 'HTTP Request: POST https://n8n.example.com/***?*** "200 OK"'
    assert ollamas == lines["openai._base_client"]
    assert mcps == lines["mcp.client.streamable_http"]


@pytest.mark.parametrize("user", ["u:pw", "bob", ":pw", "u:pw-0123456789"])
def test_a_urls_user_part_is_masked_in_a_librarys_lines_whatever_its_length(user: str) -> None:
    """A user part under 6 characters (``u:pw``) showed as it was in httpx's and the openai
    SDK's lines: only the longer ones were masked (``https://***@host``)."""
    from wechat_sdk.assistants.openai_chat import ChatModel
    from wechat_sdk.config.assistant import AgentConfig

    ChatModel(AgentConfig(model="m", baseUrl=f"https://{user}@llm.example/v1"))
    lines = {
        "httpx": f'HTTP Request: POST https://{user}@llm.example/v1/chat "200 OK"',
        "openai._base_client": f"Request options: {{'url': 'https://{user}@llm.example/v1'}}",
        # (a URL the config does not name: a redirect's, say)
        "mcp.client.sse": f"Connecting to SSE endpoint: http://{user}@other.example:8/sse",
    }
    assert shown_by_library(lines) == [
        'HTTP Request: POST https://***@llm.example/v1/chat "200 OK"',
        "Request options: {'url': 'https://***@llm.example/v1'}",
        "Connecting to SSE endpoint: http://***@other.example:8/sse",
    ]


@pytest.mark.parametrize("query", ["k=ab1", "v"])
def test_a_configured_urls_query_is_masked_in_a_librarys_lines_whatever_its_length(
    query: str,
) -> None:
    """The query of ``baseUrl`` (``?k=ab1``, a key) showed in httpx's line when under 6
    characters (only longer ones were masked), though docs/privacy.md says it is replaced.
    Now masked whatever its length where it follows its URL; the same text elsewhere, not
    after that URL, shows (``k=ab1`` masked everywhere would mask words of prose)."""
    from wechat_sdk.assistants.openai_chat import ChatModel
    from wechat_sdk.config.assistant import AgentConfig

    ChatModel(AgentConfig(model="m", baseUrl=f"https://LLM.example:443/v1?{query}"))
    lines = {
        # (as the openai SDK asks it: its path after the base's query)
        "httpx": f'HTTP Request: POST https://llm.example/v1?{query}/chat/completions "200 OK"',
        "mcp.client.sse": f"Connecting to SSE endpoint: http://other.example/sse?{query}&x=1",
    }
    assert shown_by_library(lines) == [
        'HTTP Request: POST https://llm.example/v1?***/chat/completions "200 OK"',
        lines["mcp.client.sse"],
    ]


def test_a_webhook_agents_short_query_is_masked_after_its_masked_path() -> None:
    """A webhook agent's URL with a short query (``?t=42``): its path masked, its query
    too (it showed, being under 6 characters)."""
    from wechat_sdk.assistants.webhook_agent import WebhookAgent

    WebhookAgent("https://hooks.example.com/webhook/abc-123?t=42", secret="whsec_x")
    (line,) = shown_by_library(
        {"httpx": 'HTTP Request: POST https://hooks.example.com/webhook/abc-123?t=42 "200 OK"'}
    )
    assert line == 'HTTP Request: POST https://hooks.example.com/***?*** "200 OK"'


def test_an_mcp_servers_short_query_is_masked_in_its_lines() -> None:
    from wechat_sdk.assistants.mcp_tools import McpServer
    from wechat_sdk.config.assistant import McpServerConfig

    McpServer("remote", McpServerConfig(url="https://mcp.example.com/mcp?k=7"))
    (line,) = shown_by_library(
        {
            "mcp.client.streamable_http": (
                "Connecting to StreamableHTTP endpoint: https://mcp.example.com/mcp?k=7"
            )
        }
    )
    assert line == "Connecting to StreamableHTTP endpoint: https://mcp.example.com/mcp?***"
