"""Account resolution: ``accounts`` + top-level inheritance + ``defaultAccountId``.

A pure function from the validated ``channels.wechat`` model to the accounts that
exist, each with its effective settings. Cross-field rules are checked here, on each
account after inheritance, so an error names the key where it was written.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from wechat_sdk.config.allow_from import AllowList
from wechat_sdk.config.errors import ConfigError, ConfigProblem
from wechat_sdk.config.models import AccountConfig, WechatConfig

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "AccountSet",
    "ResolvedAccount",
    "asked_account_id",
    "normalize_account_id",
    "resolve_accounts",
]

DEFAULT_ACCOUNT_ID = "default"
_ACCOUNT_ID = re.compile(r"[a-z0-9_-]{1,64}")
_BASE = "channels.wechat"


def normalize_account_id(raw: str) -> str:
    """Lowercase ``raw``; raise ValueError when it is not ``[a-z0-9_-]{1,64}`` then."""
    candidate = raw.lower()  # (never stripped: a key that is not an id is no id)
    if not _ACCOUNT_ID.fullmatch(candidate):
        raise ValueError(
            f"account id {raw!r} is not allowed: use 1-64 characters from a-z, 0-9, _ and -"
        )
    return candidate


def asked_account_id(raw: str) -> str:
    """The account a person names (a CLI ``--account``, an HTTP request): whitespace around
    it dropped, then :func:`normalize_account_id` (``" Work "`` is the account ``work``).
    Raise ValueError when it can be no account's id."""
    return normalize_account_id(raw.strip())


@functools.lru_cache(maxsize=256)
def _allow_list(entries: tuple[str | int, ...]) -> AllowList:
    """An AllowList is immutable: one per distinct list of entries (looked up per message)."""
    return AllowList(entries)


@dataclass(frozen=True)
class ResolvedAccount:
    """One account with its effective settings (top-level keys, then its own)."""

    id: str
    settings: AccountConfig
    is_default: bool = False
    enabled: bool = True
    own_keys: frozenset[str] = field(default_factory=frozenset)
    written_id: str | None = None  # the id as written in the file, before lowercasing

    @property
    def allow_from(self) -> AllowList:
        return _allow_list(tuple(self.settings.allowFrom or ()))

    @property
    def group_allow_from(self) -> AllowList | None:
        entries = self.settings.groupAllowFrom
        return None if entries is None else _allow_list(tuple(entries))

    @property
    def display_name(self) -> str:
        return self.settings.name or "WeChat assistant"

    @property
    def draft_max_chars(self) -> int:
        """``draftChunk.maxChars`` clamped to ``textChunkLimit``."""
        return min(self.settings.draftChunk.maxChars, self.settings.textChunkLimit)

    @property
    def draft_min_chars(self) -> int:
        """``draftChunk.minChars``, at most :attr:`draft_max_chars` (a ``textChunkLimit``
        under the default 200 clamps both)."""
        return min(self.settings.draftChunk.minChars, self.draft_max_chars)

    @property
    def longest_line(self) -> int:
        """The longest line a text cut only between lines (a pairing code's, an owner's
        notice: see :func:`~wechat_sdk.outbound.chunking.chunk_lines`) sends whole when
        it is over ``textChunkLimit``: the transport's default ``textChunkLimit`` (what an
        iLink message holds, 4000; else 2048), or the account's when higher."""
        default = TRANSPORT_DEFAULTS.get(self.settings.puppet, {}).get("textChunkLimit")
        if not isinstance(default, int):
            default = AccountConfig.model_fields["textChunkLimit"].default
        return max(self.settings.textChunkLimit, default)

    @property
    def text_units(self) -> str:
        """How the account's transport counts a message's length (``textChunkLimit``,
        blocks, a reply window's packing): ``"utf16"`` on iLink, else ``"code_points"``
        (see :data:`~wechat_sdk.outbound.chunking.TEXT_UNITS`)."""
        return TEXT_UNITS_BY_PUPPET.get(self.settings.puppet, "code_points")

    @property
    def pairing_id(self) -> str:
        """The account whose pairing list (codes, approvals) this one uses
        (``pairingAccount``; by default its own)."""
        wanted = self.settings.pairingAccount
        return self.id if wanted is None else wanted.strip().lower()

    @property
    def media_max_bytes(self) -> int:
        return int(self.settings.mediaMaxMb * 1024 * 1024)

    def key_path(self, key: str) -> str:
        """The dotted path where ``key`` of this account was written (or, written nowhere,
        where it belongs: ``puppetOptions`` beside the account's own ``puppet``)."""
        top = key.split(".")[0]
        if top in self.own_keys or (
            top == "puppetOptions"
            and "puppet" in self.own_keys
            and top not in self.settings.model_fields_set
        ):
            return f"{_BASE}.accounts.{self.written_id or self.id}.{key}"
        return f"{_BASE}.{key}"


