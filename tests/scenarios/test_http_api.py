"""The HTTP API: real requests (aiohttp's client) to a gateway on the simulator, on a port
the system picks (``api.port: 0``)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import socket
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from openapi_spec_validator import validate
from webhook_receiver import Receiver, whsec

from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.agent import AgentTurn
from wechat_sdk.config import ConfigError, parse_config
from wechat_sdk.gateway import Gateway
from wechat_sdk.http.openapi import openapi_document
from wechat_sdk.http.routes import IDEMPOTENCY_TTL_S
from wechat_sdk.http.server import MAX_BODY_BYTES
from wechat_sdk.outbound.window import MORE_NOTICE
from wechat_sdk.puppet import ReplyWindow, WindowClosed

TOKEN = "test-token-0123456789abcdef"
SEND_SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "examples" / "send_message.sh"
API: dict[str, Any] = {"api": {"port": 0, "token": TOKEN}}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def echo(turn: AgentTurn) -> str:
    return f"echo: {turn.text}"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    wechat: WeChatHarness,
    http: aiohttp.ClientSession,
    gw: Gateway,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, Any, dict[str, str]]:
    """One request, the world's clock driven meanwhile (a send waits for its pacing)."""
    assert gw.http is not None and gw.http.api_url

    async def go() -> tuple[int, Any, dict[str, str]]:
        async with http.request(
            method, gw.http.api_url + path, headers=AUTH if headers is None else headers, **kwargs
        ) as response:
            return response.status, await response.json(), dict(response.headers)

    answer = await wechat.world.drive(go())
    documented = documented_statuses(method, path)
    assert documented is None or str(answer[0]) in documented, (
        f"{method} {path} answered {answer[0]}, which its OpenAPI document does not list "
        f"({', '.join(documented or ())}): {answer[1]}"
    )
    return answer


