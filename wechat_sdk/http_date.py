"""The time an HTTP date header names (``Date``, ``Retry-After``)."""

from __future__ import annotations

import datetime
import email.utils

__all__ = ["http_date"]


def http_date(value: str | None) -> float | None:
    """Epoch seconds of an HTTP date (always GMT: ``Sun, 06 Nov 1994 08:49:37 GMT``), None
    when ``value`` names none.

    >>> http_date("Sun, 06 Nov 1994 08:49:37 GMT")
    784111777.0
    >>> http_date("soon") is None
    True
    """
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()
