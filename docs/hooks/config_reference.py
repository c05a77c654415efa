"""mkdocs hook: fills ``<!-- config-reference -->`` with a table made from the models.

The configuration reference is generated from the pydantic models at build time, so it
cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

from wechat_sdk.config.reference import reference_markdown

MARKER = "<!-- config-reference -->"


def on_page_markdown(markdown: str, **_: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, reference_markdown())
    return markdown
