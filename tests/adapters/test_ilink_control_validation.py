"""The control API (``/sim/``) takes only what it documents: a key it does not know, a
value of the wrong kind or a name the world does not have is a 4xx ``{"error": ...}``
naming the key's dotted path and what to change, never a silent default."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from simulator import SimulatedWeChat
from wechat_sdk.clock import RealClock

ALICE = "alice@im.wechat"


@pytest.fixture
async def world() -> SimulatedWeChat:
    world = SimulatedWeChat(seed=3, clock=RealClock())
    world.add_account("bot", transport="ilink")
    world.add_account("classic")  # a puppet account in the same world
    return world


@pytest.fixture
async def base(world: SimulatedWeChat) -> AsyncIterator[str]:
    async with await world.ilink_server(poll_hold_s=0.3) as server:
        yield server.base_url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None
) -> tuple[int, Any]:
    async with http.request(method, url, json=body) as resp:
        return resp.status, await resp.json()


async def error(http: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> str:
    status, answer = await call(http, method, url, body)
    assert status == 400, (status, answer)
    text: str = answer["error"]
    return text


async def test_a_typo_in_a_message_is_refused_not_sent_empty(
    world: SimulatedWeChat, base: str, http: aiohttp.ClientSession
) -> None:
    said = {"from": ALICE, "account": "bot", "txt": "hi"}
    assert await error(http, "POST", f"{base}sim/messages", said) == (
        'txt: unknown key (did you mean "text"?)'
    )
    assert world.transcript == []


@pytest.mark.parametrize(
    ("media", "says"),
    [
        ({"kind": "gif"}, "media.kind: expected one of image|video|audio|emoticon|file"),
        ({"kind": "imag"}, 'got "imag" (did you mean "image"?)'),
        ({"kind": "image", "size": "big"}, 'media.size: expected a whole number, got "big"'),
        ({"kind": "image", "size": -1}, "media.size: input should be greater than or equal to 0"),
        (
            {"kind": "file", "size": 10**12},
            "media.size: input should be less than or equal to 104857600, got 1000000000000",
        ),
        ({"kind": "image", "sise": 10}, 'media.sise: unknown key (did you mean "size"?)'),
        (
            {"kind": "audio", "duration": 1e306},
            "media.duration: input should be less than or equal to 86400",
        ),
    ],
)
async def test_media_must_be_a_kind_the_simulator_knows_and_a_size(
    world: SimulatedWeChat,
    base: str,
    http: aiohttp.ClientSession,
    media: dict[str, Any],
    says: str,
) -> None:
    said = {"from": ALICE, "account": "bot", "text": "x", "media": media}
    assert says in await error(http, "POST", f"{base}sim/messages", said)
    assert world.transcript == []


def standard_json(text: str) -> Any:
    """``text`` read as a parser of another language reads it: no NaN, no Infinity."""

    def refuse(word: str) -> None:
        raise ValueError(f"{word} is not standard JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    ("route", "raw", "says"),
    [
        ("sim/messages", '{"from": "alice@im.wechat", "account": "bot", "age_s": Infinity}',
         "age_s: Infinity is not standard JSON: send a finite number"),
        ("sim/messages", '{"from": "alice@im.wechat", "account": "bot", '
         '"together": [{"media": {"kind": "audio", "duration": NaN}}]}',
         "together.0.media.duration: NaN is not standard JSON: send a finite number"),
        ("sim/messages", '{"from": "alice@im.wechat", "account": "bot", "age_s": 1e400}',
         "age_s: Infinity is not standard JSON: send a finite number"),
        ("sim/faults", '{"kind": "slow_send", "account": "bot", "seconds": -Infinity}',
         "seconds: -Infinity is not standard JSON: send a finite number"),
    ],
)  # fmt: skip
async def test_nan_and_infinity_in_a_body_are_refused_by_name(
    world: SimulatedWeChat, base: str, http: aiohttp.ClientSession, route: str, raw: str, says: str
) -> None:
    """Python's json reads NaN and Infinity, other languages' parsers do not: the
    simulator takes none, so it never hands them back."""
    async with http.post(f"{base}{route}", data=raw) as resp:
        assert resp.status == 400
        assert standard_json(await resp.text()) == {"error": says}
    assert world.transcript == []
    assert not any(e["event"] == "fault" for e in world.events_log)


async def test_deeply_nested_json_is_refused_as_not_json(
    base: str, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{base}sim/messages", data="[" * 100_000 + "]" * 100_000) as resp:
        assert resp.status == 400
        assert await resp.json() == {"error": "the body is not JSON"}


async def test_a_message_older_than_ten_years_is_refused(
    world: SimulatedWeChat, base: str, http: aiohttp.ClientSession
) -> None:
    """A huge age (1e308) made the message's time overflow, and every poll of its bot
    answered 500 from then on."""
    said = {"from": ALICE, "account": "bot", "text": "x", "age_s": 1e308}
    text = await error(http, "POST", f"{base}sim/messages", said)
    assert text.startswith("age_s: input should be less than or equal to 315360000")
    assert world.transcript == []


async def test_a_room_for_an_ilink_account_is_refused_with_the_reason(
    world: SimulatedWeChat, base: str, http: aiohttp.ClientSession
) -> None:
    said = {"from": ALICE, "account": "bot", "text": "hi", "room": "r1@chatroom"}
    text = await error(http, "POST", f"{base}sim/messages", said)
    assert text.startswith("room: iLink accounts are in direct chats only")
    assert world.transcript == []


#: kinds an iLink bot would not get, said with what each says (``world.say`` and the
#: control API keep one rule: the control API names the key, ``kind: ``)
KINDS_REFUSED = [
        ({"kind": "location"},
         'kind: iLink has no item for a message of kind "location" (its items are text, image, '
         "voice, file and video): leave kind out, and the message is a text"),
        ({"kind": "image"},
         'kind: a message of kind "image" carries a file: give media {"kind": "image"}, or leave '
         "kind out, and the message is a text"),
        ({"kind": "attachment"}, 'give media {"kind": "file"}'),
        ({"kind": "video", "media": {"kind": "image"}},
         'kind: "video" is not this message\'s kind: its media.kind "image" makes it '
         '"image"; leave kind out'),
        ({"kind": "text", "media": {"kind": "file"}}, 'media.kind "file" makes it "attachment"'),
]  # fmt: skip

#: kinds that are the message's own: taken by both
KINDS_TAKEN = [
    {"kind": "text"},
    {"kind": "image", "media": {"kind": "image"}},
    {"kind": "attachment", "media": {"kind": "file"}},
    {"kind": "emoticon", "media": {"kind": "emoticon"}},
]


@pytest.mark.parametrize(("said", "says"), KINDS_REFUSED)
async def test_a_kind_the_bot_would_not_get_is_refused(
    world: SimulatedWeChat,
    base: str,
    http: aiohttp.ClientSession,
    said: dict[str, Any],
    says: str,
) -> None:
    """``kind`` changed nothing an iLink bot gets (a location arrived as a text item, an
    image without a file too): a test that asked for one tested something else."""
    body = {"from": ALICE, "account": "bot", "text": "x", **said}
    assert says in await error(http, "POST", f"{base}sim/messages", body)
    assert world.transcript == []


@pytest.mark.parametrize(("said", "says"), KINDS_REFUSED)
async def test_world_say_refuses_the_same_kinds_to_an_ilink_account(
    world: SimulatedWeChat, said: dict[str, Any], says: str
) -> None:
    """In Python, ``world.say(kind="location")`` to an iLink account arrived as a text
    item (the control API refused it): the same rule, a ValueError that names kind."""
    with pytest.raises(ValueError) as refused:
        await world.say(ALICE, "x", account="bot", **said)
    assert says.removeprefix("kind: ") in str(refused.value)
    assert world.transcript == [] and ALICE not in world.contacts


@pytest.mark.parametrize("said", KINDS_TAKEN)
async def test_world_say_takes_a_kind_that_is_the_message_s_own(
    world: SimulatedWeChat, said: dict[str, Any]
) -> None:
    (made,) = await world.say(ALICE, account="bot", settle=False, **said)
    assert world._messages[made].kind == said["kind"]


async def test_a_puppet_account_still_gets_any_kind(world: SimulatedWeChat) -> None:
    """Wechaty has a message for every kind (a location, an image whose file is missing):
    the rule is iLink's."""
    for kind in ("location", "image"):
        (made,) = await world.say(ALICE, account="classic", kind=kind, settle=False)
        assert world._messages[made].kind == kind


