"""Short-lived, signed links to inbound media, for an agent behind a webhook.

A link is ``<base>/media/<path>?exp=<epoch seconds>&sig=<hex>``: ``path`` is the file's
place under the gateway's inbound media folder, ``sig`` the HMAC-SHA256 of ``path`` and
``exp`` under a key made when the gateway starts (so every link dies with the process, and
at ``exp`` before that). The server checks the signature in constant time and the expiry
on the gateway's clock, and serves only a file inside that folder: a link never chooses
another path.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from urllib.parse import quote

from wechat_sdk.clock import Clock

__all__ = ["MEDIA_LINK_TTL_S", "MediaLinks"]

#: Seconds a media link stays valid.
MEDIA_LINK_TTL_S = 600.0


class MediaLinks:
    """Makes and checks the signed links of files under ``root``."""

    def __init__(self, root: Path, clock: Clock, *, ttl_s: float = MEDIA_LINK_TTL_S) -> None:
        self.root = root
        self.clock = clock
        self.ttl_s = ttl_s
        self._key = secrets.token_bytes(32)
        #: where the links point (``http://host:port``), set once the server listens
        self.base_url: str | None = None

    def _sig(self, rel: str, exp: int) -> str:
        message = f"{rel}\n{exp}".encode("utf-8", "surrogateescape")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def link(self, path: Path) -> str | None:
        """A signed link to ``path``; None when it is not under ``root`` or no server runs."""
        if self.base_url is None:
            return None
        try:
            rel = path.resolve().relative_to(self.root.resolve()).as_posix()
        except (OSError, ValueError):
            return None
        exp = int(self.clock.now() + self.ttl_s)
        return f"{self.base_url}/media/{quote(rel)}?exp={exp}&sig={self._sig(rel, exp)}"

    def resolve(self, rel: str, exp: str, sig: str) -> Path | None:
        """The file a link names (``rel``: its path, decoded), when its signature holds, it
        has not expired, and the file is a regular file inside ``root``; else None."""
        try:
            expires = int(exp)
        except ValueError:
            return None
        # (as bytes: a str compare refuses a sig that is not ASCII, which anyone may send)
        given = sig.encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(self._sig(rel, expires).encode(), given):
            return None
        if self.clock.now() >= expires:
            return None
        root = self.root.resolve()
        path = (root / rel).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path
