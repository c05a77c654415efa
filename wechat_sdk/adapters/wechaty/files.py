"""Files to and from a Puppet Service: a file uploaded to be sent, a message's file read.

A file to send goes up in ``Upload`` chunks first; the message that sends it names the
upload by a uuid FileBox. A message's file (its FileBox, see :mod:`.filebox`) is inline
(base64), at a peer's URL (fetched from a public address only, unless allowed: see
:mod:`wechat_sdk.media_fetch`), or held by the service and read with the ``Download``
stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Iterable
from typing import Any

import grpc

from wechat_sdk import media_fetch
from wechat_sdk.adapters.wechaty._proto import puppet_pb2 as pb
from wechat_sdk.adapters.wechaty._proto import puppet_pb2_grpc as pb_grpc
from wechat_sdk.adapters.wechaty.errors import PERMANENT
from wechat_sdk.adapters.wechaty.filebox import FileBoxRef, FileBoxType, uuid_filebox_json
from wechat_sdk.puppet import FileTooLarge, OutboundFile, PuppetError, SendError

__all__ = ["CHUNK_BYTES", "download", "upload"]

CHUNK_BYTES = 64 * 1024


async def upload(
    stub: pb_grpc.PuppetStub, file: OutboundFile, *, metadata: grpc.aio.Metadata, timeout_s: float
) -> str:
    """Upload ``file``: the uuid FileBox (JSON) that sends it. :class:`SendError` if the
    upload fails."""
    chunks = _file_chunks(file)
    try:
        uploaded = await stub.Upload(
            (pb.UploadRequest(chunk=c) for c in chunks), metadata=metadata, timeout=timeout_s
        )
    except grpc.aio.AioRpcError as exc:
        # nothing was sent to the chat yet: an upload failure is always safe to retry
        raise SendError(
            f"upload failed: {exc.code().name}: {exc.details()}",
            transient=exc.code() not in PERMANENT,
        ) from exc
    if not uploaded.id:
        raise SendError("upload failed: the server returned no file id")
    return uuid_filebox_json(uploaded.id, file.name, file.size, file.mime, file.duration_s)


async def download(
    ref: FileBoxRef,
    max_bytes: int,
    open_stream: Callable[[str], Any],
    *,
    allow_private_hosts: bool,
) -> AsyncGenerator[bytes, None]:
    """The bytes of a message's FileBox, in chunks; :class:`FileTooLarge` past ``max_bytes``.

    A uuid FileBox is read from ``open_stream(uuid)`` (a ``Download`` call, cancelled when
    this ends); its gRPC error is raised as it is, for the caller to map.
    """
    if ref.size is not None and ref.size > max_bytes:
        raise FileTooLarge(ref.size, max_bytes)
    if ref.type == FileBoxType.BASE64:
        # the declared size may be smaller than the base64 holds: decode none of it when
        # it cannot fit
        if ref.inline_size() > max_bytes:
            raise FileTooLarge(ref.inline_size(), max_bytes)
        data = ref.inline_bytes()
        if len(data) > max_bytes:
            raise FileTooLarge(len(data), max_bytes)
        _whole(len(data), ref.size)
        for i in range(0, len(data), CHUNK_BYTES):
            yield data[i : i + CHUNK_BYTES]
        return
    if ref.type == FileBoxType.URL:
        assert ref.url is not None
        data = await _fetch_url(ref.url, max_bytes, allow_private_hosts)
        for i in range(0, len(data), CHUNK_BYTES):
            yield data[i : i + CHUNK_BYTES]
        return
    assert ref.uuid is not None
    call = open_stream(ref.uuid)
    total = 0
    try:
        async for response in call:
            chunk = response.chunk
            if not chunk:
                continue
            if total + len(chunk) > max_bytes:
                raise FileTooLarge(total + len(chunk), max_bytes)
            total += len(chunk)
            yield chunk
        _whole(total, ref.size)
    finally:
        call.cancel()


def _whole(got: int, declared: int | None) -> None:
    """A file that ended before the size its FileBox declared is cut, not the file: never
    handed on as if it were whole."""
    if declared is not None and got < declared:
        raise PuppetError(f"the file ended after {got} of its {declared} bytes")


async def _fetch_url(url: str, max_bytes: int, allow_private_hosts: bool) -> bytes:
    """A url FileBox's bytes: a peer's URL, so only from a public address unless
    ``allow_private_hosts`` (see :mod:`wechat_sdk.media_fetch`)."""
    try:
        data, _mime = await asyncio.to_thread(
            media_fetch.fetch_url, url, max_bytes, allow_private=allow_private_hosts
        )
    except media_fetch.FetchFailed as exc:
        if exc.code == "too_large":
            raise FileTooLarge(max_bytes + 1, max_bytes) from exc
        raise PuppetError(str(exc)) from exc
    return data


def _file_chunks(file: OutboundFile) -> Iterable[bytes]:
    if file.path is not None and file.data is None:
        with file.path.open("rb") as fh:
            while chunk := fh.read(CHUNK_BYTES):
                yield chunk
        return
    data = file.read()
    for i in range(0, len(data), CHUNK_BYTES):
        yield data[i : i + CHUNK_BYTES]
