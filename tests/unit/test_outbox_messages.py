"""The outbox's ``"message"`` items (a message journaled while it goes through the inbound
steps) in every store: memory, SQLite and Redis (a real redis-server). SQLite writes them
behind, with the dedupe marks: an item is in the file no later than a mark recorded after
it, its delete before a reply waiting for the marks goes out, and an item added and
deleted between two commits is never written."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wechat_sdk.clock import VirtualClock
from wechat_sdk.stores import MemoryStore, OutboxItem, SqliteStore

T0 = 1_700_000_000.0


def arrived(message_id: str, conversation: str = "wxid_alice") -> OutboxItem:
    return OutboxItem("default", conversation, "message", T0, turn=message_id, dm=True)


def text(words: str) -> OutboxItem:
    return OutboxItem("default", "wxid_alice", "text", T0, text=words, dm=True)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    opened: list[Any] = []

    def make() -> Any:
        if request.param == "memory":
            store: Any = MemoryStore()
        elif request.param == "redis":
            from wechat_sdk.stores.redis import RedisStore

            url = request.getfixturevalue("redis_url")
            namespace = request.getfixturevalue("redis_namespace")
            store = RedisStore(url, namespace=namespace)
        else:
            store = SqliteStore(tmp_path / "state" / "wechat-sdk.sqlite3")
        opened.append(store)
        return store

    yield make
    for s in opened:
        s.close()


def test_message_items_come_and_go_in_order_among_the_others(
    make_store: Callable[[], Any],
) -> None:
    outbox = make_store().outbox
    (first,) = outbox.add([text("one")])
    (journaled,) = outbox.add([arrived("m1")])
    (last,) = outbox.add([text("two")])
    assert first.id < journaled.id < last.id
    assert (journaled.kind, journaled.turn, journaled.state) == ("message", "m1", "pending")
    assert outbox.items("default") == [first, journaled, last]
    assert outbox.delete(journaled.id) is True
    assert [i.text for i in outbox.items("default")] == ["one", "two"]
    (again,) = outbox.add([arrived("m2", conversation="r1@chatroom")])
    assert again.id > last.id
    assert outbox.items("default")[-1] == again


def gateway_store(path: Path) -> SqliteStore:
    """The gateway's store: its writes behind wait for its (virtual) clock's commit."""
    return SqliteStore(path, clock=VirtualClock())


async def test_a_message_item_reaches_the_file_with_the_dedupe_mark_recorded_after_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "wechat-sdk.sqlite3"
    with gateway_store(path) as gateway, SqliteStore(path) as other_process:
        (journaled,) = gateway.outbox.add([arrived("m1")])
        assert other_process.outbox.items("default") == []  # written behind
        gateway.dedupe.check_and_add("default", "m1", T0, 3600)
        gateway.flush()  # the next commit of the marks
        assert other_process.outbox.items("default") == [journaled]


async def test_a_reply_waits_for_its_message_item_to_leave_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "wechat-sdk.sqlite3"
    with gateway_store(path) as gateway, SqliteStore(path) as other_process:
        (journaled,) = gateway.outbox.add([arrived("m1")])
        gateway.dedupe.check_and_add("default", "m1", T0, 3600)
        gateway.flush()
        before = gateway.mark_position()
        assert gateway.outbox.delete(journaled.id) is True
        after = gateway.mark_position()
        assert after > before  # what a reply's sends wait for covers the delete
        assert other_process.outbox.items("default") == [journaled]  # not yet
        await gateway.marks_durable(after)
        assert other_process.outbox.items("default") == []


async def test_a_message_item_deleted_before_the_commit_is_never_written(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "wechat-sdk.sqlite3"
    with gateway_store(path) as gateway, SqliteStore(path) as other_process:
        (journaled,) = gateway.outbox.add([arrived("m1")])
        position = gateway.mark_position()
        assert gateway.outbox.delete(journaled.id) is True
        assert gateway.mark_position() == position  # nothing for a reply to wait for
        gateway.flush()
        assert other_process.outbox.items("default") == []
        (later,) = gateway.outbox.add([text("after")])
        assert later.id > journaled.id  # ids keep growing
    with SqliteStore(path) as reopened:  # the next process
        assert reopened.outbox.items("default") == [later]
        (newest,) = reopened.outbox.add([arrived("m2")])
        assert newest.id > later.id
