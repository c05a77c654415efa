"""The iLink adapter's pure parts: the wire read into messages, the CDN's AES and keys, the
kept login (0600), the durable state, and the options check."""

from __future__ import annotations

import base64
import json
import logging
import stat
from pathlib import Path

import pytest

from wechat_sdk.adapters.ilink import aes
from wechat_sdk.adapters.ilink.copies import copy_key
from wechat_sdk.adapters.ilink.puppet import clock_offset, said_at
from wechat_sdk.adapters.ilink.sending import Sender
from wechat_sdk.adapters.ilink.service import ilink_options
from wechat_sdk.adapters.ilink.session import KeptLogin, SessionFile, server_of
from wechat_sdk.adapters.ilink.state import OWN_FILE, Delivered, PeerWindow, SqliteILinkState
from wechat_sdk.adapters.ilink.wire import MAX_TEXT_CHARS, parse_message, read_message
from wechat_sdk.clock import RealClock
from wechat_sdk.config import ConfigError, accounts_of, parse_config
from wechat_sdk.puppet import MessageKind

BOT = "0123456789ab@im.bot"
ALICE = "alice@im.wechat"
KEY = bytes(range(16))


def wire(*items: dict[str, object], **fields: object) -> dict[str, object]:
    return {
        "message_id": 7001,
        "from_user_id": ALICE,
        "to_user_id": BOT,
        "message_type": 1,
        "create_time_ms": 1_700_000_000_000,
        "context_token": "ctx-1",
        "item_list": list(items),
        **fields,
    }


def read(data: dict[str, object]):  # type: ignore[no-untyped-def]
    return read_message(parse_message(data), bot_id=BOT)


# ---------------------------------------------------------------- wire


def test_a_text_message_reads_as_a_dm_to_the_bot() -> None:
    got = read(wire({"type": 1, "text_item": {"text": "hello"}}))
    m = got.message
    assert (m.id, m.kind, m.text, m.talker_id, m.listener_id) == (
        "7001",
        MessageKind.TEXT,
        "hello",
        ALICE,
        BOT,
    )
    assert m.timestamp == 1_700_000_000.0
    assert not m.is_group
    assert got.context_token == "ctx-1" and got.from_user and not got.notes


def test_a_uint64_message_id_stays_exact() -> None:
    raw = '{"message_id": 18446744073709551615, "from_user_id": "a", "item_list": []}'
    assert read(json.loads(raw)).message.id == "18446744073709551615"


def test_voice_gives_the_transcript_as_text_and_the_audio_as_a_file() -> None:
    media = {"encrypt_query_param": "q", "aes_key": "k"}
    voice = {"media": media, "encode_type": 6, "playtime": 2500, "text": "call me back"}
    got = read(wire({"type": 3, "voice_item": voice}))
    assert got.message.kind is MessageKind.AUDIO
    assert got.message.text == "call me back"
    assert got.message.file is not None
    assert got.message.file.name == "voice-7001.silk"
    assert got.message.file.duration_s == 2.5
    assert got.media is not None and got.media.query_param == "q"


def test_a_file_item_names_its_file_and_plain_size() -> None:
    item = {"media": {"encrypt_query_param": "q"}, "file_name": "report.pdf", "len": "1234"}
    got = read(wire({"type": 4, "file_item": item}))
    assert got.message.kind is MessageKind.ATTACHMENT
    assert got.message.file is not None
    assert (got.message.file.name, got.message.file.size) == ("report.pdf", 1234)


def test_an_unknown_item_type_is_skipped_with_a_note() -> None:
    got = read(wire({"type": 99, "weird_item": {}}))
    assert got.message.kind is MessageKind.UNKNOWN
    assert got.notes == ("an item of unknown type 99 skipped",)
    text_too = read(wire({"type": 99}, {"type": 1, "text_item": {"text": "still here"}}))
    assert text_too.message.text == "still here"
    assert text_too.message.kind is MessageKind.TEXT


