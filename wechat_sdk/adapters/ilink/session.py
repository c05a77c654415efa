"""The bot's login, kept in the account's state directory so the next start needs no scan.

``accounts/<id>/ilink-session.json``, owner-only (0600, written to a temporary file of the
same mode and renamed over the old one): the bot token, the bot's and its owner's ids, and
the API base the login named. A login that expired stays as an *earlier token* (iLink's
``local_token_list`` on the next QR code) and is no longer used.

It also records the configured ``baseUrl`` its logins came from (``server``): a login, and
the earlier tokens, belong to the server that gave them. A file kept before that was
recorded has none (:meth:`SessionFile.server` is None) and is taken for the configured
server's.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from wechat_sdk.config.integrations import without_query

__all__ = ["SESSION_FILE", "KeptLogin", "SessionFile", "server_of"]

SESSION_FILE = "ilink-session.json"
_EARLIER_KEPT = 10


@dataclass(frozen=True)
class KeptLogin:
    """A confirmed QR login (the token never shows in a repr)."""

    bot_id: str
    token: str = field(repr=False)
    user_id: str = ""
    base_url: str | None = None


def server_of(base_url: str) -> str:
    """What names a configured ``baseUrl``'s server, as the kept login records it: its
    origin and path, without a user part (it may hold a password) or a trailing slash.

    >>> server_of("https://user:pw@ilinkai.example.com/v1/")
    'https://ilinkai.example.com/v1'
    """
    return without_query(base_url.strip()).rstrip("/")


class SessionFile:
    """Reads and writes one account's kept login."""

    def __init__(self, account_dir: Path) -> None:
        self.path = account_dir / SESSION_FILE

    def load(self) -> tuple[KeptLogin | None, list[str]]:
        """The kept login (None when there is none or it expired) and earlier tokens."""
        data = self._data()
        if data is None:
            return None, []
        kept = data.get("earlier_tokens")
        earlier = [t for t in kept if isinstance(t, str) and t] if isinstance(kept, list) else []
        login = data.get("login")
        if not isinstance(login, dict):
            return None, earlier
        token, bot_id = login.get("token"), login.get("bot_id")
        if not isinstance(token, str) or not token or not isinstance(bot_id, str):
            return None, earlier
        base = login.get("base_url")
        user = login.get("user_id")
        return (
            KeptLogin(
                bot_id,
                token,
                user if isinstance(user, str) else "",
                base if isinstance(base, str) and base else None,
            ),
            earlier,
        )

    def server(self) -> str | None:
        """The server (:func:`server_of` its configured ``baseUrl``) the kept logins came
        from; None when none is recorded (no file, or one kept before it was)."""
        data = self._data()
        server = None if data is None else data.get("server")
        return server if isinstance(server, str) and server else None

    def keep(self, login: KeptLogin, server: str | None = None) -> None:
        """Keep a new login, from ``server`` (the earlier tokens stay for
        ``local_token_list``; None: the server recorded stays)."""
        _, earlier = self.load()
        self._write(
            {
                "server": server or self.server(),
                "login": {
                    "bot_id": login.bot_id,
                    "token": login.token,
                    "user_id": login.user_id,
                    "base_url": login.base_url,
                },
                "earlier_tokens": earlier,
            }
        )

    def expire(self) -> None:
        """The kept login expired: its token becomes an earlier one."""
        login, earlier = self.load()
        if login is not None:
            earlier = [login.token, *(t for t in earlier if t != login.token)][:_EARLIER_KEPT]
        self._write({"server": self.server(), "login": None, "earlier_tokens": earlier})

    def forget(self) -> None:
        """The bot logged out: its login is dropped, and its token is not kept as an
        earlier one (iLink has no call to end a token: offered again, the server would
        answer the next scan ``binded_redirect``, a login no longer kept)."""
        login, earlier = self.load()
        if login is not None:
            earlier = [t for t in earlier if t != login.token]
        self._write({"server": self.server(), "login": None, "earlier_tokens": earlier})

    def moved(self, server: str) -> None:
        """The configured server is another one now: the kept login and the earlier
        tokens are dropped (they are the old server's: none is used, or offered, on this
        one), and ``server`` recorded."""
        self._write({"server": server, "login": None, "earlier_tokens": []})

    def _data(self) -> dict[str, object] | None:
        """The kept JSON object (None when there is none, or it cannot be read)."""
        try:
            data = json.loads(self._read())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _read(self) -> str:
        """The kept JSON (OSError when there is none)."""
        return self.path.read_text(encoding="utf-8")

    def _write(self, data: dict[str, object]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        self.path.chmod(0o600)
