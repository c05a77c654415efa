"""The ``agent`` block: an assistant built from the config (an OpenAI-compatible model and
the tools of MCP servers), and the checks made on it before the gateway starts.

Key names are the seed's camelCase, as everywhere in ``channels.wechat``. An account's
own ``agent`` block replaces the top-level one (shallow, as every key).
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from wechat_sdk.config.errors import ConfigProblem
from wechat_sdk.config.integrations import check_whsec, http_url
from wechat_sdk.config.strict import StrictModel

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "DEFAULT_USER_KEY",
    "TURN_TIMEOUT_TIMES",
    "AgentConfig",
    "McpServerConfig",
    "agent_problems",
]

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant on WeChat. Answer briefly, in plain text."
#: the default ``user`` sent with each request: one stable key per conversation
DEFAULT_USER_KEY = "wechat:{accountId}:{conversationId}"

Provider = Literal["openai", "webhook"]

#: ``turnTimeout`` when it is not set: this many times ``timeout`` (300 s by default)
TURN_TIMEOUT_TIMES = 5

#: where the key comes from when ``apiKey`` is not set (where the openai SDK reads it)
API_KEY_VARIABLE = "OPENAI_API_KEY"

#: what no HTTP header may hold: a line break, NUL or another control character
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _one_line(value: str) -> str:
    """A header's value (a token, an API key) as the HTTP client can send it, or what says
    where to look: one line, ASCII, nothing blank around it. The value itself is never
    repeated (it is a secret, as often as not)."""
    if _CONTROL.search(value):
        raise ValueError(
            "holds a line break or another control character, which no HTTP header may "
            "hold (a secret read from a file often ends with a line break): remove it"
        )
    if not value.isascii():
        at = next(n for n, char in enumerate(value, 1) if not char.isascii())
        raise ValueError(
            f"holds a character that is not ASCII (its character {at}), which an HTTP "
            "header cannot carry: copy the value again"
        )
    if value != value.strip(" \t"):
        raise ValueError(
            "begins or ends with a space, which no HTTP header value may (a pasted secret "
            "often does): remove it"
        )
    return value


def _one_line_secret(value: SecretStr) -> SecretStr:
    _one_line(value.get_secret_value())
    return value


#: HTTP headers by name, each value one line
Headers = dict[str, Annotated[str, AfterValidator(_one_line)]]
#: keys only provider "openai" reads (a webhook agent reads url, secret, timeout, headers)
_OPENAI_ONLY = (
    "baseUrl",
    "apiKey",
    "systemPrompt",
    "temperature",
    "maxTokens",
    "maxRetries",
    "user",
    "vision",
    "visionMaxMb",
    "maxToolRounds",
    "turnTimeout",
    "dmTools",
    "failureText",
    "mcpServers",
)


class McpServerConfig(StrictModel):
    """One MCP server: a program started by the gateway (``command``) or a streamable
    HTTP server (``url``)."""

    command: str | None = Field(
        None, description="program to run (stdio), found on PATH unless a path is given"
    )
    args: list[str] = Field(default_factory=list, description="its arguments (stdio)")
    # (env, url and headers hold its keys: never in a repr, nor repeated by a message)
    env: dict[str, str] = Field(
        default_factory=dict,
        description="environment variables added for it (stdio)",
        repr=False,
    )
    url: str | None = Field(None, description="address of a streamable HTTP MCP server", repr=False)
    headers: Headers = Field(
        default_factory=dict,
        description="HTTP headers sent to it (a token, say; never logged)",
        repr=False,
    )

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError(
                "give command (a program the gateway starts) or url (a streamable HTTP "
                "server), one of them"
            )
        if self.command is not None and self.headers:
            raise ValueError("headers go with url; a command gets env")
        if self.url is not None and (self.args or self.env):
            raise ValueError("args and env go with command; a url gets headers")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            # (the url not repeated: it may hold a key)
            raise ValueError("url must start with http:// or https://")
        return self


#: an MCP server's key: what a tool name may hold (the model sees a tool as
#: ``<key>__<tool>`` when two share a name), without the ``__`` that ends it in a rule
#: entry, nor a ``_`` before that one
_SERVER_KEY = re.compile(r"(?!.*__)[A-Za-z0-9_-]*[A-Za-z0-9-]")


def _server_key(key: str) -> str:
    """``key`` when a tool rule can name the server by it (``docs``, ``docs__read_file``)
    and the model's tool names can hold it; otherwise ValueError saying what to write."""
    if _SERVER_KEY.fullmatch(key):
        return key
    fixed = re.sub(r"_{2,}", "_", re.sub(r"[^A-Za-z0-9_-]+", "_", key)).strip("_")
    write = repr(fixed) if fixed and fixed != "-" else "a name such as 'docs'"
    raise ValueError(
        f"the server key {key!r} cannot be used: tool rules name a server by its key "
        '(docs) and one of its tools as <key>__<tool> (docs__read_file), where "*" means '
        "every tool; so a key takes letters, digits, _ and - only, without __ and not "
        f"ending with _: write {write}"
    )


