"""What a user sees of the webhook endpoints: `wechat-sdk gateway status` (its table;
`--json` stays the accounts' list) and the HTTP API's `GET /v1/webhooks`, for an
endpoint that takes its events, one failing and retried, and one disabled by `410 Gone`;
never a URL's path, query or user info, never a signing secret."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner
from webhook_receiver import Receiver, eventually, whsec

from simulator.pytest_plugin import WeChatHarness
from wechat_sdk import cli
from wechat_sdk.agent import AgentTurn
from wechat_sdk.cli import gateway_commands
from wechat_sdk.gateway import Gateway
from wechat_sdk.gateway.service import status_answer

TOKEN = "test-token-0123456789abcdef"


async def echo(turn: AgentTurn) -> str:
    return f"echo: {turn.text}"


def with_secrets(url: str) -> str:
    """``url`` with a user name, a password and a token in its query, as a user may write
    an endpoint that takes its key so."""
    return url.replace("http://", "http://hookuser:URL-PASSWORD@") + "?token=URL-TOKEN"


@pytest.fixture
async def endpoints() -> AsyncIterator[tuple[Receiver, Receiver, Receiver]]:
    healthy, failing, gone = [await Receiver(whsec(n)).start() for n in (1, 2, 3)]
    failing.answers = [503] * 20
    gone.answers = [410]
    yield healthy, failing, gone
    for r in (healthy, failing, gone):
        await r.close()


async def started(wechat: WeChatHarness, endpoints: tuple[Receiver, ...]) -> tuple[Gateway, float]:
    """A gateway sending ``reply.sent`` to ``endpoints``, after two replies went out and
    each endpoint answered them as it does; and when the first message came."""
    hooks = [
        {"url": with_secrets(r.url), "secret": r.secret, "events": ["reply.sent"]}
        for r in endpoints
    ]
    gw = await wechat.gateway(
        echo, dmPolicy="open", allowFrom=["*"], webhooks=hooks, api={"port": 0, "token": TOKEN}
    )
    began = gw.clock.now()
    await wechat.world.say("wxid_alice", "one")
    await wechat.world.say("wxid_alice", "two")
    await wechat.world.run_until_idle()
    healthy, failing, gone = endpoints
    await healthy.wait_for(2, "reply.sent")
    await failing.wait_attempts(2)
    await gone.wait_attempts(1)
    await eventually(lambda: [w.state for w in gw.webhook_status()][1:] == ["retrying", "disabled"])
    return gw, began


def cli_output(monkeypatch: pytest.MonkeyPatch, gw: Gateway, *args: str) -> str:
    """`wechat-sdk gateway status ARGS` as it prints the gateway's answer."""
    monkeypatch.setattr(gateway_commands, "_control", lambda *_: status_answer(gw))
    result = CliRunner().invoke(cli.cli, ["gateway", "status", *args])
    assert result.exit_code == 0, result.output
    return result.output


