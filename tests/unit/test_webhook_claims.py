"""Webhook deliveries claimed on a queue several gateways share (Redis, a real
redis-server): a claimed delivery is given to no other gateway until its claim ends, and
then to one; a claim whose gateway died ends by itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from wechat_sdk.stores import WebhookDelivery
from wechat_sdk.stores.redis import RedisStore

T0 = 1_700_000_000.0
URL = "https://a.example/hook"


@pytest.fixture
def gateways(redis_url: str, redis_namespace: str) -> Iterator[tuple[Any, Any]]:
    """Two gateways' webhook queues: two clients on one Redis, one namespace."""
    stores = [RedisStore(redis_url, namespace=redis_namespace) for _ in range(2)]
    yield stores[0].webhooks, stores[1].webhooks
    for s in stores:
        s.close()


def delivery(n: int, due: float = T0) -> WebhookDelivery:
    return WebhookDelivery(URL, f"msg_{n}", "account.ready", f'{{"n": {n}}}', T0, due)


def test_a_claimed_delivery_is_given_to_no_other_gateway_until_its_claim_ends(
    gateways: tuple[Any, Any],
) -> None:
    a, b = gateways
    first, second = a.add([delivery(1), delivery(2)])
    assert a.claim_due(URL, T0, hold_s=30) == [first]
    assert b.claim_due(URL, T0, hold_s=30) == [second]  # the next one, not the claimed
    assert b.claim_due(URL, T0 + 29, hold_s=30) == []
    assert a.claim_due(URL, T0 + 29, hold_s=30) == []  # its own claim holds it too
    assert b.next_attempt_at(URL) == T0 + 30  # when the first claim ends
    # the gateway that claimed the first died: it is due again, for one taker
    assert b.claim_due(URL, T0 + 30, hold_s=30) == [first]
    assert a.claim_due(URL, T0 + 30, hold_s=30) == [second]
    assert [d.message_id for d in a.pending()] == ["msg_1", "msg_2"]  # nothing lost


def test_a_burst_of_claims_from_two_gateways_takes_each_delivery_once(
    gateways: tuple[Any, Any],
) -> None:
    a, b = gateways
    added = a.add([delivery(n) for n in range(30)])
    taken: list[WebhookDelivery] = []
    for turn in range(40):
        taken.extend((a, b)[turn % 2].claim_due(URL, T0, hold_s=30))
    assert taken == added  # each once, in the order added (ids 10 and on after 9)


def test_a_batch_claim_takes_the_earliest_and_leaves_the_rest_to_others(
    gateways: tuple[Any, Any],
) -> None:
    a, b = gateways
    added = a.add([delivery(n, due=T0 + n) for n in range(5)])
    assert a.claim_due(URL, T0 + 10, hold_s=60, limit=3) == added[:3]
    assert b.claim_due(URL, T0 + 10, hold_s=60, limit=3) == added[3:]


def test_a_delivery_deleted_while_claimed_is_not_claimed_again(
    gateways: tuple[Any, Any],
) -> None:
    a, b = gateways
    (d,) = a.add([delivery(1)])
    assert a.claim_due(URL, T0, hold_s=30) == [d]
    assert a.delete(d.id) is True  # its endpoint took it
    assert b.claim_due(URL, T0 + 60, hold_s=30) == []
    assert b.next_attempt_at(URL) is None


def test_an_endpoint_dropped_by_one_gateway_is_dropped_for_the_other_its_claims_too(
    gateways: tuple[Any, Any],
) -> None:
    # (410 Gone): a delivery the other gateway is POSTing cannot come back by its retry
    a, b = gateways
    first, _ = a.add([delivery(1), delivery(2)])
    (elsewhere,) = a.add([WebhookDelivery("https://b.example/", "msg_3", "x", "{}", T0, T0)])
    assert b.claim_due(URL, T0, hold_s=30) == [first]
    assert a.delete_endpoint(URL) == 2
    b.retry_later(first.id, attempts=1, next_attempt_at=T0 + 5, last_error="HTTP 503")
    assert b.delete(first.id) is False
    assert a.claim_due(URL, T0 + 60, hold_s=30) == b.claim_due(URL, T0 + 60, hold_s=30) == []
    assert a.pending() == b.pending() == [elsewhere]
