"""quick_init: the same constructor as the dataclass one, quicker, and the class stays frozen."""

from __future__ import annotations

import dataclasses
import inspect
import pickle

import pytest

from wechat_sdk._frozen import quick_init
from wechat_sdk.agent import AgentTurn, AllowedTools, HistoryEntry
from wechat_sdk.outbound.pipeline import OutboundMessage
from wechat_sdk.puppet import FileInfo, Message, MessageEvent, MessageKind


def plain_twin(cls: type) -> type:
    """The same fields, with the __init__ dataclasses writes."""
    fields = [(f.name, f.type, f) for f in dataclasses.fields(cls)]
    twin = dataclasses.make_dataclass(cls.__name__, fields, frozen=True, slots=True)
    return twin


@pytest.mark.parametrize("cls", [Message, MessageEvent, HistoryEntry, AgentTurn, OutboundMessage])
def test_the_signature_is_the_dataclass_one(cls: type) -> None:
    assert str(inspect.signature(cls)) == str(inspect.signature(plain_twin(cls)))


def test_fields_defaults_and_factories_are_set() -> None:
    m = Message("m1", MessageKind.IMAGE, "wxid_a", file=FileInfo("a.png", 3))
    assert (m.id, m.kind, m.talker_id, m.text, m.room_id, m.timestamp) == (
        "m1",
        MessageKind.IMAGE,
        "wxid_a",
        "",
        None,
        0.0,
    )
    assert m.file == FileInfo("a.png", 3)
    one = AgentTurn("default", "direct", "a", "A", "hi")
    two = AgentTurn("default", "direct", "b", "B", "")
    assert isinstance(one.tools, AllowedTools) and one.tools is not two.tools  # a fresh one each
    mine = AllowedTools()
    assert AgentTurn("default", "direct", "a", "A", "hi", tools=mine).tools is mine
    with pytest.raises(TypeError):
        Message("m1", MessageKind.TEXT)  # type: ignore[call-arg]  (talker_id is required)


def test_the_class_stays_frozen_comparable_hashable_and_picklable() -> None:
    e = HistoryEntry("user", "a", "A", "hi", 1.0, "m1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.text = "changed"  # type: ignore[misc]
    assert e == HistoryEntry("user", "a", "A", "hi", 1.0, "m1") and hash(e) == hash(
        HistoryEntry("user", "a", "A", "hi", 1.0, "m1")
    )
    assert dataclasses.replace(e, text="new").text == "new"
    assert pickle.loads(pickle.dumps(e)) == e
    assert repr(MessageEvent("m1")) == "MessageEvent(message_id='m1')"


def test_only_frozen_slotted_dataclasses_without_post_init() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        x: int

    @dataclasses.dataclass(slots=True)
    class NotFrozen:
        x: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class PostInit:
        x: int

        def __post_init__(self) -> None:
            pass

    for cls in (NoSlots, NotFrozen, PostInit):
        with pytest.raises(TypeError, match="quick_init"):
            quick_init(cls)
