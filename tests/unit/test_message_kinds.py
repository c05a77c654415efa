"""Message kinds and their words: one table on MessageKind, read both ways."""

from __future__ import annotations

from typing import get_args

import pytest

from wechat_sdk.puppet import MediaWord, MessageKind


@pytest.mark.parametrize("kind", [k for k in MessageKind if k.has_file])
def test_every_file_kind_comes_back_from_its_word(kind: MessageKind) -> None:
    assert MessageKind.from_media_word(kind.media_word) is kind


def test_every_word_names_a_file_kind() -> None:
    for word in get_args(MediaWord):
        assert MessageKind.from_media_word(word).has_file
        assert MessageKind.from_media_word(word).media_word == word


def test_a_word_it_does_not_know_is_an_attachment() -> None:
    assert MessageKind.from_media_word("document") is MessageKind.ATTACHMENT
    assert MessageKind.TEXT.media_word == "file"


def test_an_agent_sees_a_sticker_as_an_image() -> None:
    assert MessageKind.EMOTICON.media_word == "emoticon"
    assert MessageKind.EMOTICON.media_item_kind == "image"
    assert [
        k.media_item_kind for k in MessageKind if k.has_file and k.media_word != "emoticon"
    ] == [k.media_word for k in MessageKind if k.has_file and k.media_word != "emoticon"]