def _keys_apart_in_any_case(
    servers: dict[str, McpServerConfig],
) -> dict[str, McpServerConfig]:
    """``servers`` when no two keys differ only in case (``Files`` and ``files``): the
    tools the model sees as ``Files__read`` and ``files__read`` would pass for each other,
    and a rule entry ``files`` would name one server only. Otherwise an error at each
    later key of such a pair (raised as a ValidationError, so that it names that key)."""
    from pydantic_core import InitErrorDetails, ValidationError

    first: dict[str, str] = {}
    errors: list[InitErrorDetails] = []
    for key in servers:
        earlier = first.setdefault(key.casefold(), key)
        if earlier != key:
            message = (
                f"differs from the server key {earlier!r} only in case, and tool rules and "
                "the tool names the model sees would take one for the other: rename one of "
                "them, or remove it if they are the same server"
            )
            # (a template without braces: the keys have none)
            errors.append(
                InitErrorDetails(
                    type=PydanticCustomError("value_error", message), loc=(key,), input=key
                )
            )
    if errors:
        raise ValidationError.from_exception_data("mcpServers", errors)
    return servers


class AgentConfig(StrictModel):
    """The assistant that answers: a model behind the OpenAI Chat Completions API (OpenAI,
    Ollama, vLLM, LM Studio, DeepSeek, Qwen, OpenClaw's ``/v1``, ...) and MCP tools."""

    provider: Provider = Field(
        "openai",
        description='"openai": the Chat Completions API and servers compatible with it; '
        '"webhook": POST each turn to url, signed with secret (docs/webhooks.md)',
    )
    url: str | None = Field(  # (repr=False: its query may hold a key)
        None, description="provider webhook: the endpoint each turn is POSTed to", repr=False
    )
    secret: SecretStr | None = Field(
        None,
        description="provider webhook: the whsec_ secret the turns are signed with (a secret: "
        "never logged)",
    )
    baseUrl: str | None = Field(  # (repr=False: its user part or query may hold a key)
        None, description="the API's base URL (unset: https://api.openai.com/v1)", repr=False
    )
    apiKey: Annotated[SecretStr, AfterValidator(_one_line_secret)] | None = Field(
        None,
        description="API key (a secret: never logged); unset: $OPENAI_API_KEY, else none "
        '(a local server needs none); "${VAR}" takes it from another variable',
    )
    model: str | None = Field(
        None, min_length=1, description="the model's name on that server (provider openai)"
    )
    systemPrompt: str = Field(
        DEFAULT_SYSTEM_PROMPT, description="the instructions the model gets first"
    )
    temperature: float | None = Field(None, ge=0, le=2, description="sampling temperature")
    maxTokens: int | None = Field(None, ge=1, description="longest answer, in tokens")
    timeout: float = Field(
        60,
        gt=0,
        le=3600,
        description="seconds one request may wait on the server in all, its streamed answer "
        "included (and one tool call; a webhook agent's answer, its files' downloads included)",
    )
    maxRetries: int = Field(
        2, ge=0, le=10, description="retries of a timeout, 429 or 5xx, with backoff"
    )
    headers: Headers = Field(
        default_factory=dict,
        description="extra HTTP headers (OpenClaw's x-openclaw-agent-id, say); "
        "{accountId}, {conversationId} and {chatType} are filled in per conversation",
        repr=False,  # (a token, as often as not)
    )
    user: str | Literal[False] = Field(
        DEFAULT_USER_KEY,
        description="the request's user field, a stable key per conversation (OpenClaw keeps "
        "a session by it); same placeholders as headers; false sends none",
    )
    vision: bool = Field(True, description="give images to the model (when it can see)")
    visionMaxMb: float = Field(
        5, gt=0, le=50, description="largest image given to the model; a bigger one is named"
    )
    maxToolRounds: int = Field(
        4, ge=0, le=50, description="rounds of tool calls in one turn before it must answer"
    )
    turnTimeout: float | None = Field(
        None,
        gt=0,
        le=86400,
        description="seconds one turn may wait on the model and its tools in all, every "
        "request and tool call of it included; past them the turn ends with failureText "
        f"(unset: {TURN_TIMEOUT_TIMES} times timeout, 300 s by default)",
    )
    dmTools: list[str] | None = Field(
        None,
        description="tools offered in DMs: tool names or MCP server keys (unset: every tool)",
    )
    failureText: str | Literal[False] | None = Field(
        None,
        description="sent when the model fails after its retries (unset: errorNotice; "
        "false: nothing)",
    )
    mcpServers: Annotated[
        dict[Annotated[str, AfterValidator(_server_key)], McpServerConfig],
        AfterValidator(_keys_apart_in_any_case),
    ] = Field(
        default_factory=dict,
        description="MCP servers whose tools the model may call, by a key of your choice "
        "(letters, digits, _ and -, no two alike but for case; a group's tools entry may "
        "name the key: all its tools)",
    )

    def turn_timeout_s(self) -> float:
        """``turnTimeout``, else :data:`TURN_TIMEOUT_TIMES` x ``timeout``."""
        if self.turnTimeout is not None:
            return self.turnTimeout
        return TURN_TIMEOUT_TIMES * self.timeout

    def api_key(self) -> str | None:
        """``apiKey``, else ``$OPENAI_API_KEY`` (as the openai SDK reads it), else none.
        Raises ValueError, naming the variable (never its value), when it holds what no
        HTTP header may (``apiKey`` is checked as the config is read)."""
        if self.apiKey is not None:
            return self.apiKey.get_secret_value()
        key = os.environ.get(API_KEY_VARIABLE) or None
        if key is not None:
            try:
                _one_line(key)
            except ValueError as exc:
                raise ValueError(
                    f"not set, so the key comes from ${API_KEY_VARIABLE}: it {exc}"
                ) from None
        return key

    @field_validator("model", "url", "secret")
    @classmethod
    def _keys_of_the_provider(cls, value: object, info: ValidationInfo) -> object:
        # provider is declared first, so it is known here; a missing key is reported at
        # its own path, as pydantic reports a missing required key
        provider = info.data.get("provider", "openai")
        needed = ("model",) if provider == "openai" else ("url", "secret")
        key = info.field_name
        if value is None and key in needed:
            raise PydanticCustomError("missing", "required key is missing")
        if value is not None and key not in needed:
            other = "webhook" if provider == "openai" else "openai"
            raise ValueError(f'{key} goes with provider "{other}", not "{provider}"')
        if key == "url" and isinstance(value, str):
            if not value.startswith(("http://", "https://")):
                raise ValueError("url must start with http:// or https://")
            http_url(value)  # a host and port an HTTP client can use
        if key == "secret" and isinstance(value, SecretStr):
            problem = check_whsec(value.get_secret_value())
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator(*_OPENAI_ONLY)
    @classmethod
    def _openai_only(cls, value: Any, info: ValidationInfo) -> Any:
        # a webhook agent never reads them: one set there would silently do nothing
        key = info.field_name
        assert key is not None
        if info.data.get("provider", "openai") != "openai":
            default = cls.model_fields[key].get_default(call_default_factory=True)
            if value != default:
                raise ValueError(
                    f'{key} goes with provider "openai"; a webhook agent reads url, secret, '
                    "timeout and headers"
                )
        if key == "baseUrl" and isinstance(value, str):
            if not value.startswith(("http://", "https://")):
                raise ValueError("baseUrl must start with http:// or https://")
            http_url(value)  # a host and port an HTTP client can use
        return value


def agent_problems(agent: AgentConfig, key_path: str) -> list[ConfigProblem]:
    """What keeps an agent block from working on this machine: a key from the environment
    that no HTTP header may hold, an MCP ``command`` that is not a program here.
    ``key_path`` is where the block was written."""
    out: list[ConfigProblem] = []
    if agent.provider == "openai":
        try:
            agent.api_key()
        except ValueError as exc:
            out.append(ConfigProblem(f"{key_path}.apiKey", str(exc)))
    for name, server in agent.mcpServers.items():
        command = server.command
        if command is None:
            continue
        path = os.path.expanduser(command)
        found = shutil.which(path)
        if found is None:
            where = "is not a program on PATH" if os.sep not in path else "is not an executable"
            out.append(
                ConfigProblem(
                    f"{key_path}.mcpServers.{name}.command",
                    f"{command!r} {where}: install it (uvx comes with uv, npx with Node.js), "
                    "or give its full path",
                )
            )
    return out
