"""AES-128-ECB with PKCS7 padding, the cipher of iLink's CDN, and the item keys it uses.

A file goes to the CDN encrypted with a random 16-byte key; the message that carries it
names the key. Keys arrive in two spellings (Tencent's client reads both): base64 of the
16 raw bytes (images), or base64 of the 32 hex digits of those bytes (files, voice,
video); an image item may also carry the hex digits themselves (``image_item.aeskey``).

>>> key = bytes(range(16))
>>> decrypt(encrypt(b"hello", key), key)
b'hello'
>>> parse_key(base64.b64encode(key.hex().encode()).decode()) == key
True
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["BadKey", "DecryptFailed", "decrypt", "encrypt", "key_for_message", "padded_size"]

_HEX_KEY = re.compile(rb"[0-9a-fA-F]{32}")


class BadKey(ValueError):
    """An item's key is neither spelling of a 16-byte key (the key itself is not shown)."""


class DecryptFailed(ValueError):
    """The CDN's bytes did not decrypt with the item's key (a wrong key, or cut bytes)."""


def encrypt(plaintext: bytes, key: bytes) -> bytes:
    """The ciphertext of ``plaintext`` (PKCS7-padded to 16-byte blocks)."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def decrypt(ciphertext: bytes, key: bytes) -> bytes:
    """The plaintext of ``ciphertext``; :class:`DecryptFailed` when it is not whole blocks
    or its padding is wrong (the usual sign of a wrong key)."""
    if not ciphertext or len(ciphertext) % 16:
        raise DecryptFailed(f"{len(ciphertext)} bytes is not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise DecryptFailed("the padding is wrong after decryption (a wrong key?)") from None


def padded_size(size: int) -> int:
    """Bytes of the ciphertext of ``size`` bytes of plaintext."""
    return (size // 16 + 1) * 16


def parse_key(spelled: str) -> bytes:
    """A 16-byte key from base64 of the raw bytes or base64 of their hex digits.

    Read as Tencent's client reads it (Node's base64 decoder): whitespace is skipped, the
    URL-safe alphabet is taken, and missing ``=`` padding is no error."""
    text = "".join(spelled.split()).rstrip("=").replace("-", "+").replace("_", "/")
    try:
        decoded = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise BadKey("the item's aes_key is not base64") from None
    if len(decoded) == 16:
        return decoded
    if _HEX_KEY.fullmatch(decoded):
        return bytes.fromhex(decoded.decode("ascii"))
    raise BadKey(f"the item's aes_key decodes to {len(decoded)} bytes, not a 16-byte key")


def key_for_message(media_key: str | None, hex_key: str | None = None) -> bytes:
    """The key of a media item: ``image_item.aeskey`` (hex) first, as Tencent's client
    prefers it, else the media's ``aes_key``."""
    if hex_key:
        raw = hex_key.encode("ascii", "replace")
        if _HEX_KEY.fullmatch(raw):
            return bytes.fromhex(hex_key)
    if media_key:
        return parse_key(media_key)
    raise BadKey("the item has no aes_key")