def test_a_group_message_is_never_read_as_a_dm() -> None:
    got = read(wire({"type": 1, "text_item": {"text": "hi all"}}, group_id="g1"))
    assert got.message.kind is MessageKind.UNKNOWN  # not handed on
    assert "group message" in got.notes[0]


def test_a_missing_context_token_is_noted() -> None:
    got = read(wire({"type": 1, "text_item": {"text": "hi"}}, context_token=None))
    assert got.context_token is None
    assert "no context_token" in got.notes[0]


def test_a_ten_megabyte_text_is_cut_with_a_note() -> None:
    got = read(wire({"type": 1, "text_item": {"text": "x" * 10_000_000}}))
    assert len(got.message.text) < MAX_TEXT_CHARS + 100
    assert got.message.text.endswith(f"[cut: {10_000_000 - MAX_TEXT_CHARS} characters more]")
    assert "cut to" in got.notes[0]


def test_a_ten_megabyte_quote_is_cut_with_a_note_too() -> None:
    # the quoted text (the server's, when our history lacks the message) went to the
    # agent whole: a 10 MB quote in every turn's context
    ref = {"message_item": {"type": 1, "text_item": {"text": "q" * 10_000_000}}}
    got = read(wire({"type": 1, "text_item": {"text": "this?"}, "ref_msg": ref}))
    assert got.message.quoted_text is not None
    assert len(got.message.quoted_text) < MAX_TEXT_CHARS + 100
    assert got.message.quoted_text.endswith(f"[cut: {10_000_000 - MAX_TEXT_CHARS} characters more]")
    assert got.message.text == "this?" and "a quote of" in got.notes[0]


def test_a_quote_names_the_quoted_message_and_its_cut_text() -> None:
    ref = {"svr_id": 555, "message_item": {"type": 1, "text_item": {"text": "the begin"}}}
    got = read(wire({"type": 1, "text_item": {"text": "what?"}, "ref_msg": ref}))
    assert got.message.quoted_id == "555"
    assert got.message.quoted_text == "the begin"


def media_at(query: str, **fields: object) -> dict[str, object]:
    return {"media": {"encrypt_query_param": query, "aes_key": "k"}, **fields}


def test_of_several_media_items_the_file_is_picked_as_tencents_client_picks_it() -> None:
    voice = {"type": 3, "voice_item": media_at("qv", text="look at this")}
    file = {"type": 4, "file_item": media_at("qf", file_name="a.pdf")}
    video = {"type": 5, "video_item": media_at("qm")}
    image = {"type": 2, "image_item": media_at("qi")}
    got = read(wire(voice, file, video, image))
    assert got.message.kind is MessageKind.IMAGE  # image > video > file > voice
    assert got.media is not None and got.media.query_param == "qi"
    assert got.message.text == "look at this"  # the voice's transcript stays the text
    assert got.notes == ()  # the other items are no odd message
    assert read(wire(voice, file, video)).message.kind is MessageKind.VIDEO
    assert read(wire(voice, file)).message.kind is MessageKind.ATTACHMENT


def test_a_media_item_naming_no_address_gives_way_to_one_that_does() -> None:
    nowhere = {"type": 2, "image_item": {"media": {"aes_key": "k"}}}
    file = {"type": 4, "file_item": media_at("qf", file_name="a.pdf")}
    got = read(wire(nowhere, file))
    assert got.message.kind is MessageKind.ATTACHMENT
    assert got.media is not None and got.media.query_param == "qf"
    alone = read(wire(nowhere))  # the only one: still the file (its download says why not)
    assert alone.message.kind is MessageKind.IMAGE


