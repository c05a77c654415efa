"""Files through iLink's CDN: uploads (``getuploadurl``, the AES ciphertext posted, the
``x-encrypted-param`` back) and streamed, decrypted downloads under a size cap.

A download goes to the configured CDN (``cdnBaseUrl``) with the item's
``encrypt_query_param`` (an image item naming no key is fetched as it is, unencrypted,
as Tencent's client fetches it); an item's ``full_url`` is used only when it is on the
configured CDN's or API's host, and by its scheme (:func:`_on_configured`: never plain
http where that host is configured https), so a message can never make the adapter
fetch another address, nor by a downgraded scheme. An upload likewise: to
``getuploadurl``'s ``upload_full_url`` only when it is so, else to the configured CDN
with its ``upload_param``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import secrets
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wechat_sdk.adapters.ilink import aes
from wechat_sdk.adapters.ilink.api import BadAnswer, ILinkApi, Unreachable
from wechat_sdk.adapters.ilink.wire import ITEM_FILE, ITEM_IMAGE, ITEM_VIDEO, MediaRef
from wechat_sdk.puppet import FileTooLarge, PuppetError

__all__ = ["CdnFailed", "Uploaded", "download", "media_item", "upload"]

#: ``getuploadurl``'s media_type by what is sent (a voice reply goes as a file: iLink
#: drops a bot's voice items without a word)
UPLOAD_TYPES = {"image": 1, "video": 2, "file": 3}
UPLOAD_ATTEMPTS = 3
CHUNK = 64 * 1024
#: seconds a download may wait for its next bytes
READ_S = 30.0
#: seconds a whole download may take, redirects included: a CDN trickling its bytes
#: (each within ``READ_S``) would otherwise hold the message for ever (a 30 MB file
#: needs about 100 KB/s)
DOWNLOAD_S = 300.0
#: redirects a download follows, each on the configured hosts only
REDIRECTS = 3
_REDIRECT_STATUSES = frozenset((301, 302, 303, 307, 308))


class CdnFailed(PuppetError):
    """A file could not be moved through the CDN (the message says why; no key in it)."""


@dataclass(frozen=True, slots=True)
class Uploaded:
    """A file on the CDN, as a message item names it."""

    query_param: str
    key: bytes
    size: int
    cipher_size: int


async def upload(api: ILinkApi, data: bytes, *, word: str, to_user: str) -> Uploaded:
    """Encrypt ``data`` with a new key and put it on the CDN for ``to_user``."""
    key = secrets.token_bytes(16)
    filekey = secrets.token_hex(16)
    cipher = aes.encrypt(data, key)
    answer = await api.get_upload_url(
        {
            "filekey": filekey,
            "media_type": UPLOAD_TYPES.get(word, UPLOAD_TYPES["file"]),
            "to_user_id": to_user,
            "rawsize": len(data),
            "rawfilemd5": hashlib.md5(data).hexdigest(),
            "filesize": len(cipher),
            "no_need_thumb": True,
            "aeskey": key.hex(),
        }
    )
    full, param = answer.get("upload_full_url"), answer.get("upload_param")
    if isinstance(full, str) and _on_configured(full.strip(), (api.cdn_base_url, api.base_url)):
        url = full.strip()
    elif isinstance(param, str) and param:
        url = api.cdn_upload_url(param, filekey)
    else:
        raise CdnFailed(
            "getuploadurl gave no upload address on the configured CDN "
            "(upload_full_url on its host and by its scheme, or upload_param)"
        )
    last: Exception | None = None
    for _ in range(UPLOAD_ATTEMPTS):
        try:
            download_param = await api.upload(url, cipher)
            return Uploaded(download_param, key, len(data), len(cipher))
        except BadAnswer as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                # the CDN refused the request itself: the same bytes again would be refused
                # again (Tencent's client gives up at once too)
                raise CdnFailed(str(exc)) from None
            last = exc  # a server error: the same bytes again
        except Unreachable as exc:  # a CDN hiccup: the same bytes again
            last = exc
    raise CdnFailed(f"CDN upload failed {UPLOAD_ATTEMPTS} times: {last}")


def media_item(word: str, uploaded: Uploaded, name: str) -> dict[str, Any]:
    """The ``item_list`` entry that sends an uploaded file."""
    media = {
        "encrypt_query_param": uploaded.query_param,
        # base64 of the key's hex digits, as Tencent's client sends it
        "aes_key": base64.b64encode(uploaded.key.hex().encode()).decode("ascii"),
        "encrypt_type": 1,
    }
    if word == "image":
        return {
            "type": ITEM_IMAGE,
            "image_item": {"media": media, "mid_size": uploaded.cipher_size},
        }
    if word == "video":
        return {
            "type": ITEM_VIDEO,
            "video_item": {"media": media, "video_size": uploaded.cipher_size},
        }
    return {
        "type": ITEM_FILE,
        "file_item": {"media": media, "file_name": name, "len": str(uploaded.size)},
    }


def download_url(api: ILinkApi, ref: MediaRef) -> str:
    """Where the file is: the item's ``full_url`` on a configured host (by its scheme),
    else the CDN's download address for its ``encrypt_query_param``."""
    hosts = (api.cdn_base_url, api.base_url)
    if ref.full_url and _on_configured(ref.full_url, hosts):
        return ref.full_url
    if ref.query_param:
        return api.cdn_download_url(ref.query_param)
    if ref.full_url and _same_host(ref.full_url, hosts):  # (its scheme http, the host's https)
        raise CdnFailed(
            "the file's full_url is plain http, on a host configured https: not fetched "
            "(never over plain http)"
        )
    raise CdnFailed("the file's item names no address on the configured CDN")


