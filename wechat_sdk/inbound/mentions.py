"""Does a group message mention the bot, and the text with that mention removed.

WeChat mobile writes ``@name\u2005``, desktop ``@name `` and a mention at the very end has
nothing after it. Puppets may also give a list of mentioned ids; either form counts.
Names are escaped before use in a pattern: display names are user-controlled text.

A quote may come written into the text (:func:`split_quote`): only the message's own text
after it can mention the bot, never the quoted message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

__all__ = [
    "AT_ALL_NAMES",
    "is_mentioned",
    "mentions_all",
    "split_quote",
    "strip_leading_mention",
]

AT_ALL_NAMES = ("所有人", "all", "All", "ALL")
_END = r"(?=\u2005| |$)"
#: how WeChat writes a quote into the quoting message's text for a client that shows no
#: quotes, as Wechaty's puppets (web, padlocal and the others) pass it on:
#: ``「Name：quoted text」``, this rule on a line of its own, then the message's own text
QUOTE_RULE = "\n- - - - - - - - - - - - - - -\n"


@lru_cache(maxsize=1024)
def _pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    # longest first, so "@Bot Helper" wins over "@Bot"
    alts = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"@(?:{alts}){_END}")


@lru_cache(maxsize=1024)
def _leading(names: tuple[str, ...]) -> re.Pattern[str]:
    alts = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"^\s*@(?:{alts})(?:\u2005| |$)[\s\u2005]*")


def _clean(names: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(sorted({n.strip() for n in names if n and n.strip()}))


def mentions_all(text: str) -> bool:
    """True when the text has ``@所有人`` / ``@all``."""
    return bool(_pattern(AT_ALL_NAMES).search(text))


def is_mentioned(
    text: str,
    mention_ids: Iterable[str],
    bot_id: str | None,
    names: Iterable[str | None],
    *,
    mention_all_counts: bool = False,
) -> bool:
    """True when the bot is mentioned by id or by ``@name``/room alias in the text.

    ``@all`` counts only when ``mention_all_counts``.
    """
    if bot_id is not None and bot_id in set(mention_ids):
        return True
    clean = _clean(names)
    if clean and _pattern(clean).search(text):
        return True
    return mention_all_counts and mentions_all(text)


def strip_leading_mention(text: str, names: Iterable[str | None]) -> str:
    """Remove the bot's mention at the start of the text (one, with its separator)."""
    clean = _clean(names)
    if not clean:
        return text.strip()
    return _leading(clean).sub("", text, count=1).strip()


def split_quote(text: str) -> tuple[str, str]:
    """A text that starts with a quote written into it (``「Name：quoted」``, then
    :data:`QUOTE_RULE`), as its quote (with the rule) and its own text after it; any other
    text as ``("", text)``. The quote ends at the first ``」`` followed by the rule.

    >>> split_quote("「Bob：@Bot hi」\\n- - - - - - - - - - - - - - -\\nthanks")
    ('「Bob：@Bot hi」\\n- - - - - - - - - - - - - - -\\n', 'thanks')
    """
    if text.startswith("「"):
        end = text.find("」" + QUOTE_RULE)
        if end > 0 and "：" in text[1:end]:
            cut = end + 1 + len(QUOTE_RULE)
            return text[:cut], text[cut:]
    return "", text