async def api_webhooks(gw: Gateway) -> dict[str, Any]:
    assert gw.http is not None and gw.http.api_url
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            gw.http.api_url + "/v1/webhooks", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as response,
    ):
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def test_status_shows_each_endpoint_delivering_retrying_or_disabled(
    wechat: WeChatHarness,
    endpoints: tuple[Receiver, Receiver, Receiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gw, began = await started(wechat, endpoints)
    origins = [f"http://127.0.0.1:{r.server.port}" for r in endpoints]
    failed_at = gw.webhook_status()[1].last_failure_at
    assert failed_at is not None and began <= failed_at <= gw.clock.now()
    assert gw.webhooks is not None
    (gone_at,) = gw.webhooks.gone.values()  # when it said Gone

    # the HTTP API
    assert await api_webhooks(gw) == {
        "webhooks": [
            {
                "index": 0,
                "endpoint": origins[0],
                "state": "delivering",
                "queued": 0,
                "lastFailure": None,
                "lastFailureAt": None,
            },
            {
                "index": 1,
                "endpoint": origins[1],
                "state": "retrying",
                "queued": 2,  # both replies, each to be tried again
                "lastFailure": "HTTP 503",
                "lastFailureAt": failed_at,
            },
            {
                "index": 2,
                "endpoint": origins[2],
                "state": "disabled",
                "queued": 0,  # what was queued for it was dropped
                "lastFailure": "HTTP 410",
                "lastFailureAt": gone_at,
            },
        ]
    }

    # `gateway status --json` stays the list of accounts (scripts read it)
    shown = json.loads(cli_output(monkeypatch, gw, "--json"))
    assert [a["account"] for a in shown] == ["default"]

    # `gateway status`: a table of the endpoints under the accounts'
    table = cli_output(monkeypatch, gw)
    lines = table.splitlines()
    title = lines.index("Webhook endpoints")
    assert "WeChat accounts" in lines[:title]
    head = next(line for line in lines[title:] if line.startswith("┃"))
    assert [cell.strip() for cell in head.split("┃")[1:-1]] == [
        "#",
        "endpoint",
        "state",
        "queued",
        "last failure",
        "at",
    ]
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in lines[title:]
        if line.startswith("│")
    ]
    assert [row[:5] for row in rows] == [
        ["0", origins[0], "delivering", "0", "-"],
        ["1", origins[1], "retrying after failures", "2", "HTTP 503"],
        ["2", origins[2], "disabled: 410 Gone, until a restart", "0", "HTTP 410"],
    ]
    assert rows[0][5] == "-" and rows[1][5] != "-" and rows[2][5] != "-"  # when it failed


async def test_no_url_path_query_user_info_or_secret_shows(
    wechat: WeChatHarness,
    endpoints: tuple[Receiver, Receiver, Receiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gw, _ = await started(wechat, endpoints)
    seen = {
        "API": json.dumps(await api_webhooks(gw)),
        "status": cli_output(monkeypatch, gw),
    }
    secrets = ["URL-TOKEN", "URL-PASSWORD", "hookuser", "/hook", "token="]
    secrets += [r.secret for r in endpoints] + [r.secret.removeprefix("whsec_") for r in endpoints]
    for where, text in seen.items():
        assert "127.0.0.1" in text, where
        for secret in secrets:
            assert secret not in text, f"{secret!r} shows in {where}"


async def test_a_reload_turns_a_disabled_endpoint_back_to_delivering(
    wechat: WeChatHarness, endpoints: tuple[Receiver, Receiver, Receiver]
) -> None:
    gw, _ = await started(wechat, endpoints)
    await gw.reload(gw.config)  # (`gateway restart`: the user fixed the endpoint)
    disabled = gw.webhook_status()[2]
    # it is sent to again; when it last failed, and why, still shows
    assert (disabled.state, disabled.last_failure) == ("delivering", "HTTP 410")


async def test_an_endpoint_that_takes_its_events_again_is_delivering(
    wechat: WeChatHarness, endpoints: tuple[Receiver, Receiver, Receiver]
) -> None:
    gw, _ = await started(wechat, endpoints)
    _, failing, _ = endpoints
    failing.answers = []  # back up
    await wechat.world.advance(5.0)  # the first retry
    await failing.wait_for(2, "reply.sent")
    await eventually(lambda: gw.webhook_status()[1].queued == 0)
    back = gw.webhook_status()[1]
    assert (back.state, back.last_failure) == ("delivering", "HTTP 503")


async def test_an_endpoint_whose_last_event_was_given_up_is_failing_not_retrying() -> None:
    """Every attempt of its only event failed: nothing of it waits for another, so it is
    ``failing`` (``retrying`` says its events wait for their next attempt)."""
    from wechat_sdk.clock import VirtualClock
    from wechat_sdk.config.integrations import WebhookEndpoint
    from wechat_sdk.stores import MemoryStore
    from wechat_sdk.webhooks import WebhookDispatcher

    clock, store = VirtualClock(), MemoryStore()
    receiver = await Receiver(whsec(3)).start()
    receiver.answers = [500, 500]
    endpoint = WebhookEndpoint(url=receiver.url, secret=receiver.secret)
    dispatcher = WebhookDispatcher([endpoint], store.webhooks, clock, schedule=(0, 1))
    dispatcher.start()
    try:
        dispatcher.publish("account.ready", {"accountId": "default"})
        await receiver.wait_attempts(1)
        await eventually(lambda: dispatcher.status()[0].state == "retrying")
        await clock.advance(1)
        await receiver.wait_attempts(2)
        await eventually(lambda: not store.webhooks.pending())  # given up
        (status,) = dispatcher.status()
        assert (status.state, status.queued, status.last_failure) == ("failing", 0, "HTTP 500")
    finally:
        await dispatcher.close()
        await receiver.close()
