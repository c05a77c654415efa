"""What a stop keeps for the next start, as outbox items, and how kept turns are read back.

When the grace period of a stop runs out in the middle of a turn, the account runner keeps
what is left of it in the store's outbox (:class:`~wechat_sdk.stores.base.OutboxStore`):
the messages of a reply that did not go out yet, or, when the agent had not answered yet,
the turn itself, so that the agent is asked again after the restart. Each message is also
journaled there while it goes through the inbound steps (by its id), so that one a kill
cuts short is taken through them again. This module turns those into
:class:`~wechat_sdk.stores.base.OutboxItem` rows and back.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from wechat_sdk.agent import AgentTurn, HistoryEntry, MediaItem, ToolRegistry
from wechat_sdk.outbound.pipeline import OutboundMessage
from wechat_sdk.puppet import Message
from wechat_sdk.stores.base import OutboxItem

__all__ = [
    "OUTBOX_MAX_AGE_S",
    "journaled_message",
    "kept_messages",
    "kept_turn",
    "message_id_of",
    "message_of",
    "turn_from_json",
    "turn_to_json",
]

#: Kept work older than this (seconds; 24 h) when the account is ready again is dropped
#: with a log line instead of going out late.
OUTBOX_MAX_AGE_S = 24 * 3600.0

_TURN_FORMAT = 1


def kept_messages(
    account_id: str,
    conversation_id: str,
    messages: list[OutboundMessage],
    now: float,
    turn: AgentTurn | None = None,
    pairing_code: str | None = None,
) -> list[OutboxItem]:
    """Outbox items for the messages that did not go out, in order: of ``turn``'s reply,
    or of a text that answers no turn (a pairing code, an owner's notice: its request's
    ``pairing_code``)."""
    return [
        OutboxItem(
            account_id=account_id,
            conversation_id=conversation_id,
            kind="file" if m.file is not None else "text",
            created_at=now,
            text=m.text,
            mention_ids=m.mention_ids,
            file=m.file,
            # (the message it answers: see kept._answered)
            turn=turn.message_id or None if turn is not None else None,
            dm=turn is not None and turn.chat_type == "direct",
            pairing_code=pairing_code,
            notice=m.notice,
        )
        for m in messages
    ]


def kept_turn(turn: AgentTurn, now: float) -> OutboxItem:
    """An outbox item for a turn whose agent had not answered: asked again later."""
    return OutboxItem(
        account_id=turn.account_id,
        conversation_id=turn.conversation_id,
        kind="turn",
        created_at=now,
        turn=turn_to_json(turn),
        dm=turn.chat_type == "direct",
    )


def journaled_message(
    account_id: str, message: Message, now: float, claim: str | None = None
) -> OutboxItem:
    """An outbox item for a message on its way through the inbound steps: its id (in
    ``turn``: see :class:`~wechat_sdk.stores.base.OutboxItem`), its conversation and its
    delivery's claim on its dedupe mark."""
    return OutboxItem(
        account_id=account_id,
        conversation_id=message.room_id if message.room_id is not None else message.talker_id,
        kind="message",
        created_at=now,
        turn=message.id,
        dm=message.room_id is None,
        claim=claim,
    )


def message_id_of(item: OutboxItem) -> str | None:
    """The id of the message a ``message`` or ``turn`` item stands for (None for another
    kind, or a turn that cannot be read)."""
    if item.kind == "message":
        return item.turn
    if item.kind == "turn" and item.turn is not None:
        try:
            found = json.loads(item.turn).get("message_id")
        except (ValueError, AttributeError):
            return None
        return found if isinstance(found, str) else None
    return None


def message_of(item: OutboxItem) -> OutboundMessage:
    """The message a ``text`` or ``file`` item holds."""
    return OutboundMessage(
        text=item.text, mention_ids=item.mention_ids, file=item.file, notice=item.notice
    )


def turn_to_json(turn: AgentTurn) -> str:
    """``turn`` as JSON text: its plain fields, its media (paths of the saved files), its
    history, and the names of the tools it allowed."""
    data: dict[str, Any] = {"format": _TURN_FORMAT}
    for f in fields(AgentTurn):
        if f.name not in ("media", "history", "tools"):
            data[f.name] = getattr(turn, f.name)
    data["media"] = [
        {
            **{f.name: getattr(m, f.name) for f in fields(MediaItem)},
            "path": str(m.path) if m.path is not None else None,
        }
        for m in turn.media
    ]
    data["history"] = [
        {f.name: getattr(h, f.name) for f in fields(HistoryEntry)} for h in turn.history
    ]
    data["tools"] = turn.tools.names
    return json.dumps(data, ensure_ascii=False)


def turn_from_json(text: str, tools: ToolRegistry) -> AgentTurn:
    """The turn :func:`turn_to_json` wrote. Its tools are those of ``tools`` (the gateway's
    registry now) that the turn allowed. Raises ValueError when ``text`` is not one."""
    try:
        data = json.loads(text)
        if data.pop("format") != _TURN_FORMAT:
            raise ValueError("unknown format")
        media = tuple(
            MediaItem(**{**m, "path": Path(m["path"]) if m["path"] is not None else None})
            for m in data.pop("media")
        )
        history = tuple(HistoryEntry(**h) for h in data.pop("history"))
        names = data.pop("tools")
        room = data.get("room_id")
        where = f"group {room}" if room is not None else f"DM with {data['sender_id']}"
        return AgentTurn(
            **data, media=media, history=history, tools=tools.allowed(names, where=where)
        )
    except (TypeError, KeyError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a kept turn: {exc}") from exc
