"""Pydantic models of the ``channels.wechat`` block.

Key names are the seed's camelCase. Every model forbids unknown keys (a typo must not
silently do nothing). Cross-field rules live in :mod:`wechat_sdk.config.accounts`,
because they apply to each account after inheritance.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from wechat_sdk.config.allow_from import WILDCARD, normalize_allow_entry
from wechat_sdk.config.assistant import AgentConfig
from wechat_sdk.config.integrations import ApiConfig, WebhookEndpoints
from wechat_sdk.config.store import StoreConfig
from wechat_sdk.config.strict import StrictModel
from wechat_sdk.config.templates import template_problem

__all__ = [
    "AccountConfig",
    "ChannelsConfig",
    "Config",
    "DraftChunkConfig",
    "GroupConfig",
    "HealthConfig",
    "PacingConfig",
    "PuppetOptions",
    "TlsOptions",
    "ToolPolicy",
    "WechatConfig",
]

DmPolicy = Literal["pairing", "allowlist", "open", "disabled"]
GroupPolicy = Literal["open", "allowlist", "disabled"]
StreamMode = Literal["off", "partial", "block"]
ChunkMode = Literal["length", "newline"]
MarkdownMode = Literal["plain", "keep"]
BreakPreference = Literal["paragraph", "newline", "sentence"]

AllowEntry = Annotated[str | int, Field(description='a WeChat contact id (wxid), or "*"')]


class TlsOptions(StrictModel):
    """TLS for a Puppet Service connection."""

    caFile: str | None = Field(None, description="PEM file of the CA that signed the server")
    serverName: str | None = Field(
        None, description='name to verify in the server certificate (default "insecure")'
    )


#: what a key holding a secret is called, in any puppet's options (``token``,
#: ``appSecret``, ``encodingAESKey``, ``password``, ``passphrase``, ``apiKey``, ``authCode``,
#: ``cookie``, ``credentials``...): masking an option that is no secret costs nothing
SECRET_KEY_NAME = re.compile(r"token|secret|pass|key|auth|cookie|credential", re.IGNORECASE)


class PuppetOptions(BaseModel):
    """Options of the puppet. Keys not listed here are handed to a Node puppet as they are."""

    model_config = ConfigDict(extra="allow")

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # a Node puppet's own option may be its token: its value shown as config check
        # shows it (pydantic's repr=False cannot name a key that is not declared)
        for name, value in super().__repr_args__():
            secret = name is not None and SECRET_KEY_NAME.search(name) and value
            yield name, "***" if secret else value

    endpoint: str | None = Field(None, description='Puppet Service address "host:port"')
    token: str | None = Field(
        None, description="Puppet Service token (a secret: never logged)", repr=False
    )
    tls: bool | TlsOptions | None = Field(
        None,
        description="a service: TLS unless false; {caFile, serverName} to trust a CA "
        '(server name "insecure" for tokens that start with "insecure"). '
        "A Node sidecar: plaintext on 127.0.0.1 unless true",
    )
    discoveryUrl: str | None = Field(
        None, description="base URL of the token discovery service (used without endpoint)"
    )
    baseUrl: str | None = Field(
        None, description='iLink: the API (default "https://ilinkai.weixin.qq.com")'
    )
    cdnBaseUrl: str | None = Field(
        None, description='iLink: the CDN (default "https://novac2c.cdn.weixin.qq.com/c2c")'
    )
    botAgent: str | None = Field(
        None, description='iLink: the bot_agent every call declares, e.g. "MyBot/1.0"'
    )
    routeTag: str | int | None = Field(
        None, description="iLink: sent as the SKRouteTag header when set"
    )


class ToolPolicy(StrictModel):
    """OpenClaw's tool policy form: ``{allow, alsoAllow, deny}``."""

    allow: list[str] | None = Field(None, description="the tools allowed (None: all registered)")
    alsoAllow: list[str] = Field(default_factory=list, description="added to allow")
    deny: list[str] = Field(default_factory=list, description="removed last; wins over allow")


class GroupConfig(StrictModel):
    """Settings of one group (or of every group, under ``"*"``)."""

    requireMention: bool | None = Field(
        None, description="answer only when mentioned (default true)"
    )
    tools: list[str] | ToolPolicy | None = Field(
        None,
        description="tools the agent may use in this group: a list or {allow, alsoAllow, deny}",
    )
    enabled: bool | None = Field(None, description="false ignores this group entirely")


