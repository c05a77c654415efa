"""Per-account status, as `wechat-sdk gateway status` shows it. Never holds secrets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["AccountStatus", "Lifecycle"]

Lifecycle = Literal[
    "starting", "waiting_for_scan", "ready", "reconnecting", "logged_out", "stopped", "failed"
]


@dataclass
class AccountStatus:
    account: str
    lifecycle: Lifecycle = "stopped"
    detail: str = ""
    user_id: str | None = None
    user_name: str | None = None
    last_inbound: float | None = None
    last_outbound: float | None = None
    reconnects: int = 0
    last_error: str | None = None
    pending_pairing: int = 0
    queue_depth: int = 0
    sent: int = 0
    send_failures: int = 0
    qr_url: str | None = None
    drops: dict[str, int] = field(default_factory=dict)
    pacing: str = ""

    @property
    def state(self) -> str:
        """The lifecycle with its detail, e.g. ``failed: login timed out``."""
        return f"{self.lifecycle}: {self.detail}" if self.detail else self.lifecycle

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state
        return data
