"""Which puppet an account gets: puppets by the name an account's ``puppet`` gives.

Built in: ``"ilink"`` (Tencent's iLink bot API over HTTP, direct chats only),
``"wechaty-puppet-service"`` (a running Wechaty Puppet Service, over gRPC) and,
for any other name nothing below claims, the Node puppet of that npm name run in the sidecar
(``"wechaty-puppet-wechat"``, the default, ``"wechaty-puppet-wechat4u"``, ``"@scope/name"``);
a name that is not an npm package name is a :class:`~wechat_sdk.config.ConfigError` on the
account's ``puppet`` key. More puppets come from

- the entry-point group ``wechat_sdk.puppets``: an installed package names a puppet and its
  factory there, and the name is then a ``puppet`` value (the simulator is ``"simulator"``
  this way);
- :func:`register_puppet`, in the program that builds the gateway.

Looked up in that order: registered (the built-ins included), then entry points, then the
Node sidecar. A factory is called once per account, with the account and a
:class:`PuppetContext`.

Example (the ``pyproject.toml`` of a package that ships a puppet):
    ```toml
    [project.entry-points."wechat_sdk.puppets"]
    mypuppet = "my_package.puppet:make_puppet"   # make_puppet(account, context) -> Puppet
    ```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wechat_sdk.capabilities import CAPABILITIES, ILINK_CAPABILITIES, Capabilities
from wechat_sdk.clock import Clock
from wechat_sdk.config import ConfigError, ResolvedAccount
from wechat_sdk.puppet import Puppet

if TYPE_CHECKING:
    from wechat_sdk.stores.sqlite import SqliteStore

__all__ = [
    "ENTRY_POINT_GROUP",
    "PuppetContext",
    "PuppetEntry",
    "PuppetMaker",
    "SharedRedis",
    "capabilities_of",
    "check_puppet",
    "make_puppet",
    "register_puppet",
]

ENTRY_POINT_GROUP = "wechat_sdk.puppets"


@dataclass(frozen=True, slots=True)
class PuppetContext:
    """What a puppet factory gets besides the account, from the gateway it works for."""

    #: the gateway's clock (real time under ``gateway run``; a test's virtual clock)
    clock: Clock
    #: the gateway's state directory (an account's own files go in ``accounts/<id>/``)
    state_dir: Path
    #: this puppet's state for this gateway: the same dict for every account of the gateway
    #: that uses this puppet (the simulator keeps its one world here)
    shared: dict[str, Any]
    #: the Redis server of the gateway's store (``store.kind: "redis"``), else None: a
    #: transport keeps each account's session state (login, cursor, ...) there instead of
    #: in ``accounts/<id>/``, so the gateway that takes the account over resumes it
    redis: SharedRedis | None = None
    #: the gateway's store when it is SQLite's, else None: a transport may keep its
    #: accounts' state in the store's database (one fsync makes it and the dedupe marks
    #: durable together)
    sqlite: SqliteStore | None = None


@dataclass(frozen=True, slots=True)
class SharedRedis:
    """Where on the store's Redis server a transport keeps its accounts' session state.

    Keys: ``<namespace>:<channel>:transport:<puppet>:<account>:<name>``
    (:meth:`account_key`; docs/cluster.md lists them). ``url`` holds the password: never
    show it (its repr leaves it out).
    """

    url: str = field(repr=False)
    namespace: str
    channel: str = "wechat"
    #: the account's lease (its key, and its value while this gateway holds it): a
    #: transport checks it in the transaction of each state write (its cursor), so an
    #: old holder that wakes up after another took the account over cannot move it
    lease_key: str | None = None
    lease_value: str | None = None
    #: told when Redis refused such a write (the account then stops here at once)
    on_lost: Callable[[], None] | None = field(default=None, compare=False, repr=False)
    #: called right before a send's request leaves, no round trip: raises a SendError
    #: unless this gateway still holds the lease by its own clock (a gateway paused since
    #: the send's check in Redis must not send once another may run the account)
    before_send: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    def account_key(self, puppet: str, account_id: str, name: str) -> str:
        """The key of one piece of an account's session state."""
        from wechat_sdk.stores.redis.keys import escape

        parts = (self.namespace, self.channel, "transport", puppet, account_id, name)
        return ":".join(escape(p) for p in parts)


PuppetMaker = Callable[[ResolvedAccount, PuppetContext], Puppet]
PuppetCheck = Callable[[ResolvedAccount], None]


