"""A user message iLink delivers again under a new ``message_id``: known by what its
sender said, and when (the id dedupe of the state and the gateway cannot see it).

iLink is known to deliver one message twice, seconds apart, sometimes under a new
``message_id`` (and a new ``context_token``): the copy has the same ``from_user_id``, the
same ``create_time_ms`` (the user's own send time) and the same items. Each message is
recorded in the account's durable state with its :func:`copy_key`, for as long as the
message is kept (:meth:`~wechat_sdk.adapters.ilink.state.ILinkState.record`): a copy is
known as its original's, a restart between the two copies included. A message without
``create_time_ms`` is never taken for a copy.
"""

from __future__ import annotations

import hashlib
import json

from wechat_sdk.adapters.ilink.wire import WeixinMessage

__all__ = ["copy_key"]


def copy_key(msg: WeixinMessage) -> str | None:
    """What a copy of ``msg`` has alike: its sender, its ``create_time_ms`` and its items
    (an item's own ``msg_id`` left out: it is the delivery's). None without a time."""
    if not msg.create_time_ms:
        return None
    items = [item.model_dump(mode="json", exclude={"msg_id"}) for item in msg.item_list or ()]
    said = json.dumps([msg.from_user_id, msg.create_time_ms, items], sort_keys=True)
    return hashlib.sha256(said.encode()).hexdigest()
