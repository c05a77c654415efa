"""Every log line listed on the "Log lines and reason codes" page is one the code writes.

Each message of the page's table is cut at its first ``<value>``; that fixed start must
appear in a logging format string of the package (``%s``-style), so a renamed or removed
log line fails here until the page follows.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reason-codes.md"
ROW = re.compile(r"^\| (debug|info|warning|error) \| (.+?) \| .+ \|$", re.M)


def documented() -> list[str]:
    messages = []
    for _, cell in ROW.findall(PAGE.read_text(encoding="utf-8")):
        messages.extend(re.findall(r"`([^`]+)`", cell))
    return messages


def source() -> str:
    """The package's code with ``%s``-style placeholders removed."""
    files = (ROOT / "wechat_sdk").rglob("*.py")
    text = "\n".join(p.read_text(encoding="utf-8") for p in files if "_proto" not in p.parts)
    # adjacent string literals ("a " "b") read as one, as Python joins them
    text = re.sub(r'"\s*\n\s*"', "", text)
    return re.sub(r"%[-#0-9.]*[sdrfg]", "", text)


def test_the_page_lists_log_lines() -> None:
    assert len(documented()) >= 25


@pytest.mark.parametrize("message", documented())
def test_documented_log_line_is_in_the_code(message: str) -> None:
    # values (<id>, '<tool>') end the fixed start; constants the code formats in
    # (60 s, 3 requests, 10 s) are dropped like the code's placeholders
    text = re.split(r"\(with|\(then", message)[0]
    text = re.sub(r"'?<[^>]+>'?", "\0", text)
    text = re.sub(r"(?<![\w/])(?:60|3|10)(?![\w/])", "", text)
    fixed = text.split("\0")[0].rstrip()
    assert fixed, message
    assert fixed in source(), f"not in the code: {fixed!r}"
