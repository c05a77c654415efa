"""How to reach one Puppet Service: its address and token, TLS, and the channel to it.

A Puppet Service speaks TLS unless told not to. Its certificate is checked against the
given CA file; else, for an ``insecure_`` token, against Wechaty's own root CA (which signs
the default server certificate of every Puppet Service); else against the system's CAs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

__all__ = ["WECHATY_ROOT_CA", "ServiceConnection", "auth_metadata", "open_channel"]

#: Wechaty's public root certificate (from wechaty-puppet-service's auth/ca), which signs
#: the default "insecure" server certificate of every Puppet Service.
WECHATY_ROOT_CA = Path(__file__).with_name("wechaty-ca.pem")


@dataclass(frozen=True, slots=True)
class ServiceConnection:
    """How to reach one Puppet Service. ``token`` is a secret: it is never logged."""

    endpoint: str
    token: str
    tls: bool = True
    ca_file: Path | None = None
    server_name: str | None = None

    def __repr__(self) -> str:  # keep the token out of logs and tracebacks
        return (
            f"ServiceConnection(endpoint={self.endpoint!r}, token='***', tls={self.tls}, "
            f"ca_file={self.ca_file!r}, server_name={self.server_name!r})"
        )


def open_channel(c: ServiceConnection) -> grpc.aio.Channel:
    """A new channel to the service (gRPC connects it on its first call)."""
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", 8 * 1024 * 1024),
        ("grpc.max_send_message_length", 8 * 1024 * 1024),
    ]
    if not c.tls:
        return grpc.aio.insecure_channel(c.endpoint, options=options)
    if c.ca_file is not None:
        root: bytes | None = c.ca_file.read_bytes()
    elif c.token.startswith("insecure_"):
        # Wechaty's own root CA signs the "insecure" server certificate that Puppet
        # Services use by default; Wechaty's clients trust it, and so does this one
        root = WECHATY_ROOT_CA.read_bytes()
    else:
        root = None  # the system's trusted CAs
    credentials = grpc.ssl_channel_credentials(root_certificates=root)
    options.append(("grpc.ssl_target_name_override", c.server_name or "insecure"))
    return grpc.aio.secure_channel(c.endpoint, credentials, options=options)


def auth_metadata(c: ServiceConnection) -> grpc.aio.Metadata:
    """The token, as every call's metadata."""
    return grpc.aio.Metadata(("authorization", f"Wechaty {c.token}"))