@pytest.mark.parametrize("said", KINDS_TAKEN)
async def test_a_kind_that_is_the_message_s_own_is_taken(
    world: SimulatedWeChat, base: str, http: aiohttp.ClientSession, said: dict[str, Any]
) -> None:
    status, made = await call(
        http, "POST", f"{base}sim/messages", {"from": ALICE, "account": "bot", **said}
    )
    assert status == 201, made
    assert world._messages[made["message_ids"][0]].kind == said["kind"]


async def test_what_was_accepted_before_still_is(
    world: SimulatedWeChat, base: str, http: aiohttp.ClientSession
) -> None:
    media = {"kind": "audio", "name": "v.silk", "size": 300, "duration": 2, "mime": "audio/silk"}
    said = {"from": ALICE, "account": "bot", "text": "hi", "media": media, "age_s": 1}
    status, made = await call(http, "POST", f"{base}sim/messages", said)
    assert status == 201 and len(made["message_ids"]) == 1
    status, made = await call(
        http, "POST", f"{base}sim/messages", {"from": ALICE, "account": "bot"}
    )
    assert status == 201
    status, _ = await call(
        http, "POST", f"{base}sim/faults", {"kind": "rate_limit", "account": "bot"}
    )
    assert status == 200


GE = "input should be greater than or equal to"


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ({"kind": "send_fail", "account": "bot", "cnt": 2}, "cnt: unknown key (did you mean"),
        ({"kind": "slow_send", "account": "bot", "seconds": -5}, f"seconds: {GE} 0"),
        ({"kind": "send_fail", "account": "bot", "count": 0}, f"count: {GE} 1"),
        ({"kind": "send_fail", "account": "bot", "count": -2}, f"count: {GE} 1"),
        ({"kind": "send_fail", "account": "bot", "count": 1.5}, "count: expected a whole number"),
        ({"kind": "logout", "account": "bot", "count": True}, "count: expected a whole number"),
        ({"kind": "disconect", "account": "bot"}, '(did you mean "disconnect"?)'),
        ({"kind": "slow_poll", "account": "classic"}, "slow_poll applies to iLink accounts only"),
        ({"kind": "logout"}, "account: required key is missing"),
    ],
)  # fmt: skip
async def test_a_fault_takes_its_documented_keys_only(
    world: SimulatedWeChat,
    base: str,
    http: aiohttp.ClientSession,
    fault: dict[str, Any],
    says: str,
) -> None:
    assert says in await error(http, "POST", f"{base}sim/faults", fault)
    assert not any(e["event"] == "fault" for e in world.events_log)


