"""Deterministic media bytes with real file signatures, so type sniffing works on them."""

from __future__ import annotations

import random
import struct
import zlib

__all__ = ["KIND_DEFAULTS", "MAX_DURATION_S", "MAX_MEDIA_BYTES", "make_media_bytes"]

#: the largest file a user of the world sends (its bytes are made in memory): well over
#: the gateway's default ``mediaMaxMb`` (30), so a test of that cap fits
MAX_MEDIA_BYTES = 100 * 1024 * 1024
#: the longest voice or video a user sends, in seconds: a day
MAX_DURATION_S = 86_400

# kind -> (default file name, MIME type)
KIND_DEFAULTS: dict[str, tuple[str, str]] = {
    "image": ("image.png", "image/png"),
    "video": ("video.mp4", "video/mp4"),
    "audio": ("voice.silk", "audio/silk"),
    "file": ("document.pdf", "application/pdf"),
    "emoticon": ("sticker.gif", "image/gif"),
}


def _png_header() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    )


def _header(kind: str, name: str) -> bytes:
    lower = name.lower()
    if kind == "image" or lower.endswith(".png"):
        if lower.endswith((".jpg", ".jpeg")):
            return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        return _png_header()
    if kind == "emoticon" or lower.endswith(".gif"):
        return b"GIF89a\x01\x00\x01\x00\x00\x00\x00"
    if kind == "video":
        return b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    if kind == "audio":
        return b"\x02#!SILK_V3"
    if lower.endswith(".zip"):
        return b"PK\x03\x04"
    return b"%PDF-1.4\n"


def make_media_bytes(kind: str, name: str, size: int, rng: random.Random) -> bytes:
    """``size`` bytes starting with the signature of ``kind``/``name``, rest seeded noise."""
    head = _header(kind, name)[:size]
    rest = size - len(head)
    return head + (rng.randbytes(rest) if rest > 0 else b"")
