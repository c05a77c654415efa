"""A local HTTP(S) server in a thread, serving fixed answers by path, for fetch tests."""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Served:
    """The server's base URL and the paths it was asked for, in order."""

    url: str
    port: int
    asked: list[str] = field(default_factory=list)


@contextlib.contextmanager
def serving(
    answers: dict[str, Answer], tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> Iterator[Served]:
    """Serve ``answers`` on ``host`` (a free port); 404 for any other path."""
    served = Served("", 0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.asked.append(self.path)
            answer = answers.get(self.path, Answer(b"not here", 404))
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    served.port = server.server_address[1]
    served.url = f"{'https' if tls else 'http'}://{host}:{served.port}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
