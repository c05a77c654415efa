"""The assistant the config describes: ``channels.wechat.agent`` (an account's own block
replaces it for that account), answering every turn by streaming a model's reply.

It is an :data:`~wechat_sdk.agent.Agent` with a lifecycle: the gateway calls
``start(config)`` when it starts (the MCP servers are started, once for every account
that shares them) and ``aclose()`` when it stops (they are stopped). Used as a library::

    assistant = ConfiguredAssistant()
    gateway = Gateway(config, agent=assistant)
    await gateway.start()   # starts the assistant's MCP servers too
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from wechat_sdk.agent import Agent, AgentResult, AgentTurn
from wechat_sdk.agents import echo
from wechat_sdk.assistants.context import turn_messages
from wechat_sdk.assistants.mcp_tools import McpServer
from wechat_sdk.assistants.offered_tools import tools_for_turn
from wechat_sdk.assistants.openai_chat import ChatModel, ModelFailed
from wechat_sdk.assistants.webhook_agent import MediaLink, WebhookAgent
from wechat_sdk.config import Config, ResolvedAccount, accounts_of
from wechat_sdk.logtext import shown
from wechat_sdk.outbound.markdown import format_reply

if TYPE_CHECKING:
    import httpx

__all__ = ["ConfiguredAssistant", "configured_assistant"]

log = logging.getLogger("wechat_sdk.assistant")

#: the longest a start waits for the MCP servers' first connection
MCP_START_WAIT_S = 15.0


class ConfiguredAssistant:
    """Answers with the model and tools of each account's ``agent`` block.

    ``http_client``: a function making the ``httpx.AsyncClient`` each model client uses
    (a test's transport); unset, the SDK makes its own. ``fallback`` answers for an
    account that has no ``agent`` block (the built-in echo).
    """

    def __init__(
        self,
        *,
        http_client: Callable[[], httpx.AsyncClient] | None = None,
        fallback: Agent = echo,
        media_link: MediaLink | None = None,
    ) -> None:
        self._http_client = http_client
        self._fallback = fallback
        #: provider "webhook": the agent per account, and the signed links of its media
        self._webhooks: dict[str, WebhookAgent] = {}
        self._media_link = media_link
        self._accounts: dict[str, ResolvedAccount] = {}
        self._models: dict[str, ChatModel] = {}
        self._account_servers: dict[str, list[McpServer]] = {}
        #: every MCP server by (key, its settings): one process for the accounts sharing it
        self._servers: dict[tuple[str, str, float], McpServer] = {}
        #: told of each model failure (ReportsFailures: the gateway's account status)
        self.on_failure: Callable[[str, str], None] | None = None

    @property
    def mcp_servers(self) -> dict[str, McpServer]:
        """The running MCP servers by their key."""
        return {server.key: server for server in self._servers.values()}

    async def start(self, config: Config) -> None:
        """Make the model clients and start the MCP servers (waiting a little for their
        first connection: a server that fails is tried again in the background)."""
        await self.aclose()
        for account in accounts_of(config).enabled:
            agent = account.settings.agent
            if agent is None:
                log.warning(
                    "no agent block for this account: it answers with the built-in echo",
                    extra={"account": account.id},
                )
                continue
            self._accounts[account.id] = account
            if agent.provider == "webhook":
                assert agent.url is not None and agent.secret is not None  # (validated)
                self._webhooks[account.id] = WebhookAgent(
                    agent.url,
                    agent.secret.get_secret_value(),
                    timeout_s=agent.timeout,
                    headers=agent.headers,
                    media_link=self._media_link,
                    http_client=self._http_client,
                    # its answer may be steered by a peer: its file urls under the
                    # peer rule, which mediaFetchAllowPrivate lifts
                    allow_private=account.settings.mediaFetchAllowPrivate,
                    max_bytes=account.media_max_bytes,
                )
                continue
            client = self._http_client() if self._http_client is not None else None
            model = self._models[account.id] = ChatModel(agent, http_client=client)
            model.client  # noqa: B018 (made now: importing openai takes a while)
            servers = []
            for key, server_config in agent.mcpServers.items():
                # (one process for the accounts that name it alike, each timeout its own)
                ident = (key, server_config.model_dump_json(), agent.timeout)
                server = self._servers.get(ident)
                if server is None:
                    server = McpServer(key, server_config, call_timeout_s=agent.timeout)
                    self._servers[ident] = server
                servers.append(server)
            self._account_servers[account.id] = servers
        await asyncio.gather(*(s.start(MCP_START_WAIT_S) for s in self._servers.values()))

    async def aclose(self) -> None:
        """Stop the MCP servers and close the model clients."""
        servers, self._servers = list(self._servers.values()), {}
        models, self._models = list(self._models.values()), {}
        webhooks, self._webhooks = list(self._webhooks.values()), {}
        await asyncio.gather(*(w.aclose() for w in webhooks))
        self._accounts = {}
        self._account_servers = {}
        await asyncio.gather(*(s.aclose() for s in servers), *(m.aclose() for m in models))

    def __call__(self, turn: AgentTurn) -> Awaitable[AgentResult] | AsyncIterator[str]:
        webhook = self._webhooks.get(turn.account_id)
        if webhook is not None:
            return webhook(turn)
        if turn.account_id not in self._models:
            return self._fallback(turn)
        return self._answer(turn)

    async def _answer(self, turn: AgentTurn) -> AsyncIterator[str]:
        account = self._accounts[turn.account_id]
        model = self._models[turn.account_id]
        agent = model.config
        failure_text = self.failure_text(account)
        tools = tools_for_turn(
            turn,
            account,
            agent.dmTools,
            self._account_servers.get(turn.account_id, ()),
            call_timeout_s=agent.timeout,
        )
        messages = turn_messages(
            turn,
            system_prompt=agent.systemPrompt,
            vision=agent.vision,
            image_max_bytes=int(agent.visionMaxMb * 1024 * 1024),
            # (as it was sent, so as the history holds it: markdown flattened, stripped)
            failure_text=format_reply(failure_text, account.settings.markdown).strip() or None,
        )
        said = False
        try:
            async for piece in model.answer(turn, messages, tools):
                said = said or bool(piece.strip())
                yield piece
        except ModelFailed as exc:
            log.warning(
                "the model failed on message %s: %s reason=%s",
                shown(turn.message_id),
                shown(exc, 300),
                exc.reason,
                extra={"account": turn.account_id},
            )
            if self.on_failure is not None:
                self.on_failure(turn.account_id, f"model error: {shown(exc, 300)}")
            if failure_text:
                # after what was said (it went out, or goes with this): never again
                yield ("\n\n" if said else "") + failure_text

    @staticmethod
    def failure_text(account: ResolvedAccount) -> str:
        """What the user is sent when the model fails: ``agent.failureText``, else the
        account's ``errorNotice``; empty for none."""
        agent = account.settings.agent
        text: Any = agent.failureText if agent is not None else None
        if text is None:
            text = account.settings.errorNotice
        return text if isinstance(text, str) else ""


def configured_assistant(
    config: Config, *, media_link: MediaLink | None = None
) -> ConfiguredAssistant | None:
    """The assistant of ``config`` when an enabled account has an ``agent`` block
    (``media_link``: the signed links a webhook agent gets for inbound files)."""
    if any(a.settings.agent is not None for a in accounts_of(config).enabled):
        return ConfiguredAssistant(media_link=media_link)
    return None
