"""allowFrom entries: normalised once, matched exactly on the contact id."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wechat_sdk.config.allow_from import AllowList, normalize_allow_entry


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("wxid_abc", "wxid_abc"),
        ("  wxid_abc  ", "wxid_abc"),
        ("wx:wxid_abc", "wxid_abc"),
        ("WX:wxid_abc", "wxid_abc"),
        ("wechat:wxid_abc", "wxid_abc"),
        (" WeChat: wxid_abc ", "wxid_abc"),
        ("WECHAT:Wxid_ABC", "Wxid_ABC"),  # only the prefix is case-insensitive
        (12345, "12345"),
        ("*", "*"),
        ("wx:*", "*"),
        ("", ""),
        ("wxid:abc", "wxid:abc"),  # not a prefix we know
    ],
)
def test_normalize_allow_entry(entry: str | int, expected: str) -> None:
    assert normalize_allow_entry(entry) == expected


_PREFIXES = st.sampled_from(["wx:", "wechat:"]).flatmap(
    lambda p: st.lists(st.booleans(), min_size=len(p), max_size=len(p)).map(
        lambda ups: "".join(c.upper() if u else c for c, u in zip(p, ups, strict=True))
    )
)
_IDS = st.from_regex(r"[A-Za-z0-9_\-]{1,30}", fullmatch=True).filter(
    lambda s: not s.lower().startswith(("wx:", "wechat:"))
)


@given(prefix=_PREFIXES, contact=_IDS, pad=st.sampled_from(["", " ", "\t", "  "]))
def test_any_case_prefix_and_padding_give_the_bare_id(prefix: str, contact: str, pad: str) -> None:
    assert normalize_allow_entry(f"{pad}{prefix}{contact}{pad}") == contact
    assert AllowList([f"{pad}{prefix}{contact}"]).allows(contact)


@given(contact=_IDS)
def test_normalizing_a_bare_id_changes_nothing(contact: str) -> None:
    assert normalize_allow_entry(contact) == contact


def test_allow_list_matches_exact_ids_only() -> None:
    allow = AllowList(["wx:wxid_a", 12345, " wxid_b "])
    assert allow.allows("wxid_a")
    assert allow.allows("wxid_b")
    assert allow.allows("12345")
    assert not allow.allows("wxid_A")
    assert not allow.allows("wxid_a ")
    assert not allow.allows("wxid_c")
    assert not allow.wildcard
    assert allow.ids == {"wxid_a", "wxid_b", "12345"}


def test_wildcard_allows_everyone() -> None:
    allow = AllowList(["wxid_a", " * "])
    assert allow.wildcard
    assert allow.allows("anyone")
    assert "*" not in allow.ids


def test_empty_and_blank_entries_allow_nobody() -> None:
    for entries in (None, [], ["", "  ", "wx:"]):
        allow = AllowList(entries)
        assert not allow
        assert not allow.allows("")
        assert not allow.allows("wxid_a")


def test_extra_ids_are_allowed_too() -> None:
    allow = AllowList(["wxid_a"])
    assert allow.allows("wxid_paired", extra=["wxid_paired"])
    assert not allow.allows("wxid_other", extra=["wxid_paired"])


def test_repr_lists_ids_and_wildcard() -> None:
    assert repr(AllowList(["b", "a", "*"])) == "AllowList(['a', 'b', '*'])"
