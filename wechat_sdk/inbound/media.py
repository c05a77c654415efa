"""Inbound media: downloaded with a size cap, saved safely, typed from its content."""

from __future__ import annotations

import logging
import os
import re
import secrets
import unicodedata
from pathlib import Path

from wechat_sdk.agent import MediaItem
from wechat_sdk.clock import Clock
from wechat_sdk.logtext import shown
from wechat_sdk.puppet import FileTooLarge, Message, Puppet

__all__ = ["MAX_NAME_BYTES", "SNIFF_BYTES", "MediaSaver", "safe_name", "sniff_mime"]

log = logging.getLogger("wechat_sdk.inbound.media")

_UNSAFE = re.compile(r"[^\w.\-]+", re.UNICODE)
_DOTS = re.compile(r"\.{2,}")  # "a..b" is no traversal, but keep names free of ".."


#: bytes of a saved name before its random suffix: a file system counts a name's bytes
#: (255 on ext4, 143 on eCryptfs), and a letter may take 4 of them in UTF-8
MAX_NAME_BYTES = 120


def safe_name(name: str, *, max_len: int = 80) -> str:
    """A file name that cannot choose a path: no separators, no dot-files, no control
    chars; at most ``max_len`` characters and :data:`MAX_NAME_BYTES` bytes in UTF-8."""
    base = unicodedata.normalize("NFC", name).replace("\\", "/").split("/")[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = _DOTS.sub(".", _UNSAFE.sub("_", base)).strip("._") or "file"
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    ext = ext[:10]
    room = MAX_NAME_BYTES - len(ext.encode()) - 1
    stem = _utf8_cut(stem[: max_len - len(ext) - 1], room).rstrip(".") or "file"
    return f"{stem}.{ext}" if ext else stem


def _utf8_cut(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` bytes of UTF-8, never inside a character."""
    return text.encode()[:max_bytes].decode("utf-8", "ignore")


#: the first bytes of a file that tell its type (all that filetype reads)
SNIFF_BYTES = 262


def sniff_mime(head: bytes, fallback: str | None = None) -> str:
    """The MIME type from the first bytes (filetype), SILK voice included."""
    import filetype  # imported when first needed (start-up time)

    kind = filetype.guess(head)
    if kind is not None:
        return str(kind.mime)
    if head[:10].lstrip(b"\x02").startswith(b"#!SILK"):  # WeChat voice: not in filetype
        return "audio/silk"
    return fallback or "application/octet-stream"


class MediaSaver:
    """Saves one account's inbound files under ``<state>/media/inbound/<account>`` and
    prunes old ones."""

    #: Seconds between two automatic prunes (:meth:`maybe_prune`).
    PRUNE_EVERY_S = 3600.0

    def __init__(self, directory: Path, clock: Clock, *, legacy: Path | None = None) -> None:
        self.directory = directory
        self.clock = clock
        #: a folder of files saved before each account had its own (``media/inbound``),
        #: pruned with this one's
        self.legacy = legacy
        self._pruned_at: float | None = None

    async def fetch(self, puppet: Puppet, message: Message, max_bytes: int) -> MediaItem:
        """Download the message's file, or describe why not (too large, failed: the
        caller says it)."""
        info = message.file
        kind = message.kind.media_item_kind
        name = info.name if info else f"{message.id}.bin"
        size = info.size if info else 0
        duration = info.duration_s if info else None
        if info is not None and info.size > max_bytes:
            return MediaItem(
                kind, None, info.mime, size, name, duration, note=_too_large(info.size, max_bytes)
            )
        _private_dirs(self.directory)
        path = self._reserve(name)
        written = 0
        head = b""
        try:
            # local disk writes of at most one chunk: not worth a thread hop per chunk
            with open(path, "r+b") as out:  # noqa: ASYNC230
                async for chunk in puppet.download(message.id, max_bytes):
                    written += len(chunk)
                    if written > max_bytes:  # never keep more than the cap
                        raise FileTooLarge(written, max_bytes)
                    if len(head) < SNIFF_BYTES:
                        head += chunk[: SNIFF_BYTES - len(head)]
                    out.write(chunk)
        except FileTooLarge as exc:
            path.unlink(missing_ok=True)
            return MediaItem(
                kind,
                None,
                info.mime if info else None,
                max(size, exc.size),
                name,
                duration,
                note=_too_large(max(size, exc.size), max_bytes),
            )
        except Exception as exc:  # (the inbound step says it, with the note)
            path.unlink(missing_ok=True)
            return MediaItem(
                kind,
                None,
                info.mime if info else None,
                size,
                name,
                duration,
                note=f"the file could not be downloaded ({exc})",
            )
        except BaseException:  # a stop cut it: the message is taken in again, the part gone
            path.unlink(missing_ok=True)
            raise
        now = self.clock.now()
        os.utime(path, (now, now))
        mime = sniff_mime(head, info.mime if info else None)
        return MediaItem(kind, path, mime, written, name, duration)

    def _reserve(self, name: str) -> Path:
        clean = safe_name(name)
        stem, dot, ext = clean.rpartition(".")
        if not dot:
            stem, ext = clean, ""
        root = self.directory.resolve()
        for _ in range(20):
            unique = f"{stem}-{secrets.token_hex(4)}" + (f".{ext}" if ext else "")
            path = root / unique
            if path.resolve().parent != root:  # belt and braces: never outside the folder
                raise ValueError(f"unsafe media name {name!r}")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            os.close(fd)
            return path
        raise FileExistsError("could not find a free media file name")

    def maybe_prune(self, max_age_s: float, *, account_id: str = "-") -> int:
        """:meth:`prune`, at most once per :attr:`PRUNE_EVERY_S` (mediaMaxAgeHours)."""
        now = self.clock.now()
        if self._pruned_at is not None and now - self._pruned_at < self.PRUNE_EVERY_S:
            return 0
        self._pruned_at = now
        return self.prune(max_age_s, account_id=account_id)

    def prune(self, max_age_s: float, *, account_id: str = "-") -> int:
        """Delete saved files older than ``max_age_s`` (by the clock). Returns the count.
        ``account_id``: the account whose message started the prune, for the log."""
        cutoff = self.clock.now() - max_age_s
        removed = 0
        folders = [d for d in (self.directory, self.legacy) if d is not None and d.is_dir()]
        for entry in (e for folder in folders for e in folder.iterdir()):
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
            except OSError as exc:
                log.warning(
                    "could not prune %s: %s",
                    shown(entry.name),
                    shown(exc, 200),
                    extra={"account": account_id},
                )
        return removed


def _private_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents (``media/``), each 0700: owner only,
    like the state directory (``mkdir(parents=True)`` gives the parents the umask's 0755)."""
    missing = []
    while not directory.is_dir():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile (another account's saver)
            continue
        folder.chmod(0o700)  # whatever the umask


def _too_large(size: int, cap: int) -> str:
    mb = 1024 * 1024
    return (
        f"file too large ({size / mb:.1f} MB > {cap / mb:g} MB limit, mediaMaxMb): not downloaded"
    )
