"""Pairing codes and the pairing service (challenge, approve, deny, revoke, messages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wechat_sdk.clock import VirtualClock
from wechat_sdk.pairing import (
    ALPHABET,
    CODE_LENGTH,
    Pairing,
    PairingError,
    new_code,
    normalize_code,
    owner_notice,
    pairing_message,
)
from wechat_sdk.pairing import codes as codes_module
from wechat_sdk.stores import MemoryPairingStore, PairingRequest, SqliteStore


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def pairing(clock: VirtualClock) -> Pairing:
    return Pairing(MemoryPairingStore(), clock)


def new_request(p: Pairing, sender: str, account: str = "default") -> PairingRequest:
    ch = p.challenge(account, sender, sender.upper())
    assert ch.outcome == "new"
    assert ch.request is not None
    return ch.request


# --- codes ------------------------------------------------------------------------------


def test_alphabet_has_no_look_alikes() -> None:
    assert len(ALPHABET) == 32
    assert len(set(ALPHABET)) == 32
    assert not set("0O1I") & set(ALPHABET)
    assert CODE_LENGTH == 8


def test_codes_use_only_the_alphabet_and_have_length_8() -> None:
    codes = [new_code(set()) for _ in range(300)]
    for c in codes:
        assert len(c) == 8
        assert set(c) <= set(ALPHABET), c
    assert len(set(codes)) == len(codes)  # 32**8 codes: collisions here mean a broken RNG


def test_new_code_skips_taken_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = iter("AAAAAAAA" + "AAAAAAAA" + "BBBBBBBB")

    class FakeSecrets:
        @staticmethod
        def choice(seq: str) -> str:
            return next(stream)

    monkeypatch.setattr(codes_module, "secrets", FakeSecrets)
    assert new_code({"AAAAAAAA"}) == "BBBBBBBB"


def test_normalize_code() -> None:
    assert normalize_code("  abcd2345\n") == "ABCD2345"
    assert normalize_code("AbCd2345") == "ABCD2345"


# --- challenge --------------------------------------------------------------------------


def test_challenge_new_then_pending_with_same_request(pairing: Pairing) -> None:
    first = pairing.challenge("default", "wxid_alice", "Alice")
    assert first.outcome == "new"
    assert first.request is not None
    assert first.request.sender_id == "wxid_alice"
    assert first.request.sender_name == "Alice"
    assert first.request.expires_at - first.request.created_at == 3600
    again = pairing.challenge("default", "wxid_alice", "Alice")
    assert again.outcome == "pending"
    assert again.request == first.request
    assert pairing.list("default") == [first.request]


def test_challenge_avoids_codes_pending_on_any_account(
    pairing: Pairing, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = iter("AAAAAAAA" + "AAAAAAAA" + "BBBBBBBB")

    class FakeSecrets:
        @staticmethod
        def choice(seq: str) -> str:
            return next(stream)

    monkeypatch.setattr(codes_module, "secrets", FakeSecrets)
    assert new_request(pairing, "wxid_a", account="default").code == "AAAAAAAA"
    assert new_request(pairing, "wxid_b", account="work").code == "BBBBBBBB"


async def test_cap_of_three_never_evicts(pairing: Pairing, clock: VirtualClock) -> None:
    reqs = [new_request(pairing, s) for s in ("wxid_a", "wxid_b", "wxid_c")]
    capped = pairing.challenge("default", "wxid_d", "D")
    assert capped.outcome == "capped"
    assert capped.request is None
    assert pairing.list("default") == reqs
    # A pending sender is still "pending", not capped.
    assert pairing.challenge("default", "wxid_a", "A").outcome == "pending"
    # Another account has its own cap.
    assert pairing.challenge("work", "wxid_d", "D").outcome == "new"
    # Once one request is handled, there is room again.
    pairing.deny(reqs[0].code)
    assert pairing.challenge("default", "wxid_d", "D").outcome == "new"


def test_max_pending_is_configurable(clock: VirtualClock) -> None:
    p = Pairing(MemoryPairingStore(), clock, max_pending=1)
    new_request(p, "wxid_a")
    assert p.challenge("default", "wxid_b", "B").outcome == "capped"


async def test_requests_expire_after_one_hour(pairing: Pairing, clock: VirtualClock) -> None:
    old = [new_request(pairing, s) for s in ("wxid_a", "wxid_b", "wxid_c")]
    await clock.advance(3599)
    assert pairing.list() == old
    assert pairing.challenge("default", "wxid_a", "A").outcome == "pending"
    await clock.advance(2)  # 3601 s after creation
    assert pairing.list() == []
    again = pairing.challenge("default", "wxid_a", "A")
    assert again.outcome == "new"  # a fresh request, and the cap freed up
    assert again.request is not None
    assert again.request.code != old[0].code
    assert pairing.challenge("default", "wxid_d", "D").outcome == "new"
    with pytest.raises(PairingError, match="no pending pairing request"):
        pairing.approve(old[1].code)


async def test_approving_an_expired_code_explains(clock: VirtualClock) -> None:
    store = MemoryPairingStore()
    p = Pairing(store, clock)
    r = new_request(p, "wxid_a")
    await clock.advance(3601)
    with pytest.raises(PairingError) as err:
        p.approve(r.code)
    msg = str(err.value)
    assert "expired" in msg
    assert "1 hour" in msg
    assert "wechat-sdk pairing list" in msg
    assert not p.is_approved("default", "wxid_a")


# --- approve / deny / revoke ------------------------------------------------------------


def test_approve_case_insensitive(pairing: Pairing, clock: VirtualClock) -> None:
    r = new_request(pairing, "wxid_alice")
    assert not pairing.is_approved("default", "wxid_alice")
    got = pairing.approve(f"  {r.code.lower()} ")
    assert got.sender_id == "wxid_alice"
    assert got.account_id == "default"
    assert got.approved_at == clock.now()
    assert pairing.is_approved("default", "wxid_alice")
    assert pairing.list() == []
    assert [a.sender_id for a in pairing.approved("default")] == ["wxid_alice"]


def test_unknown_code_error_is_helpful(pairing: Pairing) -> None:
    with pytest.raises(PairingError) as err:
        pairing.approve("abcd2345")
    assert str(err.value) == (
        'no pending pairing request with code "ABCD2345" '
        "(codes expire after 1 hour; list them with: wechat-sdk pairing list)"
    )
    with pytest.raises(PairingError, match="wechat-sdk pairing list --account work"):
        pairing.deny("ABCD2345", account_id="work")


def test_approving_twice_fails_the_second_time(pairing: Pairing) -> None:
    r = new_request(pairing, "wxid_alice")
    pairing.approve(r.code)
    with pytest.raises(PairingError, match="no pending pairing request"):
        pairing.approve(r.code)


def test_deny_removes_request_without_approving(pairing: Pairing) -> None:
    r = new_request(pairing, "wxid_alice")
    assert pairing.deny(r.code.lower()) == r
    assert pairing.list() == []
    assert not pairing.is_approved("default", "wxid_alice")
    with pytest.raises(PairingError):
        pairing.deny(r.code)


def test_revoke(pairing: Pairing) -> None:
    pairing.approve(new_request(pairing, "wxid_alice").code)
    assert pairing.revoke("default", "wxid_alice") is True
    assert not pairing.is_approved("default", "wxid_alice")
    assert pairing.revoke("default", "wxid_alice") is False
    assert pairing.approved("default") == []
    # Revoked senders are challenged again.
    assert pairing.challenge("default", "wxid_alice", "Alice").outcome == "new"


@pytest.mark.parametrize("written", [" wxid_alice ", "WeChat:wxid_alice", "wx: wxid_alice"])
def test_revoke_takes_the_sender_as_allow_from_takes_an_entry(
    pairing: Pairing, written: str
) -> None:
    # the id as the owner copies it from allowFrom ("wechat:wxid_alice") found no approval
    pairing.approve(new_request(pairing, "wxid_alice").code)
    assert pairing.revoke("default", written) is True
    assert not pairing.is_approved("default", "wxid_alice")


@pytest.mark.parametrize("written", ["", "  ", "*", "wechat:"])
def test_revoke_wants_one_sender(pairing: Pairing, written: str) -> None:
    with pytest.raises(PairingError, match="expected one sender's WeChat id"):
        pairing.revoke("default", written)


async def test_a_code_is_pending_until_it_expires_or_is_approved_or_denied(
    pairing: Pairing, clock: VirtualClock
) -> None:
    approved, denied, expiring = (new_request(pairing, s) for s in ("wxid_a", "wxid_b", "wxid_c"))
    assert all(pairing.is_pending(r.code) for r in (approved, denied, expiring))
    assert pairing.is_pending(approved.code.lower())
    pairing.approve(approved.code)
    pairing.deny(denied.code)
    assert not pairing.is_pending(approved.code) and not pairing.is_pending(denied.code)
    assert pairing.is_pending(expiring.code)  # (before its hour is up)
    await clock.advance(3600)
    assert not pairing.is_pending(expiring.code)
    assert not pairing.is_pending("ABCD2345")


def test_account_scoping(pairing: Pairing) -> None:
    r = new_request(pairing, "wxid_alice", account="work")
    new_request(pairing, "wxid_bob", account="default")
    assert [x.sender_id for x in pairing.list("work")] == ["wxid_alice"]
    assert len(pairing.list()) == 2
    with pytest.raises(PairingError) as err:
        pairing.approve(r.code, account_id="default")
    assert 'belongs to account "work"' in str(err.value)
    assert "--account work" in str(err.value)
    with pytest.raises(PairingError):
        pairing.deny(r.code, account_id="default")
    assert pairing.list("work") == [r]  # untouched
    got = pairing.approve(r.code, account_id="work")
    assert got.account_id == "work"
    assert pairing.is_approved("work", "wxid_alice")
    assert not pairing.is_approved("default", "wxid_alice")
    assert pairing.approved("default") == []


def test_cli_process_approval_reaches_gateway_at_once(tmp_path: Path, clock: VirtualClock) -> None:
    path = tmp_path / "state" / "wechat-sdk.sqlite3"
    with SqliteStore(path) as gw_store, SqliteStore(path) as cli_store:
        gateway = Pairing(gw_store.pairing, clock)
        cli = Pairing(cli_store.pairing, clock)
        r = new_request(gateway, "wxid_alice")
        assert cli.list() == [r]
        cli.approve(r.code.lower())
        assert gateway.is_approved("default", "wxid_alice")
        assert gateway.challenge("default", "wxid_bob", "Bob").outcome == "new"


# --- messages ---------------------------------------------------------------------------


def test_pairing_message_default_account() -> None:
    text = pairing_message("Molty", "wxid_alice", "ABCD2345", "default", "default")
    assert "Molty" in text
    assert "wxid_alice" in text
    assert "ABCD2345" in text
    assert "wechat-sdk pairing approve ABCD2345\n" in text
    assert "--account" not in text
    assert "1 hour" in text


def test_pairing_message_other_account() -> None:
    text = pairing_message("Molty", "wxid_alice", "ABCD2345", "work", "default")
    assert "wechat-sdk pairing approve ABCD2345 --account work" in text


def test_owner_notice() -> None:
    r = PairingRequest("ABCD2345", "work", "wxid_alice", "Alice", 0.0, 3600.0)
    text = owner_notice(r, "default")
    assert "Alice (wxid_alice)" in text
    assert "ABCD2345" in text
    assert "wechat-sdk pairing approve ABCD2345 --account work" in text
    assert "wechat-sdk pairing deny ABCD2345 --account work" in text
    plain = owner_notice(PairingRequest("ABCD2345", "default", "wxid_a", "A", 0, 3600), "default")
    assert "--account" not in plain


def test_a_request_keeps_a_long_name_cut_and_a_blank_one_as_the_senders_id(
    pairing: Pairing,
) -> None:
    long = pairing.challenge("default", "wxid_long", "Mom " + "x" * 500).request
    assert long is not None and long.sender_name == "Mom " + "x" * 59 + "…"
    blank = pairing.challenge("default", "wxid_blank", "\u202e\n\t ").request
    assert blank is not None and blank.sender_name == "wxid_blank"


def test_challenge_uses_configured_ttl(clock: VirtualClock) -> None:
    p = Pairing(MemoryPairingStore(), clock, ttl_s=60)
    r = new_request(p, "wxid_a")
    assert r.expires_at == clock.now() + 60


def test_an_owner_names_an_account_as_the_cli_and_the_http_api_take_it(
    pairing: Pairing,
) -> None:
    # " Work " and "WORK" matched no request of "work": an empty list, "belongs to account
    # "work", not "WORK"" (asked_account_id is the one rule, as for --account)
    alice = new_request(pairing, "wxid_alice", account="work")
    bob = new_request(pairing, "wxid_bob", account="work")
    assert pairing.list(" Work ") == [alice, bob]
    assert pairing.approve(alice.code, account_id="WORK").account_id == "work"
    assert pairing.deny(bob.code, account_id="Work") == bob
    assert [a.sender_id for a in pairing.approved(" work")] == ["wxid_alice"]
    assert pairing.revoke("Work ", "wxid_alice") is True
    with pytest.raises(ValueError, match="use 1-64 characters from a-z, 0-9, _ and -"):
        pairing.list("my work")
