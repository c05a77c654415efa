"""A user message iLink delivers again under a new ``message_id``: known by what its
sender said, and when (the id dedupe of the state and the gateway cannot see it).

iLink is known to deliver one message twice, seconds apart, sometimes under a new
``message_id`` (and a new ``context_token``): the copy has the same ``from_user_id``, the
same ``create_time_ms`` (the user's own send time) and the same items. The messages taken
in within the last :data:`WITHIN_S` are remembered here by those (in memory only: a
restart between the two copies takes the copy in as a new message); a message without
``create_time_ms`` is never taken for a copy.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict

from wechat_sdk.adapters.ilink.wire import WeixinMessage

__all__ = ["MAX_KEPT", "WITHIN_S", "Copies", "copy_key"]

#: how long a message taken in is remembered (its copies come seconds after it)
WITHIN_S = 600.0
#: the most messages remembered (the oldest forgotten first)
MAX_KEPT = 10_000


def copy_key(msg: WeixinMessage) -> str | None:
    """What a copy of ``msg`` has alike: its sender, its ``create_time_ms`` and its items
    (an item's own ``msg_id`` left out: it is the delivery's). None without a time."""
    if not msg.create_time_ms:
        return None
    items = [item.model_dump(mode="json", exclude={"msg_id"}) for item in msg.item_list or ()]
    said = json.dumps([msg.from_user_id, msg.create_time_ms, items], sort_keys=True)
    return hashlib.sha256(said.encode()).hexdigest()


class Copies:
    """The messages taken in lately, by :func:`copy_key`: key -> (message id, when)."""

    def __init__(self) -> None:
        self._taken: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def original(self, key: str | None, message_id: str, now: float) -> str | None:
        """The id of the message taken in within :data:`WITHIN_S` that this one, under
        another id, is a copy of; None if it is none's."""
        self._forget(now)
        if key is None or (taken := self._taken.get(key)) is None:
            return None
        return taken[0] if taken[0] != message_id else None

    def taken(self, key: str | None, message_id: str, now: float) -> None:
        """A message taken in (the first of its key is its original)."""
        if key is not None and key not in self._taken:
            self._taken[key] = (message_id, now)
            while len(self._taken) > MAX_KEPT:
                self._taken.popitem(last=False)

    def _forget(self, now: float) -> None:
        while self._taken:
            _, (_, at) = next(iter(self._taken.items()))
            if now - at < WITHIN_S:
                return
            self._taken.popitem(last=False)