class DraftChunkConfig(StrictModel):
    """Block sizes when streaming a reply in blocks."""

    minChars: int = Field(
        200,
        ge=1,
        description="smallest block sent on an idle pause, in characters as a user sees "
        "them (an emoji with its skin tone is one)",
    )
    maxChars: int = Field(800, ge=1, description="largest block (clamped to textChunkLimit)")
    idleMs: int = Field(1000, ge=0, description="pause of the agent that flushes a block")
    breakPreference: BreakPreference = Field(
        "paragraph", description="preferred break when cutting a block"
    )


class PacingConfig(StrictModel):
    """Per-account send rate limit (anti-ban)."""

    perSecond: float = Field(
        1.0,
        gt=0,
        description="sustained messages per second (no upper limit: WeChat tolerates about 1)",
    )
    burst: int = Field(5, ge=1, description="messages that may go at once after a quiet period")
    chunkGapMs: int = Field(1000, ge=0, description="minimum gap between chunks of one reply")
    jitterMs: int = Field(300, ge=0, description="random extra delay, up to this much")


class HealthConfig(StrictModel):
    """Optional HTTP health endpoints (/healthz, /readyz) on 127.0.0.1."""

    port: int = Field(
        ge=0, le=65535, description="TCP port on 127.0.0.1 (0: a free port, named in the log)"
    )