async def test_sent_for_an_unknown_account_is_404_at_once(
    base: str, http: aiohttp.ClientSession
) -> None:
    started = time.monotonic()
    status, answer = await call(http, "GET", f"{base}sim/sent?account=nobody&wait_ms=5000")
    assert status == 404 and "no account 'nobody'" in answer["error"]
    assert time.monotonic() - started < 2
    status, answer = await call(http, "GET", f"{base}sim/sent?account=bot")
    assert (status, answer) == (200, [])


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sim/events?since=-1", "since: input should be greater than or equal to 0"),
        ("sim/events?since=x", 'since: expected a whole number, got "x"'),
        ("sim/sent?since=-1", "since: input should be greater than or equal to 0"),
        ("sim/sent?acount=bot", 'acount: unknown key (did you mean "account"?)'),
    ],
)
async def test_queries_are_checked_too(
    base: str, http: aiohttp.ClientSession, url: str, says: str
) -> None:
    assert says in await error(http, "GET", f"{base}{url}")


async def test_account_and_phone_bodies_refuse_unknown_keys(
    base: str, http: aiohttp.ClientSession
) -> None:
    text = await error(http, "POST", f"{base}sim/accounts", {"id": "b2", "nmae": "x"})
    assert text == 'nmae: unknown key (did you mean "name"?)'
    text = await error(http, "POST", f"{base}sim/accounts/bot/login", {"verifycode": True})
    assert text == 'verifycode: unknown key (did you mean "verify_code"?)'


