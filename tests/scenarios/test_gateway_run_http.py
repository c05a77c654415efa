"""`wechat-sdk gateway run` with the HTTP API and a webhook, as a real process on the
simulator puppet: a message sent with curl-like HTTP, and a `wechat-sdk pairing approve`
from another process that the running gateway turns into its pairing.approved event."""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook
from test_gateway_cli import Running, cli, config_text, wait_for
from webhook_receiver import whsec

from wechat_sdk.stores import PairingRequest, SqliteStore

pytestmark = pytest.mark.slow

TOKEN = "run-test-token-0123456789"
SECRET = whsec(5)


class Hooks(http.server.ThreadingHTTPServer):
    """A webhook endpoint in a thread: the verified events it got."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.events.append(Webhook(SECRET).verify(body, dict(self.headers.items())))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    server = Hooks()
    yield server
    server.shutdown()
    server.server_close()


def test_the_api_sends_and_a_cli_approval_becomes_an_event(tmp_path: Path, hooks: Hooks) -> None:
    running = Running(tmp_path)
    running.config.write_text(
        config_text(
            dmPolicy="pairing",
            allowFrom=[],
            api={"port": 0, "token": TOKEN},
            webhooks=[{"url": hooks.url, "secret": SECRET, "events": ["pairing.approved"]}],
        )
    )
    with SqliteStore.in_state_dir(running.state) as store:  # a stranger's pending code
        now = time.time()
        store.pairing.add_request(
            PairingRequest("HJKL2345", "default", "wxid_stranger", "Stranger", now, now + 3600)
        )
    running.start()
    try:
        running.wait_ready()
        found = wait_for(
            "the API's address in the log",
            lambda: re.search(r"HTTP API on (http://127\.0\.0\.1:\d+)/v1", running.stderr()),
        )
        api = found.group(1)
        request = urllib.request.Request(
            f"{api}/v1/messages",
            data=json.dumps({"to": "wxid_owner", "text": "hello from a script"}).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            sent = json.loads(response.read())
        assert sent["text"] == "hello from a script"

        result = cli("pairing", "approve", "hjkl2345", "--state-dir", running.state)
        assert result.returncode == 0, result.stderr
        (event,) = wait_for("the pairing.approved event", lambda: hooks.events)
        assert event["type"] == "pairing.approved"
        assert event["data"] == {
            "accountId": "default",
            "code": "HJKL2345",
            "senderId": "wxid_stranger",
        }
        assert TOKEN not in running.stderr() and SECRET not in running.stderr()
    finally:
        running.kill()


def test_an_approval_with_no_gateway_running_is_announced_by_the_next_to_start(
    tmp_path: Path, hooks: Hooks
) -> None:
    running = Running(tmp_path)
    running.config.write_text(
        config_text(
            dmPolicy="pairing",
            allowFrom=[],
            webhooks=[{"url": hooks.url, "secret": SECRET, "events": ["pairing.approved"]}],
        )
    )
    with SqliteStore.in_state_dir(running.state) as store:
        now = time.time()
        store.pairing.add_request(
            PairingRequest("HJKL2345", "default", "wxid_stranger", "Stranger", now, now + 3600)
        )
    result = cli(
        "pairing", "approve", "hjkl2345", "--config", running.config, "--state-dir", running.state
    )
    assert result.returncode == 0, result.stderr
    assert "queued for the next gateway" in result.stdout
    assert not hooks.events  # no gateway: nothing sent yet, and nothing lost
    running.start()
    try:
        (event,) = wait_for("the pairing.approved event", lambda: hooks.events)
        assert event["type"] == "pairing.approved"
        assert event["data"] == {
            "accountId": "default",
            "code": "HJKL2345",
            "senderId": "wxid_stranger",
        }
    finally:
        running.kill()


def test_an_approval_whose_webhook_cannot_be_queued_says_so(tmp_path: Path) -> None:
    running = Running(tmp_path)
    hooks = [{"url": "https://hooks.example/x", "secret": "${HOOK_SECRET_UNSET_HERE}"}]
    running.config.write_text(config_text(dmPolicy="pairing", allowFrom=[], webhooks=hooks))
    with SqliteStore.in_state_dir(running.state) as store:
        now = time.time()
        store.pairing.add_request(
            PairingRequest("HJKL2345", "default", "wxid_stranger", "Stranger", now, now + 3600)
        )
    result = cli(
        "pairing", "approve", "HJKL2345", "--config", running.config, "--state-dir", running.state
    )
    assert result.returncode == 0, result.stderr  # approved all the same
    assert "approved wxid_stranger" in result.stdout
    assert "pairing.approved not queued" in result.stderr
    assert "HOOK_SECRET_UNSET_HERE" in result.stderr  # what to set
    with SqliteStore.in_state_dir(running.state) as store:
        assert store.webhooks.pending() == []
