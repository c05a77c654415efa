"""Webhooks from several gateways on one Redis queue (a real redis-server, a real aiohttp
endpoint checking each signature): every event POSTed once, by the gateway that claimed
it; a delivery claimed by a gateway that died goes out once its claim ended."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from webhook_receiver import Receiver, eventually, whsec

from wechat_sdk.clock import RealClock
from wechat_sdk.config.integrations import WebhookEndpoint
from wechat_sdk.stores.redis import RedisStore
from wechat_sdk.webhooks import WebhookDispatcher


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver(whsec(7)).start()
    yield r
    await r.close()


@pytest.fixture
def stores(redis_url: str, redis_namespace: str) -> Iterator[list[RedisStore]]:
    """Two gateways' stores: two clients of one Redis, one namespace."""
    opened = [RedisStore(redis_url, namespace=redis_namespace) for _ in range(2)]
    yield opened
    for s in opened:
        s.close()


async def settled(receiver: Receiver, store: RedisStore, count: int) -> None:
    """Until ``count`` events were taken and the queue is empty, and then a moment more:
    a second POST of one of them, were there one, would be on its way by then."""
    await receiver.wait_for(count)
    await eventually(lambda: not store.webhooks.pending())
    await asyncio.sleep(0.3)


async def test_two_gateways_on_one_redis_queue_post_every_event_once(
    receiver: Receiver, stores: list[RedisStore]
) -> None:
    endpoint = WebhookEndpoint(url=receiver.url, secret=receiver.secret)
    gateways = [WebhookDispatcher([endpoint], s.webhooks, RealClock()) for s in stores]
    for g in gateways:
        g.start()
    try:
        for n in range(40):  # each gateway queues half, and both are woken
            gateways[n % 2].publish("account.ready", {"accountId": f"a{n}"})
        await settled(receiver, stores[0], 40)
    finally:
        for g in gateways:
            await g.close()
    assert all(r.error is None for r in receiver.received)  # every signature held
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == len(set(ids)) == 40  # forty POSTs, no webhook-id twice
    taken = sorted(e["data"]["accountId"] for e in receiver.events())
    assert taken == sorted(f"a{n}" for n in range(40))


async def test_a_delivery_claimed_by_a_gateway_that_died_goes_out_once_its_claim_ended(
    receiver: Receiver, stores: list[RedisStore]
) -> None:
    endpoint = WebhookEndpoint(url=receiver.url, secret=receiver.secret)
    dead, alive = stores
    queuing = WebhookDispatcher([endpoint], dead.webhooks, RealClock())
    queuing.publish("account.ready", {"accountId": "support1"})  # queued, not started
    # the first gateway claims it for its attempt, and dies before it is done
    (claimed,) = dead.webhooks.claim_due(receiver.url, RealClock().now(), hold_s=1.5)
    survivor = WebhookDispatcher([endpoint], alive.webhooks, RealClock(), claim_s=0.5)
    survivor.start()
    try:
        assert alive.webhooks.claim_due(receiver.url, RealClock().now(), hold_s=0.5) == []
        (event,) = await receiver.wait_for(1)  # once the claim ended
        await settled(receiver, alive, 1)
    finally:
        await survivor.close()
    assert event["data"]["accountId"] == "support1"
    assert [r.headers["webhook-id"] for r in receiver.received] == [claimed.message_id]


async def test_a_gateway_without_an_endpoint_leaves_its_events_to_the_gateways_with_it(
    receiver: Receiver, stores: list[RedisStore]
) -> None:
    # a rolling change of the config: the gateway started first no longer lists the
    # endpoint, another one still does; the events queued for it are not dropped
    endpoint = WebhookEndpoint(url=receiver.url, secret=receiver.secret)
    other = WebhookEndpoint(url=receiver.url + "other", secret=receiver.secret)
    old_config, new_config = stores
    queuing = WebhookDispatcher([endpoint], old_config.webhooks, RealClock(), shared=True)
    queuing.publish("account.ready", {"accountId": "support1"})  # queued, not started
    restarted = WebhookDispatcher([other], new_config.webhooks, RealClock(), shared=True)
    restarted.start()
    try:
        assert [d.endpoint for d in new_config.webhooks.pending()] == [receiver.url]
        queuing.start()  # the gateway still listing it delivers it
        (event,) = await receiver.wait_for(1)
    finally:
        await restarted.close()
        await queuing.close()
    assert event["data"]["accountId"] == "support1"


async def test_an_endpoint_gone_is_dropped_for_every_gateway_and_each_stops_once_told(
    receiver: Receiver, stores: list[RedisStore], caplog: pytest.LogCaptureFixture
) -> None:
    # 410 Gone to one gateway drops the endpoint's queue in Redis, what the other gateway
    # queued included; the told gateway queues nothing more for it, the other goes on
    # until it is told too (by its own next POST)
    caplog.set_level(logging.INFO)
    receiver.answers = [410] * 10
    endpoint = WebhookEndpoint(url=receiver.url, secret=receiver.secret)
    told, other = (
        WebhookDispatcher([endpoint], s.webhooks, RealClock(), shared=True) for s in stores
    )
    for n in range(3):  # queued by both, not started
        (told, other)[n % 2].publish("account.ready", {"accountId": f"a{n}"})
    told.start()
    try:
        await eventually(lambda: not stores[1].webhooks.pending())
        assert len(receiver.received) == 1
        told.publish("account.ready", {"accountId": "told"})
        assert stores[0].webhooks.pending() == []  # not queued by the gateway told
        other.publish("account.ready", {"accountId": "other"})
        assert len(stores[0].webhooks.pending()) == 1  # the other was not told yet
        other.start()
        await eventually(lambda: not stores[0].webhooks.pending())
    finally:
        await told.close()
        await other.close()
    sent = [json.loads(r.body)["data"]["accountId"] for r in receiver.received]
    assert sent == ["a0", "other"]  # one POST each gateway, the rest dropped unsent
    assert list(told.gone) == list(other.gone) == [receiver.url]
    lines = [r.getMessage() for r in caplog.records if "reason=webhook_disabled" in r.getMessage()]
    assert len(lines) == 2
    assert "not retried, 2 other queued event(s) for it dropped" in lines[0]
    assert "not retried, 0 other queued event(s) for it dropped" in lines[1]