@dataclass(frozen=True)
class AccountSet:
    """Every configured account (enabled or not) and which one is the default."""

    accounts: dict[str, ResolvedAccount]
    default_id: str
    warnings: tuple[str, ...] = ()

    @property
    def enabled(self) -> list[ResolvedAccount]:
        return [a for a in self.accounts.values() if a.enabled]

    @property
    def default(self) -> ResolvedAccount:
        return self.accounts[self.default_id]

    def __getitem__(self, account_id: str) -> ResolvedAccount:
        return self.accounts[account_id]


_BLOCK_ONLY = set(WechatConfig.model_fields) - set(AccountConfig.model_fields)

#: defaults that depend on the account's transport, by ``puppet`` (a key set anywhere wins):
#: iLink messages hold 4,000 characters, where the seed's default is 2,048
TRANSPORT_DEFAULTS: dict[str, dict[str, object]] = {"ilink": {"textChunkLimit": 4000}}
#: how a transport counts a message's length, by ``puppet`` (any other: code points):
#: Tencent's client cuts iLink messages at 4000 in JavaScript's string length, UTF-16 code
#: units, where an emoji beyond the BMP is 2
TEXT_UNITS_BY_PUPPET: dict[str, str] = {"ilink": "utf16"}
#: transports with direct chats only (iLink bots cannot be in groups), by ``puppet``
DIRECT_ONLY_PUPPETS = frozenset({"ilink"})
#: the settings only groups read
GROUP_KEYS = ("groupPolicy", "groupAllowFrom", "groups", "historyLimit", "mentionAll")


def resolve_accounts(cfg: WechatConfig) -> AccountSet:
    """Resolve the accounts of a validated ``channels.wechat`` block.

    Raises :class:`ConfigError` listing every problem (bad ids, a default that names no
    account, contradictory policies).
    """
    problems: list[ConfigProblem] = []
    warnings: list[str] = []
    # (the keys of the whole block only, such as accounts, are no account's settings)
    top_set = cfg.model_dump(exclude_unset=True, exclude=_BLOCK_ONLY)
    accounts: dict[str, ResolvedAccount] = {}

    entries: dict[str, AccountConfig] = (
        dict(cfg.accounts) if cfg.accounts else {DEFAULT_ACCOUNT_ID: AccountConfig()}
    )
    explicit = bool(cfg.accounts)
    for raw_id, entry in entries.items():
        try:
            account_id = normalize_account_id(raw_id)
        except ValueError as exc:
            problems.append(ConfigProblem(f"{_BASE}.accounts.{raw_id}", str(exc)))
            continue
        if account_id in accounts:
            problems.append(
                ConfigProblem(
                    f"{_BASE}.accounts.{raw_id}",
                    f"account id {raw_id!r} is the same as another account after lowercasing",
                )
            )
            continue
        own = entry.model_dump(exclude_unset=True) if explicit else {}
        merged = {**top_set, **own}
        puppet = merged.get("puppet", AccountConfig.model_fields["puppet"].default)
        merged = {**TRANSPORT_DEFAULTS.get(puppet, {}), **merged}
        settings = AccountConfig.model_validate(merged)
        enabled = cfg.enabled is not False and (not explicit or entry.enabled is not False)
        account = ResolvedAccount(
            id=account_id,
            settings=settings,
            enabled=enabled,
            own_keys=frozenset(own) if explicit else frozenset(),
            written_id=raw_id,
        )
        problems.extend(_check_account(account))
        accounts[account_id] = account

    default_id = DEFAULT_ACCOUNT_ID
    if cfg.defaultAccountId is not None:
        try:
            wanted = normalize_account_id(cfg.defaultAccountId)
        except ValueError as exc:
            problems.append(ConfigProblem(f"{_BASE}.defaultAccountId", str(exc)))
            wanted = ""
        if wanted and wanted not in accounts:
            names = ", ".join(sorted(accounts)) or "(none)"
            problems.append(
                ConfigProblem(
                    f"{_BASE}.defaultAccountId",
                    f"names no account: {cfg.defaultAccountId!r} (accounts: {names})",
                )
            )
        default_id = wanted
    elif DEFAULT_ACCOUNT_ID not in accounts and accounts:
        default_id = sorted(accounts)[0]
        if len(accounts) > 1:
            warnings.append(
                f"{len(accounts)} accounts and no {_BASE}.defaultAccountId: using "
                f"{default_id!r} (the first in sorted order) for proactive sends"
            )
    problems.extend(_check_pairing_accounts(accounts))
    if problems:
        raise ConfigError(problems)
    default = accounts.get(default_id)
    if default is not None and not default.enabled and any(a.enabled for a in accounts.values()):
        warnings.append(
            f"the default account {default_id!r} is disabled: a send or command that names "
            f"no account goes to it and fails; set {_BASE}.defaultAccountId to an enabled "
            "account"
        )
    warnings.extend(_group_settings_unused(accounts, top_set))
    marked = {
        aid: ResolvedAccount(
            a.id, a.settings, aid == default_id, a.enabled, a.own_keys, a.written_id
        )
        for aid, a in accounts.items()
    }
    return AccountSet(accounts=marked, default_id=default_id, warnings=tuple(warnings))


