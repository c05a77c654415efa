"""The event sink (only what someone listens to is built; a failure to queue never reaches
the gateway) and the media links (signed, expiring, never outside their folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wechat_sdk.clock import VirtualClock
from wechat_sdk.events import EVENT_TYPES, GatewayEvents
from wechat_sdk.http.media_links import MediaLinks


def test_only_the_wanted_events_are_published() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    events = GatewayEvents(lambda t, d: seen.append((t, d)), {"account.ready"})
    events.account_ready("default", "wxid_bot", "Molty")
    events.account_qr("default", qr_url="https://example.com/qr")
    assert seen == [
        ("account.ready", {"accountId": "default", "userId": "wxid_bot", "userName": "Molty"})
    ]
    assert GatewayEvents().wanted == frozenset()  # no publisher: nothing is wanted
    assert set(GatewayEvents(lambda t, d: None, EVENT_TYPES).wanted) == set(EVENT_TYPES)


def test_a_reply_of_nothing_is_no_event() -> None:
    seen: list[str] = []
    events = GatewayEvents(lambda t, d: seen.append(t), EVENT_TYPES)
    events.reply_sent("default", conversation_id="c", in_reply_to="m", text="", messages=0)
    assert seen == []


def test_a_publisher_that_fails_is_logged_and_the_caller_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(event_type: str, data: dict[str, Any]) -> None:
        raise OSError("disk full")

    events = GatewayEvents(broken, EVENT_TYPES)
    events.account_logged_out("default", reason="logged out on the phone")
    assert "event account.logged_out not queued: disk full" in caplog.text
    assert "reason=event_not_queued" in caplog.text


def test_a_media_link_is_signed_expires_and_stays_in_its_folder(tmp_path: Path) -> None:
    root = tmp_path / "media" / "inbound"
    (root / "default").mkdir(parents=True)
    photo = root / "default" / "cat.png"
    photo.write_bytes(b"png")
    (tmp_path / "secret.txt").write_text("not for links")
    swapped = root / "default" / "dog.png"
    swapped.write_bytes(b"png")
    clock = VirtualClock()
    links = MediaLinks(root, clock, ttl_s=600)
    assert links.link(photo) is None  # no server yet: no link
    links.base_url = "http://127.0.0.1:8788"
    url = links.link(photo)
    assert url is not None and url.startswith("http://127.0.0.1:8788/media/default/cat.png?exp=")
    query = dict(p.split("=") for p in url.split("?")[1].split("&"))
    assert links.resolve("default/cat.png", query["exp"], query["sig"]) == photo.resolve()
    assert links.resolve("default/cat.png", query["exp"], "0" * 64) is None  # forged
    assert links.resolve("default/cat.png", str(int(query["exp"]) + 60), query["sig"]) is None
    assert links.link(tmp_path / "secret.txt") is None  # outside the folder: no link
    # a file made a link out of the folder after its link was given: refused
    dog = links.link(swapped)
    assert dog is not None
    swapped.unlink()
    swapped.symlink_to(tmp_path / "secret.txt")
    q = dict(p.split("=") for p in dog.split("?")[1].split("&"))
    assert links.resolve("default/dog.png", q["exp"], q["sig"]) is None
    assert links.link(swapped) is None
    clock._now += 601  # (the link's 10 minutes are over)
    assert links.resolve("default/cat.png", query["exp"], query["sig"]) is None