async def test_adding_an_account_that_exists_is_a_conflict_and_changes_nothing(
    world: SimulatedWeChat, base: str, http: aiohttp.ClientSession
) -> None:
    status, answer = await call(http, "POST", f"{base}sim/accounts", {"id": "bot", "name": "X"})
    assert (status, answer) == (
        409,
        {"error": "account 'bot' exists already (GET /sim/accounts shows it): "
                  "give a new account another id"},
    )  # fmt: skip
    assert world.accounts["bot"].name == "Bot bot"
    status, answer = await call(http, "POST", f"{base}sim/accounts", {"id": "classic"})
    assert status == 409 and "is not an iLink account" in answer["error"]
    status, made = await call(http, "POST", f"{base}sim/accounts", {"id": "bot2", "name": "Y"})
    assert (status, made["id"], made["name"]) == (201, "bot2", "Y")


async def test_a_bug_behind_a_control_route_is_answered_as_json_and_logged(
    world: SimulatedWeChat,
    base: str,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("a bug in the simulator")

    monkeypatch.setattr(world, "sent", broken)
    with caplog.at_level(logging.ERROR, logger="simulator.ilink"):
        status, answer = await call(http, "GET", f"{base}sim/sent?account=bot")
    assert status == 500
    assert answer == {"error": "the simulator failed: RuntimeError: a bug in the simulator"}
    assert any("/sim/sent" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_world_say_refuses_a_media_kind_it_does_not_know() -> None:
    world = SimulatedWeChat(seed=1)
    world.add_account("default")
    with pytest.raises(ValueError, match="media kind 'gif' is not one the simulator knows"):
        await world.say("wxid_a", "x", media={"kind": "gif"})
    with pytest.raises(ValueError, match="media size must be a whole number"):
        await world.say("wxid_a", "x", media={"kind": "image", "size": "big"})
    with pytest.raises(ValueError, match=r"0 to 104857600 \(100 MiB, the largest file"):
        await world.say("wxid_a", "x", media={"kind": "file", "size": 100 * 1024 * 1024 + 1})
    assert world.transcript == [] and "wxid_a" not in world.contacts


async def test_world_say_refuses_an_age_or_duration_that_is_not_a_finite_number() -> None:
    world = SimulatedWeChat(seed=1)
    world.add_account("default")
    with pytest.raises(ValueError, match="age_s must be a finite number of seconds"):
        await world.say("wxid_a", "x", age_s=float("inf"))
    with pytest.raises(ValueError, match="media duration must be a finite number of seconds"):
        await world.say("wxid_a", "x", media={"kind": "audio", "duration": float("nan")})
    with pytest.raises(ValueError, match=r"age_s must be .* 0 to 315360000 \(ten years\)"):
        await world.say("wxid_a", "x", age_s=1e308)
    with pytest.raises(ValueError, match=r"duration must be .* 0 to 86400 \(a day\)"):
        await world.say("wxid_a", "x", media={"kind": "audio", "duration": 1e306})
    assert world.transcript == [] and "wxid_a" not in world.contacts
