"""The inbound pipeline: what reaches the agent, step by step.

Each step looks at the message and either lets it through or drops it with a reason code
(logged at debug). The order is the channel's rule order (CHANNEL_SEMANTICS.md section 3):

    self -> duplicate -> replayed -> own account (a DM) -> dm policy / pairing
         -> group policy -> mention (or own account: a group message) -> media
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from wechat_sdk.agent import AgentTurn, HistoryEntry, MediaItem, ToolRegistry
from wechat_sdk.clock import Clock
from wechat_sdk.config.accounts import ResolvedAccount
from wechat_sdk.config.templates import fill_template
from wechat_sdk.echoes import EchoLedger
from wechat_sdk.inbound.groups import WILDCARD, GroupRule, allowed_tool_names, resolve_group
from wechat_sdk.inbound.history import HistoryBook, entry_text
from wechat_sdk.inbound.media import MediaSaver
from wechat_sdk.inbound.mentions import is_mentioned, split_quote, strip_leading_mention
from wechat_sdk.logtext import shown
from wechat_sdk.own_accounts import OwnAccounts
from wechat_sdk.pairing.service import Pairing, approve_command, owner_notice, pairing_message
from wechat_sdk.puppet import Message, MessageKind, Puppet
from wechat_sdk.stores.base import DedupeStore

__all__ = ["REPLAY_GRACE_S", "Drop", "Inbound", "InboundPipeline"]

log = logging.getLogger("wechat_sdk.inbound")

REPLAY_GRACE_S = 30.0
#: A message that came while the gateway was away and is this old or older when it
#: arrives is not answered, with a warning: the dedupe window (DEDUPE_TTL_S) no longer
#: tells whether it was answered before, and nothing is ever answered twice. (A younger
#: one answered before was marked no earlier than it was said: its mark is still there,
#: unless the account's marks outgrew the store's bound within the hour, 100,000 by
#: default, so a transport may hand on again every message of the last hour.)
DEDUPE_TTL_S = 3600.0
REPLAY_MAX_AGE_S = DEDUPE_TTL_S


@dataclass(frozen=True, slots=True)
class Drop:
    """Why a message does not reach the agent, and what to send instead (a pairing code to
    the sender, a notice to the owner: ``(to, text)`` pairs). The pipeline sends nothing
    itself: the runner sends ``replies`` without holding up the reading of events."""

    reason: str
    detail: str = ""
    replies: tuple[tuple[str, str], ...] = ()
    #: the code of the pairing request ``replies`` are about
    pairing_code: str | None = None


@dataclass
class Inbound:
    """A message on its way through the pipeline, with what the steps learned."""

    message: Message
    sender_name: str = ""
    room_topic: str | None = None
    mentioned: bool = False
    text: str = ""
    rule: GroupRule | None = None
    media: list[MediaItem] = field(default_factory=list)
    #: the sender is this other account of the gateway (never answered)
    own_account: str | None = None

    @property
    def is_group(self) -> bool:
        return self.message.room_id is not None


_DROP_SELF = Drop("self")

Step = Callable[[Inbound], Awaitable[Drop | None]]


class InboundPipeline:
    """The steps for one account. :meth:`process` returns an :class:`AgentTurn` or a Drop."""

    def __init__(
        self,
        *,
        account: ResolvedAccount,
        default_account_id: str,
        puppet: Puppet,
        clock: Clock,
        dedupe: DedupeStore,
        pairing: Pairing,
        history: HistoryBook,
        media: MediaSaver,
        tools: ToolRegistry,
        echoes: EchoLedger,
        own_accounts: OwnAccounts | None = None,
        serving_since: float | None = None,
        on_first_login: Callable[[float], None] | None = None,
    ) -> None:
        self.account = account
        self.default_account_id = default_account_id
        self.puppet = puppet
        self.clock = clock
        self.dedupe = dedupe
        self.pairing = pairing
        self.history = history
        self.media = media
        self.tools = tools
        self.echoes = echoes
        #: the WeChat ids of the gateway's accounts (the gateway's; by default, of none)
        self.own_accounts = own_accounts if own_accounts is not None else OwnAccounts()
        #: when the gateway first served this account (kept across restarts): older
        #: messages are history WeChat replays at login; later ones are new to the gateway
        #: even when they arrived while it was away (logged out, stopped)
        self._serving_since = serving_since
        self._on_first_login = on_first_login
        #: told what went wrong for a message that still goes on (the account's last error)
        self.on_error: Callable[[str], None] = lambda _why: None
        self.drops: dict[str, int] = {}
        #: ``groups`` keys said to be a group's name, not its id (once each)
        self._names_told: set[tuple[str, str]] = set()
        #: after ``drop_self``, which comes first and loads the message
        self.steps: tuple[Step, ...] = (
            self.drop_duplicate,
            self.drop_replayed,
            self.describe,
            self.check_own_account,
            self.check_dm,
            self.check_group,
            self.check_mention,
            self.fetch_media,
        )

    @property
    def self_id(self) -> str | None:
        """The bot's own WeChat id, also after a logout (the echo ledger keeps it)."""
        return self.echoes.bot_id(self.puppet.self_id)

    def connected(self, at: float) -> None:
        """The account logged in at ``at``. The first login ever sets the replay horizon:
        messages sent before it are history replayed at login."""
        if self._serving_since is None:
            self._serving_since = at
            if self._on_first_login is not None:
                self._on_first_login(at)

    async def process(self, message_id: str) -> AgentTurn | Drop:
        """Take the message with this id through the steps."""
        loaded = await self.drop_self(message_id)
        if isinstance(loaded, Drop):
            return self.dropped(message_id, loaded)
        return await self.go_through(loaded)

    async def go_through(self, message: Message, *, again: bool = False) -> AgentTurn | Drop:
        """The steps after :meth:`drop_self`. ``again``: a message a process that died left
        partway through them (journaled in the outbox): its dedupe mark may be recorded
        already, so that step is left out (:meth:`mark_seen` recorded it at the start)."""
        item = Inbound(message=message, text=message.text)
        steps = self.steps
        if again:
            steps = tuple(s for s in steps if s != self.drop_duplicate)
        for step in steps:
            drop = await step(item)
            if drop is not None:
                return self.dropped(message.id, drop)
        return self._turn(item)

    def mark_seen(self, message_id: str, claim: str = "") -> bool:
        """Record the dedupe mark of a message (then taken through the steps with
        ``again``): WeChat delivering it once more is then a duplicate. True when it was
        marked already (within the dedupe window), but not by a check of the same
        ``claim`` (one delivery's, across its tries: see
        :meth:`~wechat_sdk.stores.base.DedupeStore.check_and_add`)."""
        return self.dedupe.check_and_add(
            self.account.id, message_id, self.clock.now(), DEDUPE_TTL_S, claim
        )

    def dropped(self, message_id: str, drop: Drop) -> Drop:
        """Count and log (at debug) the drop of a message; returns it."""
        self.drops[drop.reason] = self.drops.get(drop.reason, 0) + 1
        if log.isEnabledFor(logging.DEBUG):  # every echo of the bot's own sends comes here
            log.debug(
                "dropped message %s account=%s reason=%s %s",
                shown(message_id),
                self.account.id,
                drop.reason,
                shown(drop.detail, 200),
            )
        return drop

    # ------------------------------------------------------------ steps, in order

    async def drop_self(self, message_id: str) -> Message | Drop:
        """The first step. Puppets echo the bot's own sends back: an id the echo ledger
        knows is dropped without loading the message (half of all messages in a busy
        chat); otherwise the message is loaded, and one whose talker is the bot is noted
        in the ledger (delivery looks there for a send whose outcome was unknown) and
        dropped. Returns the loaded message of someone else."""
        if self.echoes.take_sent(message_id):
            return _DROP_SELF
        try:
            message = await self.puppet.message(message_id)
        except Exception as exc:
            log.warning(
                "could not load message %s: %s (skipped) account=%s reason=unreadable",
                shown(message_id),
                shown(exc, 200),
                self.account.id,
            )
            return Drop("unreadable", str(exc))
        if self.echoes.is_own(message, self.puppet.self_id):
            self.echoes.seen(message, self.clock.now())
            return _DROP_SELF
        return message

    async def drop_duplicate(self, item: Inbound) -> Drop | None:
        """The same message id again (puppets redeliver after reconnects)."""
        seen = self.dedupe.check_and_add(
            self.account.id, item.message.id, self.clock.now(), DEDUPE_TTL_S
        )
        return Drop("duplicate") if seen else None

    async def drop_replayed(self, item: Inbound) -> Drop | None:
        """History replayed at login: sent more than 30 s before the gateway first served
        the account. A message that arrived while the gateway was away (logged out,
        stopped) is not history: it is new to the gateway and goes on, unless it is older
        than REPLAY_MAX_AGE_S, which is skipped with a warning."""
        since = self._serving_since
        timestamp = item.message.timestamp
        if timestamp <= 0:  # the transport gave no time (a payload without one): it was
            # dropped as history said in 1970, without a word; taken as said on arrival
            log.warning(
                "message %s from %s has no time: taken as sent now account=%s reason=odd_message",
                shown(item.message.id),
                shown(item.message.talker_id),
                self.account.id,
            )
            item.message = dataclasses.replace(item.message, timestamp=self.clock.now())
            return None
        if since is None:
            return None
        if timestamp < since - REPLAY_GRACE_S:
            return Drop("replayed", f"sent {since - timestamp:.0f}s before the first login")
        age = self.clock.now() - timestamp
        if age >= REPLAY_MAX_AGE_S:
            log.warning(
                "message %s from %s is %.1f h old (it came while the account was away): "
                "not answered account=%s reason=too_old",
                shown(item.message.id),
                shown(item.message.talker_id),
                age / 3600,
                self.account.id,
            )
            return Drop("too_old", f"{age / 3600:.1f} h old")
        return None

    async def describe(self, item: Inbound) -> Drop | None:
        """Names for the agent and for mention matching (never used for access)."""
        m = item.message
        try:
            item.sender_name = (await self.puppet.contact(m.talker_id)).name
        except Exception:
            item.sender_name = m.talker_id
        if m.room_id is not None:
            try:
                item.room_topic = (await self.puppet.room(m.room_id)).topic
            except Exception:
                item.room_topic = None
        return None

    async def check_own_account(self, item: Inbound) -> Drop | None:
        """A message from another account of the gateway is never answered: two bots that
        answered each other would never stop (WeChat gives each the other's group messages).
        A DM from one is dropped here, before a pairing code could be sent to it; a group
        message goes on through the group checks, to be kept as history at the mention
        step, as an unmentioned message is (what one bot said is context for the other)."""
        other = self.own_accounts.account_of(item.message.talker_id)
        if other is None or other == self.account.id:
            return None
        if not item.is_group:
            return Drop("own_account", f"a DM from account {other}")
        item.own_account = other
        return None

    async def check_dm(self, item: Inbound) -> Drop | None:
        """dmPolicy: disabled | open | allowlist | pairing (with the pairing challenge)."""
        if item.is_group:
            return None
        drop = self._dm_access(item.message.talker_id)
        if drop is not None and drop.reason == "pairing_required":
            return self._challenge(item)
        return drop

    def _dm_access(self, sender: str) -> Drop | None:
        """Whether ``sender`` may DM the agent under the config in force (no challenge)."""
        s = self.account.settings
        if s.dmPolicy == "disabled":
            return Drop("dm_disabled")
        if s.dmPolicy == "open" or self.account.allow_from.allows(sender):
            return None
        if s.dmPolicy == "allowlist":
            return Drop("dm_not_allowed")
        # pairing: the store is consulted only for this policy, never for groups
        if self.pairing.is_approved(self.account.pairing_id, sender):
            return None
        return Drop("pairing_required")

    def recheck(self, turn: AgentTurn) -> AgentTurn | Drop:
        """A turn kept across a restart, under the config in force now: its sender must
        still be let in (no pairing code is sent for it), a group turn must have mentioned
        the bot if its group now needs that, and it keeps only the tools that are still
        allowed where it was said."""
        if turn.room_id is None:
            drop = self._dm_access(turn.sender_id)
            if drop is not None:
                return drop
            names = self.tools.names
            where = f"DM with {turn.sender_id}"
        else:
            rule = resolve_group(self.account.settings, turn.room_id)
            if not rule.allowed:
                return Drop(rule.reason)
            group_allow = self.account.group_allow_from
            if group_allow is not None and not group_allow.allows(turn.sender_id):
                return Drop("sender_not_allowed")
            if rule.require_mention and not turn.mentioned:
                return Drop("no_mention")
            names = allowed_tool_names(rule.tools, self.tools.names)
            where = f"group {turn.room_id}"
        kept = names & frozenset(turn.tools.names)
        return dataclasses.replace(turn, tools=self.tools.allowed(kept, where=where))

    def _challenge(self, item: Inbound) -> Drop:
        """A new pairing request for the sender: the drop with the code to send them (and
        the owner's notice), or with nothing (one reply per request: no spam)."""
        sender = item.message.talker_id
        result = self.pairing.challenge(
            self.account.pairing_id, sender, item.sender_name, received_by=self.account.id
        )
        if result.outcome == "capped":
            log.warning(
                "pairing request from %s ignored: %d requests already pending "
                "account=%s reason=pairing_capped",
                shown(sender),
                self.pairing.max_pending,
                self.account.id,
            )
            return Drop("pairing_required")
        if result.outcome != "new" or result.request is None:
            return Drop("pairing_required")
        code = result.request.code
        log.info(
            "new pairing request from %s (%s) code=%s account=%s",
            shown(item.sender_name),
            shown(sender),
            code,
            self.account.id,
        )
        replies = [(sender, self._pairing_text(sender, code))]
        notify = self.account.settings.pairingNotify
        if notify:
            replies.append((notify, owner_notice(result.request, self.default_account_id)))
        return Drop("pairing_required", replies=tuple(replies), pairing_code=code)

    def _pairing_text(self, sender: str, code: str) -> str:
        s = self.account.settings
        pairing_id = self.account.pairing_id  # where the code is approved
        text = pairing_message(
            self.account.display_name, sender, code, pairing_id, self.default_account_id
        )
        if s.pairingMessage:
            values = {
                "code": code,
                "senderId": sender,
                "botName": self.account.display_name,
                "command": approve_command(code, pairing_id, self.default_account_id),
            }
            try:
                text = fill_template(s.pairingMessage, values)
            except Exception as exc:  # a config built without validation: the default text
                log.warning("pairingMessage not used: %s account=%s", exc, self.account.id)
        return text

    async def check_group(self, item: Inbound) -> Drop | None:
        """groupPolicy and the groups map; groupAllowFrom for senders."""
        m = item.message
        if m.room_id is None:
            return None
        rule = resolve_group(self.account.settings, m.room_id)
        item.rule = rule
        self._tell_name_key(m.room_id, item.room_topic)
        if not rule.allowed:
            return Drop(rule.reason)
        group_allow = self.account.group_allow_from
        if group_allow is not None and not group_allow.allows(m.talker_id):
            return Drop("sender_not_allowed")
        return None

    def _tell_name_key(self, room_id: str, topic: str | None) -> None:
        """A ``groups`` key that is this group's name (not its id) never applies to it:
        said once, with the id to write instead (a name is not used as a key: it changes,
        and two groups may share one)."""
        groups = self.account.settings.groups
        if topic is None or topic == WILDCARD or room_id in groups or topic not in groups:
            return
        if (topic, room_id) in self._names_told:
            return
        self._names_told.add((topic, room_id))
        log.warning(
            "groups key %r is the name of group %s, not its id: its settings do not apply "
            "to that group; write the id as the key account=%s reason=group_key_is_name",
            shown(topic),
            shown(room_id),
            self.account.id,
        )

    async def check_mention(self, item: Inbound) -> Drop | None:
        """requireMention: unmentioned group messages are kept as history, not answered;
        so is a message of another account of the gateway, mentioned or not."""
        m = item.message
        if m.room_id is None:
            return None
        if item.own_account is not None:  # (its text as said: whom it mentions is context)
            item.text = m.text.strip()
            self.history.note_unanswered(m.room_id, self._entry(item))
            return Drop("own_account", f"a group message from account {item.own_account}")
        names = [self.account.settings.name]
        bot_id = self.self_id
        if bot_id is not None:  # (more names to look for: one that cannot be had is none)
            with contextlib.suppress(Exception):
                names.append((await self.puppet.contact(bot_id)).name)
            with contextlib.suppress(Exception):
                names.append(await self.puppet.room_alias(m.room_id, bot_id))
        # a mention in a quote (written into the text) is the quoted message's, not this one's
        quote, own = split_quote(m.text)
        item.mentioned = is_mentioned(
            own,
            m.mention_ids,
            bot_id,
            names,
            mention_all_counts=self.account.settings.mentionAll,
        )
        if item.mentioned:
            item.text = (quote + strip_leading_mention(own, names)).strip()
        else:
            item.text = m.text.strip()
        assert item.rule is not None
        if item.rule.require_mention and not item.mentioned:
            self.history.note_unanswered(m.room_id, self._entry(item))
            return Drop("no_mention")
        return None

    async def fetch_media(self, item: Inbound) -> Drop | None:
        """Download files with the mediaMaxMb cap; too large: the agent gets a note."""
        m = item.message
        if m.kind.has_file or m.file is not None:
            # mediaMaxAgeHours: old inbound files go when new ones come (at most hourly)
            max_age_s = self.account.settings.mediaMaxAgeHours * 3600.0
            self.media.maybe_prune(max_age_s, account_id=self.account.id)
            saved = await self.media.fetch(self.puppet, m, self.account.media_max_bytes)
            if saved.note:
                too_large = saved.path is None and "too large" in saved.note
                log.log(
                    logging.INFO if too_large else logging.WARNING,
                    "media of message %s not downloaded: %s account=%s reason=%s",
                    shown(m.id),
                    shown(saved.note, 200),
                    self.account.id,
                    "too_large" if too_large else "media_failed",
                )
                if not too_large:  # (a cap the config sets is no error)
                    self.on_error(f"media of message {m.id} not downloaded: {saved.note}")
            if m.kind is MessageKind.AUDIO and m.text.strip():
                # the transport's transcript of a voice message (iLink gives one)
                saved = dataclasses.replace(saved, transcript=m.text.strip())
            item.media.append(saved)
        return None

    # ------------------------------------------------------------ the turn

    def _entry(self, item: Inbound) -> HistoryEntry:
        m = item.message
        kind = m.kind.media_item_kind if m.kind.has_file or m.file is not None else None
        text = entry_text(item.text or m.text, kind, m.file.name if m.file else "")
        return HistoryEntry("user", m.talker_id, item.sender_name, text, m.timestamp, m.id)

    def _turn(self, item: Inbound) -> AgentTurn:
        m = item.message
        if m.room_id is not None:
            history = self.history.group(m.room_id)  # (cleared once the turn is taken)
            tool_names = allowed_tool_names(
                item.rule.tools if item.rule else None, self.tools.names
            )
            where = f"group {m.room_id}"
        else:
            # read when the turn is answered, the conversation held (Turns.with_dm_history):
            # the turn before it may still be under way now
            history = ()
            tool_names = self.tools.names
            where = f"DM with {m.talker_id}"
        return AgentTurn(
            account_id=self.account.id,
            chat_type="group" if m.room_id is not None else "direct",
            sender_id=m.talker_id,
            sender_name=item.sender_name,
            text=item.text if m.room_id is not None else m.text.strip(),
            message_id=m.id,
            room_id=m.room_id,
            room_topic=item.room_topic,
            raw_text=m.text,
            mentioned=item.mentioned,
            timestamp=m.timestamp,
            media=tuple(item.media),
            history=history,
            tools=self.tools.allowed(tool_names, where=where),
            quoted_text=m.quoted_text,
        )
