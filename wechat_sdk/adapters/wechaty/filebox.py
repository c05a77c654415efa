"""Wechaty's FileBox JSON, as it travels in Puppet Service payloads.

``{"type": 1, "base64": ..., "name": ..., "size": ...}`` inline, ``{"type": 7, "uuid": ...}``
fetched with the ``Download`` stream, ``{"type": 2, "url": ...}`` remote, ``{"type": 3,
"qrCode": ...}`` a QR code (no bytes). Older servers write the type as ``boxType``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["BadFileBox", "FileBoxRef", "FileBoxType", "parse_filebox", "uuid_filebox_json"]


class FileBoxType(enum.IntEnum):
    UNKNOWN = 0
    BASE64 = 1
    URL = 2
    QRCODE = 3
    BUFFER = 4
    FILE = 5
    STREAM = 6
    UUID = 7


class BadFileBox(ValueError):
    """A FileBox JSON payload that cannot be used (malformed, or of a type with no bytes)."""


@dataclass(frozen=True, slots=True)
class FileBoxRef:
    """Where a message's file is, without its bytes (except inline base64)."""

    type: FileBoxType
    name: str
    size: int | None = None
    mime: str | None = None
    uuid: str | None = None
    url: str | None = None
    base64: str | None = None
    duration_s: float | None = None

    def inline_size(self) -> int:
        """The size of an inline (base64) box's bytes, from its base64 length: known
        before decoding, so a box that cannot fit a cap is refused without it."""
        if self.base64 is None:
            raise BadFileBox(f"FileBox {self.name!r} is not inline")
        return _b64_len(self.base64)

    def inline_bytes(self) -> bytes:
        """The bytes of an inline (base64) box."""
        if self.base64 is None:
            raise BadFileBox(f"FileBox {self.name!r} is not inline")
        try:
            return base64.b64decode(self.base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadFileBox(f"FileBox {self.name!r} has invalid base64: {exc}") from exc


def parse_filebox(text: str) -> FileBoxRef:
    """Parse FileBox JSON; raises :class:`BadFileBox` with what is wrong."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadFileBox(f"FileBox payload is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise BadFileBox("FileBox payload is not a JSON object")
    raw_type: Any = obj.get("type", obj.get("boxType"))
    try:
        box_type = FileBoxType(int(raw_type))
    except (TypeError, ValueError):
        raise BadFileBox(f"FileBox has an unknown type {raw_type!r}") from None
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        name = "file"
    size = _size(obj.get("size"))
    raw_metadata = obj.get("metadata")
    metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    mime = obj.get("mediaType") or obj.get("mimeType")
    ref = FileBoxRef(
        type=box_type,
        name=name,
        size=size,
        mime=mime if isinstance(mime, str) and mime else None,
        duration_s=_duration(metadata),
    )
    if box_type == FileBoxType.BASE64:
        data = obj.get("base64")
        if not isinstance(data, str):
            raise BadFileBox(f"inline FileBox {name!r} has no base64 field")
        return replace(ref, base64=data, size=size if size is not None else _b64_len(data))
    if box_type == FileBoxType.UUID:
        uuid = obj.get("uuid")
        if not isinstance(uuid, str) or not uuid:
            raise BadFileBox(f"uuid FileBox {name!r} has no uuid field")
        return replace(ref, uuid=uuid)
    if box_type == FileBoxType.URL:
        url = obj.get("url") or obj.get("remoteUrl")
        if not isinstance(url, str) or not url:
            raise BadFileBox(f"url FileBox {name!r} has no url field")
        return replace(ref, url=url)
    raise BadFileBox(f"FileBox {name!r} of type {box_type.name} carries no downloadable bytes")


def uuid_filebox_json(
    uuid: str, name: str, size: int, mime: str | None = None, duration_s: float | None = None
) -> str:
    """The FileBox JSON that sends an uploaded file (``Upload`` gave ``uuid``)."""
    obj: dict[str, Any] = {
        "type": int(FileBoxType.UUID),
        "boxType": int(FileBoxType.UUID),
        "uuid": uuid,
        "name": name,
        "size": size,
        "metadata": {},
    }
    if mime:
        obj["mediaType"] = mime
    if duration_s is not None:
        # Wechaty puppets read a voice message's length (milliseconds) from the metadata
        obj["metadata"] = {"voiceLength": round(duration_s * 1000)}
    return json.dumps(obj, separators=(",", ":"))


def _size(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if value >= 0 else None


def _duration(metadata: dict[str, Any]) -> float | None:
    ms = metadata.get("voiceLength") or metadata.get("duration")
    if isinstance(ms, int | float) and not isinstance(ms, bool) and ms > 0:
        return float(ms) / 1000.0
    return None


def _b64_len(data: str) -> int:
    stripped = data.strip()
    return len(stripped) * 3 // 4 - stripped[-2:].count("=")