def test_a_text_quoting_an_image_carries_the_quoted_image_as_its_file() -> None:
    quoted = {"type": 2, "image_item": media_at("qi", aeskey=KEY.hex(), mid_size=900)}
    ref = {"svr_id": 555, "title": "", "message_item": quoted}
    got = read(wire({"type": 1, "text_item": {"text": "what is this?"}, "ref_msg": ref}))
    assert got.message.kind is MessageKind.IMAGE
    assert got.media is not None and (got.media.query_param, got.media.hex_key) == (
        "qi",
        KEY.hex(),
    )
    assert got.message.file is not None and got.message.file.name == "image-7001.jpg"
    assert got.message.text == "what is this?"
    assert (got.message.quoted_id, got.message.quoted_text) == ("555", "[image]")
    # a message with a file of its own keeps it; the quote is then only said
    own = {"type": 4, "file_item": media_at("qf", file_name="mine.pdf")}
    both = read(wire({"type": 1, "text_item": {"text": "and this"}, "ref_msg": ref}, own))
    assert both.media is not None and both.media.query_param == "qf"
    assert both.message.quoted_text == "[image]"
    file_ref = {**ref, "message_item": {"type": 4, "file_item": media_at("q", file_name="b.pdf")}}
    quoting_file = read(wire({"type": 1, "text_item": {"text": "?"}, "ref_msg": file_ref}))
    assert quoting_file.message.kind is MessageKind.ATTACHMENT
    assert quoting_file.message.quoted_text == "[file: b.pdf]"
    voice = {"type": 3, "voice_item": media_at("qv", encode_type=6, text="at five")}
    quoting_voice = read(
        wire({"type": 1, "text_item": {"text": "when?"}, "ref_msg": {**ref, "message_item": voice}})
    )
    # (a file: the gateway would read the user's "when?" as an audio message's transcript)
    assert quoting_voice.message.kind is MessageKind.ATTACHMENT
    assert quoting_voice.message.file is not None
    assert quoting_voice.message.file.name == "voice-7001.silk"
    assert quoting_voice.message.quoted_text == "at five"


def test_a_message_of_the_wrong_shape_is_refused_with_where() -> None:
    with pytest.raises(ValueError, match="item_list"):
        parse_message({"message_id": 1, "item_list": "not a list"})


def test_a_validators_value_error_in_a_message_is_given_in_its_own_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # pydantic's raw message put "Value error, " before them (a validator of the wire's
    # that raises ValueError: none does today, so one stands in for it)
    from pydantic import BaseModel, field_validator

    from wechat_sdk.adapters.ilink import wire as wire_module

    class Strict(BaseModel):
        message_id: str

        @field_validator("message_id")
        @classmethod
        def _known(cls, value: str) -> str:
            raise ValueError("is not an id iLink gives")

    monkeypatch.setattr(wire_module.WeixinMessage, "model_validate", Strict.model_validate)
    with pytest.raises(ValueError) as bad:
        parse_message({"message_id": "x"})
    assert str(bad.value) == "message_id: is not an id iLink gives"


@pytest.mark.parametrize(
    "hostile",
    [
        {"create_time_ms": 10**400},
        {"create_time_ms": -1},
        {"item_list": [{"type": 3, "voice_item": {"playtime": 10**400}}]},
        {"item_list": [{"type": 5, "video_item": {"play_length": 10**400}}]},
        {"item_list": [{"type": 10**400}]},
    ],
    ids=["create_time_ms", "negative-time", "playtime", "play_length", "item-type"],
)
def test_a_number_out_of_a_sane_range_makes_the_message_unreadable(
    hostile: dict[str, object],
) -> None:
    with pytest.raises(ValueError, match="Input should be"):
        read(wire({"type": 1, "text_item": {"text": "hi"}}, **hostile))


def test_a_file_length_that_is_no_plain_number_is_an_unknown_size() -> None:
    for length in ("²", "9" * 5000):
        item = {"media": {"encrypt_query_param": "q"}, "file_name": "a.txt", "len": length}
        got = read(wire({"type": 4, "file_item": item}))
        assert got.message.file is not None and got.message.file.size == 0