def _check_pairing_accounts(accounts: dict[str, ResolvedAccount]) -> list[ConfigProblem]:
    """``pairingAccount`` names another account, which keeps its own pairing list."""
    out: list[ConfigProblem] = []
    told: set[frozenset[str]] = set()  # (a pair naming each other: one problem)
    for account in accounts.values():
        wanted = account.settings.pairingAccount
        if wanted is None:
            continue
        target = accounts.get(wanted.strip().lower())
        if target is not None and target.id != account.id and target.pairing_id == account.id:
            pair = frozenset((account.id, target.id))
            if pair not in told:
                told.add(pair)
                out.append(
                    ConfigProblem(
                        account.key_path("pairingAccount"),
                        f"accounts {account.id!r} and {target.id!r} name each other's pairing "
                        "list: one of them keeps its own (remove pairingAccount from it, and "
                        "the other shares that list)",
                    )
                )
            continue
        if target is None:
            names = ", ".join(sorted(accounts))
            out.append(
                ConfigProblem(
                    account.key_path("pairingAccount"),
                    f"names no account: {wanted!r} (accounts: {names})",
                )
            )
        elif target.id != account.id and target.pairing_id != target.id:
            out.append(
                ConfigProblem(
                    account.key_path("pairingAccount"),
                    f"account {target.id!r} shares the pairing list of "
                    f"{target.pairing_id!r}: name {target.pairing_id!r} here",
                )
            )
    return out


def _group_settings_unused(
    accounts: dict[str, ResolvedAccount], top_set: dict[str, object]
) -> list[str]:
    """Warnings for group settings that reach only direct-chat accounts (iLink): an
    account's own, and the top level's when no account of the block has groups."""
    out: list[str] = []
    direct_only = [a for a in accounts.values() if a.settings.puppet in DIRECT_ONLY_PUPPETS]
    why = "direct chats only (an iLink bot cannot be in a group)"
    for account in direct_only:
        for key in GROUP_KEYS:
            if key in account.own_keys:
                out.append(
                    f"{account.key_path(key)} is ignored: account {account.id!r} uses puppet "
                    f'"{account.settings.puppet}", which has {why}: set group settings on a '
                    "Wechaty account"
                )
    if direct_only and len(direct_only) == len(accounts):
        for key in GROUP_KEYS:
            if key in top_set:
                out.append(f"{_BASE}.{key} is ignored: every account uses a transport with {why}")
    return out


#: Keys that only make sense once per gateway, refused under an account.
_GATEWAY_WIDE = {
    "health": "one server for every account",
    "stateDir": "one state directory, with every account's rows and files kept apart in it",
}


def _check_account(account: ResolvedAccount) -> list[ConfigProblem]:
    s = account.settings
    out: list[ConfigProblem] = []
    allow = AllowList(s.allowFrom)
    if s.dmPolicy == "open" and s.allowFrom is not None and not allow.wildcard:
        out.append(
            ConfigProblem(
                account.key_path("allowFrom"),
                'dmPolicy "open" needs "*" in allowFrom (add "*", or use dmPolicy "allowlist" '
                "to allow only the listed contacts)",
            )
        )
    if s.dmPolicy == "allowlist" and not allow:
        out.append(
            ConfigProblem(
                account.key_path("allowFrom"),
                'dmPolicy "allowlist" needs at least one contact id in allowFrom '
                '(or use dmPolicy "pairing")',
            )
        )
    nobody = s.groupAllowFrom is not None and not AllowList(s.groupAllowFrom)
    if nobody and s.groupPolicy != "disabled":
        out.append(
            ConfigProblem(
                account.key_path("groupAllowFrom"),
                "groupAllowFrom allows no sender: no group message would be answered "
                "(list contact ids, or leave it out to answer any member; "
                'groupPolicy "disabled" turns groups off)',
            )
        )
    for key, why in _GATEWAY_WIDE.items():
        if key in account.own_keys:
            out.append(
                ConfigProblem(
                    account.key_path(key),
                    f"{key} is gateway-wide ({why}): move it to channels.wechat.{key}",
                )
            )
    if s.draftChunk.minChars > s.draftChunk.maxChars:
        out.append(
            ConfigProblem(
                account.key_path("draftChunk.minChars"),
                f"minChars ({s.draftChunk.minChars}) must not be greater than maxChars "
                f"({s.draftChunk.maxChars})",
            )
        )
    return out
