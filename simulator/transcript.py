"""One line of the simulated world's transcript: a message in or out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, init=False)
class TranscriptEntry:
    """One message in or out, as the scenario runner prints it."""

    t: float
    direction: Literal["in", "out"]
    account: str
    sender: str
    to: str | None
    room: str | None
    text: str | None
    media: dict[str, Any] | None = None
    message_id: str = ""

    def __init__(
        self,
        t: float,
        direction: Literal["in", "out"],
        account: str,
        sender: str,
        to: str | None,
        room: str | None,
        text: str | None,
        media: dict[str, Any] | None = None,
        message_id: str = "",
    ) -> None:
        # the __init__ dataclass writes for a frozen class sets each field with its own
        # object.__setattr__ call, which made an entry cost as much as the rest of
        # recording a message; this one fills the instance dict at once (the same fields,
        # in the same order; a test checks it matches the fields above)
        self.__dict__.update(
            t=t,
            direction=direction,
            account=account,
            sender=sender,
            to=to,
            room=room,
            text=text,
            media=media,
            message_id=message_id,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "direction": self.direction,
            "account": self.account,
            "from": self.sender,
            "to": self.to,
            "room": self.room,
            "text": self.text,
            "media": self.media,
        }