def test_a_message_without_its_time_is_noted() -> None:
    got = read(wire({"type": 1, "text_item": {"text": "when?"}}, create_time_ms=None))
    assert "no create_time_ms" in got.notes[0]


@pytest.mark.parametrize(
    ("said", "offset", "at"),
    [
        (990.0, None, 990.0),  # no Date header: its own time, near ours
        (100.0, None, 1000.0),  # no Date header, far from ours: its arrival
        (880.0, 120.0, 1000.0),  # the server's clock 2 min behind ours
        (990.0, 1.0, 990.0),  # an offset under the Date header's resolution: none
        (9000.0, 0.0, 1000.0),  # in the future: its arrival
        (990.0, 20.0, 1000.0),  # on our clock, after it arrived: its arrival
        (1200.0, None, 1200.0),  # no Date header, in the future within the skew bound
        (0.0, 0.0, 1000.0),  # no time at all: its arrival
        (-4000.0, 5000.0, 1000.0),
    ],
)
def test_a_message_time_is_read_on_our_clock(said: float, offset: float | None, at: float) -> None:
    assert said_at(said, now=1000.0, server_offset=offset) == at


def test_the_servers_clock_offset_stays_while_its_date_headers_agree_with_it() -> None:
    # Date headers count whole seconds: 120.2 s, then 119.4 s are one offset, so two
    # messages a moment apart in two answers keep their order
    first = clock_offset(None, now=1000.2, server_time=880.0)
    assert first == pytest.approx(120.2)
    assert clock_offset(first, now=1001.4, server_time=882.0) == first
    assert clock_offset(first, now=1010.0, server_time=1000.0) == 10.0  # the server's reset
    # an answer without a Date header: the offset known stays (none known: None)
    assert clock_offset(first, now=1011.0, server_time=None) == first
    assert clock_offset(None, now=1011.0, server_time=None) is None


def test_a_message_without_an_id_gets_the_same_digest_each_time() -> None:
    data = wire({"type": 1, "text_item": {"text": "hi"}}, message_id=None)
    assert read(data).message.id == read(dict(data)).message.id
    assert read(data).message.id.startswith("ilink-")
    # delivered again: its place in the stream and its reply token are the delivery's
    again = {**data, "seq": 42, "context_token": "ctx-2"}
    assert read(again).message.id == read(data).message.id
    # another message: another id
    later = {**data, "create_time_ms": 1_700_000_000_001}
    assert read(later).message.id != read(data).message.id
    # without a time, its place in the stream is what tells two alike "好" apart
    timeless = {**data, "create_time_ms": None, "seq": 1}
    assert read({**timeless, "seq": 2}).message.id != read(timeless).message.id


# ---------------------------------------------------------------- AES


def test_aes_round_trips_with_pkcs7_padding() -> None:
    for size in (0, 1, 15, 16, 17, 100_000):
        data = bytes(i % 251 for i in range(size))
        cipher = aes.encrypt(data, KEY)
        assert len(cipher) == aes.padded_size(size)
        assert aes.decrypt(cipher, KEY) == data


def test_a_wrong_key_does_not_decrypt() -> None:
    cipher = aes.encrypt(b"secret file" * 100, KEY)
    with pytest.raises(aes.DecryptFailed):
        aes.decrypt(cipher, bytes(16))
    with pytest.raises(aes.DecryptFailed):
        aes.decrypt(cipher[:-3], KEY)


def test_item_keys_come_as_base64_of_raw_bytes_or_of_hex() -> None:
    raw = base64.b64encode(KEY).decode()
    of_hex = base64.b64encode(KEY.hex().encode()).decode()
    assert aes.parse_key(raw) == KEY
    assert aes.parse_key(of_hex) == KEY
    assert aes.key_for_message(None, KEY.hex()) == KEY  # image_item.aeskey, hex
    with pytest.raises(aes.BadKey):
        aes.parse_key(base64.b64encode(b"short").decode())
    with pytest.raises(aes.BadKey):
        aes.parse_key("not base64!")


