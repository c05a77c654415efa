"""A file's bytes given as base64 text: ``files[].data`` of an HTTP API send and of a
webhook agent's answer.

Base64 tools break their output into lines (``base64`` and MIME encoders at 76
characters, ``openssl base64`` at 64): the line breaks, and any whitespace, are no part of
the data, and are dropped before the text is decoded; anything else outside the base64
alphabet is refused.

>>> file_data("aGVsbG8g\\nZmlsZQ==\\n")
b'hello file'
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["file_data"]


def file_data(text: str) -> bytes:
    """The bytes ``text`` (base64, in lines or not) holds; ValueError when it is not
    base64."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None
