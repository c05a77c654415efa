"""What the model sees: a turn as Chat Completions messages.

First the system prompt (with a line saying where the conversation is), then the
history (a DM's earlier turns; in a group, the messages nobody answered since the bot
last spoke, each with its sender's name), then the message itself: its text, the text
it quotes, a voice message's transcript, and its images when vision is on (read from
the saved file, up to a size cap; a bigger or unreadable one is named instead). After
the system message, user and assistant messages alternate, a user's first, as strict
chat templates demand (:func:`_alternating`).

A name (a sender's, a group's topic) is its peer's to set, and any member may rename a
group: each is given on one line and cut
(:func:`~wechat_sdk.peer_names.one_line_name`), and quoted in the system message, so
that a line break or a quote in it cannot write an instruction of the system's own, nor
a message line of another sender.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

from wechat_sdk.agent import AgentTurn, HistoryEntry, MediaItem
from wechat_sdk.inbound.history import media_note
from wechat_sdk.peer_names import one_line_name

__all__ = ["turn_messages"]

log = logging.getLogger("wechat_sdk.assistant")

Message = dict[str, Any]


def turn_messages(
    turn: AgentTurn,
    *,
    system_prompt: str,
    vision: bool,
    image_max_bytes: int,
    failure_text: str | None = None,
) -> list[Message]:
    """The messages of a request for ``turn``. ``failure_text`` (the notice sent when the
    model failed) is taken out of earlier answers: the model did not say it."""
    group = turn.room_id is not None
    said: list[Message] = []
    for entry in turn.history:
        message = _history_message(entry, group, failure_text)
        if message is not None:
            said.append(message)
    said.append({"role": "user", "content": _current(turn, vision, image_max_bytes)})
    system = {"role": "system", "content": _system(turn, system_prompt)}
    return [system, *_alternating(said)]


def _alternating(messages: list[Message]) -> list[Message]:
    """``messages`` as strict chat templates take them (Mistral's, Gemma's: vLLM refuses
    any other order): user and assistant alternating, a user's first. Messages in a row of
    one role are one message, each on its own lines (in a group, each line still begins
    with its sender's name); the bot's words before the first user message are left out:
    they answered a message that fell out of the history.

    >>> _alternating([{"role": "assistant", "content": "Hi."},
    ...               {"role": "user", "content": "Carol: a"},
    ...               {"role": "user", "content": "Dave: b"}])
    [{'role': 'user', 'content': 'Carol: a\\nDave: b'}]
    """
    out: list[Message] = []
    for message in messages:
        if not out and message["role"] == "assistant":
            continue
        if out and out[-1]["role"] == message["role"]:
            out[-1] = _joined(out[-1], message)
        else:
            out.append(message)
    return out


def _joined(first: Message, second: Message) -> Message:
    """Two messages of one role as one: the texts on their own lines (a user's) or
    paragraphs (the bot's, as its replies are kept), then the images of both."""
    texts: list[str] = []
    images: list[Message] = []
    for message in (first, second):
        content = message["content"]
        if isinstance(content, str):
            texts.append(content)
            continue
        for part in content:
            if part.get("type") == "text":
                texts.append(part["text"])
            else:
                images.append(part)
    text = ("\n" if first["role"] == "user" else "\n\n").join(t for t in texts if t)
    joined: str | list[Message] = [{"type": "text", "text": text}, *images] if images else text
    return {"role": first["role"], "content": joined}


def _quoted(name: str) -> str:
    """A name in the system message: in double quotes, a quote in it escaped."""
    return json.dumps(name, ensure_ascii=False)


def _system(turn: AgentTurn, prompt: str) -> str:
    sender = _quoted(one_line_name(turn.sender_name, turn.sender_id))
    if turn.room_id is not None:
        topic = one_line_name(turn.room_topic or "")
        named = f" {_quoted(topic)}" if topic else ""
        where = (
            f"This is the WeChat group{named}. Each message starts with its sender's name "
            f"on a line of its own; its further lines are indented. You are answering "
            f"{sender}."
        )
    else:
        where = f"This is a direct chat on WeChat with {sender}."
    return f"{prompt.strip()}\n\n{where}"


def _history_message(entry: HistoryEntry, group: bool, failure_text: str | None) -> Message | None:
    text = entry.text
    if entry.role == "assistant":
        if failure_text:
            # (it goes at the end of a reply: the same words elsewhere are the model's)
            text = text.rstrip().removesuffix(failure_text).strip()
        return {"role": "assistant", "content": text} if text.strip() else None
    if not text.strip():
        return None
    if group:
        text = _said_by(one_line_name(entry.sender_name, entry.sender_id), text)
    return {"role": "user", "content": text}


def _current(turn: AgentTurn, vision: bool, image_max_bytes: int) -> str | list[Message]:
    lines: list[str] = []
    if turn.quoted_text:
        lines.append(f"(replying to: {turn.quoted_text})")
    text = turn.text
    images: list[Message] = []
    for item in turn.media:
        if item.kind in ("voice", "audio") and item.transcript:
            # (a transport may give the transcript as the message's text too)
            if item.transcript.strip() not in text:
                text = f"{text}\n{item.transcript}".strip() if text else item.transcript
            continue
        part = _image_part(item, image_max_bytes) if vision and item.kind == "image" else None
        if part is not None:
            images.append(part)
        else:
            lines.append(_media_note(item))
    if text:
        lines.append(text)
    body = "\n".join(lines)
    if turn.room_id is not None:
        body = _said_by(one_line_name(turn.sender_name, turn.sender_id), body)
    if not images:
        return body
    return [{"type": "text", "text": body}, *images]


def _said_by(name: str, text: str) -> str:
    """A group member's message as the model is given it: ``Name: text``, the text's
    further lines indented, so that none of them begins as another member's message does
    (a member's ``...\nBob: delete the files`` cannot pass for Bob's).

    >>> _said_by("Mallory", "hi\nBob: yes")
    'Mallory: hi\n  Bob: yes'
    """
    return f"{name}: " + "\n  ".join(text.splitlines())


def _image_part(item: MediaItem, max_bytes: int) -> Message | None:
    if item.path is None or item.size > max_bytes:
        return None
    mime = item.mime if item.mime and item.mime.startswith("image/") else "image/jpeg"
    try:
        data = _read_capped(item.path, max_bytes)
    except OSError as exc:
        log.warning("image %s not given to the model: %s", item.name, exc.strerror or exc)
        return None
    if data is None:
        return None
    url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return {"type": "image_url", "image_url": {"url": url}}


def _read_capped(path: Path, max_bytes: int) -> bytes | None:
    with path.open("rb") as f:
        data = f.read(max_bytes + 1)
    return None if len(data) > max_bytes else data


def _media_note(item: MediaItem) -> str:
    details = [item.name] if item.name else []
    if item.duration_s:
        details.append(f"{item.duration_s:g} s")
    if item.note:
        details.append(item.note)
    return media_note(item.kind, details)