@dataclass(frozen=True, slots=True)
class PuppetEntry:
    """A puppet: its factory, and the check of an account's settings for it.

    ``check`` raises :class:`~wechat_sdk.config.ConfigError` (naming the account's keys,
    ``account.key_path("puppetOptions.x")``) for what can be known wrong without starting
    the puppet; ``wechat-sdk config check`` and ``gateway run`` call it before any account
    starts. An entry point may name a ``PuppetEntry``, or just a factory (no check).
    ``capabilities`` is the transport's matrix as ``channels capabilities --account`` shows
    it before any puppet is made (the seed's Wechaty matrix when not given).
    """

    make: PuppetMaker
    check: PuppetCheck | None = None
    capabilities: Capabilities = CAPABILITIES


def register_puppet(
    name: str,
    make: PuppetMaker,
    *,
    check: PuppetCheck | None = None,
    capabilities: Capabilities = CAPABILITIES,
) -> None:
    """Make ``name`` a ``puppet`` value: accounts with it get their puppet from ``make``.

    A later registration of a name replaces the earlier one, built-ins included.

    Example:
        ```python
        register_puppet("mypuppet", lambda account, context: MyPuppet(account.id))
        ```
    """
    _registry[name] = PuppetEntry(make, check, capabilities)


def check_puppet(account: ResolvedAccount) -> None:
    """Raise :class:`~wechat_sdk.config.ConfigError` when the account's puppet settings
    cannot work: a name that is no puppet, or options its puppet refuses."""
    entry = _entry(account)
    if entry.check is not None:
        entry.check(account)


def capabilities_of(account: ResolvedAccount) -> Capabilities:
    """What the account's transport can do, by its ``puppet`` setting (no puppet is made)."""
    return _entry(account).capabilities


def make_puppet(account: ResolvedAccount, context: PuppetContext) -> Puppet:
    """The puppet for an account, by its ``puppet`` setting."""
    return _entry(account).make(account, context)


def _entry(account: ResolvedAccount) -> PuppetEntry:
    name = account.settings.puppet
    entry = _registry.get(name)
    if entry is None:
        entry = _from_entry_point(name, account)
        if entry is not None:
            _registry[name] = entry  # loaded once
    return entry or _WECHATY


def _from_entry_point(name: str, account: ResolvedAccount) -> PuppetEntry | None:
    for point in entry_points(group=ENTRY_POINT_GROUP, name=name):
        try:
            found = point.load()
        except Exception as exc:  # a broken install: say which package, not a traceback
            raise ConfigError.single(
                account.key_path("puppet"),
                f'puppet "{name}" is installed ({point.value}) but cannot be loaded: {exc}',
            ) from exc
        if isinstance(found, PuppetEntry):
            return found
        if callable(found):
            return PuppetEntry(found)
        raise ConfigError.single(
            account.key_path("puppet"),
            f'puppet "{name}" ({point.value}) is neither a PuppetEntry nor a factory',
        )
    return None


# the Wechaty adapter (gRPC, the Node sidecar) is imported when an account needs it


def _wechaty_make(account: ResolvedAccount, context: PuppetContext) -> Puppet:
    from wechat_sdk.adapters.wechaty.service import make_puppet as make_wechaty_puppet

    return make_wechaty_puppet(account, context.state_dir, context.redis)


def _wechaty_check(account: ResolvedAccount) -> None:
    from wechat_sdk.adapters.wechaty.service import check_puppet as check_wechaty_puppet

    check_wechaty_puppet(account)


# the iLink adapter (aiohttp, cryptography) is imported when an account needs it


def _ilink_make(account: ResolvedAccount, context: PuppetContext) -> Puppet:
    from wechat_sdk.adapters.ilink.service import make_puppet as make_ilink_puppet

    return make_ilink_puppet(account, context)


def _ilink_check(account: ResolvedAccount) -> None:
    from wechat_sdk.adapters.ilink.service import check_puppet as check_ilink_puppet

    check_ilink_puppet(account)


#: a Puppet Service by its name, and every name nothing else claims: a Node puppet
_WECHATY = PuppetEntry(_wechaty_make, _wechaty_check)
_registry: dict[str, PuppetEntry] = {
    "wechaty-puppet-service": _WECHATY,
    "ilink": PuppetEntry(_ilink_make, _ilink_check, ILINK_CAPABILITIES),
}
