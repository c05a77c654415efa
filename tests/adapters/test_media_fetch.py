"""Fetching a peer's url FileBox: public addresses only, unless the config allows more.

Every server here is on 127.0.0.1, which the default refuses; tests that need a
"public" server say which loopback address counts as public for them."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import itertools
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from local_http import Answer, serving

from wechat_sdk import media_fetch
from wechat_sdk.config.models import AccountConfig
from wechat_sdk.media_fetch import FetchFailed, fetch_url, is_public_address

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def only_127_0_0_1_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Take 127.0.0.1 for a public address (and every other address as usual)."""
    real = media_fetch.is_public_address
    monkeypatch.setattr(
        media_fetch, "is_public_address", lambda address: address == "127.0.0.1" or real(address)
    )


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # a cloud's metadata service
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1%eth0",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4 inside IPv6
        "::ffff:192.168.0.1",
        "2002:7f00:1::",  # 6to4 of 127.0.0.1: a 6to4 relay unwraps it to IPv4
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "fec0::1",  # IPv6 site-local (deprecated, still routed inside some networks)
        "192.0.0.8",  # IETF protocol assignments
    ],
)
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808"]
)
def test_public_addresses_are(address: str) -> None:
    assert is_public_address(address)


def test_loopback_is_refused_by_default_and_fetched_when_allowed() -> None:
    with serving({"/pic.png": Answer(PNG, headers={"Content-Type": "image/png"})}) as server:
        for url in (f"{server.url}/pic.png", f"http://localhost:{server.port}/pic.png"):
            with pytest.raises(FetchFailed, match="mediaFetchAllowPrivate") as refused:
                fetch_url(url, 10_000, timeout=5)
            assert refused.value.code == "private_address"
        assert server.asked == []  # refused before connecting
        assert fetch_url(f"{server.url}/pic.png", 10_000, timeout=5, allow_private=True) == (
            PNG,
            "image/png",
        )


def test_only_http_and_https_are_fetched() -> None:
    for url in ("file:///etc/passwd", "ftp://example.com/a.png", "gopher://x/"):
        with pytest.raises(FetchFailed, match="only http and https"):
            fetch_url(url, 10_000, allow_private=True)


def test_a_url_with_a_user_and_password_is_refused_saying_so_not_fetched() -> None:
    """A Python agent's ``OutboundFile(url="https://bob:pw@host/a.png")``: urllib took
    ``bob:pw@host`` for the host's name (``Name or service not known``)."""
    with serving({"/pic.png": Answer(PNG, headers={"Content-Type": "image/png"})}) as server:
        url = f"http://bob:pw-0123456789@127.0.0.1:{server.port}/pic.png"
        with pytest.raises(FetchFailed, match="credentials in URLs are not supported") as refused:
            fetch_url(url, 10_000, timeout=5, allow_private=True)
        assert "pw-0123456789" not in str(refused.value)
        assert server.asked == []


def test_the_config_switch_is_off_by_default() -> None:
    assert AccountConfig().mediaFetchAllowPrivate is False
    assert AccountConfig(mediaFetchAllowPrivate=True).mediaFetchAllowPrivate is True


@pytest.mark.usefixtures("only_127_0_0_1_is_public")
def test_each_redirect_is_checked_again() -> None:
    answers = {
        "/to-internal": Answer(status=302, headers={"Location": "http://127.0.0.2:9/secret"}),
        "/to-pic": Answer(status=302, headers={"Location": "/pic.png"}),
        "/pic.png": Answer(PNG, headers={"Content-Type": "image/png"}),
    }
    with serving(answers) as server:
        with pytest.raises(FetchFailed, match=r"refused to fetch from 127\.0\.0\.2") as refused:
            fetch_url(f"{server.url}/to-internal", 10_000, timeout=5)
        assert refused.value.code == "private_address"
        assert fetch_url(f"{server.url}/to-pic", 10_000, timeout=5)[0] == PNG


