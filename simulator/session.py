"""An account's login kept on disk between processes (the simulator's "memory card")."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

log = logging.getLogger("simulator")

SESSION_FILE = "simulator-session.json"


class SessionCard:
    """One account's login kept on disk: ``<session_dir>/<account>/simulator-session.json``.

    Like a Wechaty memory card: written at login, removed at logout, read when the account
    appears in a new world (a new process). It holds the account id, the bot's wxid and
    the login time; the simulator has no secrets to keep. Owner-only (0600 in 0700).
    """

    def __init__(self, session_dir: Path, account_id: str) -> None:
        self.path = session_dir / account_id / SESSION_FILE
        self.account_id = account_id

    def load(self) -> str | None:
        """The wxid of the kept session, or None (no card, or one that cannot be read)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable session %s (%s): a new scan is needed", self.path, exc)
            return None
        if not isinstance(data, dict) or data.get("account") != self.account_id:
            log.warning("ignoring session %s: it is not for account %r", self.path, self.account_id)
            return None
        wxid = data.get("wxid")
        return wxid if isinstance(wxid, str) and wxid else None

    def save(self, wxid: str, at: float) -> None:
        for folder in (self.path.parent.parent, self.path.parent):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"version": 1, "account": self.account_id, "wxid": wxid, "loggedInAt": at}, f)
        os.replace(tmp, self.path)

    def forget(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
