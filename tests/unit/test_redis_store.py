"""The Redis store beyond the shared contract: its config block, its keys, a password
never shown, and two gateways' stores on one server seeing one state (a real
redis-server from tests/conftest.py)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pytest
from click.testing import CliRunner

from wechat_sdk.config import ConfigError
from wechat_sdk.config.loader import parse_config
from wechat_sdk.config.store import shown_url
from wechat_sdk.stores.base import OutboxItem, PairingRequest

T0 = 1_700_000_000.0


def redis_store(url: str, namespace: str) -> Any:
    from wechat_sdk.stores.redis import RedisStore

    return RedisStore(url, namespace=namespace)


def pairing_request(code: str, sender: str = "wxid_alice") -> PairingRequest:
    return PairingRequest(code, "default", sender, "Alice", T0, T0 + 3600)


@pytest.mark.parametrize(
    ("block", "path", "words"),
    [
        ('{kind: "redis"}', "channels.wechat.store", 'kind "redis" needs url'),
        ('{kind: "redis", url: "http://db:6379"}', "channels.wechat.store.url", "redis://"),
        ('{kind: "sqlite", url: "redis://db"}', "channels.wechat.store", 'redis" only'),
        ('{kind: "memory", namespace: "x"}', "channels.wechat.store", "namespace is for"),
        ('{kind: "redi"}', "channels.wechat.store.kind", 'did you mean "redis"'),
        ('{kind: "redis", url: "redis://"}', "channels.wechat.store.url", "names no host"),
        # config check said OK; every command that opened the store failed without the key
        # (gateway run) or with a traceback (pairing list)
        (
            '{kind: "redis", url: "redis://:hunter2@db:99999999/0"}',
            "channels.wechat.store.url",
            "the Redis client can use: Port out of range",
        ),
        (
            '{kind: "redis", url: "redis://db:abc/0"}',
            "channels.wechat.store.url",
            "the port is not a number",
        ),
        (
            '{kind: "redis", url: "unix:///run/redis.sock?db=x"}',
            "channels.wechat.store.url",
            "Invalid value for 'db'",
        ),
    ],
)
def test_a_wrong_store_block_names_its_path_and_what_to_write(
    block: str, path: str, words: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(f"{{channels: {{wechat: {{store: {block}}}}}}}")
    (problem,) = err.value.problems
    assert problem.path == path
    assert words in problem.message and "hunter2" not in problem.message


def test_the_store_block_is_top_level_only_and_sqlite_by_default() -> None:
    assert parse_config("{}").channels.wechat.store.kind == "sqlite"
    with pytest.raises(ConfigError) as err:
        parse_config('{channels: {wechat: {accounts: {a: {store: {kind: "memory"}}}}}}')
    assert err.value.problems[0].path == "channels.wechat.accounts.a.store"


def test_a_bad_url_is_refused_without_repeating_its_password() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config('{channels: {wechat: {store: {kind: "redis", url: "http://:hunter2@db"}}}}')
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@db:6379/0", "redis://:***@db:6379/0"),
        ("rediss://bot:hunter2@db:6380", "rediss://bot:***@db:6380"),
        ("redis://db:6379/0", "redis://db:6379/0"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
        (
            "unix:///run/redis.sock?db=0&password=hunter2",
            "unix:///run/redis.sock?db=0&password=***",
        ),
        (
            "redis://db:6379?username=bot&password=hunter2&db=1",
            "redis://db:6379?username=bot&password=***&db=1",
        ),
        ("redis://:hunter2@db/0?password=hunter3", "redis://:***@db/0?password=***"),
    ],
)
def test_shown_url_hides_the_password(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_config_check_shows_the_store_without_its_password(tmp_path: Any) -> None:
    from wechat_sdk.cli import cli

    config = tmp_path / "c.json5"
    config.write_text(
        '{channels: {wechat: {store: {kind: "redis", url: "redis://:hunter2@db:6379/0"}}}}'
    )
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "store: redis redis://:***@db:6379/0" in result.output
    assert "hunter2" not in result.output
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(config), "--json"])
    assert '"url": "redis://:***@db:6379/0"' in result.output
    assert "hunter2" not in result.output


def test_an_unreachable_redis_is_a_clear_error_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from wechat_sdk.stores.redis import RedisStore, RedisUnavailable

    caplog.set_level(logging.DEBUG)
    with pytest.raises(RedisUnavailable) as err:
        RedisStore("redis://:hunter2@127.0.0.1:1/0")
    message = str(err.value)
    assert "cannot reach the Redis server at redis://:***@127.0.0.1:1/0" in message
    assert "channels.wechat.store.url" in message
    assert "hunter2" not in message + caplog.text
    assert "hunter2" not in repr(
        parse_config('{channels: {wechat: {store: {kind: "redis", url: "redis://:hunter2@db"}}}}')
    )


def test_gateway_run_and_pairing_list_say_redis_is_unreachable(tmp_path: Any) -> None:
    from wechat_sdk.cli import cli

    config = tmp_path / "c.json5"
    config.write_text(
        '{channels: {wechat: {puppet: "simulator", '
        'store: {kind: "redis", url: "redis://:hunter2@127.0.0.1:1/0"}}}}'
    )
    for args in (["gateway", "run"], ["pairing", "list"]):
        result = CliRunner().invoke(
            cli, [*args, "--config", str(config), "--state-dir", str(tmp_path / "s")]
        )
        assert result.exit_code == 1, result.output
        assert "cannot reach the Redis server at redis://:***@127.0.0.1:1/0" in result.output
        assert "hunter2" not in result.output


def test_every_key_is_under_the_namespace_and_channel(redis_url: str, redis_namespace: str) -> None:
    import redis

    store = redis_store(redis_url, redis_namespace)
    try:
        store.pairing.add_request(pairing_request("ABCD2345"))
        store.pairing.add_approved("default", "wxid_bob", T0)
        store.history.append("default", "room:1@chatroom", _entry("hi"), 5)
        store.dedupe.check_and_add("default", "m1", T0, 60)
        store.outbox.add([OutboxItem("default", "wxid_alice", "text", T0, text="x")])
        store.idempotency.claim("k", "f", T0)
        raw = redis.Redis.from_url(redis_url, decode_responses=True)
        keys = set(raw.scan_iter(f"{redis_namespace}:*"))
        assert keys and all(k.startswith(f"{redis_namespace}:wechat:") for k in keys)
        # an id with a colon in it cannot run into the next part of the key
        assert f"{redis_namespace}:wechat:history:default:room%3A1@chatroom" in keys
        raw.close()
    finally:
        store.close()


def _entry(text: str) -> Any:
    from wechat_sdk.agent import HistoryEntry

    return HistoryEntry("user", "wxid_alice", "Alice", text, T0, f"m-{text}")


def test_two_gateways_stores_share_one_state(redis_url: str, redis_namespace: str) -> None:
    """What one gateway's store wrote, another's on the same Redis reads at once: an
    approval made from any machine, a message seen by one is a duplicate for the other."""
    a = redis_store(redis_url, redis_namespace)
    b = redis_store(redis_url, redis_namespace)
    try:
        a.pairing.add_request(pairing_request("ABCD2345"))
        approved = b.pairing.approve_request("abcd2345", T0 + 1)
        assert approved is not None
        assert a.pairing.is_approved("default", "wxid_alice")
        assert a.pairing.list_requests() == []
        assert a.dedupe.check_and_add("default", "m1", T0, 60) is False
        assert b.dedupe.check_and_add("default", "m1", T0 + 1, 60) is True
        (item,) = a.outbox.add([OutboxItem("default", "wxid_alice", "text", T0, text="x")])
        assert [i.text for i in b.outbox.items("default")] == ["x"]
        assert b.outbox.delete(item.id) and not a.outbox.delete(item.id)
    finally:
        a.close()
        b.close()


def test_two_namespaces_on_one_server_do_not_see_each_other(
    redis_url: str, redis_namespace: str
) -> None:
    a = redis_store(redis_url, redis_namespace + "-a")
    b = redis_store(redis_url, redis_namespace + "-b")
    try:
        a.pairing.add_approved("default", "wxid_alice", T0)
        assert not b.pairing.is_approved("default", "wxid_alice")
    finally:
        a.close()
        b.close()


def test_the_store_repr_shows_no_password(redis_url: str) -> None:
    from wechat_sdk.stores.redis import RedisStore

    url = redis_url.replace("redis://", "redis://:hunter2@")
    store = RedisStore(url, client=__import__("redis").Redis.from_url(redis_url))
    try:
        assert "hunter2" not in repr(store)
        assert ":***@" in repr(store)
    finally:
        store.close()


def test_the_store_block_chooses_the_gateways_store(tmp_path: Any) -> None:
    from wechat_sdk.stores import MemoryStore, SqliteStore
    from wechat_sdk.stores.configured import open_store

    memory = parse_config('{channels: {wechat: {store: {kind: "memory"}}}}').channels.wechat
    assert isinstance(open_store(memory, tmp_path / "m"), MemoryStore)
    assert not (tmp_path / "m").exists()  # nothing on disk
    default = parse_config("{}").channels.wechat
    sqlite = open_store(default, tmp_path / "s")
    try:
        assert isinstance(sqlite, SqliteStore)
        assert (tmp_path / "s" / "wechat-sdk.sqlite3").exists()
    finally:
        sqlite.close()


def test_outbox_items_of_an_account_with_a_colon_in_its_id_are_deleted_for_good(
    redis_url: str, redis_namespace: str
) -> None:
    store = redis_store(redis_url, redis_namespace)
    try:
        odd = "team:50%"
        (item,) = store.outbox.add([OutboxItem(odd, "wxid_alice", "text", T0, text="x")])
        store.outbox.set_state(item.id, "sending")
        assert [i.state for i in store.outbox.items(odd)] == ["sending"]
        assert store.outbox.delete(item.id)
        assert store.outbox.items(odd) == []
        store.outbox.set_state(item.id, "pending")  # gone: nothing comes back
        assert store.outbox.items(odd) == []
    finally:
        store.close()


def test_idempotency_keys_are_purged_by_time_those_of_an_older_gateway_too(
    redis_url: str, redis_namespace: str
) -> None:
    # a purge reads the keys it forgets from a time index, not every record; records an
    # older gateway wrote (no index) are indexed by the first purge, and purged when old
    import json

    import redis

    store = redis_store(redis_url, redis_namespace)
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    records, since = store.keys.idempotency, store.keys.idempotency_since
    try:
        raw.hset(records, "older-old", json.dumps(["fp", T0, 200, "{}"]))
        raw.hset(records, "older-new", json.dumps(["fp", T0 + 100, 200, "{}"]))
        store.idempotency.claim("old", "fp", T0 + 10)
        store.idempotency.claim("new", "fp", T0 + 100)
        store.idempotency.claim("released", "fp", T0)
        store.idempotency.release("released")
        assert store.idempotency.purge(T0 + 50) == 2
        assert sorted(raw.hkeys(records)) == ["new", "older-new"]
        assert sorted(raw.zrange(since, 0, -1)) == ["new", "older-new"]
        assert store.idempotency.purge(T0 + 50) == 0
        assert store.idempotency.claim("old", "fp2", T0 + 200) is None  # new again
        known = store.idempotency.claim("older-new", "other", T0 + 200)
        assert known is not None and known.created_at == T0 + 100
    finally:
        raw.close()
        store.close()


def test_a_marks_claim_is_forgotten_with_it(redis_url: str, redis_namespace: str) -> None:
    """The claims hash holds no more than the marks: a claim goes when its mark expires
    or the bound forgets it (it would otherwise grow by one a message, for good)."""
    from wechat_sdk.stores.redis import RedisStore

    store = RedisStore(redis_url, namespace=redis_namespace, dedupe_max_entries=3)
    try:
        d, claims = store.dedupe, store.keys.dedupe_claims("default")
        for i in range(10):  # the bound forgets the oldest
            d.check_and_add("default", f"m{i}", T0 + i, 3600, f"claim-{i}")
        assert sorted(store.client.hkeys(claims)) == ["m7", "m8", "m9"]
        d.check_and_add("default", "m10", T0 + 7200, 3600, "claim-10")  # the rest expired
        assert store.client.hgetall(claims) == {"m10": "claim-10"}
        d.check_and_add("default", "m10", T0 + 10_900, 3600)  # expired, marked anew: no claim
        assert store.client.hgetall(claims) == {}
    finally:
        store.close()


def test_an_outbox_item_an_earlier_build_kept_reads_without_a_pairing_code() -> None:
    # what a gateway of schema 3's time wrote (no "pairing_code"): a rolling upgrade, or a
    # restart on a newer build, reads it as a text of no pairing request, sent as before
    from wechat_sdk.stores.redis.codec import item_from_json

    raw = (
        '{"id": 7, "account_id": "default", "conversation_id": "wxid_kim", "kind": "text", '
        '"state": "pending", "created_at": 1.5, "dm": false, "text": "Pairing code: X", '
        '"mention_ids": [], "file": null, "turn": null}'
    )
    item = item_from_json(raw)
    assert item == OutboxItem(
        "default", "wxid_kim", "text", 1.5, text="Pairing code: X", id=7, pairing_code=None
    )
    assert item.notice is False  # (nor the mark of a reply window's notice, schema 6's)


def test_a_pairing_request_an_earlier_build_kept_reads_without_the_account_it_came_to() -> None:
    # what a gateway of schema 4's time wrote (no "received_by"): read as a request said
    # to the account whose list keeps it, as before (approve --notify tells through it)
    from wechat_sdk.stores.redis.pairing import _request

    row = {
        "account_id": "groups",
        "sender_id": "wxid_kim",
        "sender_name": "Kim",
        "created_at": "1.5",
        "expires_at": "3601.5",
    }
    found = _request("ABCD2345", row)
    assert found == PairingRequest("ABCD2345", "groups", "wxid_kim", "Kim", 1.5, 3601.5)
    assert found is not None and found.received_by is None
    assert _request("ABCD2345", {**row, "received_by": "dm"}) == replace(found, received_by="dm")