class AccountConfig(StrictModel):
    """Every key an account may set. The top level of ``channels.wechat`` sets the same
    keys for all accounts; an account's own keys override them (shallow)."""

    enabled: bool = Field(True, description="false stops this account (or, at the top, all)")
    name: str | None = Field(None, description="the bot's display name, used in messages")
    puppet: str = Field(
        "wechaty-puppet-wechat",
        description='"simulator", "wechaty-puppet-service", "ilink", or a Node puppet package name',
    )
    puppetOptions: PuppetOptions = Field(
        default_factory=PuppetOptions, description="options of the puppet"
    )
    qrCode: bool = Field(True, description="draw the login QR code in the terminal")
    qrMaxTimeouts: int = Field(
        3, ge=1, description="QR codes that may time out before the account stops"
    )
    dmPolicy: DmPolicy = Field("pairing", description="who may talk to the bot in DMs")
    allowFrom: list[AllowEntry] | None = Field(
        None, description='contact ids allowed in DMs; "*" for everyone'
    )
    pairingAccount: str | None = Field(
        None,
        description="the account whose pairing list (codes, approvals) this one shares; "
        "by default its own",
    )
    groupPolicy: GroupPolicy = Field("open", description="which groups the bot listens to")
    groupAllowFrom: list[AllowEntry] | None = Field(
        None,
        description="senders answered in groups, under every groupPolicy (unset: every member)",
    )
    groups: dict[str, GroupConfig] = Field(
        default_factory=dict, description='per-group settings by room id, or "*" for all'
    )
    mentionAll: bool = Field(False, description="whether @all / @所有人 counts as a mention")
    historyLimit: int = Field(
        20, ge=0, le=200, description="unanswered group messages given as context (0: none)"
    )
    dmHistoryLimit: int = Field(10, ge=0, le=200, description="earlier DM turns given as context")
    textChunkLimit: int = Field(
        2048, ge=1, le=20000, description="longest single text message (iLink accounts: 4000)"
    )
    chunkMode: ChunkMode = Field("length", description='"newline" packs whole paragraphs')
    markdown: MarkdownMode = Field("plain", description="turn markdown into plain text or keep it")
    streamMode: StreamMode = Field(
        "partial", description="streaming of agent output; WeChat cannot edit, so it sends blocks"
    )
    blockStreaming: bool = Field(True, description="send a streaming agent's text in blocks")
    draftChunk: DraftChunkConfig = Field(
        default_factory=DraftChunkConfig, description="block sizes for streaming"
    )
    pacing: PacingConfig | Literal[False] = Field(
        default_factory=PacingConfig, description="send rate limit; false turns it off"
    )
    mediaMaxMb: float = Field(
        30, gt=0, le=1_000_000, description="largest media file downloaded or sent"
    )
    mediaMaxAgeHours: float = Field(
        168, gt=0, description="inbound media older than this is deleted"
    )
    mediaFetchAllowPrivate: bool = Field(
        False,
        description="fetch a file a puppet sends as a URL, or a webhook agent answers with, "
        "even from a loopback, private or link-local address (a Python agent's own URLs "
        "are always fetched)",
    )
    pairingNotify: str | None = Field(
        None,
        description="contact id told of each new pairing request (a wechat: or wx: prefix "
        "is dropped, as in allowFrom)",
    )
    pairingMessage: str | None = Field(
        None,
        description="text sent to a stranger; {code}, {senderId}, {botName} and {command} "
        "are filled in (it must show {code}, or {command}, which holds it)",
    )
    errorNotice: str | Literal[False] = Field(
        "Sorry, something went wrong while answering. Please try again.",
        description="sent when the agent fails; false sends nothing",
    )
    health: HealthConfig | None = Field(
        None, description="HTTP health endpoints (gateway-wide: top level only)"
    )
    stateDir: str | None = Field(None, description="state directory (default ~/.clawdbot/wechat)")
    agent: AgentConfig | None = Field(
        None,
        description="the assistant that answers, built from the config (an OpenAI-compatible "
        "model and MCP tools); `gateway run --agent` overrides it",
    )

    @field_validator("allowFrom", "groupAllowFrom", mode="before")
    @classmethod
    def _entries_are_ids(cls, value: object) -> object:
        if isinstance(value, list):
            for entry in value:
                if isinstance(entry, bool) or not isinstance(entry, str | int):
                    # as written (a lone surrogate, half a character, as "?": the message
                    # must be text pydantic can carry)
                    shown = json.dumps(entry, ensure_ascii=False, default=str)
                    shown = shown.encode("utf-8", "replace").decode("utf-8")
                    raise ValueError(f"entries must be contact ids (strings), got {shown}")
        return value

    @field_validator("pairingNotify")
    @classmethod
    def _one_contact(cls, value: str | None) -> str | None:
        # written as an allowFrom entry is (the owner's id is often copied from there); an
        # empty one or "*" would tell nobody, silently
        contact = None if value is None else normalize_allow_entry(value)
        if contact is not None and contact in ("", WILDCARD):
            raise ValueError(
                f"expected one contact id (the owner's wxid, told of each new pairing "
                f'request), got "{value}": write the id, or leave pairingNotify out'
            )
        return contact

    @field_validator("pairingMessage")
    @classmethod
    def _template_fills(cls, value: str | None) -> str | None:
        # checked here, not when a stranger writes: a bad one would fail on every DM
        problem = None if value is None else template_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class WechatConfig(AccountConfig):
    """The whole ``channels.wechat`` block."""

    accounts: dict[str, AccountConfig] | None = Field(
        None, description="several WeChat accounts; each inherits the top-level keys"
    )
    defaultAccountId: str | None = Field(
        None,
        description="account used for proactive sends (alias: defaultAccount)",
        validation_alias=AliasChoices("defaultAccountId", "defaultAccount"),
    )
    historyCacheConversations: int = Field(
        1000,
        ge=1,
        description="conversations whose history the SQLite store keeps in memory, all "
        "accounts together (the others are read from the file when used)",
    )
    webhooks: WebhookEndpoints = Field(
        default_factory=list,
        description="endpoints the gateway POSTs its events to, signed (Standard Webhooks)",
    )
    api: ApiConfig | None = Field(
        None, description="the HTTP API: send messages, account status, pairing"
    )
    store: StoreConfig = Field(
        default_factory=StoreConfig,
        description='where the gateway keeps what it must not forget: {kind: "sqlite"} (the '
        'default), {kind: "memory"}, or {kind: "redis", url} shared by several gateways',
    )


class ChannelsConfig(BaseModel):
    """The ``channels`` block. Other channels belong to other programs and are left alone."""

    model_config = ConfigDict(extra="allow")

    wechat: WechatConfig = Field(default_factory=WechatConfig)


class Config(BaseModel):
    """A whole config file. Only ``channels.wechat`` is read by this SDK."""

    model_config = ConfigDict(extra="allow")

    channels: ChannelsConfig = Field(default_factory=ChannelsConfig)
