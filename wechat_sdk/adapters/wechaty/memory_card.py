"""A Node puppet's memory card kept in Redis (``store.kind: "redis"``), so the gateway that
takes a sidecar account over logs in from the same session: no new QR code.

Wechaty keeps a puppet's login session (``wechaty-puppet-wechat``'s cookies, ...) in its
*memory card*. The sidecar gives it a file, ``<stateDir>/accounts/<id>/wechaty.memory-card.json``
(memory-card's file storage: the name in ``WECHAT_SDK_MEMORY`` plus ``.memory-card.json``,
the whole card as JSON, rewritten at each ``save()``). With a Redis store the card is also
kept at ``<namespace>:<channel>:transport:wechaty:<account>:memory-card`` (a string, the
card's JSON):

- **restored** to the file before the sidecar starts, owner-only (0600): the card in Redis
  is the account's session, whichever gateway saved it. One that is not a JSON object is
  logged (never its content) and skipped: the puppet logs in afresh. With none in Redis, a
  card already in the file is kept (and saved at the next look);
- **saved** when the file changed: looked at every :data:`SAVE_EVERY_S` while the sidecar
  runs, and once more after it stopped (the sidecar saves its card as it stops). A file
  caught half written is taken at the next look;
- each save **fenced** by the account's lease (:mod:`wechat_sdk.stores.redis.fencing`): a
  gateway that lost the account cannot put an older session back.

The card holds session secrets: it is never logged, and its file is 0600 in the account's
0700 directory. A Puppet Service account (``wechaty-puppet-service``, a token) keeps its
session at the service: it has no card here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from wechat_sdk.stores.redis.fencing import AsyncWriteScript, Fence, LeaseLost

if TYPE_CHECKING:
    from wechat_sdk.puppets import SharedRedis

__all__ = ["MEMORY_NAME", "SAVE_EVERY_S", "RedisMemoryCard", "card_file"]

log = logging.getLogger("wechat_sdk.adapters.wechaty")

#: the transport's part of the key, for every Node puppet
PUPPET: Final = "wechaty"
#: the memory card's name in the account's directory (``WECHAT_SDK_MEMORY``)
MEMORY_NAME: Final = "wechaty"
#: seconds between two looks at the card's file while the sidecar runs
SAVE_EVERY_S: Final = 2.0

# KEYS: the card. ARGV: its JSON, or '' when the puppet removed its card.
_SAVE: Final = """
if ARGV[1] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[1]) end
return 0
"""


def card_file(account_dir: Path) -> Path:
    """Where memory-card's file storage keeps the card the sidecar names ``MEMORY_NAME``."""
    return account_dir / f"{MEMORY_NAME}.memory-card.json"


def _card(text: str) -> bool:
    """Whether ``text`` is a memory card (a JSON object)."""
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


class RedisMemoryCard:
    """One account's memory card in Redis and in its file (see the module).

    ``file`` is the card's file (:func:`card_file`); ``save_every_s`` replaces
    :data:`SAVE_EVERY_S`.
    """

    def __init__(
        self,
        shared: SharedRedis,
        account_id: str,
        file: Path,
        *,
        save_every_s: float = SAVE_EVERY_S,
    ) -> None:
        from redis.asyncio import Redis as AsyncRedis

        self.key = shared.account_key(PUPPET, account_id, "memory-card")
        self.file = file
        self.save_every_s = save_every_s
        self._log = logging.LoggerAdapter(log, {"account": account_id})
        self._fence = (
            Fence(account_id, shared.lease_key, shared.lease_value, on_lost=shared.on_lost)
            if shared.lease_key is not None and shared.lease_value is not None
            else None
        )
        from wechat_sdk.stores.redis.store import client_options

        # (typed Any: redis-py's stubs give every command "Awaitable[T] | T")
        self._r: Any = AsyncRedis.from_url(shared.url, **client_options(5))
        self._save = AsyncWriteScript(self._r, _SAVE, "memory card write")
        #: the card as Redis has it from this gateway (or gave it): what needs no save
        self._saved: str | None = None
        self._lost = False  # the lease is gone: nothing more is saved
        self._failing = False  # the last save failed (said once, until one works)

    def __repr__(self) -> str:  # (no URL: it may hold the password)
        return f"RedisMemoryCard(key={self.key!r})"

    async def restore(self) -> None:
        """Write the card Redis holds to the file (0600), before the sidecar starts."""
        from redis.exceptions import RedisError

        from wechat_sdk.stores.redis.store import unreachable_reason

        self._saved = None
        try:
            kept: str | None = await self._r.get(self.key)
        except RedisError as exc:
            self._log.warning(
                "Wechaty memory card not restored from Redis (%s): the puppet starts from "
                "the card on this machine, if any reason=memory_card_unavailable",
                unreachable_reason(exc),
            )
            return
        if kept is None:
            return  # (a card already here is saved at the first look)
        if not _card(kept):
            self._log.warning(
                "the Wechaty memory card kept in Redis (%s) is not a JSON object: skipped, "
                "the puppet logs in afresh (a QR code) reason=memory_card_unreadable",
                self.key,
            )
            await asyncio.to_thread(self.file.unlink, missing_ok=True)
            return
        await asyncio.to_thread(self._write, kept)
        self._saved = kept

    def _write(self, text: str) -> None:
        """The file, replaced whole, owner-only from its first byte."""
        self.file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        part = self.file.with_name(self.file.name + ".restoring")
        part.unlink(missing_ok=True)
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(part, self.file)

    def _read(self) -> str | None:
        """The file's card (None: no file; a card is a few kilobytes, read whole at each
        look), the file made owner-only when the puppet created it."""
        try:
            if self.file.stat().st_mode & 0o077:
                self.file.chmod(0o600)
            return self.file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    async def save(self) -> None:
        """Save the file's card to Redis if it changed (a card half written waits for the
        next look). Never raises: a failure is logged and tried again at the next look."""
        from redis.exceptions import RedisError

        from wechat_sdk.stores.redis.store import unreachable_reason

        if self._lost:
            return
        try:
            text = await asyncio.to_thread(self._read)
            if text == self._saved or (text is not None and not _card(text)):
                return  # (unchanged, or caught half written: taken at the next look)
            await self._save(self._fence, [self.key], [text or ""])
        except LeaseLost as exc:
            self._lost = True
            self._log.warning("Wechaty memory card not saved: %s", exc)
            return
        except (RedisError, OSError) as exc:
            if not self._failing:
                self._log.warning(
                    "Wechaty memory card not saved to Redis (%s): tried again in %g s "
                    "reason=memory_card_unsaved",
                    unreachable_reason(exc) if isinstance(exc, RedisError) else exc,
                    self.save_every_s,
                )
            self._failing = True
            return
        if self._failing:
            self._log.info("Wechaty memory card saved to Redis again")
        self._failing = False
        self._saved = text

    async def keep(self) -> None:
        """Save the card each time its file changed, until cancelled (while the sidecar
        runs)."""
        while True:
            await asyncio.sleep(self.save_every_s)
            await self.save()

    async def close(self) -> None:
        """Close the connection (the card stays in Redis)."""
        await self._r.aclose()