def documented_statuses(method: str, path: str) -> set[str] | None:
    """The statuses the OpenAPI document lists for the route of ``path`` (None: no route
    of the document), so that every answer of these tests is checked against it."""
    path = path.partition("?")[0]
    for template, operations in openapi_document()["paths"].items():
        pattern = re.sub(r"\\{\w+\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path) and method.lower() in operations:
            return set(operations[method.lower()]["responses"])
    return None


async def raw_http(port: int, request: bytes) -> bytes:
    """``request``'s bytes as written, to the API on ``port``; its whole answer (headers no
    HTTP client would send, such as bytes that are not UTF-8)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


async def test_no_token_or_a_wrong_one_is_refused_with_401(
    wechat: WeChatHarness, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gw = await wechat.gateway(echo, **API)
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": TOKEN},
    ):
        for method, path in (("GET", "/v1/accounts"), ("GET", "/v1/openapi.json")):
            code, body, response_headers = await call(
                wechat, http, gw, method, path, headers=headers
            )
            assert code == 401 and body["code"] == "unauthorized"
            assert response_headers["WWW-Authenticate"] == "Bearer"
    code, _, _ = await call(
        wechat,
        http,
        gw,
        "POST",
        "/v1/messages",
        headers={},
        json={"to": "wxid_alice", "text": "hi"},
    )
    assert code == 401
    assert wechat.world.sent() == []
    assert TOKEN not in caplog.text


async def test_the_standard_forms_of_the_bearer_header_are_taken(
    wechat: WeChatHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 7235: the scheme in any case, one or more spaces before the token, spaces
    around the value; ``Bearer  <token>`` (two spaces) was answered 401."""
    caplog.set_level(logging.DEBUG)
    gw = await wechat.gateway(echo, **API)
    assert gw.http is not None and gw.http.api_port is not None
    port = gw.http.api_port

    async def status(value: bytes) -> bytes:
        request = (
            b"GET /v1/accounts HTTP/1.1\r\nHost: x\r\nAuthorization:"
            + value
            + b"\r\nConnection: close\r\n\r\n"
        )
        answer = await wechat.world.drive(raw_http(port, request))
        return answer.split(b"\r\n", 1)[0]

    token = TOKEN.encode()
    for value in (
        b" Bearer  " + token,
        b" bearer " + token,
        b" BEARER " + token,
        b" Bearer\t" + token,
        b"\tBearer " + token + b" \t",
        b"Bearer " + token,
    ):
        assert await status(value) == b"HTTP/1.1 200 OK", value
    for value in (
        b" Bearer",
        b" Bearer ",
        b" " + token,
        b" Basic " + token,
        b" Bearer " + token + b" extra",
        b" Bearer " + token + b"x",
        b" Bearer x" + token,
    ):
        assert await status(value) == b"HTTP/1.1 401 Unauthorized", value
    assert TOKEN not in caplog.text


async def test_a_message_is_sent_chunked_like_a_reply(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    gw = await wechat.gateway(echo, textChunkLimit=40, **API)
    text = "First paragraph of the note.\n\nSecond paragraph, a little longer than that."
    code, body, _ = await call(
        wechat, http, gw, "POST", "/v1/messages", json={"to": "wxid_alice", "text": text}
    )
    assert code == 200
    sent = wechat.world.texts(to="wxid_alice")
    assert sent == [
        "First paragraph of the note.",
        "Second paragraph, a little longer than",
        "that.",
    ]
    assert body["accountId"] == "default" and body["conversationId"] == "wxid_alice"
    assert body["files"] == 0


async def test_a_file_by_data_and_a_group_message_with_a_mention(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    wechat.world.add_room(id="r1@chatroom", topic="Team", members=["wxid_alice"])
    gw = await wechat.gateway(echo, **API)
    data = base64.b64encode(b"hello file").decode()
    code, body, _ = await call(
        wechat,
        http,
        gw,
        "POST",
        "/v1/messages",
        json={
            "to": "wxid_alice",
            "room": "r1@chatroom",
            "text": "the notes",
            "files": [{"name": "notes.txt", "data": data}],
        },
    )
    assert code == 200 and body["files"] == 1
    (text, file) = wechat.world.sent(room="r1@chatroom")
    assert text.text is not None and "the notes" in text.text
    assert file.media is not None and file.media["name"] == "notes.txt"


async def test_a_files_data_as_base64_tools_write_it_in_lines_is_taken(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    """``base64 report.pdf`` (GNU coreutils), ``openssl base64`` and MIME encoders break
    their output into lines of 76 or 64 characters: it was refused as "not valid base64"."""
    gw = await wechat.gateway(echo, **API)
    report = bytes(range(256)) * 2
    one_line = base64.b64encode(report).decode()
    for wrapped in (
        "\n".join(one_line[i : i + 76] for i in range(0, len(one_line), 76)) + "\n",
        "\r\n".join(one_line[i : i + 64] for i in range(0, len(one_line), 64)),
    ):
        file = {"name": "report.bin", "data": wrapped}
        body = {"to": "wxid_alice", "files": [file]}
        code, answer, _ = await call(wechat, http, gw, "POST", "/v1/messages", json=body)
        assert code == 200 and answer["files"] == 1, answer
    sizes = [e.media["size"] for e in wechat.world.sent(to="wxid_alice") if e.media]
    assert sizes == [len(report), len(report)]
    # what is not base64 is still refused, line breaks or not
    file = {"name": "report.bin", "data": one_line[:76] + "\n*not base64*"}
    code, answer, _ = await call(
        wechat, http, gw, "POST", "/v1/messages", json={"to": "wxid_alice", "files": [file]}
    )
    assert (code, answer["error"]) == (400, "files.0.data: not valid base64")


async def test_an_idempotency_key_sends_once_and_answers_again(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    gw = await wechat.gateway(echo, **API)
    headers = {**AUTH, "Idempotency-Key": "order-42"}
    message = {"to": "wxid_alice", "text": "your order shipped"}
    first = await call(wechat, http, gw, "POST", "/v1/messages", headers=headers, json=message)
    again = await call(wechat, http, gw, "POST", "/v1/messages", headers=headers, json=message)
    assert first[0] == again[0] == 200 and first[1] == again[1]
    assert again[2].get("Idempotent-Replayed") == "true"
    assert wechat.world.texts(to="wxid_alice") == ["your order shipped"]
    code, body, _ = await call(
        wechat, http, gw, "POST", "/v1/messages", headers=headers, json={**message, "text": "other"}
    )
    assert (code, body["code"]) == (422, "idempotency_key_reused")
    assert wechat.world.texts(to="wxid_alice") == ["your order shipped"]
    # the same request written another way (keys in another order, other spacing) is
    # the same request: answered again, not refused as another one
    reordered = b'{ "text": "your order shipped",\n  "to": "wxid_alice" }'
    json_headers = {**headers, "Content-Type": "application/json"}
    code, body, replayed = await call(
        wechat, http, gw, "POST", "/v1/messages", headers=json_headers, data=reordered
    )
    assert (code, body) == (200, first[1]) and replayed.get("Idempotent-Replayed") == "true"
    assert wechat.world.texts(to="wxid_alice") == ["your order shipped"]


async def test_idempotency_keys_are_purged_once_a_minute_and_forgotten_after_24_h(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    # a purge read every key on Redis, at every keyed request; now at most once a minute,
    # and a key past its 24 h that the last purge missed is forgotten when it comes again
    gw = await wechat.gateway(echo, **API)
    store = gw.store.idempotency
    purges: list[float] = []
    real_purge = store.purge

    def purge(before: float) -> int:
        purges.append(before)
        return real_purge(before)

    store.purge = purge  # type: ignore[method-assign]

    async def send(key: str, text: str) -> int:
        headers = {**AUTH, "Idempotency-Key": key}
        message = {"to": "wxid_alice", "text": text}
        code, _, _ = await call(
            wechat, http, gw, "POST", "/v1/messages", headers=headers, json=message
        )
        return code

    assert await send("k", "once") == 200
    assert await send("k2", "twice") == 200
    assert len(purges) == 1  # the second request came within the minute
    await wechat.world.advance(IDEMPOTENCY_TTL_S - 30)
    assert await send("k3", "a day later") == 200  # a purge: "k" is not 24 h old yet
    assert len(purges) == 2
    await wechat.world.advance(40)  # "k" is past 24 h now; the last purge was 40 s ago
    assert await send("k", "once") == 200
    assert len(purges) == 3  # found past its time: purged then (in one step, by age)
    assert wechat.world.texts(to="wxid_alice") == ["once", "twice", "a day later", "once"]


async def test_the_idempotency_key_outlives_a_restart(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    gw = await wechat.gateway(echo, **API)
    headers = {**AUTH, "Idempotency-Key": "k-restart"}
    message = {"to": "wxid_alice", "text": "once"}
    assert (await call(wechat, http, gw, "POST", "/v1/messages", headers=headers, json=message))[
        0
    ] == 200
    await gw.close()
    gw2 = await wechat.gateway(echo, **API)
    code, _, response_headers = await call(
        wechat, http, gw2, "POST", "/v1/messages", headers=headers, json=message
    )
    assert code == 200 and response_headers.get("Idempotent-Replayed") == "true"
    assert wechat.world.texts(to="wxid_alice") == ["once"]


async def test_an_account_not_logged_in_sends_nothing_and_says_so(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    gw = await wechat.gateway(echo, login=False, **API)
    await wechat.world.run_until_idle()
    headers = {**AUTH, "Idempotency-Key": "k1"}
    message = {"to": "wxid_alice", "text": "hi"}
    code, body, _ = await call(
        wechat, http, gw, "POST", "/v1/messages", headers=headers, json=message
    )
    assert (code, body["code"]) == (503, "account_not_ready")
    assert "waiting_for_scan" in body["error"] and "nothing was sent" in body["error"]
    code, body, _ = await call(
        wechat, http, gw, "POST", "/v1/messages", json={**message, "account": "nope"}
    )
    assert (code, body["code"]) == (404, "account_not_running")
    await wechat.world.login()
    # nothing went out the first time, so the same key may send now
    code, _, _ = await call(wechat, http, gw, "POST", "/v1/messages", headers=headers, json=message)
    assert code == 200 and wechat.world.texts(to="wxid_alice") == ["hi"]


async def test_a_files_only_send_failing_part_way_says_what_went_and_keeps_its_key(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    gw = await wechat.gateway(echo, **API)
    headers = {**AUTH, "Idempotency-Key": "invoice-7"}
    message = {
        "to": "wxid_alice",
        "files": [
            {"name": "report.txt", "data": base64.b64encode(b"the report").decode()},
            {"name": "missing.txt", "url": "http://127.0.0.1:1/missing.txt"},
        ],
    }
    code, body, _ = await call(
        wechat, http, gw, "POST", "/v1/messages", headers=headers, json=message
    )
    assert (code, body["code"]) == (502, "delivery_failed")
    assert body["sentFiles"] == ["report.txt"] and "sent" not in body
    assert "sent before it failed: file report.txt" in body["error"]
    # something went out: the key keeps the first answer, and nothing is sent again
    again = await call(wechat, http, gw, "POST", "/v1/messages", headers=headers, json=message)
    assert (again[0], again[1]) == (code, body)
    assert again[2].get("Idempotent-Replayed") == "true"
    assert [m.media["name"] for m in wechat.world.sent(to="wxid_alice") if m.media] == [
        "report.txt"
    ]


PACED: dict[str, Any] = {
    "textChunkLimit": 40,
    "pacing": {"perSecond": 1, "burst": 1, "chunkGapMs": 2000},
}
SIX_PARAGRAPHS = "\n\n".join(f"Paragraph {n} of the nightly report, fine." for n in range(6))


async def post_while(
    wechat: WeChatHarness,
    http: aiohttp.ClientSession,
    gw: Gateway,
    headers: dict[str, str],
    after_two: Any,
) -> tuple[int, Any]:
    """POST the six paragraphs (paced: one message every 2 s) and call ``after_two()``
    once two of them went out; the world's clock driven meanwhile."""
    assert gw.http is not None and gw.http.api_url
    url = gw.http.api_url + "/v1/messages"

    async def post() -> tuple[int, Any]:
        message = {"to": "wxid_alice", "text": SIX_PARAGRAPHS}
        async with http.post(url, headers=headers, json=message) as response:
            return response.status, await response.json()

    async def meanwhile() -> None:
        while len(wechat.world.texts(to="wxid_alice")) < 2:
            await wechat.world.clock.sleep(0.5)
        await after_two()

    answer, _ = await wechat.world.drive(asyncio.gather(post(), meanwhile()))
    return answer


async def test_a_send_when_the_account_logs_out_answers_503_with_what_went(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    gw = await wechat.gateway(echo, **PACED, **API)
    headers = {**AUTH, "Idempotency-Key": "k-logout"}

    async def logout() -> None:
        wechat.world.fault("logout")

    code, body = await post_while(wechat, http, gw, headers, logout)
    sent = wechat.world.texts(to="wxid_alice")
    assert (code, body["code"]) == (503, "account_not_ready")
    assert body["sent"] == "\n\n".join(sent) and 2 <= len(sent) < 6
    assert "logged out while sending: sent before the logout" in body["error"]
    # it went out in part: the retry gets that answer, and nothing is sent again
    again = await call(
        wechat,
        http,
        gw,
        "POST",
        "/v1/messages",
        headers=headers,
        json={"to": "wxid_alice", "text": SIX_PARAGRAPHS},
    )
    assert (again[0], again[1]) == (code, body)
    await wechat.world.advance(3600)
    assert wechat.world.texts(to="wxid_alice") == sent


async def test_a_stop_refuses_new_sends_and_answers_the_one_still_going(
    wechat: WeChatHarness, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    gw = await wechat.gateway(echo, **PACED, **API)
    headers = {**AUTH, "Idempotency-Key": "k-stop"}
    stopped: list[asyncio.Task[None]] = []
    refused: list[tuple[int, Any]] = []

    async def stop() -> None:
        stopped.append(asyncio.ensure_future(gw.close(grace_s=5)))
        await asyncio.sleep(0)  # (the stop began)
        assert gw.http is not None and gw.http.api_url
        message = {"to": "wxid_alice", "text": "late"}
        async with http.post(gw.http.api_url + "/v1/messages", headers=AUTH, json=message) as r:
            refused.append((r.status, await r.json()))

    code, body = await post_while(wechat, http, gw, headers, stop)
    await wechat.world.drive(stopped[0])
    sent = wechat.world.texts(to="wxid_alice")
    assert refused[0][0] == 503 and refused[0][1]["code"] == "gateway_stopping"
    assert "late" not in sent
    assert (code, body["code"]) == (503, "gateway_stopping")
    assert body["sent"] == "\n\n".join(sent) and 2 <= len(sent) < 6
    assert "cut by a stop: sent before the stop" in caplog.text
    # after a restart, the retry gets the first answer: nothing is sent twice
    gw2 = await wechat.gateway(echo, **API)
    again = await call(
        wechat,
        http,
        gw2,
        "POST",
        "/v1/messages",
        headers=headers,
        json={"to": "wxid_alice", "text": SIX_PARAGRAPHS},
    )
    assert (again[0], again[1]) == (code, body)
    await wechat.world.run_until_idle()
    assert wechat.world.texts(to="wxid_alice") == sent


async def test_bad_bodies_get_400_and_too_large_ones_413(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    gw = await wechat.gateway(echo, **API)
    for body, says in (
        ({"to": "wxid_alice"}, "give text or files"),
        ({"to": "wxid_alice", "text": "x", "colour": "red"}, "colour"),
        ({"text": "hi"}, "to"),
        ({"to": "wxid_alice", "files": [{"name": "a.txt"}]}, "url or its data"),
        ({"to": "wxid_alice", "files": [{"name": "a.txt", "data": "not base64!"}]}, "base64"),
    ):
        code, answer, _ = await call(wechat, http, gw, "POST", "/v1/messages", json=body)
        assert (code, answer["code"]) == (400, "invalid_request"), answer
        assert says in answer["error"]
    code, answer, _ = await call(
        wechat, http, gw, "POST", "/v1/messages", data=b"{not json", headers={**AUTH}
    )
    assert code == 400
    big = {"to": "wxid_alice", "text": "x" * (MAX_BODY_BYTES + 1)}
    code, answer, _ = await call(wechat, http, gw, "POST", "/v1/messages", json=big)
    assert (code, answer["code"]) == (413, "body_too_large")
    code, answer, _ = await call(wechat, http, gw, "GET", "/v1/nothing")
    assert (code, answer["code"]) == (404, "not_found")
    assert wechat.world.sent() == []


async def test_a_body_that_is_no_json_object_gets_a_400_saying_what_to_send(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    """A form post (``curl -d to=...``, ``requests.post(data=...)``) was answered
    ``body: Invalid JSON: expected ident at line 1 column 2``."""
    gw = await wechat.gateway(echo, **API)
    form = "application/x-www-form-urlencoded"
    for path, data, content_type, says in (
        ("/v1/messages", b"to=wxid_alice&text=hi", form, f"it came as {form}"),
        ("/v1/messages", b"{not json", "application/json", "this one is not JSON"),
        ("/v1/messages", b'["wxid_alice", "hi"]', "application/json", "this one is an array"),
        ("/v1/pairing/ABCD1234/approve", b"notify=true", form, f"it came as {form}"),
        ("/v1/accounts/default/login/verify-code", b"482137", "text/plain", "a number"),
    ):
        headers = {**AUTH, "Content-Type": content_type}
        code, answer, _ = await call(wechat, http, gw, "POST", path, data=data, headers=headers)
        assert (code, answer["code"]) == (400, "invalid_request"), answer
        error = answer["error"]
        assert error.startswith("the body must be a JSON object"), error
        assert "Content-Type: application/json" in error and says in error, error
    # JSON sent as a form (curl -d without -H) is JSON all the same: taken
    body = json.dumps({"to": "wxid_alice", "text": "hi"}).encode()
    headers = {**AUTH, "Content-Type": form}
    code, answer, _ = await call(
        wechat, http, gw, "POST", "/v1/messages", data=body, headers=headers
    )
    assert code == 200, answer
    assert wechat.world.texts(to="wxid_alice") == ["hi"]


async def test_a_voice_file_without_its_length_is_refused_before_the_text_goes(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    """A voice message (kind audio) needs durationS: a body without it was taken, its text
    sent, then answered 502 (naming ``duration_s``), so the corrected retry sent the text a
    second time."""
    gw = await wechat.gateway(echo, **API)
    voice = {"name": "note.silk", "kind": "audio", "data": base64.b64encode(b"v").decode()}
    body = {"to": "wxid_alice", "text": "listen:", "files": [voice]}
    headers = {**AUTH, "Idempotency-Key": "voice-1"}
    code, answer, _ = await call(
        wechat, http, gw, "POST", "/v1/messages", json=body, headers=headers
    )
    assert (code, answer["code"]) == (400, "invalid_request"), answer
    assert "files.0" in answer["error"] and "durationS" in answer["error"]
    assert wechat.world.sent() == []
    # corrected, with the same key: sent once
    body["files"] = [{**voice, "durationS": 3}]
    code, answer, _ = await call(
        wechat, http, gw, "POST", "/v1/messages", json=body, headers=headers
    )
    assert code == 200, answer
    await wechat.world.run_until_idle()
    assert wechat.world.texts(to="wxid_alice") == ["listen:"]


async def test_a_file_url_that_is_no_url_is_a_400_not_a_500(
    wechat: WeChatHarness, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """``http://[::1/x`` (a bracket left open) was answered 500 internal, with a traceback
    in the log, and a keyed send kept its key claimed as if under way. The problem is
    worded as the config's: the field, then what is wrong (not pydantic's "Value error, ")."""
    gw = await wechat.gateway(echo, **API)
    headers = {**AUTH, "Idempotency-Key": "bad-url-1"}
    for url, says in (
        ("http://[::1/report.pdf", "is not a valid URL (Invalid IPv6 URL)"),
        ("http://files.example.com:99999/a.pdf", "has a port that is not a number"),
        ("https:///a", "must be an http:// or https:// URL with a host"),
    ):
        body = {"to": "wxid_alice", "text": "here", "files": [{"name": "a.pdf", "url": url}]}
        code, answer, _ = await call(
            wechat, http, gw, "POST", "/v1/messages", json=body, headers=headers
        )
        assert (code, answer["code"]) == (400, "invalid_request"), (url, answer)
        assert answer["error"].startswith(f"files.0.url: {says}"), answer
    assert "Traceback" not in caplog.text
    assert wechat.world.sent() == []


async def test_a_file_url_with_a_user_and_password_is_a_400_and_never_fetched(
    wechat: WeChatHarness, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """``https://user:pw@host/a.pdf`` went to urllib, which took ``user:pw@host`` for the
    host's name: 502 ``Name or service not known``, after the text had gone."""
    caplog.set_level(logging.DEBUG)
    asked: list[str] = []
    app = web.Application()

    async def serve(request: web.Request) -> web.StreamResponse:
        asked.append(request.path)
        return web.Response(body=b"%PDF")

    app.router.add_get("/a.pdf", serve)
    files = TestServer(app, host="127.0.0.1")
    await files.start_server()
    gw = await wechat.gateway(echo, **API)
    try:
        for userinfo in ("bob:pw-0123456789@", "bob@", ":pw-0123456789@"):
            url = f"http://{userinfo}127.0.0.1:{files.port}/a.pdf"
            body = {"to": "wxid_alice", "text": "here", "files": [{"name": "a.pdf", "url": url}]}
            code, answer, _ = await call(wechat, http, gw, "POST", "/v1/messages", json=body)
            assert (code, answer["code"]) == (400, "invalid_request"), answer
            error = answer["error"]
            assert error.startswith("files.0.url: ") and "credentials" in error, error
            assert "data" in error and "pw-0123456789" not in error, error
    finally:
        await files.close()
    assert asked == [] and wechat.world.sent() == []
    assert "pw-0123456789" not in caplog.text


class WindowedPuppet:
    """The simulator's puppet, with reply windows: closed for wxid_closed; wxid_closing's
    closes as the send is made."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def reply_window(self, conversation_id: str) -> ReplyWindow | None:
        if conversation_id == "wxid_closed":
            return ReplyWindow(remaining=0, closes_at=0.0)
        if conversation_id == "wxid_narrow":  # one more message, of at most 60 characters
            return ReplyWindow(remaining=1, closes_at=4_000_000_000.0, max_chars=60)
        return None

    async def send_text(
        self, conversation_id: str, text: str, mention_ids: tuple[str, ...] = ()
    ) -> Any:
        if conversation_id == "wxid_closing":
            raise WindowClosed("the reply window closed (24 hours since the user wrote)")
        return await self._inner.send_text(conversation_id, text, mention_ids)


async def windowed_gateway(wechat: WeChatHarness, **keys: Any) -> Gateway:
    world = wechat.world
    gw = Gateway(
        parse_config(json.dumps({"channels": {"wechat": {**API, **keys}}})),
        agent=echo,
        clock=world.clock,
        state_dir=wechat.state_dir,
        puppet_factory=lambda account: WindowedPuppet(world.puppet_factory(account)),
        show_terminal_qr=False,
    )
    wechat.gateways.append(gw)
    await gw.start()
    await world.login()
    return gw


async def test_what_a_reply_window_does_not_take_is_reported_waiting(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    gw = await windowed_gateway(wechat, textChunkLimit=50)
    text = " ".join(f"Sentence number {n} of the long note." for n in range(6))
    code, body, _ = await call(
        wechat, http, gw, "POST", "/v1/messages", json={"to": "wxid_narrow", "text": text}
    )
    assert code == 200
    (sent,) = wechat.world.texts(to="wxid_narrow")  # the one message the window takes
    assert body["text"] == sent
    assert body["waiting"] >= 1  # the rest goes out after the user's next message


async def test_two_sends_at_once_each_report_only_their_own_waiting_messages(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    """Two API sends to one conversation at once, each longer than its reply window takes:
    the second waits for the first; each answer counts the messages it kept for later,
    not the other's."""
    gw = await windowed_gateway(wechat, textChunkLimit=50)
    assert gw.http is not None and gw.http.api_url
    long = " ".join(f"Sentence number {n} of the long note." for n in range(6))
    short = " ".join(f"Sentence number {n} of the short note." for n in range(3))

    async def send(text: str) -> Any:
        url = gw.http.api_url + "/v1/messages"  # type: ignore[union-attr]
        async with http.post(url, headers=AUTH, json={"to": "wxid_narrow", "text": text}) as r:
            assert r.status == 200
            return await r.json()

    async def both() -> list[Any]:
        return list(await asyncio.gather(send(long), send(short)))

    answers = await wechat.world.drive(both())
    waiting = [i for i in gw.store.outbox.items("default") if i.state == "waiting"]
    assert all(a["waiting"] >= 1 for a in answers)
    assert sum(a["waiting"] for a in answers) == len(waiting)


async def test_what_a_send_leaves_for_the_users_next_message_is_not_dm_history(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    """What the bot sends on its own is not DM history (docs/history.md): the part of an
    API send a reply window left for the user's next message was added to the bot's last
    reply in history when it went, as if that reply had said it."""
    gw = await windowed_gateway(wechat, textChunkLimit=50, dmPolicy="open", allowFrom=["*"])
    asked: list[AgentTurn] = []

    async def recording(turn: AgentTurn) -> str:
        asked.append(turn)
        return f"echo: {turn.text}"

    gw.runners["default"].turns.agent = recording
    await wechat.world.say("wxid_narrow", "hi")
    file = {"name": "notes.txt", "data": base64.b64encode(b"notes").decode()}
    message = {"to": "wxid_narrow", "text": "your notes", "files": [file]}
    code, body, _ = await call(wechat, http, gw, "POST", "/v1/messages", json=message)
    assert (code, body["waiting"]) == (200, 1)  # the file waits
    await wechat.world.say("wxid_narrow", "again")
    went = [e.media["name"] if e.media else e.text for e in wechat.world.sent(to="wxid_narrow")]
    assert went == ["echo: hi", f"your notes\n\n{MORE_NOTICE}", "notes.txt", "echo: again"]
    assert [(h.role, h.text) for h in asked[-1].history] == [
        ("user", "hi"),
        ("assistant", "echo: hi"),
    ]


async def test_what_a_window_leaves_and_the_store_refuses_fails_the_send_before_it_goes(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    """A text and a file for a window that takes one message more: the file is to wait,
    and the store refuses to keep it. Nothing goes (the text would have said more
    follows), and the answer says so: not a 200 counting the file as sent, but the
    store's failure, as everywhere in the API (503 store_unavailable)."""
    gw = await windowed_gateway(wechat, textChunkLimit=50)
    waiting = gw.runners["default"].outbound.waiting
    assert waiting is not None

    def full(items: Any) -> Any:
        raise sqlite3.OperationalError("database or disk is full")

    waiting.outbox.add = full  # type: ignore[method-assign]
    data = base64.b64encode(b"hello").decode()
    message = {
        "to": "wxid_narrow",
        "text": "short note",
        "files": [{"name": "a.txt", "data": data}],
    }
    code, body, _ = await call(wechat, http, gw, "POST", "/v1/messages", json=message)
    assert (code, body["code"]) == (503, "store_unavailable")
    assert "database or disk is full" in body["error"] and "nothing was sent" in body["error"]
    assert "sent" not in body and "sentFiles" not in body
    assert wechat.world.sent(to="wxid_narrow") == []


async def test_a_closed_reply_window_is_a_clear_409_and_nothing_is_sent(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    world = wechat.world
    gw = await windowed_gateway(wechat)
    for to in ("wxid_closed", "wxid_closing"):
        code, body, _ = await call(
            wechat, http, gw, "POST", "/v1/messages", json={"to": to, "text": "hi"}
        )
        assert (code, body["code"]) == (409, "window_closed")
        assert "nothing was sent" in body["error"] and "sent" not in body
    assert world.sent() == []


async def test_accounts_and_pairing_approve_and_deny(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    gw = await wechat.gateway(echo, **API)
    world = wechat.world
    code, body, _ = await call(wechat, http, gw, "GET", "/v1/accounts")
    assert code == 200
    (account,) = body["accounts"]
    assert (account["accountId"], account["lifecycle"], account["enabled"]) == (
        "default",
        "ready",
        True,
    )

    await world.say("wxid_bob", "hi")
    await world.say("wxid_carol", "hello")
    code, body, _ = await call(wechat, http, gw, "GET", "/v1/pairing")
    bob, carol = body["requests"]
    assert (bob["senderId"], carol["senderId"]) == ("wxid_bob", "wxid_carol")

    code, body, _ = await call(
        wechat, http, gw, "POST", f"/v1/pairing/{bob['code'].lower()}/approve"
    )
    assert code == 200 and body["senderId"] == "wxid_bob" and body["notified"] is False
    await world.say("wxid_bob", "am I in?")
    assert world.texts(to="wxid_bob")[-1] == "echo: am I in?"

    code, body, _ = await call(
        wechat, http, gw, "POST", f"/v1/pairing/{carol['code']}/deny", json={}
    )
    assert code == 200 and body["senderId"] == "wxid_carol"
    code, body, _ = await call(wechat, http, gw, "POST", f"/v1/pairing/{carol['code']}/approve")
    assert (code, body["code"]) == (404, "pairing_error")
    assert "no pending pairing request" in body["error"]
    code, body, _ = await call(
        wechat, http, gw, "GET", "/v1/pairing", params={"account": "default"}
    )
    assert body == {"requests": []}


async def test_account_ids_are_asked_for_as_on_the_cli_in_any_case(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    # the CLI's --account Default is the account "default"; the API answered 404
    gw = await wechat.gateway(echo, **API)
    world = wechat.world
    code, body, _ = await call(
        wechat,
        http,
        gw,
        "POST",
        "/v1/messages",
        json={"to": "wxid_alice", "text": "hi", "account": " Default "},
    )
    assert (code, body["accountId"]) == (200, "default")
    assert world.texts(to="wxid_alice") == ["hi"]

    await world.say("wxid_bob", "hi")
    code, body, _ = await call(
        wechat, http, gw, "GET", "/v1/pairing", params={"account": "DEFAULT"}
    )
    (bob,) = body["requests"]
    code, body, _ = await call(
        wechat,
        http,
        gw,
        "POST",
        f"/v1/pairing/{bob['code']}/approve",
        json={"account": "Default"},
    )
    assert (code, body["accountId"]) == (200, "default")

    code, body, _ = await call(
        wechat,
        http,
        gw,
        "POST",
        "/v1/accounts/Default/login/verify-code",
        json={"code": "482137"},
    )
    assert body["code"] != "account_not_running" and "'default'" in body["error"]

    # an id no account can have is the request's fault, said as the CLI says it
    code, body, _ = await call(
        wechat,
        http,
        gw,
        "POST",
        "/v1/messages",
        json={"to": "wxid_alice", "text": "hi", "account": "work account"},
    )
    assert (code, body["code"]) == (400, "invalid_request")
    assert "account id 'work account' is not allowed" in body["error"]
    code, body, _ = await call(
        wechat, http, gw, "GET", "/v1/pairing", params={"account": "work account"}
    )
    assert (code, body["code"]) == (400, "invalid_request")
    assert world.texts(to="wxid_alice") == ["hi"]


async def test_a_query_parameter_given_twice_is_a_400_naming_it(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    """``?account=a&account=b`` listed the first account's requests, silently."""
    gw = await wechat.gateway(echo, **API)
    await wechat.world.say("wxid_bob", "hi")
    for query in ("account=default&account=work", "account=default&account=default"):
        code, body, _ = await call(wechat, http, gw, "GET", f"/v1/pairing?{query}")
        assert (code, body["code"]) == (400, "invalid_request"), body
        assert "account" in body["error"] and "2 times" in body["error"], body
    code, body, _ = await call(wechat, http, gw, "GET", "/v1/pairing?account=default")
    assert code == 200 and len(body["requests"]) == 1


async def test_approve_with_notify_tells_the_sender(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    gw = await wechat.gateway(echo, name="Molty", **API)
    await wechat.world.say("wxid_bob", "hi")
    (request,) = gw.pairing.list()
    code, body, _ = await call(
        wechat, http, gw, "POST", f"/v1/pairing/{request.code}/approve", json={"notify": True}
    )
    assert code == 200 and body["notified"] is True
    assert "approved" in wechat.world.texts(to="wxid_bob")[-1]


async def test_approve_with_notify_tells_the_sender_through_the_account_they_wrote_to(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    # dm shares groups' pairing list: the note went through groups, an account bob never
    # wrote to (on iLink it has no reply window with him), or not at all when it was down
    wechat.world.add_account("groups")
    wechat.world.add_account("dm")
    gw = await wechat.gateway(
        echo,
        **API,
        defaultAccountId="groups",
        accounts={"groups": {}, "dm": {"pairingAccount": "groups"}},
    )
    await wechat.world.say("wxid_bob", "hi", account="dm")
    (request,) = gw.pairing.list()
    code, body, _ = await call(
        wechat, http, gw, "POST", f"/v1/pairing/{request.code}/approve", json={"notify": True}
    )
    assert code == 200 and body["notified"] is True and body["accountId"] == "groups"
    assert "approved" in wechat.world.texts(to="wxid_bob", account="dm")[-1]
    assert wechat.world.texts(account="groups") == []


async def test_the_openapi_document_is_valid_and_names_every_route(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    gw = await wechat.gateway(echo, **API)
    code, doc, _ = await call(wechat, http, gw, "GET", "/v1/openapi.json")
    assert code == 200
    validate(doc)  # raises on an invalid OpenAPI 3.1 document
    routes = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert {
        ("POST", "/v1/messages"),
        ("GET", "/v1/accounts"),
        ("GET", "/v1/webhooks"),
        ("GET", "/v1/pairing"),
        ("POST", "/v1/pairing/{code}/approve"),
        ("POST", "/v1/pairing/{code}/deny"),
        ("POST", "/v1/accounts/{id}/login/verify-code"),
        ("GET", "/v1/openapi.json"),
    } <= routes
    for path, ops in doc["paths"].items():  # the store failing: one rule, every route
        for method, op in ops.items():
            if path not in ("/healthz", "/v1/openapi.json"):  # (neither reads the store)
                assert "store_unavailable" in op["responses"]["503"]["description"], (method, path)
    verify = doc["paths"]["/v1/accounts/{id}/login/verify-code"]["post"]
    assert {"200", "400", "404", "409"} <= set(verify["responses"])
    assert doc["components"]["schemas"]["VerifyCodeRequest"]["required"] == ["code"]
    schema = doc["components"]["schemas"]["MessageRequest"]
    assert set(schema["properties"]) == {"to", "room", "account", "text", "files"}
    assert schema["required"] == ["to"]


async def test_health_and_api_share_one_server(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gw = await wechat.gateway(echo, health={"port": port}, api={"port": port, "token": TOKEN})
    assert gw.http is not None and gw.http.port == gw.http.api_port == port
    code, body, _ = await call(wechat, http, gw, "GET", "/healthz", headers={})
    assert (code, body) == (200, {"status": "ok"})
    code, _, _ = await call(wechat, http, gw, "GET", "/v1/accounts")
    assert code == 200


async def test_health_on_its_own_port_beside_the_api(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    gw = await wechat.gateway(echo, health={"port": 0}, **API)
    assert gw.http is not None and gw.http.port != gw.http.api_port
    async with http.get(f"{gw.http.url}/readyz") as response:
        assert response.status == 200 and (await response.json())["ready"] is True
    code, _, _ = await call(wechat, http, gw, "GET", "/readyz", headers={})
    assert code == 200


async def test_an_api_port_in_use_is_a_config_error_naming_the_key(wechat: WeChatHarness) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as info:
            await wechat.gateway(echo, login=False, api={"port": port, "token": TOKEN})
    (problem,) = info.value.problems
    assert problem.path == "channels.wechat.api.port"
    assert f"cannot listen on 127.0.0.1:{port}" in problem.message
    assert TOKEN not in str(info.value)


async def test_an_api_on_an_ipv6_address_names_its_url_with_the_host_in_brackets(
    wechat: WeChatHarness, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """With ``api.host: "::1"`` the log said ``HTTP API on http://::1:PORT/v1`` (no URL: a
    client refuses it) and a webhook agent's media links began so too."""
    caplog.set_level(logging.INFO, logger="wechat_sdk")
    gw = await wechat.gateway(echo, api={"host": "::1", "port": 0, "token": TOKEN})
    assert gw.http is not None and gw.http.api_port is not None
    url = f"http://[::1]:{gw.http.api_port}"
    assert (gw.http.api_url, gw.http.url, gw.media_links.base_url) == (url, url, url)
    assert f"HTTP API on {url}/v1 (OpenAPI: {url}/v1/openapi.json)" in caplog.text
    code, body, _ = await call(wechat, http, gw, "GET", "/v1/accounts")
    assert code == 200 and len(body["accounts"]) == 1  # (reached at that URL)
    with socket.socket(socket.AF_INET6) as taken:
        taken.bind(("::1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as info:
            await wechat.gateway(
                echo, login=False, api={"host": "::1", "port": port, "token": TOKEN}
            )
    assert f"cannot listen on [::1]:{port}" in info.value.problems[0].message


def test_a_short_token_is_refused_without_being_repeated() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            json.dumps({"channels": {"wechat": {"api": {"port": 1, "token": "tiny-secret"}}}})
        )
    assert "channels.wechat.api.token: must be at least 16 characters" in str(info.value)
    assert "tiny-secret" not in str(info.value)


async def test_the_docs_curl_script_sends_once_a_day(wechat: WeChatHarness) -> None:
    """docs/examples/send_message.sh, as the HTTP API page shows it, run twice."""
    gw = await wechat.gateway(echo, **API)
    assert gw.http is not None and gw.http.api_url
    script = SEND_SCRIPT
    env = {
        **os.environ,
        "WECHAT_API": gw.http.api_url,
        "WECHAT_API_TOKEN": TOKEN,
        "WECHAT_TO": "wxid_alice",
    }
    outputs = []
    for _ in range(2):
        process = await asyncio.create_subprocess_exec(
            "sh", str(script), "Backup done: 3 GB", env=env, stdout=asyncio.subprocess.PIPE
        )
        # the world's time moves on a little while the script runs (the send is paced),
        # not from timer to timer as world.drive would: that could pass the key's 24 h
        communicating = asyncio.ensure_future(process.communicate())
        while not communicating.done():
            await wechat.world.advance(0.1)
            await asyncio.sleep(0.01)
        out, _ = communicating.result()
        assert process.returncode == 0
        outputs.append(json.loads(out))
    assert outputs[0] == outputs[1] and outputs[0]["text"] == "Backup done: 3 GB"
    assert wechat.world.texts(to="wxid_alice") == ["Backup done: 3 GB"]  # once


async def test_the_docs_curl_script_ends_its_error_answer_with_a_newline(
    wechat: WeChatHarness,
) -> None:
    """A refused request: the script exits non-zero with the API's JSON error on a line
    of its own (curl's own error line, on stderr, must not run into it)."""
    gw = await wechat.gateway(echo, **API)
    assert gw.http is not None and gw.http.api_url
    env = {**os.environ, "WECHAT_API": gw.http.api_url, "WECHAT_API_TOKEN": "wrong"}
    process = await asyncio.create_subprocess_exec(
        "sh", str(SEND_SCRIPT), "hi", env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode != 0
    assert out.endswith(b"}\n")
    assert "token" in json.loads(out)["error"]
    assert wechat.world.texts() == []


async def test_a_restart_turns_the_api_on_and_off(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    gw = await wechat.gateway(echo, health={"port": 0})
    assert gw.http is not None and gw.http.api_url is None
    with_api = {"channels": {"wechat": {"health": {"port": 0}, **API}}}
    await gw.reload(parse_config(json.dumps(with_api)))
    await wechat.world.login()
    code, body, _ = await call(wechat, http, gw, "GET", "/v1/accounts")
    assert code == 200 and body["accounts"][0]["lifecycle"] == "ready"
    api_url = gw.http.api_url
    await gw.reload(parse_config(json.dumps({"channels": {"wechat": {"health": {"port": 0}}}})))
    assert gw.http is not None and gw.http.api_url is None
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(f"{api_url}/v1/accounts", headers=AUTH):
            pass


async def test_a_signed_urls_query_never_shows_when_its_fetch_fails(
    wechat: WeChatHarness, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = web.Application()

    async def denied(request: web.Request) -> web.StreamResponse:
        return web.Response(status=403, text="<Error>SignatureDoesNotMatch</Error>")

    app.router.add_get("/bucket/report.pdf", denied)
    s3 = TestServer(app, host="127.0.0.1")
    await s3.start_server()
    hook = await Receiver(whsec(5)).start()
    webhooks = [{"url": hook.url, "secret": hook.secret, "events": ["delivery.failed"]}]
    gw = await wechat.gateway(echo, webhooks=webhooks, **API)
    path = str(s3.make_url("/bucket/report.pdf"))
    url = path + "?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=PRESIGNED-SECRET-abc123"
    try:
        message = {"to": "wxid_alice", "files": [{"name": "report.pdf", "url": url}]}
        code, body, _ = await call(wechat, http, gw, "POST", "/v1/messages", json=message)
        assert (code, body["code"]) == (502, "delivery_failed")
        _, accounts, _ = await call(wechat, http, gw, "GET", "/v1/accounts")
        (event,) = await hook.wait_for(1, "delivery.failed")
        # the file is named by its origin and path, without the query
        last_error = accounts["accounts"][0]["lastError"]
        for shown in (body["error"], last_error, event["data"]["error"]):
            assert f"cannot fetch {path}: HTTP 403" in shown
        ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("wechat_sdk"))
        for where in (
            body["error"],
            last_error,
            json.dumps(event),
            ours,
            gw.status()[0].last_error,
        ):
            assert "PRESIGNED-SECRET" not in (where or "") and "AKIAEXAMPLE" not in (where or "")
    finally:
        await hook.close()
        await s3.close()


async def test_an_authorization_header_not_in_utf8_gets_401_not_500(
    wechat: WeChatHarness, caplog: pytest.LogCaptureFixture
) -> None:
    gw = await wechat.gateway(echo, **API)
    assert gw.http is not None and gw.http.api_port is not None
    port = gw.http.api_port

    request = (
        b"GET /v1/accounts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n"
        b"Connection: close\r\n\r\n"
    )
    answer = await wechat.world.drive(raw_http(port, request))
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b'"code": "unauthorized"' in answer
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_idempotency_key_not_in_utf8_gets_400_not_500(
    wechat: WeChatHarness, caplog: pytest.LogCaptureFixture
) -> None:
    # (a client that writes headers in Latin-1, as Python's requests does: "café")
    gw = await wechat.gateway(echo, **API)
    assert gw.http is not None and gw.http.api_port is not None
    port = gw.http.api_port
    body = json.dumps({"to": "wxid_alice", "text": "hi"}).encode()

    async def raw(key: bytes) -> bytes:
        return await raw_http(
            port,
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nIdempotency-Key: "
            + key
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body,
        )

    for key in (b"caf\xe9", b"\xff\xfe"):
        answer = await wechat.world.drive(raw(key))
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        assert b'"code": "invalid_request"' in answer and b"Idempotency-Key" in answer
    assert wechat.world.sent() == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    answer = await wechat.world.drive(raw("café".encode()))  # UTF-8: a key like any other
    assert answer.startswith(b"HTTP/1.1 200 ")


async def test_a_media_link_with_a_signature_not_in_ascii_is_a_404_not_a_500(
    wechat: WeChatHarness, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    # (no token needed: anyone who reaches the port can try, and must not fill the log
    # with tracebacks)
    gw = await wechat.gateway(echo, **API)
    for query in ("exp=1&sig=%C3%A9", "exp=4000000000&sig=%C3%A9" + "0" * 63):
        code, body, _ = await call(wechat, http, gw, "GET", f"/media/a.jpg?{query}", headers={})
        assert (code, body["code"]) == (404, "not_found")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# ---------------------------------------------------------------- what a failure says


class FailingPuppet:
    """The world's puppet, with conversations that fail: ``wxid_narrow`` has room for one
    more message (its reply window); with ``fail`` set its sends and ``wxid_bob``'s fail
    ``not_logged_in`` (a logout the events did not tell yet); ``wxid_unknown``'s send goes
    out but its answer is lost."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.fail = False
        self.handed: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def reply_window(self, conversation_id: str) -> ReplyWindow | None:
        if conversation_id == "wxid_narrow":
            return ReplyWindow(remaining=1, closes_at=4_000_000_000.0, max_chars=60)
        return None

    async def send_text(
        self, conversation_id: str, text: str, mention_ids: tuple[str, ...] = ()
    ) -> Any:
        from wechat_sdk.puppet import SendError, SendOutcomeUnknown

        if self.fail and conversation_id in ("wxid_narrow", "wxid_bob"):
            raise SendError("not logged in", transient=False, code="not_logged_in")
        if conversation_id == "wxid_unknown":
            self.handed.append(text)  # it went out, but the answer was lost
            raise SendOutcomeUnknown("the answer to the send was lost")
        return await self._inner.send_text(conversation_id, text, mention_ids)


async def failing_gateway(wechat: WeChatHarness, **keys: Any) -> tuple[Gateway, FailingPuppet]:
    world = wechat.world
    puppets: list[FailingPuppet] = []

    def factory(account: Any) -> FailingPuppet:
        puppets.append(FailingPuppet(world.puppet_factory(account)))
        return puppets[-1]

    config = parse_config(json.dumps({"channels": {"wechat": {**API, **keys}}}))
    gw = Gateway(
        config,
        agent=echo,
        clock=world.clock,
        state_dir=wechat.state_dir,
        puppet_factory=factory,
        show_terminal_qr=False,
    )
    wechat.gateways.append(gw)
    await gw.start()
    await world.login()
    return gw, puppets[0]


async def test_a_send_whose_outcome_is_unknown_keeps_its_key(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    """It may have gone out: a retry with the same key gets the first answer, and the
    message is never handed to WeChat a second time."""
    gw, puppet = await failing_gateway(wechat)
    # a silent event stream: no echo can settle it, so it is given up, not tried again
    gw.runners["default"].outbound.sender.echoes.stream_position = lambda: (0, 0)
    headers = {**AUTH, "Idempotency-Key": "k-unknown"}
    message = {"to": "wxid_unknown", "text": "your payment was received"}
    first = await call(wechat, http, gw, "POST", "/v1/messages", headers=headers, json=message)
    again = await call(wechat, http, gw, "POST", "/v1/messages", headers=headers, json=message)
    assert first[0] == 502 and "may or may not have gone out" in first[1]["error"]
    assert again[:2] == first[:2] and again[2].get("Idempotent-Replayed") == "true"
    assert puppet.handed == ["your payment was received"]


async def test_a_failed_send_whose_overflow_was_kept_says_so_and_keeps_its_key(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    """What the reply window could not take is kept (to go out after the user's next
    message) before the send begins; the send then fails: the answer says what was kept,
    and the key is kept, so a retry does not keep it a second time."""
    gw, puppet = await failing_gateway(wechat, textChunkLimit=50)
    puppet.fail = True
    text = " ".join(f"Sentence number {n} of the long note." for n in range(6))
    headers = {**AUTH, "Idempotency-Key": "k-window"}
    message = {"to": "wxid_narrow", "text": text}
    code, body, _ = await call(
        wechat, http, gw, "POST", "/v1/messages", headers=headers, json=message
    )
    assert code == 503 and "kept, to go out after the user's next message" in body["error"]
    waiting = [i for i in gw.store.outbox.items("default") if i.state == "waiting"]
    assert waiting
    puppet.fail = False
    again = await call(wechat, http, gw, "POST", "/v1/messages", headers=headers, json=message)
    assert again[0] == 503 and again[2].get("Idempotent-Replayed") == "true"
    assert len([i for i in gw.store.outbox.items("default") if i.state == "waiting"]) == len(
        waiting
    )


async def test_approving_with_notify_answers_when_the_account_logged_out(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    """The approval's notice is a proactive send: it never waits for a next login."""
    gw, puppet = await failing_gateway(wechat)
    await wechat.world.say("wxid_bob", "hi")
    (request,) = gw.pairing.list()
    puppet.fail = True
    code, body, _ = await call(
        wechat,
        http,
        gw,
        "POST",
        f"/v1/pairing/{request.code}/approve",
        headers=AUTH,
        json={"notify": True},
    )
    assert code == 200 and body["notified"] is False and body["senderId"] == "wxid_bob"


async def test_a_reload_changing_the_api_gives_its_sends_the_grace(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    gw = await wechat.gateway(echo, **PACED, **API)
    reloads: list[asyncio.Task[None]] = []

    async def reload() -> None:
        new = {"channels": {"wechat": {**PACED, "api": {"port": 0, "token": TOKEN + "-new"}}}}
        reloads.append(asyncio.ensure_future(gw.reload(parse_config(json.dumps(new)), grace_s=60)))
        await asyncio.sleep(0)

    code, _ = await post_while(wechat, http, gw, {**AUTH, "Idempotency-Key": "k-reload"}, reload)
    await wechat.world.drive(reloads[0])
    assert code == 200  # (a paced send of six paragraphs: it finished within the grace)
    assert len(wechat.world.texts(to="wxid_alice")) == 6


async def test_the_apis_lines_show_no_account_when_an_accounts_task_opened_it(
    wechat: WeChatHarness,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server took the log context of the task that opened it: a reload run from an
    account's task (an agent's tool, say) made every later line of the API show that
    account, though a request is no account's until it names one."""
    from wechat_sdk.gateway.runner import ACCOUNT_OF_TASK
    from wechat_sdk.gateway.service import _AccountField

    caplog.handler.addFilter(_AccountField())  # (the gateway's log: each line's account)
    caplog.set_level(logging.INFO, logger="wechat_sdk")
    gw = await wechat.gateway(echo, **API)

    async def reload_from_the_accounts_task() -> None:
        ACCOUNT_OF_TASK.set("default")
        new = {"channels": {"wechat": {"api": {"port": 0, "token": TOKEN + "-new"}}}}
        await gw.reload(parse_config(json.dumps(new)))

    await wechat.world.drive(asyncio.ensure_future(reload_from_the_accounts_task()))

    def broken() -> list[Any]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(gw, "status", broken)
    assert gw.http is not None and gw.http.api_url is not None
    auth = {"Authorization": f"Bearer {TOKEN}-new"}
    async with http.get(f"{gw.http.api_url}/v1/accounts", headers=auth) as response:
        assert response.status == 500  # (a bug: logged, with the request)
    # (the first server's line, the reloaded one's, the request's)
    said = [
        (r.getMessage().split(" (")[0], getattr(r, "account", None))
        for r in caplog.records
        if r.getMessage().startswith(("HTTP API on", "HTTP GET /v1/accounts failed"))
    ]
    assert len(said) == 3 and {account for _, account in said} == {"-"}, said


async def test_a_store_that_cannot_be_reached_is_a_503_store_unavailable_on_every_route(
    wechat: WeChatHarness,
    http: aiohttp.ClientSession,
    own_redis: Any,
    redis_namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Redis down: each route that reads or writes the store says so, as the one rule has
    # it (503, code store_unavailable, what to check), not a 500 "internal error"
    store = {"kind": "redis", "url": own_redis.url, "namespace": redis_namespace}
    hook = {"url": "http://127.0.0.1:9/hook", "secret": whsec(1), "events": ["reply.sent"]}
    gw = await wechat.gateway(echo, store=store, webhooks=[hook], **API)
    own_redis.kill()
    keyed = {**AUTH, "Idempotency-Key": "k-redis-down"}
    for method, path, kwargs in (
        ("GET", "/v1/webhooks", {}),
        ("GET", "/v1/pairing", {}),
        ("GET", "/v1/accounts", {}),
        ("GET", "/readyz", {}),
        ("POST", "/v1/pairing/ABCDEFGH/approve", {}),
        ("POST", "/v1/pairing/ABCDEFGH/deny", {}),
        ("POST", "/v1/messages", {"headers": keyed, "json": {"to": "wxid_alice", "text": "hi"}}),
    ):
        code, body, headers = await call(wechat, http, gw, method, path, **kwargs)
        assert (code, body["code"]) == (503, "store_unavailable"), (path, body)
        assert f"cannot reach the Redis server at {own_redis.url}" in body["error"], body
        assert "channels.wechat.store.url" in body["error"]
        assert headers["Content-Type"].startswith("application/json")
    assert wechat.world.sent(to="wxid_alice") == []
    assert "HTTP GET /v1/webhooks failed" not in caplog.text  # (not logged as a bug)

    own_redis.restart()
    code, body, _ = await call(wechat, http, gw, "GET", "/v1/webhooks")
    assert code == 200 and [w["state"] for w in body["webhooks"]] == ["delivering"]


async def test_a_send_while_redis_is_down_is_answered_503_within_the_lease_ttl(
    wechat: WeChatHarness,
    http: aiohttp.ClientSession,
    own_redis: Any,
    redis_namespace: str,
) -> None:
    # a request is always answered: with Redis down, a send (no Idempotency-Key, so no
    # store call of its own) waits for the account's lease at most leaseTtlS, then is
    # 503 store_unavailable, nothing sent (it waited until Redis came back, or forever)
    ttl = 2.0
    store = {"kind": "redis", "url": own_redis.url, "namespace": redis_namespace}
    gw = await wechat.gateway(echo, store={**store, "leaseTtlS": ttl}, **API)
    own_redis.kill()
    code, body, _ = await asyncio.wait_for(
        call(wechat, http, gw, "POST", "/v1/messages", json={"to": "wxid_alice", "text": "hi"}),
        ttl + 15,
    )
    assert (code, body["code"]) == (503, "store_unavailable"), body
    assert f"cannot reach the Redis server at {own_redis.url}" in body["error"], body
    assert "; nothing was sent; try again once it is back" in body["error"], body
    assert "sent" not in body
    assert wechat.world.sent(to="wxid_alice") == []
    own_redis.restart()


async def test_a_send_that_redis_fails_part_way_says_what_went_out(
    wechat: WeChatHarness,
    http: aiohttp.ClientSession,
    own_redis: Any,
    redis_namespace: str,
) -> None:
    # Redis goes down after two of the six messages went out: the third waits for the
    # lease at most leaseTtlS, then the send is answered with what went out, the rest
    # not sent
    store = {"kind": "redis", "url": own_redis.url, "namespace": redis_namespace}
    gw = await wechat.gateway(echo, store={**store, "leaseTtlS": 2}, **PACED, **API)

    async def redis_down() -> None:
        own_redis.kill()

    code, body = await asyncio.wait_for(post_while(wechat, http, gw, AUTH, redis_down), 20)
    sent = wechat.world.texts(to="wxid_alice")
    assert (code, body["code"]) == (503, "store_unavailable"), body
    assert body["sent"] == "\n\n".join(sent) and 2 <= len(sent) < 6
    assert "; sent before it failed: " in body["error"], body
    assert body["error"].endswith("; send what is missing once it is back"), body
    own_redis.restart()


async def test_a_keyed_send_that_went_out_is_answered_so_when_its_key_cannot_be_kept(
    wechat: WeChatHarness, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    # the message went out, then the store refused to keep the answer for the key: the
    # answer is what went out (a 503 "try again" would invite a second send), and the key
    # stays claimed, so a retry with it is refused, never sent again
    gw = await wechat.gateway(echo, **API)
    store = gw.store.idempotency

    def finish(key: str, status: int, response: str) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    store.finish = finish  # type: ignore[method-assign]
    headers = {**AUTH, "Idempotency-Key": "k-disk"}
    message = {"to": "wxid_alice", "text": "once"}
    code, body, _ = await call(
        wechat, http, gw, "POST", "/v1/messages", headers=headers, json=message
    )
    assert (code, body["text"]) == (200, "once")
    assert "not kept for its Idempotency-Key" in caplog.text
    code, body, _ = await call(
        wechat, http, gw, "POST", "/v1/messages", headers=headers, json=message
    )
    assert (code, body["code"]) == (409, "request_in_progress")
    assert wechat.world.texts(to="wxid_alice") == ["once"]


async def test_a_keyed_send_whose_key_cannot_be_freed_says_to_use_a_new_key(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    # nothing went out (the account is not logged in) and the store fails to free the key:
    # "try again" with the same key would be refused as under way for a day, so the answer
    # says to use a new one
    gw = await wechat.gateway(echo, login=False, **API)
    store = gw.store.idempotency

    def release(key: str) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    store.release = release  # type: ignore[method-assign]
    headers = {**AUTH, "Idempotency-Key": "k-stuck"}
    message = {"to": "wxid_alice", "text": "once"}
    code, body, _ = await call(
        wechat, http, gw, "POST", "/v1/messages", headers=headers, json=message
    )
    assert (code, body["code"]) == (503, "account_not_ready")
    assert body["error"].endswith(
        "; this Idempotency-Key could not be freed (the store failed): retry with a new key"
    )
    assert wechat.world.texts(to="wxid_alice") == []


async def test_a_blank_recipient_or_a_text_over_the_cap_is_a_400_and_nothing_goes(
    wechat: WeChatHarness, http: aiohttp.ClientSession
) -> None:
    """``"to": "  "`` was sent to WeChat as an id; an 8 MiB text became thousands of paced
    messages going on for hours after the caller gave up."""
    gw = await wechat.gateway(echo, **API)
    for body, says in (
        ({"to": "  ", "text": "hi"}, "to: "),
        ({"to": "wxid_alice", "room": " ", "text": "hi"}, "room: "),
        ({"to": "wxid_alice", "text": "x" * 100_001}, "text: "),
    ):
        code, answer, _ = await call(wechat, http, gw, "POST", "/v1/messages", json=body)
        assert (code, answer["code"]) == (400, "invalid_request"), answer
        assert answer["error"].startswith(says), answer
    code, answer, _ = await call(
        wechat, http, gw, "POST", "/v1/messages", json={"to": " wxid_alice ", "text": "hi"}
    )
    assert code == 200, answer
    assert wechat.world.texts(to="wxid_alice") == ["hi"]
