"""The simulated WeChat CDN: AES-128-ECB ciphertext stored by opaque parameters.

Uploads follow Tencent's client: ``getuploadurl`` (the API) announces a file (its
``filekey``, plaintext size and MD5, ciphertext size, and the hex AES key; an image or a
video also its thumbnail's, unless ``no_need_thumb``) and gets an ``upload_param`` (and a
``thumb_upload_param``); the client POSTs the ciphertext to ``<cdn>/upload`` and reads the
download parameter from the ``x-encrypted-param`` answer header; anyone with it GETs the
ciphertext at ``<cdn>/download?encrypted_query_param=...`` and decrypts it with the key
the message carries. The world's own media (a user's image) are published the same way.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "CdnError",
    "CdnStore",
    "PendingUpload",
    "Published",
    "aes_key_from_wire",
    "decrypt",
    "encrypt",
    "padded_size",
]


class CdnError(ValueError):
    """A CDN request that cannot be served; the message says why (sent to the client)."""


def encrypt(plaintext: bytes, key: bytes) -> bytes:
    """AES-128-ECB with PKCS7 padding (what Tencent's client and CDN use)."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(padded) + enc.finalize()


def decrypt(ciphertext: bytes, key: bytes) -> bytes:
    """The inverse of :func:`encrypt`; ``ValueError`` on a wrong key or bad padding."""
    if len(ciphertext) % 16:
        raise ValueError("ciphertext is not a whole number of 16-byte blocks")
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    padded = dec.update(ciphertext) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def padded_size(plain_size: int) -> int:
    """The ciphertext size of ``plain_size`` bytes (PKCS7 always adds 1 to 16 bytes)."""
    return (plain_size // 16 + 1) * 16


def aes_key_from_wire(value: str, *, hex_text: bool = False) -> bytes:
    """A 16-byte key from a message: hex (``image_item.aeskey``, ``hex_text=True``), or
    base64 of the raw bytes or of their hex (``media.aes_key``, both are seen)."""
    if hex_text:
        key = bytes.fromhex(value)
    else:
        raw = base64.b64decode(value, validate=True)
        key = raw if len(raw) == 16 else bytes.fromhex(raw.decode("ascii"))
    if len(key) != 16:
        raise ValueError(f"an AES-128 key has 16 bytes, this one {len(key)}")
    return key


@dataclass
class PendingUpload:
    """A file announced by ``getuploadurl``, waiting for its ciphertext."""

    account_id: str
    filekey: str
    media_type: int
    to_user_id: str
    rawsize: int
    rawfilemd5: str
    filesize: int
    key: bytes

    @classmethod
    def announced(cls, account_id: str, body: dict[str, Any]) -> PendingUpload:
        """A ``getuploadurl`` body, checked; :class:`CdnError` says what is wrong."""

        def need(name: str, kind: type) -> Any:
            value = body.get(name)
            if not isinstance(value, kind) or isinstance(value, bool) or value in ("", None):
                raise CdnError(f"{name} is required ({kind.__name__})")
            return value

        filekey, media_type = need("filekey", str), need("media_type", int)
        to, rawsize, md5 = need("to_user_id", str), need("rawsize", int), need("rawfilemd5", str)
        filesize, aeskey = need("filesize", int), need("aeskey", str)
        if media_type not in (1, 2, 3, 4):
            raise CdnError("media_type must be 1 image, 2 video, 3 file or 4 voice")
        if filesize != padded_size(rawsize):
            raise CdnError(
                f"filesize must be the AES-128-ECB size of rawsize ({padded_size(rawsize)})"
            )
        try:
            key = bytes.fromhex(aeskey)
        except ValueError:
            key = b""
        if len(key) != 16:
            raise CdnError("aeskey must be 16 bytes as hex")
        return cls(account_id, filekey, media_type, to, rawsize, md5, filesize, key)

    def thumbnail(self, body: dict[str, Any]) -> PendingUpload | None:
        """The thumbnail a ``getuploadurl`` body announces with this file (same filekey
        and key), None when it needs none; :class:`CdnError` when one is missing.

        An image or a video names its thumbnail (``thumb_rawsize``, ``thumb_rawfilemd5``,
        ``thumb_filesize``) unless ``no_need_thumb`` is true, as Tencent's types say."""
        names = ("thumb_rawsize", "thumb_rawfilemd5", "thumb_filesize")
        given = any(body.get(n) not in (None, "", 0) for n in names)
        if body.get("no_need_thumb") is True or (self.media_type not in (1, 2) and not given):
            return None
        rawsize, md5, filesize = (body.get(n) for n in names)
        if (
            not isinstance(rawsize, int)
            or isinstance(rawsize, bool)
            or rawsize <= 0
            or not isinstance(md5, str)
            or not md5
            or not isinstance(filesize, int)
            or isinstance(filesize, bool)
        ):
            raise CdnError(
                "an image or a video names its thumbnail (thumb_rawsize, thumb_rawfilemd5, "
                "thumb_filesize), or says no_need_thumb: true"
            )
        if filesize != padded_size(rawsize):
            raise CdnError(
                "thumb_filesize must be the AES-128-ECB size of thumb_rawsize "
                f"({padded_size(rawsize)})"
            )
        return PendingUpload(
            self.account_id,
            self.filekey,
            self.media_type,
            self.to_user_id,
            rawsize,
            md5,
            filesize,
            self.key,
        )


@dataclass(frozen=True)
class Published:
    """Where a file is on the CDN and the key that opens it."""

    param: str
    key: bytes
    ciphertext_size: int


class CdnStore:
    """Ciphertexts by download parameter, and uploads announced but not made yet."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}
        self._pending: dict[str, PendingUpload] = {}
        self._by_message: dict[str, Published] = {}
        self.uploads = 0
        self.downloads = 0

    def announce(self, upload: PendingUpload) -> str:
        """Register an upload; returns its ``upload_param``."""
        param = secrets.token_urlsafe(24)
        self._pending[param] = upload
        return param

    def receive(self, upload_param: str, filekey: str, body: bytes) -> str:
        """The ciphertext of an announced upload: checked (size, key, MD5), stored.

        Returns the download parameter; :class:`CdnError` says what is wrong otherwise.
        """
        pending = self._pending.get(upload_param)
        if pending is None:
            raise CdnError("unknown or used encrypted_query_param: call getuploadurl first")
        if filekey != pending.filekey:
            raise CdnError("filekey does not match the one given to getuploadurl")
        if len(body) != pending.filesize:
            raise CdnError(
                f"ciphertext is {len(body)} bytes, getuploadurl announced {pending.filesize}"
            )
        try:
            plain = decrypt(body, pending.key)
        except ValueError:
            raise CdnError("ciphertext does not decrypt with the aeskey of getuploadurl") from None
        if len(plain) != pending.rawsize:
            raise CdnError(f"plaintext is {len(plain)} bytes, rawsize said {pending.rawsize}")
        if hashlib.md5(plain).hexdigest() != pending.rawfilemd5.lower():
            raise CdnError("plaintext MD5 does not match rawfilemd5")
        del self._pending[upload_param]
        param = secrets.token_urlsafe(32)
        self._files[param] = body
        self.uploads += 1
        return param

    def ciphertext(self, param: str) -> bytes | None:
        data = self._files.get(param)
        if data is not None:
            self.downloads += 1
        return data

    def publish(self, plaintext: bytes, message_id: str) -> Published:
        """Put a world message's file on the CDN (once per message), encrypted."""
        known = self._by_message.get(message_id)
        if known is not None:
            return known
        key = secrets.token_bytes(16)
        ciphertext = encrypt(plaintext, key)
        param = secrets.token_urlsafe(32)
        self._files[param] = ciphertext
        published = Published(param, key, len(ciphertext))
        self._by_message[message_id] = published
        return published