@pytest.mark.usefixtures("only_127_0_0_1_is_public")
def test_the_connection_goes_to_the_address_that_was_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # DNS rebinding: the host resolves to a public address for the check and to an
    # internal one a moment later; the fetch must not resolve it twice
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["127.0.0.1", "10.0.0.1", "10.0.0.1"])
    lookups: list[str] = []

    def rebinding(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        lookups.append(host)
        return real_getaddrinfo(next(answers), port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with serving({"/pic.png": Answer(PNG)}) as server:
        data, _mime = fetch_url(f"http://rebind.test:{server.port}/pic.png", 10_000, timeout=5)
    assert data == PNG
    assert lookups == ["rebind.test"]


def test_the_size_cap_holds_on_the_guarded_path_too(only_127_0_0_1_is_public: None) -> None:
    with serving({"/big.bin": Answer(bytes(5000))}) as server:
        with pytest.raises(FetchFailed) as refused:
            fetch_url(f"{server.url}/big.bin", 4096, timeout=5)
        assert refused.value.code == "too_large"


@pytest.fixture
def tls_server_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ssl.SSLContext]:
    """A server context with a self-signed certificate for 127.0.0.1, which clients trust
    (SSL_CERT_FILE)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    yield context


@pytest.mark.usefixtures("only_127_0_0_1_is_public")
def test_https_on_the_guarded_path_checks_the_certificate(
    tls_server_context: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_getaddrinfo = socket.getaddrinfo

    def other_name(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        return real_getaddrinfo(
            "127.0.0.1" if host == "other.test" else host, port, *args, **kwargs
        )

    monkeypatch.setattr(socket, "getaddrinfo", other_name)
    with serving({"/pic.png": Answer(PNG)}, tls=tls_server_context) as server:
        assert fetch_url(f"{server.url}/pic.png", 10_000, timeout=5)[0] == PNG
        with pytest.raises(FetchFailed, match="CERTIFICATE_VERIFY_FAILED"):
            # the same server under another name: its certificate names 127.0.0.1 only
            fetch_url(f"https://other.test:{server.port}/pic.png", 10_000, timeout=5)


@pytest.mark.parametrize("allowed", [False, True])
def test_the_config_switch_reaches_the_puppet_service_client(tmp_path: Any, allowed: bool) -> None:
    import json

    from wechat_sdk.adapters.wechaty.service import make_puppet
    from wechat_sdk.config import accounts_of, parse_config

    config = parse_config(
        json.dumps(
            {
                "channels": {
                    "wechat": {
                        "puppet": "wechaty-puppet-service",
                        "puppetOptions": {"token": "insecure_x", "endpoint": "127.0.0.1:1"},
                        "mediaFetchAllowPrivate": allowed,
                    }
                }
            }
        ),
        env={},
    )
    puppet = make_puppet(accounts_of(config).default, tmp_path)
    assert puppet.allow_private_hosts is allowed  # type: ignore[attr-defined]


def test_a_refused_redirect_is_named_without_its_target() -> None:
    """urllib refuses a redirect to another scheme, naming its target: a signed URL's
    query must not reach the error (and from it the log, status and events)."""
    target = "gopher://files.example/x?X-Amz-Signature=SECRETSIG"
    answers = {"/r": Answer(status=302, headers={"Location": target})}
    with serving(answers) as server, pytest.raises(FetchFailed) as failed:
        fetch_url(f"{server.url}/r", 10_000, timeout=5, allow_private=True)
    assert "HTTP 302" in str(failed.value) and "SECRETSIG" not in str(failed.value)


def test_a_response_that_is_not_http_is_a_failed_fetch() -> None:
    """A bad status line (http.client's own error, neither OSError nor ValueError) is a
    failed fetch like any other, not an error escaping to the caller."""
    import threading

    listener = socket.create_server(("127.0.0.1", 0))

    def answer_garbage() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HELLO\r\n\r\n")

    thread = threading.Thread(target=answer_garbage, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    try:
        with pytest.raises(FetchFailed, match="BadStatusLine") as failed:
            fetch_url(
                f"http://127.0.0.1:{port}/f?sig=SECRET", 10_000, timeout=5, allow_private=True
            )
        assert failed.value.code == "fetch_failed" and "SECRET" not in str(failed.value)
    finally:
        thread.join(5)
        listener.close()


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@dataclass
class Drip:
    url: str
    #: set when a send failed: the client went away (its connection was shut)
    client_gone: threading.Event


@contextlib.contextmanager
def dripping(head: bytes, tls: ssl.SSLContext | None = None) -> Iterator[Drip]:
    """A server that sends ``head`` line by line, then a byte at a time, each well within
    the read timeout, until the test ends (it never stops on its own)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(60)  # (a bound for a client that never comes, not a test of time)
    stop = threading.Event()
    client_gone = threading.Event()

    def drip() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with contextlib.ExitStack() as closing:
            closing.enter_context(conn)
            try:
                if tls is not None:
                    conn = closing.enter_context(tls.wrap_socket(conn, server_side=True))
                conn.recv(4096)
            except OSError:  # (the handshake or the request cut: the client went away)
                client_gone.set()
                return
            for piece in itertools.chain(head.splitlines(keepends=True), itertools.repeat(b"x")):
                if stop.wait(0.05):
                    return
                try:
                    conn.sendall(piece)
                except OSError:
                    client_gone.set()
                    return

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    scheme = "https" if tls is not None else "http"
    try:
        yield Drip(f"{scheme}://127.0.0.1:{listener.getsockname()[1]}", client_gone)
    finally:
        stop.set()
        thread.join(5)
        listener.close()


SLOW_BODY = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
SLOW_HEAD = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Slow-%d: 1\r\n" % i for i in range(90))


@pytest.mark.usefixtures("only_127_0_0_1_is_public")
@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize("head", [SLOW_BODY, SLOW_HEAD], ids=["body", "headers"])
def test_a_slow_drip_is_cut_at_the_whole_fetchs_deadline(
    head: bytes,
    allow_private: bool,
    scheme: str,
    self_signed: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each byte comes well within the read timeout; the whole download may still not take
    forever (a drip would hold the turn, and its thread, for hours). The server drips
    until the test ends: only the deadline shutting the connection ends the fetch, and the
    server sees its client go (over TLS too: the TLS socket is not the one first made)."""
    tls: ssl.SSLContext | None = None
    if scheme == "https":
        cert, key = self_signed
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # (read by fetch_url's TLS context)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
    outcome: list[BaseException] = []

    def fetch(url: str) -> None:
        try:
            fetch_url(url, 10**6, timeout=5, total_s=0.5, allow_private=allow_private)
        except BaseException as exc:  # (kept for the test; no exception is a failure too)
            outcome.append(exc)

    with dripping(head, tls) as server:
        fetching = threading.Thread(target=fetch, args=(f"{server.url}/f?sig=SECRET",), daemon=True)
        fetching.start()
        cut = server.client_gone.wait(30)  # (a bound on waiting for it, not on the fetch)
    fetching.join(30)  # (the server has stopped: an uncut fetch ends now too)
    assert cut, "the whole fetch's deadline did not shut the connection"
    assert not fetching.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], FetchFailed), outcome
    failed = outcome[0]
    assert failed.code == "fetch_failed"
    assert "within 0.5 s" in str(failed) and "SECRET" not in str(failed)
