"""allowFrom entries: normalised once when the config is read, matched exactly on the WeChat
contact id (the inbound pipeline asks `account.allow_from.allows(sender)`)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["WILDCARD", "AllowList", "normalize_allow_entry"]

WILDCARD = "*"
_PREFIXES = ("wechat:", "wx:")


def normalize_allow_entry(entry: str | int) -> str:
    """Trim, turn numbers into text, strip a ``wechat:``/``wx:`` prefix (any case).

    >>> normalize_allow_entry(" WeChat:wxid_abc ")
    'wxid_abc'
    """
    text = str(entry).strip()
    lowered = text.lower()
    for prefix in _PREFIXES:
        if lowered.startswith(prefix):
            return text[len(prefix) :].strip()
    return text


class AllowList:
    """A set of contact ids, or everyone (``"*"``). Display names never match."""

    __slots__ = ("_ids", "_wildcard")

    def __init__(self, entries: Iterable[str | int] | None = None) -> None:
        ids = {normalize_allow_entry(e) for e in entries or ()}
        ids.discard("")
        self._wildcard = WILDCARD in ids
        ids.discard(WILDCARD)
        self._ids = frozenset(ids)

    @property
    def wildcard(self) -> bool:
        return self._wildcard

    @property
    def ids(self) -> frozenset[str]:
        return self._ids

    def __bool__(self) -> bool:
        return self._wildcard or bool(self._ids)

    def allows(self, contact_id: str, extra: Iterable[str] = ()) -> bool:
        """True when ``contact_id`` is listed, the list has ``"*"``, or it is in ``extra``."""
        if self._wildcard or contact_id in self._ids:
            return True
        return contact_id in set(extra)

    def __repr__(self) -> str:
        items = sorted(self._ids) + (["*"] if self._wildcard else [])
        return f"AllowList({items!r})"
