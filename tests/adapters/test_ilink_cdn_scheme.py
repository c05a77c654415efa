"""A file an iLink message names by a plain-http ``full_url`` on the host of a CDN
configured ``https``: never fetched over plain http (nor is an upload sent so, to a
plain-http ``upload_full_url``). With its
``encrypt_query_param`` beside it, the file comes from the configured CDN, as for a
``full_url`` on another host; without, it is not fetched: one clear line, and the agent
gets the message with a note instead of the file."""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ilink_script import scripted
from waiting import until

from wechat_sdk import AgentTurn, Gateway, parse_config
from wechat_sdk.adapters.ilink import aes, cdn
from wechat_sdk.adapters.ilink.api import ILinkApi
from wechat_sdk.adapters.ilink.session import KeptLogin, SessionFile
from wechat_sdk.adapters.ilink.wire import MediaRef

BOT = "0123456789ab@im.bot"
ALICE = "alice@im.wechat"
KEY = bytes(range(16))


async def test_a_plain_http_full_url_on_an_https_cdn_gives_way_to_the_configured_cdn() -> None:
    async with aiohttp.ClientSession() as http:
        api = ILinkApi(http, "https://ilink.example", "https://cdn.example/c2c")
        ref = MediaRef("file", "q1", "http://cdn.example/c2c/download?x=1", "key")
        assert cdn.download_url(api, ref) == (
            "https://cdn.example/c2c/download?encrypted_query_param=q1"
        )
        secure = MediaRef("file", "q1", "https://cdn.example/c2c/download?x=1", "key")
        assert cdn.download_url(api, secure) == "https://cdn.example/c2c/download?x=1"
        alone = MediaRef("file", None, "http://cdn.example/c2c/download?x=1", "key")
        with pytest.raises(cdn.CdnFailed, match="plain http"):
            cdn.download_url(api, alone)
        # a CDN configured plain http (the simulator's) is fetched as configured
        api = ILinkApi(http, "http://127.0.0.1:8710", "http://127.0.0.1:8710/c2c")
        local = MediaRef("file", None, "http://127.0.0.1:8710/c2c/download?x=1", "key")
        assert cdn.download_url(api, local) == "http://127.0.0.1:8710/c2c/download?x=1"


async def test_an_upload_never_goes_by_plain_http_to_an_https_cdn() -> None:
    uploaded_to: list[str] = []

    class Api(ILinkApi):
        """The configured hosts' API, whose CDN takes any upload (no network)."""

        async def get_upload_url(self, body: dict[str, Any]) -> dict[str, Any]:
            full = "http://cdn.example/c2c/upload?encrypted_query_param=named"
            return {"upload_full_url": full, "upload_param": "up-1"}

        async def upload(self, url: str, cipher: bytes) -> str:
            uploaded_to.append(url)
            return "down-1"

    async with aiohttp.ClientSession() as http:
        api = Api(http, "https://ilink.example", "https://cdn.example/c2c")
        await cdn.upload(api, b"notes", word="file", to_user=ALICE)
    (url,) = uploaded_to
    assert url.startswith("https://cdn.example/c2c/upload?encrypted_query_param=up-1&filekey=")


@pytest.mark.slow  # real HTTP on the real clock
async def test_a_file_named_only_by_a_plain_http_url_reaches_the_agent_as_a_note(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    turns: list[AgentTurn] = []

    async def agent(turn: AgentTurn) -> str:
        turns.append(turn)
        return "got it"

    async with scripted() as script:
        base = script.base_url  # http://127.0.0.1:<port>, its CDN configured https
        script.files["q1"] = aes.encrypt(b"meeting notes", KEY)
        SessionFile(tmp_path / "accounts" / "default").keep(KeptLogin(BOT, "tok", "owner"))
        config = parse_config(
            f"""{{ channels: {{ wechat: {{
                puppet: "ilink",
                puppetOptions: {{ baseUrl: "{base}",
                                  cdnBaseUrl: "{base.replace("http:", "https:")}/c2c" }},
                dmPolicy: "open", allowFrom: ["*"], qrCode: false, pacing: false,
            }} }} }}"""
        )
        async with Gateway(config, agent=agent, state_dir=tmp_path) as gateway:
            await until("ready", lambda: gateway.status()[0].lifecycle == "ready")
            script.batch(_file_msg(f"{base}/c2c/download?encrypted_query_param=q1"), cursor="c")
            await until("the turn", lambda: turns)
    (turn,) = turns
    assert turn.text == "see the notes"
    (media,) = turn.media
    assert media.path is None and media.note is not None and "plain http" in media.note
    assert not [r for r in script.requests if "download" in r.path]  # never asked
    (line,) = [r.getMessage() for r in caplog.records if "reason=media_failed" in r.getMessage()]
    assert "media of message 1 not downloaded" in line and "plain http" in line


def _file_msg(full_url: str) -> dict[str, Any]:
    media = {"full_url": full_url, "aes_key": base64.b64encode(KEY.hex().encode()).decode()}
    return {
        "message_id": 1,
        "from_user_id": ALICE,
        "to_user_id": BOT,
        "message_type": 1,
        "context_token": "ctx-1",
        "create_time_ms": int(time.time() * 1000),
        "item_list": [
            {"type": 1, "text_item": {"text": "see the notes"}},
            {"type": 4, "file_item": {"media": media, "file_name": "notes.txt", "len": "13"}},
        ],
    }
