"""Addresses on loopback that take no call, for the tests of a server that is there and
does not answer: one whose connects never complete (its accept queue is full, so the
kernel drops each SYN, as an address that swallows them does), and one that accepts
connections and reads what comes, never answering (a hung server)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

HOST = "127.0.0.1"


@contextlib.asynccontextmanager
async def connects_hang(port: int = 0) -> AsyncIterator[int]:
    """Listen on ``port`` (0: a free one) with an accept queue of one place, taken and
    never accepted: a connect to it waits for ever. Yields the port."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, port))
    listener.listen(0)  # (Linux: one connection waits to be accepted, then it is full)
    port = listener.getsockname()[1]
    filler = socket.create_connection((HOST, port))
    try:
        yield port
    finally:
        filler.close()
        listener.close()


@contextlib.asynccontextmanager
async def never_answers(port: int = 0) -> AsyncIterator[int]:
    """Accept connections on ``port`` (0: a free one) and read what comes, answering
    nothing. Yields the port."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass

    server = await asyncio.start_server(hold, HOST, port, reuse_address=True)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in held:
            writer.close()
        await server.wait_closed()