def test_item_keys_are_read_as_leniently_as_tencents_client_reads_them() -> None:
    # Tencent's client decodes aes_key with Node's Buffer.from(s, "base64"): padding may
    # be missing, the URL-safe alphabet and line breaks are taken
    raw = base64.b64encode(KEY).decode()
    of_hex = base64.b64encode(KEY.hex().encode()).decode()
    assert aes.parse_key(raw.rstrip("=")) == KEY
    assert aes.parse_key(of_hex.rstrip("=")) == KEY
    odd = bytes([0xFB, 0xEF, 0xFF] * 5 + [0x3E])  # "+" and "/" in base64: "-" and "_"
    assert "-" in base64.urlsafe_b64encode(odd).decode()
    assert aes.parse_key(base64.urlsafe_b64encode(odd).decode()) == odd
    assert aes.parse_key(f"{of_hex[:20]}\n{of_hex[20:]}") == KEY
    with pytest.raises(aes.BadKey):
        aes.parse_key(raw[:-4])


# ---------------------------------------------------------------- the kept login


def test_the_login_is_kept_owner_only_and_read_back(tmp_path: Path) -> None:
    sessions = SessionFile(tmp_path / "accounts" / "bot")
    sessions.keep(KeptLogin(BOT, "tok-123", "owner@im.wechat", "https://ilink.example"))
    assert stat.S_IMODE(sessions.path.stat().st_mode) == 0o600
    login, earlier = SessionFile(tmp_path / "accounts" / "bot").load()
    assert login == KeptLogin(BOT, "tok-123", "owner@im.wechat", "https://ilink.example")
    assert earlier == []
    assert "tok-123" not in repr(login)


def test_an_expired_login_becomes_an_earlier_token(tmp_path: Path) -> None:
    sessions = SessionFile(tmp_path)
    sessions.keep(KeptLogin(BOT, "old-token"))
    sessions.expire()
    login, earlier = sessions.load()
    assert login is None
    assert earlier == ["old-token"]
    sessions.keep(KeptLogin(BOT, "new-token"))
    assert sessions.load() == (KeptLogin(BOT, "new-token"), ["old-token"])
    assert stat.S_IMODE(sessions.path.stat().st_mode) == 0o600


def test_the_server_of_the_kept_logins_is_recorded_and_a_move_drops_them(tmp_path: Path) -> None:
    sessions = SessionFile(tmp_path)
    assert sessions.server() is None
    sessions.keep(KeptLogin(BOT, "old-token"), "https://old.example")
    sessions.expire()  # (expire and forget keep the record)
    sessions.keep(KeptLogin(BOT, "token"))
    assert sessions.server() == "https://old.example"
    assert sessions.load() == (KeptLogin(BOT, "token"), ["old-token"])
    sessions.moved("https://new.example")
    assert sessions.server() == "https://new.example"
    assert sessions.load() == (None, [])  # neither the login nor an earlier token stays
    assert "old-token" not in sessions.path.read_text(encoding="utf-8")


def test_the_server_is_named_without_a_password_or_a_trailing_slash() -> None:
    assert server_of(" https://user:secret@ilink.example:8443/v1/ ") == (
        "https://ilink.example:8443/v1"
    )
    assert server_of("http://127.0.0.1:8710/") == server_of("http://127.0.0.1:8710")


def test_a_broken_session_file_means_no_login(tmp_path: Path) -> None:
    sessions = SessionFile(tmp_path)
    sessions.path.write_text("{not json", encoding="utf-8")
    assert sessions.load() == (None, [])


# ---------------------------------------------------------------- the durable state


def delivered(mid: str, at: float, *, peer: str = ALICE, token: str | None = "c1") -> Delivered:
    return Delivered(mid, peer, json.dumps({"message_id": mid}), f"text {mid}", True, token, at)


