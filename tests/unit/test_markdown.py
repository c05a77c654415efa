"""Markdown to plain text for WeChat, and the plain/keep switch."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wechat_sdk.outbound.markdown import format_reply, to_plain


@pytest.mark.parametrize(
    ("source", "plain"),
    [
        ("a **bold** word", "a bold word"),
        ("a __strong__ word", "a strong word"),
        ("an *italic* word", "an italic word"),
        ("an _em_ word", "an em word"),
        ("***both*** at once", "both at once"),
        ("**bold with _inner_ em**", "bold with inner em"),
        ("~~struck~~ out", "struck out"),
        ("这是*重点*内容", "这是重点内容"),
        ("这是**重点**内容", "这是重点内容"),
        # an ASCII letter on one side only: emphasis (mixed Chinese and English)
        ("AI**很重要**", "AI很重要"),
        ("第3**条**规则", "第3条规则"),
        ("the **API**s", "the APIs"),
    ],
)
def test_emphasis_markers_are_removed(source: str, plain: str) -> None:
    assert to_plain(source) == plain


@pytest.mark.parametrize(
    "text",
    [
        "call snake_case_name and my_var_x",
        "files __init__.py stay",
        "2 * 3 * 4 = 24",
        "a * b",
        "price_1 and price_2",
        "2*3*4 = 24",
        "x*y*z and 2*3 and 4*5",
        "2**3**4",
        "x**2**y and a*b*c*d",
    ],
)
def test_identifiers_and_arithmetic_are_not_emphasis(text: str) -> None:
    assert to_plain(text) == text


def test_heading_markers_go_and_heading_text_stays() -> None:
    assert to_plain("# Title\n## Sub title ##\nbody") == "Title\nSub title\nbody"


def test_setext_heading_underline_is_dropped() -> None:
    assert to_plain("Title\n=====\nbody") == "Title\nbody"


def test_hash_without_space_is_not_a_heading() -> None:
    assert to_plain("#hashtag here") == "#hashtag here"


def test_link_becomes_label_and_url() -> None:
    assert to_plain("see [the docs](https://x.org/a_b_c)") == "see the docs (https://x.org/a_b_c)"


def test_link_whose_label_is_its_url_becomes_just_the_url() -> None:
    assert to_plain("[https://x.org](https://x.org)") == "https://x.org"


def test_image_becomes_alt_and_url() -> None:
    assert (
        to_plain("![a cat](https://img.example/cat.png)") == "a cat (https://img.example/cat.png)"
    )


def test_autolink_and_bare_url_keep_their_underscores_and_stars() -> None:
    text = "<https://a.example/_x_> and https://b.example/*y*/_z_"
    assert to_plain(text) == "https://a.example/_x_ and https://b.example/*y*/_z_"


def test_inline_code_loses_backticks_but_keeps_markup_inside() -> None:
    assert to_plain("run `pip install **x**` now") == "run pip install **x** now"


def test_escaped_markers_stay_literal() -> None:
    assert to_plain(r"\*not italic\* and 5\_000") == "*not italic* and 5_000"


def test_blockquote_marker_is_kept_and_its_text_cleaned() -> None:
    assert to_plain("> a **quoted** line") == "> a quoted line"


@pytest.mark.parametrize("rule", ["---", "***", "___", "- - -", " * * * "])
def test_horizontal_rule_becomes_a_line_of_dashes(rule: str) -> None:
    assert to_plain(f"above\n\n{rule}\n\nbelow") == "above\n\n———\n\nbelow"


def test_bullets_become_dots_and_numbered_items_stay() -> None:
    source = "- one\n* two\n  + nested **bold**\n1. first\n2) second"
    assert to_plain(source) == "• one\n• two\n  • nested bold\n1. first\n2) second"


def test_fenced_code_is_kept_verbatim_with_its_fence_lines() -> None:
    code = "```python\n# not a heading\nx = a * b * c  # _no_ **change**\n- item\n```"
    assert to_plain(f"Intro **x**\n{code}\nafter *y*") == f"Intro x\n{code}\nafter y"


def test_tilde_fence_is_kept_verbatim() -> None:
    source = "~~~\n**raw**\n~~~"
    assert to_plain(source) == source


def test_unclosed_fence_protects_the_rest() -> None:
    source = "text\n```\n**raw** to the end"
    assert to_plain(source) == source


def test_private_use_characters_in_the_input_survive() -> None:
    source = "odd \ue0007\ue001 **b**"
    assert to_plain(source) == "odd \ue0007\ue001 b"


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        # a span closes at the nearest marker of its kind, as in CommonMark
        ("~~a ~~b~~", "~~a b"),
        ("**a **b**", "**a b"),
        ("__a __b__", "__a b"),
        # openers without closers, many of them, stay as written
        ("[a](" * 50, "[a](" * 50),
        ("**a " * 50, "**a " * 50),
        ("<http:a" * 50, "<http:a" * 50),
        # a link after a stray bracket or opener is still a link
        ("[x [y](https://e.org)", "[x y (https://e.org)"),
        ("<http:a <https://e.org>", "<http:a https://e.org"),
        # deep nesting: three layers peeled, the rest kept
        ("**" * 5 + "x" + "**" * 5, "****x****"),
        ("***x***", "x"),
        # a URL may hold brackets
        ("[f](https://s.example/l?ids[]=1&ids[]=2)", "f (https://s.example/l?ids[]=1&ids[]=2)"),
        ("[local](http://[::1]:8080/health)", "local (http://[::1]:8080/health)"),
        # a code span is a run of backticks up to the next run of its length
        ("```a`", "```a`"),
        ("``a ` b``", "a ` b"),
        ("`a` and ``b`` and `c", "a and b and `c"),
    ],
)
def test_spans_never_reach_past_their_next_marker(text: str, plain: str) -> None:
    assert to_plain(text) == plain


def test_format_reply_plain_converts() -> None:
    assert format_reply("**hi**", "plain") == "hi"


def test_format_reply_keep_returns_the_text_untouched() -> None:
    assert format_reply("**hi** _there_", "keep") == "**hi** _there_"


def test_format_reply_rejects_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="'plain' or 'keep'"):
        format_reply("x", "html")


_PLAIN_PIECES = st.sampled_from([*"ab1. !()/:\n\t\u3000你好", "http://x.y", "www.", "2) "])


@given(st.text() | st.lists(_PLAIN_PIECES).map("".join))
def test_fast_path_for_text_without_markup_matches_the_rules(text: str) -> None:
    from wechat_sdk.outbound.markdown import _to_plain

    assert to_plain(text) == _to_plain(text)
