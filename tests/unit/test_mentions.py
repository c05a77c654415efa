"""Mention detection and stripping: every WeChat mention form, names that are not regexes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wechat_sdk.inbound.mentions import (
    is_mentioned,
    mentions_all,
    split_quote,
    strip_leading_mention,
)

SEPARATORS = ("\u2005", " ")

# names full of regex metacharacters, emoji (with ZWJ sequences) and CJK
_NAME_CHARS = st.sampled_from(
    [*".*+?^$()[]{}|\\-/#&", "😀", "👩\u200d💻", "🇨🇳", *"小助手机器人龙", *"abcXYZ09_"]
)
names = st.lists(_NAME_CHARS, min_size=1, max_size=12).map("".join)
# a name may hold inner spaces ("Bot Helper"), never at its ends (names are trimmed)
spaced_names = st.builds(lambda a, b: f"{a} {b}", names, names)
any_name = st.one_of(names, spaced_names)
rest_text = st.text(st.characters(codec="utf-8"), max_size=30)
letters = st.text(st.characters(categories=["Lu", "Ll", "Lo"]), min_size=1, max_size=5)


@given(name=any_name, sep=st.sampled_from(SEPARATORS), rest=rest_text)
def test_name_followed_by_a_separator_is_a_mention(name: str, sep: str, rest: str) -> None:
    assert is_mentioned(f"@{name}{sep}{rest}", (), None, [name])


@given(name=any_name, before=rest_text)
def test_name_at_the_end_of_the_text_is_a_mention(name: str, before: str) -> None:
    assert is_mentioned(f"{before} @{name}", (), None, [name])


@given(name=any_name, tail=letters)
def test_name_followed_by_other_letters_is_not_a_mention(name: str, tail: str) -> None:
    assert not is_mentioned(f"@{name}{tail} hello", (), None, [name])


@given(name=names, other=names)
def test_metacharacters_in_the_name_are_literal(name: str, other: str) -> None:
    # the name as a regex would match "other"; as text it must not
    if other != name:
        assert not is_mentioned(f"@{other}\u2005hi", (), None, [name])


@given(name=any_name, sep=st.sampled_from(SEPARATORS), rest=rest_text)
def test_strip_removes_only_the_leading_mention(name: str, sep: str, rest: str) -> None:
    text = f"@{name}{sep}{rest} @{name}{sep}again"
    assert strip_leading_mention(text, [name]) == f"{rest} @{name}{sep}again".strip()


@given(name=any_name, rest=rest_text)
def test_strip_leaves_text_without_a_leading_mention_alone(name: str, rest: str) -> None:
    text = f"x{rest} @{name}\u2005tail"
    assert strip_leading_mention(text, [name]) == text.strip()


def test_mention_forms() -> None:
    assert is_mentioned("@Bot\u2005hi", (), None, ["Bot"])  # mobile
    assert is_mentioned("@Bot hi", (), None, ["Bot"])  # desktop
    assert is_mentioned("hi @Bot", (), None, ["Bot"])  # at the end
    assert not is_mentioned("@Botty hi", (), None, ["Bot"])
    assert not is_mentioned("Bot hi", (), None, ["Bot"])
    assert not is_mentioned("@bot hi", (), None, ["Bot"])  # names match exactly


def test_mention_by_id_needs_no_text() -> None:
    assert is_mentioned("hi", ("wxid_x", "wxid_bot"), "wxid_bot", [])
    assert not is_mentioned("hi", ("wxid_x",), "wxid_bot", ["Bot"])
    assert not is_mentioned("hi", ("wxid_bot",), None, [])


def test_any_of_several_names_counts_and_empty_names_are_ignored() -> None:
    names = [None, "", "  ", "Bot default", "小助手"]
    assert is_mentioned("@小助手\u2005天气", (), None, names)
    assert is_mentioned("@Bot default\u2005hi", (), None, names)
    assert not is_mentioned("@ hi", (), None, names)
    assert not is_mentioned("hi", (), None, [None, ""])


def test_longest_name_is_stripped_first() -> None:
    names = ["Bot", "Bot Helper"]
    assert strip_leading_mention("@Bot Helper\u2005what's up", names) == "what's up"
    assert strip_leading_mention("@Bot\u2005what's up", names) == "what's up"


def test_strip_without_names_only_trims() -> None:
    assert strip_leading_mention("  @Bot hi ", []) == "@Bot hi"


@pytest.mark.parametrize("text", ["@所有人\u2005开会", "@all meeting", "hello @All", "@ALL"])
def test_at_all_is_recognised(text: str) -> None:
    assert mentions_all(text)
    assert not is_mentioned(text, (), "wxid_bot", ["Bot"])
    assert is_mentioned(text, (), "wxid_bot", ["Bot"], mention_all_counts=True)


@pytest.mark.parametrize("text", ["@allen hi", "@所有人们", "all hands", "@al"])
def test_text_that_only_looks_like_at_all_is_not(text: str) -> None:
    assert not mentions_all(text)
    assert not is_mentioned(text, (), "wxid_bot", ["Bot"], mention_all_counts=True)


def test_a_quote_written_into_the_text_is_split_from_the_messages_own_text() -> None:
    rule = "\n- - - - - - - - - - - - - - -\n"
    assert split_quote(f"「Bob：@Bot hi」{rule}thanks") == (f"「Bob：@Bot hi」{rule}", "thanks")
    # the quote ends at its first 」 before the rule; the own text may hold one too
    assert split_quote(f"「Bob：a」{rule}b」{rule}c") == (f"「Bob：a」{rule}", f"b」{rule}c")
    # not the form a puppet writes (no rule, no 「 first, no Name：): the text as it is
    for text in ("「Bob：@Bot hi」 thanks", f"x「Bob：hi」{rule}y", f"「@Bot hi」{rule}y", ""):
        assert split_quote(text) == ("", text)