async def download(
    api: ILinkApi, ref: MediaRef, max_bytes: int, known_size: int = 0
) -> AsyncIterator[bytes]:
    """The file's plaintext in chunks; :class:`FileTooLarge` past ``max_bytes`` (nothing
    past the cap is yielded), :class:`CdnFailed` when it cannot be fetched or decrypted."""
    if known_size > max_bytes:
        raise FileTooLarge(known_size, max_bytes)
    if ref.word == "image" and not ref.aes_key and not ref.hex_key:
        # an image item naming no key is on the CDN as it is (Tencent's client fetches it
        # so); a file, voice or video item without one cannot be read
        async with contextlib.aclosing(
            _fetched(api, download_url(api, ref), max_bytes, max_bytes)
        ) as chunks:
            async for chunk in chunks:
                yield chunk
        return
    try:
        key = aes.key_for_message(ref.aes_key, ref.hex_key)
    except aes.BadKey as exc:
        raise CdnFailed(str(exc)) from None
    url = download_url(api, ref)
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    received = plain = 0
    # (closed when this stops early: the response goes back at once)
    async with contextlib.aclosing(
        _fetched(api, url, aes.padded_size(max_bytes), max_bytes)
    ) as chunks:
        async for chunk in chunks:
            received += len(chunk)
            out = unpadder.update(decryptor.update(chunk))
            plain += len(out)
            if plain > max_bytes:
                raise FileTooLarge(plain, max_bytes)
            if out:
                yield out
    if received % 16:
        raise CdnFailed(f"CDN download did not decrypt: {received} bytes is no whole AES block")
    try:
        tail = unpadder.update(decryptor.finalize()) + unpadder.finalize()
    except ValueError:
        raise CdnFailed("CDN download did not decrypt with the item's key") from None
    if plain + len(tail) > max_bytes:
        raise FileTooLarge(plain + len(tail), max_bytes)
    if tail:
        yield tail


async def _fetched(
    api: ILinkApi, url: str, cap: int, max_bytes: int
) -> AsyncGenerator[bytes, None]:
    """The CDN's bytes at ``url`` in chunks, at most ``cap`` of them (the file's
    ``max_bytes``, or its ciphertext's size for that many bytes of plaintext): past it,
    :class:`FileTooLarge`; :class:`CdnFailed` when it cannot be fetched."""
    received = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DOWNLOAD_S
    try:
        for _ in range(REDIRECTS + 1):
            # aiohttp's total covers reading the body too: the deadline holds between
            # chunks as well
            timeout = aiohttp.ClientTimeout(
                total=max(deadline - loop.time(), 0.001), sock_connect=READ_S, sock_read=READ_S
            )
            async with api.session.get(
                url, timeout=timeout, proxy=api.proxy_for(url), allow_redirects=False
            ) as resp:
                if resp.status in _REDIRECT_STATUSES:
                    location = resp.headers.get("Location")
                    url = _redirected(url, location, resp.status, (api.cdn_base_url, api.base_url))
                    continue
                if resp.status != 200:
                    raise CdnFailed(f"CDN download refused: HTTP {resp.status}")
                length = resp.content_length
                if length is not None and length > cap:
                    padding_bytes = 16 if cap > max_bytes else 0  # (ciphertext: its file's)
                    raise FileTooLarge(max(length - padding_bytes, max_bytes + 1), max_bytes)
                async for chunk in resp.content.iter_chunked(CHUNK):
                    received += len(chunk)
                    if received > cap:
                        raise FileTooLarge(received, max_bytes)
                    yield chunk
                return
        raise CdnFailed(f"CDN download redirected more than {REDIRECTS} times")
    except (TimeoutError, aiohttp.ClientError) as exc:
        if loop.time() >= deadline:
            raise CdnFailed(f"CDN download took longer than {DOWNLOAD_S:g} s") from None
        raise CdnFailed(f"CDN download failed: {type(exc).__name__}") from None


def _redirected(url: str, location: str | None, status: int, hosts: tuple[str, ...]) -> str:
    """Where a CDN download's redirect from ``url`` leads: followed only on ``hosts`` (the
    configured CDN's and API's, as the first address was), never from https to http.

    >>> _redirected("https://cdn.example/a", "/b", 302, ("https://cdn.example",))
    'https://cdn.example/b'
    """
    if not location:
        raise CdnFailed(f"CDN download refused: HTTP {status}, no Location")
    target = urllib.parse.urljoin(url, location)
    if not _same_host(target, hosts):
        raise CdnFailed("CDN download redirected off the configured CDN")
    if url.startswith("https:") and not target.startswith("https:"):
        raise CdnFailed("CDN download redirected from https to plain http")
    return target


def _same_host(url: str, bases: tuple[str, ...]) -> bool:
    """Whether ``url`` is http(s) on the host (and port) of one of ``bases``."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https"):
        return False
    return any(parsed.netloc == urllib.parse.urlsplit(b).netloc for b in bases)


def _on_configured(url: str, bases: tuple[str, ...]) -> bool:
    """Whether an address a server named may be used: on the host of one of ``bases``
    (:func:`_same_host`), and not plain http where that host is configured https.

    >>> _on_configured("http://cdn.example/d", ("https://cdn.example/c2c",))
    False
    """
    if not _same_host(url, bases):
        return False
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "https":
        return True
    configured = (urllib.parse.urlsplit(b) for b in bases)
    return not any(b.scheme == "https" and b.netloc == parsed.netloc for b in configured)
