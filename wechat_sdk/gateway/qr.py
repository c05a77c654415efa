"""QR login output: the seed's two log lines, a terminal drawing, and a PNG."""

from __future__ import annotations

import logging
import sys
import urllib.parse
from pathlib import Path

__all__ = ["QR_URL_BASE", "qr_page_url", "save_qr_png", "show_qr"]

QR_URL_BASE = "https://wechaty.js.org/qrcode/"
log = logging.getLogger("wechat_sdk.gateway")


def qr_page_url(qrcode: str) -> str:
    """The page that draws a QR code, as Wechaty prints it."""
    return QR_URL_BASE + urllib.parse.quote(qrcode, safe="")


def save_qr_png(qrcode: str, path: Path) -> Path:
    """Write the QR code as a PNG (owner-only)."""
    import segno  # imported when first needed: it costs ~50 ms at start-up

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    segno.make(qrcode, error="m").save(str(path), kind="png", scale=6, border=2)
    path.chmod(0o600)
    return path


def show_qr(qrcode: str) -> None:
    """Draw the QR code in the terminal (only when stdout is one)."""
    if sys.stdout.isatty():
        import segno

        segno.make(qrcode, error="m").terminal(compact=True)
