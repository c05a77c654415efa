"""SQLite stores: one durable file shared by the gateway and the CLI.

The parts: :mod:`.db` (the connection, schema and migrations, the write-behind queue and
durability), :mod:`.pairing`, :mod:`.history`, :mod:`.dedupe`, :mod:`.outbox`, and
:mod:`.webhooks` (the webhook queue and the idempotency keys), and :mod:`.store` (the
:class:`SqliteStore` bundle).

Design:

- One database file (``<stateDir>/wechat-sdk.sqlite3`` by default); its directory is
  made (or tightened to) mode 0700 and the file 0600. SQLite gives its ``-wal`` and
  ``-shm`` files the database file's mode.
- WAL journal, ``synchronous=NORMAL`` plus an fsync of the WAL of our own: a pairing or
  outbox write is fsync'd before the call returns (as with ``FULL``; an outbox
  ``"message"`` item, journaled with every message, is written behind with the dedupe
  marks, see :mod:`.outbox`); a dedupe mark before any reply to its message goes out
  (:meth:`SqliteStore.marks_durable`: one commit and fsync for every mark queued so far;
  the fsync on the event loop while the disk is fast, else where the clock says). A
  committed transaction survives a crash or a kill at once, and a power loss once fsync'd; an
  uncommitted one leaves no trace.
- Autocommit connection (``isolation_level=None``): reads never hold a transaction
  open, so they see what another process committed at once. Every pairing write is one
  short ``BEGIN IMMEDIATE ... COMMIT``; ``timeout=5`` waits for another process's write.
- Write-behind for the gateway's hot path: the dedupe store answers from memory, the
  history store from a bounded cache of recent conversations (the others are read from
  the file when used); their writes are queued and committed together, a few
  ``executemany`` statements in one transaction, within ``COMMIT_DELAY_S`` of the
  store's clock (at once without a running event loop: the CLI, scripts). Also before a
  send whose mark is not durable yet, before any pairing or outbox write, by
  :meth:`SqliteStore.flush`, and on close. What a crash can lose is only history not
  committed yet: the database stays consistent. A failed commit is rolled back and its
  writes stay queued for the next one. Text UTF-8 cannot encode (a lone surrogate) is
  stored with ``?`` in its place, so a queued write never fails at its commit.
- Only one process writes history and dedupe marks (the gateway: one per state
  directory); the CLI reads and writes pairing rows only.
- The schema version lives in ``PRAGMA user_version``; an older file is migrated when it
  is opened (version 1 gets the outbox table, version 2 the webhook queue and the
  idempotency keys, version 3 the outbox's ``pairing_code`` column, version 4 the
  ``claim`` columns of the outbox and the dedupe marks and the pairing requests'
  ``received_by`` column, version 5 the outbox's ``notice`` column, their rows
  untouched).
"""

from __future__ import annotations

from wechat_sdk.stores.sqlite.db import DEFAULT_DB_NAME, SCHEMA_VERSION, StoreSchemaError
from wechat_sdk.stores.sqlite.dedupe import SqliteDedupeStore
from wechat_sdk.stores.sqlite.history import (
    DEFAULT_HISTORY_CACHE_CONVERSATIONS,
    SqliteHistoryStore,
)
from wechat_sdk.stores.sqlite.outbox import SqliteOutboxStore
from wechat_sdk.stores.sqlite.pairing import SqlitePairingStore
from wechat_sdk.stores.sqlite.store import SqliteStore
from wechat_sdk.stores.sqlite.webhooks import SqliteIdempotencyStore, SqliteWebhookQueue

__all__ = [
    "DEFAULT_DB_NAME",
    "DEFAULT_HISTORY_CACHE_CONVERSATIONS",
    "SCHEMA_VERSION",
    "SqliteDedupeStore",
    "SqliteHistoryStore",
    "SqliteIdempotencyStore",
    "SqliteOutboxStore",
    "SqlitePairingStore",
    "SqliteStore",
    "SqliteWebhookQueue",
    "StoreSchemaError",
]
