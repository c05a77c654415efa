"""The composition root: a gateway built from a config.

The only place where adapters are wired to the channel logic: accounts are resolved,
each enabled account gets a puppet from the factory, stores, a pacer, the inbound and
outbound pipelines, and a runner.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from wechat_sdk.agent import Agent, AgentLifecycle, Reply, ReportsFailures, ToolRegistry
from wechat_sdk.clock import Clock, RealClock
from wechat_sdk.cluster.fence import FencedPuppet, held_store
from wechat_sdk.config import (
    AccountSet,
    Config,
    ConfigError,
    ConfigProblem,
    ResolvedAccount,
    accounts_of,
    asked_account_id,
)
from wechat_sdk.echoes import EchoLedger
from wechat_sdk.events import GatewayEvents
from wechat_sdk.gateway.control import DEFAULT_STATE_DIR
from wechat_sdk.gateway.pairing_api import PairingAPI
from wechat_sdk.gateway.runner import ACCOUNT_OF_TASK, AccountRunner
from wechat_sdk.gateway.status import AccountStatus
from wechat_sdk.inbound.history import HistoryBook
from wechat_sdk.inbound.media import MediaSaver
from wechat_sdk.inbound.pipeline import InboundPipeline
from wechat_sdk.outbound.delivery import Sender
from wechat_sdk.outbound.message import OutboundMessage
from wechat_sdk.outbound.pacing import Pacer
from wechat_sdk.outbound.pipeline import Outbound
from wechat_sdk.outbound.waiting import WaitingForUser
from wechat_sdk.own_accounts import OwnAccounts
from wechat_sdk.pairing.service import Pairing
from wechat_sdk.puppet import Puppet
from wechat_sdk.stores.base import Store
from wechat_sdk.stores.configured import open_store
from wechat_sdk.stores.redis.store import FencedRedisStore, RedisStore
from wechat_sdk.webhooks.dispatcher import WebhookDispatcher
from wechat_sdk.webhooks.status import WebhookStatus

if TYPE_CHECKING:
    from wechat_sdk.cluster.coordinator import ClusterCoordinator
    from wechat_sdk.cluster.fence import LeaseGuard
    from wechat_sdk.gateway.verify_code import CodePrompt
    from wechat_sdk.http.media_links import MediaLinks
    from wechat_sdk.http.server import GatewayHttp

__all__ = [
    "DEFAULT_STATE_DIR",
    "Gateway",
    "PairingAPI",
    "PuppetFactory",
    "UnknownAccounts",
    "state_dir_of",
]

log = logging.getLogger("wechat_sdk.gateway")

PuppetFactory = Callable[[ResolvedAccount], Puppet]


class UnknownAccounts(ValueError):
    """``only_accounts`` names ids that are no account of the config (``unknown``; the
    config's are ``configured``), or accounts it disables (``disabled``): a gateway that
    would not run them."""

    def __init__(
        self, unknown: Sequence[str], configured: Sequence[str], disabled: Sequence[str] = ()
    ) -> None:
        self.unknown = list(unknown)
        self.configured = list(configured)
        self.disabled = list(disabled)
        super().__init__(self.named_by("only_accounts"))

    def named_by(self, what: str) -> str:
        """The error as said to whoever named the ids through ``what`` (the CLI says
        ``--accounts``, the option its user typed)."""
        said = []
        if self.unknown:
            said.append(
                f"{what} names {', '.join(self.unknown)}, not an account of the config "
                f"(its accounts: {', '.join(self.configured)})"
            )
        if self.disabled:
            said.append(
                f"{what} names {', '.join(self.disabled)}, disabled in the config (enabled: "
                f"false): enable it there, or leave it out of {what}"
            )
        return "; ".join(said)


class Gateway:
    """Runs the WeChat channel for every enabled account of a config.

    Example:
        ```python
        gateway = Gateway(config, agent=my_agent, puppet_factory=world.puppet_factory,
                          state_dir=tmp_path, clock=world.clock)
        await gateway.start()
        ```
    """

    def __init__(
        self,
        config: Config,
        *,
        agent: Agent,
        puppet_factory: PuppetFactory | None = None,
        state_dir: str | Path | None = None,
        clock: Clock | None = None,
        store: Store | None = None,
        rng: random.Random | None = None,
        show_terminal_qr: bool = True,
        media_links: MediaLinks | None = None,
        only_accounts: Sequence[str] | None = None,
        gateway_id: str | None = None,
    ) -> None:
        self.config = config
        self.accounts: AccountSet = accounts_of(config)
        for warning in self.accounts.warnings:
            log.warning(warning, extra={"account": "-"})
        named = None if only_accounts is None else [asked_account_id(a) for a in only_accounts]
        unknown = [a for a in named or () if a not in self.accounts.accounts]
        enabled = {a.id for a in self.accounts.enabled}
        disabled = [a for a in named or () if a in self.accounts.accounts and a not in enabled]
        if unknown or disabled:
            raise UnknownAccounts(unknown, list(self.accounts.accounts), disabled)
        #: the accounts ``only_accounts`` names (ids as the CLI takes them), or None: all
        self.only_accounts = named
        #: with ``store.kind: "redis"``, while started: the accounts this gateway holds
        self.cluster: ClusterCoordinator | None = None
        self._gateway_id = gateway_id
        self.agent = agent
        self.clock: Clock = clock or RealClock()
        self.puppet_factory = puppet_factory or default_puppet_factory(self)
        self.state_dir: Path = state_dir_of(config, state_dir)
        #: the ``state_dir`` given (it wins over the config's stateDir at a reload too)
        self._state_dir_given = state_dir
        self._store = store
        #: whether the store is the config's (opened from its ``store`` block), not given
        self._store_from_config = store is None
        self._rng = rng
        self.show_terminal_qr = show_terminal_qr
        #: asks a person for the number the phone shows when an iLink login waits for it
        #: (``gateway run`` in a terminal sets a TerminalCodePrompt; set before start)
        self.code_prompt: CodePrompt | None = None
        self.tools = ToolRegistry()
        self.runners: dict[str, AccountRunner] = {}
        #: the WeChat id of each account (of the cluster's too): no user's messages
        self.own_accounts = OwnAccounts()
        self._started = False
        self.pairing = PairingAPI(self)
        #: the HTTP server (health endpoints, the API), while it runs
        self.http: GatewayHttp | None = None
        #: the webhook deliveries, while they run (``channels.wechat.webhooks``)
        self.webhooks: WebhookDispatcher | None = None
        #: the event sink the accounts are built with (their events go to the webhooks)
        self.events = GatewayEvents()
        if media_links is None:
            from wechat_sdk.http.media_links import MediaLinks

            media_links = MediaLinks(self.state_dir / "media" / "inbound", self.clock)
        #: the signed links to inbound media the API server serves (for a webhook agent)
        self.media_links = media_links

    @property
    def health(self) -> GatewayHttp | None:
        """The HTTP server while it runs (``channels.wechat.health`` or ``api``): its
        ``port`` is the health endpoints', ``api_port`` the API's."""
        return self.http

    # ------------------------------------------------------------ wiring

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.config.channels.wechat, self.state_dir, self.clock)
        return self._store

    def _pairing_service(self) -> Pairing:
        code_rng = self._rng if self._rng is not None else None
        lists = {a.id: a.pairing_id for a in self.accounts.accounts.values()}
        return Pairing(self.store.pairing, self.clock, code_rng=code_rng, lists=lists)

    def build_account(
        self, account: ResolvedAccount, guard: LeaseGuard | None = None
    ) -> AccountRunner:
        """The account's runner (not started), in :attr:`runners`; its sends fenced by
        ``guard`` when the gateway holds the account by lease."""
        runner = self._build_runner(account, guard)
        self.runners[account.id] = runner
        return runner

    def _build_runner(
        self, account: ResolvedAccount, guard: LeaseGuard | None = None
    ) -> AccountRunner:
        s = account.settings
        puppet = self.puppet_factory(account)
        rng = random.Random(self._rng.random()) if self._rng is not None else random.Random()
        pacing = s.pacing
        pacer = Pacer(
            self.clock,
            per_second=None if pacing is False else pacing.perSecond,
            burst=5 if pacing is False else pacing.burst,
            jitter_s=0.0 if pacing is False else pacing.jitterMs / 1000.0,
            rng=rng,
        )
        # held by lease: each write for the account fenced by it in Redis (cluster/fence.py)
        store = self.store if guard is None else held_store(self.store, guard)
        outbox = store.outbox
        # when the account was first served: in Redis for a cluster (any gateway may take
        # the account over), else a file of the state directory
        if isinstance(store, RedisStore | FencedRedisStore):
            since = store.serving_since(account.id)
            keep_since = functools.partial(store.keep_serving_since, account.id)
        else:
            since = _serving_since(self.state_dir, account.id)
            keep_since = functools.partial(_keep_serving_since, self.state_dir, account.id)
        status = AccountStatus(account=account.id, lifecycle="stopped")

        def record_error(error: str) -> None:
            status.last_error = error

        echoes = EchoLedger()
        logged_in = asyncio.Event()
        sender = Sender(
            puppet if guard is None else cast(Puppet, FencedPuppet(puppet, guard)),
            self.clock,
            pacer,
            echoes,
            account.id,
            logged_in=logged_in,
            on_failure=record_error,
            events=self.events,
        )
        waiting = WaitingForUser(
            outbox,
            account.id,
            self.clock,
            logging.LoggerAdapter(log, {"account": account.id}),
        )
        outbound = Outbound(account, sender, self.clock, waiting)
        history = HistoryBook(
            store.history, account.id, group_limit=s.historyLimit, dm_limit=s.dmHistoryLimit
        )
        # a folder per account: each prunes by its own mediaMaxAgeHours (the default
        # account also the files saved before, in the shared folder)
        inbound_media = self.state_dir / "media" / "inbound"
        media = MediaSaver(
            inbound_media / account.id,
            self.clock,
            legacy=inbound_media if account.id == self.accounts.default_id else None,
        )
        inbound = InboundPipeline(
            account=account,
            default_account_id=self.accounts.default_id,
            puppet=puppet,
            clock=self.clock,
            dedupe=store.dedupe,
            pairing=self._pairing_service(),
            history=history,
            media=media,
            tools=self.tools,
            echoes=echoes,
            own_accounts=self.own_accounts,
            serving_since=since,
            on_first_login=keep_since,
        )
        runner = AccountRunner(
            account=account,
            puppet=puppet,
            agent=self.agent,
            clock=self.clock,
            inbound=inbound,
            outbound=outbound,
            history=history,
            tools=self.tools,
            outbox=outbox,
            status=status,
            mark_position=store.mark_position,
            marks_durable=store.marks_durable,
            logged_in=logged_in,
            state_dir=self.state_dir,
            rng=rng,
            show_terminal_qr=self.show_terminal_qr,
            events=self.events,
            # held by lease: each turn written ahead, so that another gateway finishes it
            journal_every_turn=guard is not None,
            # (a stop without the lease writes nothing: what is written is the new holder's)
            lease_lost=(lambda: False) if guard is None else (lambda: guard.lost),
            # (held by lease: a turn a Redis outage broke, by a read too, is as a failed
            # write: the account is handed over once Redis answers, and its turn goes on)
            on_turn_failed=(lambda exc: None) if guard is None else guard.fence().broke_turn,
        )
        runner.connection.code_prompt = self.code_prompt
        return runner

    def _agent_failed(self, account_id: str, what: str) -> None:
        """The agent answered a failure itself (the model failed): the status says it."""
        runner = self.runners.get(account_id)
        if runner is not None:
            runner.record_error(what)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start every enabled account (returns at once; accounts log in in the background).

        Also starts the HTTP server when ``channels.wechat.health`` or ``api`` is set (a
        port that cannot be used raises :class:`ConfigError` before any account starts),
        and the webhook deliveries when ``channels.wechat.webhooks`` lists endpoints.
        """
        if self._started:
            return
        await self._start_http()
        if self.http is not None:  # (kept through a reload: it refused sends meanwhile)
            self.http.accept_sends()
        self._start_webhooks()
        if isinstance(self.agent, AgentLifecycle):  # its MCP servers, say
            await self.agent.start(self.config)
        if isinstance(self.agent, ReportsFailures):  # a model failing shows in status
            self.agent.on_failure = self._agent_failed
        self._started = True
        if self.config.channels.wechat.store.kind == "redis":  # accounts by lease
            from wechat_sdk.cluster.membership import join_cluster

            self.cluster = await join_cluster(self, self.only_accounts, gateway_id=self._gateway_id)
        else:
            runs = self.runs()
            for account in self.accounts.enabled:
                if account.id in runs:
                    self.build_account(account).start()
        if not self.accounts.enabled:
            log.warning("no enabled WeChat account in the config", extra={"account": "-"})
        await asyncio.sleep(0)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop every account; in-flight replies get ``grace_s`` to finish.

        What is still unfinished after that is kept in the store's outbox (the messages of
        a reply not sent yet, or a turn the agent had not answered) and taken up by the
        next start on the same store: see "Stopping" on the "Running the gateway" page.

        The HTTP API goes first: it refuses new sends, its sends in flight get ``grace_s``,
        and those still going after it are cut and answered (503 ``gateway_stopping``,
        saying what went out), all before an account stops; the accounts' replies get
        what is left of ``grace_s``.
        """
        grace_s = await self._stop_api_sends(grace_s)
        if self.cluster is not None:  # each account stopped and its lease released
            await self.cluster.stop(grace_s)
            self.cluster = None
        await asyncio.gather(*(r.stop(grace_s) for r in self.runners.values()))
        if self._started and isinstance(self.agent, AgentLifecycle):
            await self.agent.aclose()
        self._started = False

    async def close(self, grace_s: float = 10.0) -> None:
        """Stop the accounts (``grace_s`` as in :meth:`stop`), the HTTP server and the
        webhook deliveries (what they have not delivered stays queued); close the store."""
        await self.stop(grace_s)
        await self._stop_http()
        await self._stop_webhooks()
        if self._store is not None:
            self._store.close()
            self._store = None

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def reload(self, config: Config, grace_s: float = 10.0) -> None:
        """Apply a new config: accounts are restarted (their replies in flight get
        ``grace_s``, as in :meth:`stop`). An invalid one raises ConfigError, and so does
        one that changes the state directory or the store (opened once, at the start), or
        that no longer runs an account ``only_accounts`` names."""
        accounts = accounts_of(config)  # raises before anything is touched
        self._check_reloadable(config, accounts)
        old, new = self.config.channels.wechat, config.channels.wechat
        if (new.health, new.api) != (old.health, old.api):
            # the new ports first: one that cannot be used is refused like an invalid
            # config, and the old server goes on; unless the old server holds the port
            server = None
            if new.health is not None or new.api is not None:
                try:
                    server = await self._open_http(config)
                except ConfigError:
                    if self.http is None:
                        raise
                    await self._stop_http()
                    server = await self._open_http(config)
            # its sends under way get the grace, as at a stop; the accounts what is left
            grace_s = await self._stop_api_sends(grace_s)
            await self._stop_http()
            self.http = server
        await self.stop(grace_s)
        if new.webhooks != old.webhooks:
            await self._stop_webhooks()
        self.config = config
        self.accounts = accounts
        self.runners = {}
        self.own_accounts.keep_only([a.id for a in accounts.enabled])
        await self.start()

    def _check_reloadable(self, config: Config, accounts: AccountSet) -> None:
        """Raise ConfigError when ``config`` (its ``accounts``) changes what is opened once,
        at the start: the state directory, and the store made from the config (its block,
        and the SQLite store's history cache). A reload would keep the old ones, silently.
        Or when it no longer runs an account ``only_accounts`` names."""
        old, new = self.config.channels.wechat, config.channels.wechat
        changed = []  # (each key, and what the running gateway has)
        if state_dir_of(config, self._state_dir_given) != self.state_dir:
            in_use = f"the running gateway's state directory is {self.state_dir}"
            changed.append(("stateDir", in_use))
        if self._store_from_config:
            if new.store != old.store:
                shown = " ".join(old.store.shown().values())  # (no password in it)
                changed.append(("store", f"the running gateway's store is {shown}"))
            if new.historyCacheConversations != old.historyCacheConversations:
                kept = old.historyCacheConversations
                changed.append(("historyCacheConversations", f"the running gateway's is {kept}"))
        problems = [
            ConfigProblem(
                f"channels.wechat.{key}",
                f"a restart cannot change it ({in_use}): stop the gateway and run "
                "it again to use the new one, or put the old one back",
            )
            for key, in_use in changed
        ]
        problems.extend(self._named_accounts_kept(accounts))
        if problems:
            raise ConfigError(problems)

    def _named_accounts_kept(self, accounts: AccountSet) -> list[ConfigProblem]:
        """The accounts ``only_accounts`` names that ``accounts`` (a new config's) no
        longer runs, as problems: a restart would stop them and run nothing in their place
        (``gateway run --accounts`` refuses such a config too)."""
        if self.only_accounts is None:
            return []
        runs = f"the gateway runs only {', '.join(self.only_accounts)} (--accounts, only_accounts)"
        remedy = "stop the gateway and run it again naming the accounts it should run"
        enabled = {a.id for a in accounts.enabled}
        problems = []
        for name in self.only_accounts:
            account = accounts.accounts.get(name)
            if account is None:
                problems.append(
                    ConfigProblem(
                        "channels.wechat.accounts",
                        f"{runs}: {name} is no account of this config, so a restart would "
                        f"not run it; put it back, or {remedy}",
                    )
                )
            elif name not in enabled:
                problems.append(
                    ConfigProblem(
                        account.key_path("enabled"),
                        f"{runs}: this config disables {name}, so a restart would not run "
                        f"it; enable it, or {remedy}",
                    )
                )
        return problems

    async def _start_http(self) -> None:
        wechat = self.config.channels.wechat
        if (wechat.health is not None or wechat.api is not None) and self.http is None:
            self.http = await self._open_http(self.config)

    async def _open_http(self, config: Config) -> GatewayHttp:
        from wechat_sdk.http.server import GatewayHttp, Listen, PortError

        wechat = config.channels.wechat
        health_port = wechat.health.port if wechat.health is not None else None
        server = GatewayHttp(self, Listen(health_port, wechat.api), self.media_links)
        try:
            await server.start()
        except PortError as exc:
            raise ConfigError.single(
                f"channels.wechat.{exc.key}",
                f"{exc}: choose a free port (0 lets the system pick one)",
            ) from None
        return server

    async def _stop_http(self) -> None:
        if self.http is not None:
            await self.http.stop()
            self.http = None

    async def _stop_api_sends(self, grace_s: float) -> float:
        """The HTTP API refuses new sends, and its sends under way get ``grace_s``; returns
        what is left of it (for the accounts' replies)."""
        if self.http is None:
            return grace_s
        began = self.clock.now()
        await self.http.stop_sends(grace_s)
        return max(0.0, grace_s - (self.clock.now() - began))

    def _start_webhooks(self) -> None:
        endpoints = self.config.channels.wechat.webhooks
        if self.webhooks is None and endpoints:
            shared = self.config.channels.wechat.store.kind == "redis"  # (other gateways')
            self.webhooks = WebhookDispatcher(
                endpoints, self.store.webhooks, self.clock, shared=shared
            )
            self.webhooks.start()
        elif self.webhooks is not None:  # kept through a reload (the same endpoints)
            self.webhooks.resume_gone()  # (the user may have fixed one that said 410 Gone)
        dispatcher = self.webhooks
        self.events = (
            GatewayEvents(dispatcher.publish, dispatcher.wanted)
            if dispatcher is not None
            else GatewayEvents()
        )

    async def _stop_webhooks(self) -> None:
        if self.webhooks is not None:
            await self.webhooks.close()
            self.webhooks = None

    async def wait_idle(self) -> None:
        """Wait until every answer in flight has been delivered."""
        for runner in self.runners.values():
            await runner.wait_idle()

    # ------------------------------------------------------------ use

    def _runner(self, account_id: str | None = None) -> AccountRunner:
        """The runner of the account a caller names (as the CLI takes it: ``" Work "`` is
        ``work``), the default one for None; KeyError when it is not running."""
        account_id = asked_account_id(account_id) if account_id else self.accounts.default_id
        try:
            return self.runners[account_id]
        except KeyError:
            raise KeyError(
                f"account {account_id!r} is not running "
                f"(running: {', '.join(self.runners) or 'none'})"
            ) from None

    async def send(
        self,
        to: str | None,
        message: str | Reply,
        *,
        account: str | None = None,
        room: str | None = None,
        sent: list[str] | None = None,
        files_sent: list[str] | None = None,
        waiting: list[OutboundMessage] | None = None,
    ) -> str:
        """Send proactively to a contact (``to``) or a group (``room``).

        Goes through the default account unless ``account`` is given (taken as the CLI
        takes ``--account``: ``" Work "`` is ``work``; an id no account can have is a
        ValueError, an account not running a KeyError); paced and retried like every
        reply. Returns the text that went out. Pass ``sent`` and
        ``files_sent`` (lists) to learn what went out even when this raises: each text
        message, and each file's name, as soon as WeChat took it.

        Unlike a reply, it does not wait for a login: with the account not logged in, or
        logged out part way, it raises
        :class:`~wechat_sdk.outbound.delivery.DeliveryFailed` with code ``not_logged_in``
        (its ``sent`` and ``files`` say what went out before). On a Redis store (a
        cluster), each message waits for Redis to confirm the account's lease, at most
        ``store.leaseTtlS``: then it raises ``DeliveryFailed`` with code
        ``store_unavailable`` (that message and the rest not sent).

        On a transport with reply windows (iLink), raises
        :class:`~wechat_sdk.puppet.WindowClosed` when the window is closed, or the server
        refused the first message (nothing of it is sent or kept); a message longer than
        what the window still takes is packed, and what does not fit goes out after the
        user's next message, as does the rest of one the server refused part way (pass
        ``waiting``, a list, to learn those messages).
        """
        conversation = room or to
        if not conversation:
            raise ValueError("send() needs a contact id (to) or a room id (room)")
        reply = message if isinstance(message, Reply) else Reply(text=message)
        runner = self._runner(account)
        outbound = runner.outbound
        outbound.check_window(conversation)  # a closed reply window: WindowClosed
        named = ACCOUNT_OF_TASK.set(runner.account.id)  # (the caller's task: its lines)
        try:
            return await outbound.deliver(
                conversation,
                reply,
                sent=sent,
                files_sent=files_sent,
                waiting=waiting,
                wait_for_login=False,
            )
        finally:
            ACCOUNT_OF_TASK.reset(named)

    def runs(self) -> set[str]:
        """The ids of the accounts this gateway runs: the enabled ones (those
        ``only_accounts`` names, when given); in a cluster, those it holds now."""
        if self.cluster is not None:
            return set(self.cluster.held)
        return {
            a.id
            for a in self.accounts.enabled
            if self.only_accounts is None or a.id in self.only_accounts
        }

    def status(self) -> list[AccountStatus]:
        """Per-account status (no secrets)."""
        out = []
        for account in self.accounts.accounts.values():
            runner = self.runners.get(account.id)
            if runner is None:
                out.append(
                    AccountStatus(
                        account=account.id,
                        lifecycle="stopped",
                        detail="" if account.enabled else "disabled",
                    )
                )
            else:
                out.append(runner.refresh_status())
        return out

    def webhook_status(self) -> list[WebhookStatus]:
        """Each webhook endpoint's state (no URL's path, query or user info, no secret);
        empty without ``channels.wechat.webhooks``."""
        return self.webhooks.status() if self.webhooks is not None else []


def state_dir_of(config: Config, state_dir: str | Path | None = None) -> Path:
    """The state directory a gateway uses: ``state_dir`` if given, else the config's
    ``stateDir``, else :data:`DEFAULT_STATE_DIR`."""
    configured = config.channels.wechat.stateDir
    return Path(
        state_dir if state_dir is not None else (configured or DEFAULT_STATE_DIR)
    ).expanduser()


def default_puppet_factory(gateway: Gateway) -> PuppetFactory:
    """Each account's puppet by its ``puppet`` setting, from :mod:`wechat_sdk.puppets`."""
    from wechat_sdk.puppets import PuppetContext, SharedRedis, make_puppet
    from wechat_sdk.stores.sqlite import SqliteStore

    shared: dict[str, dict[str, object]] = {}  # per puppet name, for this gateway's puppets

    def make(account: ResolvedAccount) -> Puppet:
        # the clock and state directory as they are when the accounts start (the state
        # directory is set after this factory is made)
        state = shared.setdefault(account.settings.puppet, {})
        store = gateway.config.channels.wechat.store
        redis = None
        if store.kind == "redis" and store.url is not None:  # session state on the store's
            redis = SharedRedis(store.url, store.namespace)  # Redis: another gateway resumes
            if gateway.cluster is not None:  # and its writes fenced by the account's lease
                redis = gateway.cluster.fenced(redis, account.id)
        sqlite = gateway.store if isinstance(gateway.store, SqliteStore) else None
        context = PuppetContext(gateway.clock, gateway.state_dir, state, redis=redis, sqlite=sqlite)
        return make_puppet(account, context)

    return make


def _serving_since_file(state_dir: Path, account_id: str) -> Path:
    return state_dir / "accounts" / account_id / "serving-since"


def _serving_since(state_dir: Path, account_id: str) -> float | None:
    """When the gateway first served the account (its first login), if it did."""
    try:
        return float(_serving_since_file(state_dir, account_id).read_text().strip())
    except (OSError, ValueError):
        return None


def _keep_serving_since(state_dir: Path, account_id: str, at: float) -> None:
    file = _serving_since_file(state_dir, account_id)
    try:
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        file.write_text(f"{at!r}\n")
        file.chmod(0o600)
    except OSError as exc:  # then the next start judges replays by its own first login
        log.warning(
            "could not keep the account's first login time: %s", exc, extra={"account": account_id}
        )
