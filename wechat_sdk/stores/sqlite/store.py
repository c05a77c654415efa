"""The SQLite store bundle: one database file, one connection, the stores."""

from __future__ import annotations

from pathlib import Path

from wechat_sdk.clock import Clock, RealClock
from wechat_sdk.stores.base import CHANNEL, DEFAULT_DEDUPE_MAX_ENTRIES, DEFAULT_MAX_CONVERSATIONS
from wechat_sdk.stores.sqlite.db import DEFAULT_DB_NAME, Database
from wechat_sdk.stores.sqlite.dedupe import SqliteDedupeStore
from wechat_sdk.stores.sqlite.history import (
    DEFAULT_HISTORY_CACHE_CONVERSATIONS,
    SqliteHistoryStore,
)
from wechat_sdk.stores.sqlite.outbox import SqliteOutboxStore
from wechat_sdk.stores.sqlite.pairing import SqlitePairingStore
from wechat_sdk.stores.sqlite.webhooks import SqliteIdempotencyStore, SqliteWebhookQueue

__all__ = ["SqliteStore"]


class SqliteStore:
    """The SQLite :class:`~wechat_sdk.stores.base.Store` bundle: one file, one connection.

    ``path`` is the database file; its parent directory is created with mode 0700
    (an existing one owned by this user is tightened to 0700), the file with mode
    0600 (an existing one is tightened too). Several processes may open the same
    file at once (the gateway and the CLI): each sees the others' commits at once.
    ``clock`` times the write-behind commits and decides where a slow disk's fsync runs
    (see :meth:`~wechat_sdk.clock.Clock.run_blocking`): give it the gateway's.
    ``history_cache_conversations`` bounds the conversations whose history is kept in
    memory (the others are read from the file when used).

    Example:
        ```python
        with SqliteStore.in_state_dir(Path("~/.clawdbot/wechat")) as store:
            print(store.pairing.list_requests())
        ```
    """

    def __init__(
        self,
        path: Path,
        *,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
        history_cache_conversations: int = DEFAULT_HISTORY_CACHE_CONVERSATIONS,
        dedupe_max_entries: int = DEFAULT_DEDUPE_MAX_ENTRIES,
        channel: str = CHANNEL,
        clock: Clock | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        self.channel = channel
        self._db = Database(self.path, clock or RealClock())
        self.pairing = SqlitePairingStore(self._db, channel)
        self.history = SqliteHistoryStore(
            self._db, max_conversations, channel, history_cache_conversations
        )
        self.dedupe = SqliteDedupeStore(self._db, dedupe_max_entries, channel)
        self.outbox = SqliteOutboxStore(self._db, channel)
        self.webhooks = SqliteWebhookQueue(self._db, channel)
        self.idempotency = SqliteIdempotencyStore(self._db, channel)

    @classmethod
    def in_state_dir(
        cls,
        state_dir: Path,
        *,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
        history_cache_conversations: int = DEFAULT_HISTORY_CACHE_CONVERSATIONS,
        dedupe_max_entries: int = DEFAULT_DEDUPE_MAX_ENTRIES,
        channel: str = CHANNEL,
        clock: Clock | None = None,
    ) -> SqliteStore:
        """Open ``<state_dir>/wechat-sdk.sqlite3`` (the default location)."""
        return cls(
            Path(state_dir).expanduser() / DEFAULT_DB_NAME,
            max_conversations=max_conversations,
            history_cache_conversations=history_cache_conversations,
            dedupe_max_entries=dedupe_max_entries,
            channel=channel,
            clock=clock,
        )

    @property
    def database(self) -> Database:
        """The database file's connection, for a transport that keeps its accounts' state
        beside the stores' (the iLink adapter: one fsync for its cursor and the marks)."""
        return self._db

    def flush(self) -> None:
        """Commit the queued writes (history, dedupe marks) now, without an fsync."""
        if not self._db.closed:
            self._db.flush()

    def mark_position(self) -> int:
        """See :meth:`Store.mark_position`: how many dedupe marks were recorded so far."""
        return self._db.marks_queued

    async def marks_durable(self, upto: int | None) -> None:
        """See :meth:`Store.marks_durable`: commits the queued writes and fsyncs the WAL
        if a mark up to ``upto`` is not durable yet. One commit and fsync at a time:
        callers waiting meanwhile share the next."""
        if not self._db.closed:
            await self._db.durable(upto)

    def close(self) -> None:
        """Commit and fsync what is queued, close the connection (idempotent)."""
        self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
