"""A bot account of the simulated world, and the ``puppetOptions`` that connect it to
the outside: ``scanAfterMs``, ``inbox`` (a directory of JSON messages) and ``transcript``."""

from __future__ import annotations

import contextlib
import json
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wechat_sdk.config import ConfigError

if TYPE_CHECKING:
    from simulator.puppet import SimulatedPuppet

log = logging.getLogger("simulator")

REPLAY_AT_LOGIN = 5
#: seconds a send takes under the slow_send fault, unless the fault says
SLOW_SEND_S = 5.0


@dataclass
class SimAccount:
    """A bot account in the world."""

    id: str
    wxid: str
    name: str
    session: bool = False  # logged in before and not logged out: a restart needs no scan
    puppet: SimulatedPuppet | None = None
    history: deque[str] = field(default_factory=lambda: deque(maxlen=REPLAY_AT_LOGIN))
    offline: list[str] = field(default_factory=list)  # message ids waiting for a connection
    faults: dict[str, int] = field(default_factory=dict)
    slow_send_s: float = SLOW_SEND_S
    auto_scan_s: float | None = None  # the simulated phone scans each new QR after this
    inbox: Path | None = None  # puppetOptions.inbox: JSON files here are messages to it
    transcript_file: Path | None = None  # puppetOptions.transcript: its messages, as JSON lines
    #: "puppet" (the Puppet port in process) or "ilink" (served over HTTP by the world's
    #: iLink server, simulator.ilink; ``wxid`` is then its ilink_bot_id)
    transport: str = "puppet"
    owner: str = ""  # iLink: the user who scans its QR codes (ilink_user_id of a login)


def _scan_after(value: object, account: Any) -> float | None:
    """``puppetOptions.scanAfterMs`` of a simulator account: milliseconds, or false."""
    if value is False or value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        key_path = getattr(account, "key_path", None)
        where = key_path("puppetOptions.scanAfterMs") if key_path else "puppetOptions.scanAfterMs"
        raise ConfigError.single(
            where,
            f"must be a number of milliseconds (0 or more), or false to never scan; got {value!r}",
        )
    return float(value) / 1000.0


def _make_inbox(inbox: Path, account_id: str) -> None:
    """Make an inbox directory (and its parents) if missing; one that cannot be made is a
    warning, naming it and what to do."""
    try:
        inbox.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning(
            "cannot make the inbox folder %s (%s): no message reaches account %r through "
            "it; make the folder, or set puppetOptions.inbox to a folder that can be made",
            inbox,
            exc.strerror or exc,
            account_id,
        )


def _take_inbox(inbox: Path) -> list[tuple[str, str, str | None]]:
    """The messages waiting in an inbox directory, each file read and deleted: every
    ``*.json`` file (in name order) is one message, ``{"from": "wxid_alice", "text": "hi"}``
    with an optional ``"room"``. Write a file elsewhere and move it in, so that it is never
    read half written; a file that is not such a message is logged and deleted."""
    messages = []
    for path in sorted(inbox.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            sender, text, room = data["from"], data.get("text", ""), data.get("room")
            if not isinstance(sender, str) or not isinstance(text, str):
                raise ValueError('"from" and "text" must be strings')
            if room is not None and not isinstance(room, str):
                raise ValueError('"room" must be a string')
            messages.append((sender, text, room))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring inbox file %s: %s", path, exc)
        with contextlib.suppress(OSError):
            path.unlink()
    return messages


def _path_option(value: object, account: Any, name: str) -> Path:
    """``puppetOptions.inbox`` or ``.transcript`` of a simulator account: a path."""
    if not isinstance(value, str) or not value:
        key_path = getattr(account, "key_path", None)
        where = key_path(f"puppetOptions.{name}") if key_path else f"puppetOptions.{name}"
        raise ConfigError.single(where, f"must be a path (a string); got {value!r}")
    return Path(value).expanduser()


def _own_inbox(sim: SimAccount, accounts: Iterable[SimAccount], account: Any) -> None:
    """An inbox folder is one account's: two accounts reading one (``inbox`` set at the
    top level reaches every account) would each take files meant for the other.

    Only accounts whose puppet reads its inbox count: made and not stopped. The world's
    accounts outlive a gateway's reload (an account of the old config, renamed or gone,
    is still there, its puppet stopped), and the new config may give its folder to another
    account."""
    assert sim.inbox is not None
    mine = sim.inbox.resolve()
    for other in accounts:
        reading = other.puppet is not None and not other.puppet.stopped
        if (
            other is not sim
            and reading
            and other.inbox is not None
            and other.inbox.resolve() == mine
        ):
            key_path = getattr(account, "key_path", None)
            where = key_path("puppetOptions.inbox") if key_path else "puppetOptions.inbox"
            raise ConfigError.single(
                where,
                f"account {other.id!r} reads the same folder ({sim.inbox}): give each "
                "account its own inbox (set it on the accounts, not at the top level)",
            )