async def test_a_batch_and_its_cursor_survive_a_restart(tmp_path: Path) -> None:
    state = SqliteILinkState.in_dir(tmp_path, "bot", RealClock())
    recorded = await state.record([delivered("1", 100.0), delivered("2", 101.0)], "cursor-A")
    assert recorded.added == ["1", "2"]
    await state.close()
    again = SqliteILinkState.in_dir(tmp_path, "bot", RealClock())
    assert await again.cursor() == "cursor-A"
    assert await again.recent(since=100.5) == ["2"]
    stored = await again.entry("1")
    assert stored is not None and stored.text == "text 1" and stored.from_user
    assert stat.S_IMODE((tmp_path / OWN_FILE).stat().st_mode) == 0o600
    await again.close()


async def test_a_message_recorded_twice_is_added_once(tmp_path: Path) -> None:
    state = SqliteILinkState.in_dir(tmp_path, "bot", RealClock())
    assert (await state.record([delivered("1", 100.0), delivered("1", 100.0)], "c")).added == ["1"]
    assert (await state.record([delivered("1", 103.0), delivered("2", 104.0)], "d")).added == ["2"]
    await state.close()


async def test_each_peer_keeps_its_token_and_window(tmp_path: Path) -> None:
    state = SqliteILinkState.in_dir(tmp_path, "bot", RealClock())
    await state.record([delivered("1", 100.0, token="t1")], None)
    await state.sent(ALICE, "out-1", "my answer", 101.0)
    await state.sent(ALICE, "out-2", "more", 102.0)
    window = await state.window(ALICE)
    assert (window.user_at, window.bot_sent) == (100.0, 2)
    # a message without a token keeps the last one; a user message resets the count
    await state.record([delivered("2", 200.0, token=None)], None)
    assert await state.context_token(ALICE) == "t1"
    assert (await state.windows())[ALICE].bot_sent == 0
    own = await state.entry("out-1")
    assert own is not None and own.text == "my answer" and not own.from_user
    await state.close()


async def test_a_running_account_forgets_messages_older_than_30_days_once_a_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from wechat_sdk.adapters.ilink import puppet as ilink_puppet
    from wechat_sdk.clock import VirtualClock

    monkeypatch.setattr(ilink_puppet, "HEARTBEAT_EVERY_S", 3600.0)  # (fewer wake-ups)
    clock = VirtualClock()
    t0 = clock.now()
    state = SqliteILinkState.in_dir(tmp_path, "bot", clock)
    await state.record([delivered("old", t0 - ilink_puppet.KEEP_S + 3600)], "c")
    window = PeerWindow(t0 - ilink_puppet.KEEP_S + 3600, 0)
    options = ilink_puppet.ILinkOptions("http://127.0.0.1:9", "http://127.0.0.1:9/c2c", "t/1")
    made = ilink_puppet.ILinkPuppet(
        account_id="bot", account_dir=tmp_path, options=options, clock=clock
    )
    made._state = state  # (a started account's; no server needed for this)
    made._windows.update(await state.windows())
    assert made._windows == {ALICE: window}
    sender = made._sender = Sender(
        api=None,  # type: ignore[arg-type]  # (nothing is sent here)
        state=state,
        clock=clock,
        log=logging.LoggerAdapter(logging.getLogger("test")),
        windows=made._windows,
        on_sent=lambda *_: None,
        on_expired=lambda: None,
    )
    sender.begun[ALICE], sender.tickets[ALICE], sender.in_flight[ALICE] = 3, ("t", t0), 0
    beating = asyncio.ensure_future(made._heartbeats())
    try:
        await clock.advance(ilink_puppet.PRUNE_EVERY_S - 3600)  # under a day: kept
        assert await state.entry("old") is not None
        await clock.advance(2 * 3600)  # a day went by: it is over 30 days old now
        assert await state.entry("old") is None
        assert await state.windows() == {} and made._windows == {}  # its sender with it
        assert (sender.begun, sender.tickets, sender.in_flight) == ({}, {}, {})
    finally:
        beating.cancel()
        await state.close()


# ---------------------------------------------------------------- options


def account(options: str):  # type: ignore[no-untyped-def]
    text = f'{{ channels: {{ wechat: {{ puppet: "ilink", puppetOptions: {options} }} }} }}'
    return accounts_of(parse_config(text)).default


def test_options_default_to_tencents_servers() -> None:
    got = ilink_options(account("{}"))
    assert got.base_url == "https://ilinkai.weixin.qq.com"
    assert got.cdn_base_url == "https://novac2c.cdn.weixin.qq.com/c2c"
    assert got.route_tag is None


def test_a_wrong_option_is_a_config_error_naming_its_key() -> None:
    with pytest.raises(ConfigError) as err:
        ilink_options(account('{ baseUrl: "ftp://x", botAgent: "", token: "t", routeTag: 5 }'))
    text = str(err.value)
    assert "channels.wechat.puppetOptions.baseUrl: must be an http(s) URL" in text
    assert "channels.wechat.puppetOptions.botAgent" in text
    assert "channels.wechat.puppetOptions.token: is not an iLink option" in text
    assert "puppetOptions.routeTag" not in text  # a number is a route tag


def test_a_text_chunk_limit_over_what_ilink_holds_is_a_config_error() -> None:
    from wechat_sdk.puppets import check_puppet

    text = '{ channels: { wechat: { puppet: "ilink", textChunkLimit: 5000 } } }'
    with pytest.raises(ConfigError, match=r"channels\.wechat\.textChunkLimit: 5000 is more"):
        check_puppet(accounts_of(parse_config(text)).default)


def test_calls_go_through_the_environments_proxy_unless_no_proxy_names_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from wechat_sdk.adapters.ilink.api import ILinkApi

    monkeypatch.setenv("NO_PROXY", "sim.internal")
    api = ILinkApi(
        None,  # type: ignore[arg-type]  (no call is made)
        "https://ilinkai.weixin.qq.com",
        "https://novac2c.cdn.weixin.qq.com/c2c",
        proxies={"https": "http://proxy.example:3128"},
    )
    assert api.proxy_for("https://ilinkai.weixin.qq.com/ilink/bot/getupdates") == (
        "http://proxy.example:3128"
    )
    assert api.proxy_for("https://sim.internal/ilink/bot/getupdates") is None
    assert api.proxy_for("http://127.0.0.1:8710/") is None  # no HTTP proxy given


def test_a_voice_beside_typed_text_goes_as_a_file_its_transcript_not_taken_for_all() -> None:
    # the gateway takes an audio message's whole text as the voice's transcript: the
    # typed note was given to the agent as what the voice said
    media = {"encrypt_query_param": "q", "aes_key": "k"}
    voice = {"type": 3, "voice_item": {"text": "the spoken words", "media": media}}
    got = read(wire({"type": 1, "text_item": {"text": "my typed note"}}, voice))
    assert got.message.kind is MessageKind.ATTACHMENT
    assert got.message.text == "my typed note\nthe spoken words"
    alone = read(wire(voice))
    assert alone.message.kind is MessageKind.AUDIO and alone.message.text == "the spoken words"


def _said(mid: int, text: str, at_ms: int | None = 1_700_000_000_000) -> str | None:
    data = {"message_id": mid, "from_user_id": "a@im.wechat", "create_time_ms": at_ms}
    data["item_list"] = [{"type": 1, "msg_id": f"i{mid}", "text_item": {"text": text}}]
    return copy_key(parse_message(data))


def test_a_copy_has_its_originals_key_and_nothing_else_has() -> None:
    original = _said(1, "hi")
    assert original is not None
    assert _said(2, "hi") == original  # another id, another item msg_id: the same
    assert _said(3, "hi!") != original  # other words
    assert _said(4, "hi", at_ms=1_700_000_001_000) != original  # said again, later
    assert _said(5, "hi", at_ms=None) is None  # no time: never a copy
