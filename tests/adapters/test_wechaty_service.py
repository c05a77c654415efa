"""Choosing a Wechaty puppet from the config: service settings, token discovery, sidecar."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from wechat_sdk import ConfigError, parse_config
from wechat_sdk.adapters.wechaty.client import PuppetServiceClient, ServiceUnavailable
from wechat_sdk.adapters.wechaty.service import discover_endpoint, make_puppet, service_settings
from wechat_sdk.adapters.wechaty.sidecar import SidecarError, SidecarPuppet, ensure_installed
from wechat_sdk.config import accounts_of


def account(wechat: dict[str, object], account_id: str = "default"):  # type: ignore[no-untyped-def]
    config = parse_config(json.dumps({"channels": {"wechat": wechat}}))
    return accounts_of(config).accounts[account_id]


def settings(options: dict[str, object], env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    acc = account({"puppet": "wechaty-puppet-service", "puppetOptions": options})
    return service_settings(acc.settings.puppetOptions, "channels.wechat.puppetOptions", env or {})


def test_service_needs_a_token_and_says_where() -> None:
    with pytest.raises(ConfigError, match=r"channels\.wechat\.puppetOptions\.token"):
        settings({"endpoint": "127.0.0.1:8788"})


def test_token_and_endpoint_from_the_environment_like_wechaty() -> None:
    s = settings(
        {},
        {
            "WECHATY_PUPPET_SERVICE_TOKEN": "insecure_env",
            "WECHATY_PUPPET_SERVICE_ENDPOINT": "10.0.0.2:9000",
            "WECHATY_PUPPET_SERVICE_NO_TLS_INSECURE_CLIENT": "true",
        },
    )
    assert (s.token, s.endpoint, s.tls) == ("insecure_env", "10.0.0.2:9000", False)


@pytest.mark.parametrize(
    ("token", "what"),
    [
        ("SECRET_caf\u00e9", "its character 11 is not ASCII"),
        ("SECRET_abc\n", "its character 11 is a control character"),
        ("SECRET\tabc", "its character 7 is a control character"),
        ("SECRET_abc\x7f", "its character 11 is a control character"),
    ],
)
def test_a_token_grpc_cannot_carry_is_a_config_error_at_its_key(token: str, what: str) -> None:
    # gRPC said only "INTERNAL: Invalid metadata" on every connection attempt
    with pytest.raises(ConfigError) as err:
        settings({"token": token, "endpoint": "h:1"})
    said = str(err.value)
    assert said.startswith("channels.wechat.puppetOptions.token: ")
    assert what in said and "printable ASCII" in said
    assert "SECRET" not in said
    # from the environment, the variable is named
    with pytest.raises(ConfigError, match="WECHATY_PUPPET_SERVICE_TOKEN") as err:
        settings({"endpoint": "h:1"}, {"WECHATY_PUPPET_SERVICE_TOKEN": token})
    assert "SECRET" not in str(err.value)


def test_config_check_names_the_key_of_a_token_grpc_cannot_carry(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from wechat_sdk.cli import cli

    cfg = tmp_path / "c.json5"
    cfg.write_text(
        '{channels: {wechat: {accounts: {work: {puppet: "wechaty-puppet-service",'
        ' puppetOptions: {token: "SECRET\u00e9", endpoint: "127.0.0.1:8788"}}}}}}'
    )
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(cfg)])
    assert result.exit_code != 0
    assert "channels.wechat.accounts.work.puppetOptions.token: " in result.output
    assert "not ASCII" in result.output
    assert "SECRET" not in result.output


def test_tls_defaults_and_options(tmp_path: Path) -> None:
    s = settings({"token": "insecure_abc", "endpoint": "h:1"})
    assert (s.tls, s.server_name, s.ca_file) == (True, "insecure", None)
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    s = settings({"token": "t", "endpoint": "h:1", "tls": {"caFile": str(ca), "serverName": "x"}})
    assert (s.tls, s.server_name, s.ca_file) == (True, "x", ca)
    assert settings({"token": "t", "endpoint": "h:1", "tls": False}).tls is False
    with pytest.raises(ConfigError, match=r"puppetOptions\.tls\.caFile"):
        settings({"token": "t", "endpoint": "h:1", "tls": {"caFile": str(tmp_path / "no.pem")}})


def test_bad_endpoint_and_discovery_url_name_their_keys() -> None:
    with pytest.raises(ConfigError, match=r"puppetOptions\.endpoint: .*host:port"):
        settings({"token": "t", "endpoint": "localhost"})
    with pytest.raises(ConfigError, match=r"puppetOptions\.discoveryUrl"):
        settings({"token": "t", "discoveryUrl": "ftp://x"})


def test_secrets_stay_out_of_reprs() -> None:
    s = settings({"token": "insecure_SECRET", "endpoint": "h:1"})
    assert "SECRET" not in repr(s)
    assert "SECRET" not in repr(s.connection("h:1"))


# ---------------------------------------------------------------- discovery


class _Discovery(BaseHTTPRequestHandler):
    known: ClassVar[dict[str, dict[str, object]]] = {
        "insecure_known": {"host": "127.0.0.1", "port": 8788}
    }

    def do_GET(self) -> None:
        token = self.path.rsplit("/", 1)[-1]
        if self.path.startswith("/v0/hosties/") and token in self.known:
            body = json.dumps(self.known[token]).encode()
            self.send_response(200)
        elif token == "broken":
            body = b"<html>oops"
            self.send_response(200)
        elif token == "garbled":  # bytes that are not UTF-8
            body = b'{"host": "\xff\xfe", "port": 8788}'
            self.send_response(200)
        elif token == "deep":  # JSON nested past what the parser takes
            body = b"[" * 60000
            self.send_response(200)
        else:
            body = b"{}"
            self.send_response(404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def discovery() -> Iterator[str]:
    httpd = HTTPServer(("127.0.0.1", 0), _Discovery)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


async def test_discovery_finds_the_endpoint_of_a_token(discovery: str) -> None:
    assert await discover_endpoint(discovery, "insecure_known") == "127.0.0.1:8788"


async def test_an_ipv6_host_from_discovery_is_reached(discovery: str) -> None:
    """The discovery service answering an IPv6 host (``{"host": "::1", "port": ...}``):
    the address was ``::1:<port>``, which gRPC reads as a host without a port, so no
    connection attempt ever reached the service. Now ``[::1]:<port>``, as gRPC wants it."""
    import grpc

    service = grpc.aio.server()
    try:
        port = service.add_insecure_port("[::1]:0")
    except RuntimeError:
        pytest.skip("no IPv6 loopback here")
    await service.start()
    _Discovery.known["insecure_v6"] = {"host": "::1", "port": port}
    try:
        endpoint = await discover_endpoint(discovery, "insecure_v6")
        assert endpoint == f"[::1]:{port}"
        async with grpc.aio.insecure_channel(endpoint) as channel:
            await asyncio.wait_for(channel.channel_ready(), 10)
    finally:
        del _Discovery.known["insecure_v6"]
        await service.stop(0)


def test_an_ipv6_endpoint_without_brackets_is_refused_saying_how_to_write_it() -> None:
    """``endpoint: "::1:8788"`` passed the check (its last colon taken for the port's) and
    gRPC read it as a host without a port: the service was never reached, with no word
    why. Now a config error saying to write the host in brackets, which works."""
    with pytest.raises(ConfigError, match=r"puppetOptions\.endpoint: .*\[::1\]:8788"):
        settings({"token": "t", "endpoint": "::1:8788"})
    assert settings({"token": "t", "endpoint": "[::1]:8788"}).endpoint == "[::1]:8788"
    assert settings({"token": "t", "endpoint": "[2001:db8::7]:8788"}).endpoint


async def test_discovery_of_an_unknown_token_says_what_to_do(discovery: str) -> None:
    with pytest.raises(ServiceUnavailable, match="does not know this token") as err:
        await discover_endpoint(discovery, "insecure_SECRET")
    assert "SECRET" not in str(err.value)
    with pytest.raises(ServiceUnavailable, match="failed"):
        await discover_endpoint(discovery, "broken")


async def test_a_garbled_discovery_reply_is_one_clear_error(discovery: str) -> None:
    for token in ("broken", "garbled", "deep"):
        with pytest.raises(ServiceUnavailable) as err:
            await discover_endpoint(discovery, token)
        said = str(err.value)
        assert f"the discovery service at {discovery} " in said
        assert "not JSON" in said and "check puppetOptions.discoveryUrl" in said


async def test_a_service_without_endpoint_is_resolved_by_discovery_at_start(
    discovery: str, tmp_path: Path
) -> None:
    acc = account(
        {
            "puppet": "wechaty-puppet-service",
            "puppetOptions": {"token": "insecure_known", "discoveryUrl": discovery},
        }
    )
    puppet = make_puppet(acc, tmp_path)
    assert isinstance(puppet, PuppetServiceClient)
    assert puppet.resolver is not None
    connection = await puppet.resolver()
    assert connection.endpoint == "127.0.0.1:8788"
    assert connection.server_name == "insecure"


# ---------------------------------------------------------------- sidecar


def test_node_puppets_run_in_the_sidecar_with_their_own_options(tmp_path: Path) -> None:
    acc = account(
        {
            "puppet": "wechaty-puppet-wechat",
            "puppetOptions": {
                "uos": True,
                "endpoint": "/usr/bin/chromium",  # puppet-wechat's browser
                "tls": True,  # the sidecar's own: not handed to the puppet
            },
        }
    )
    puppet = make_puppet(acc, tmp_path)
    assert isinstance(puppet, SidecarPuppet)
    assert puppet.sidecar.puppet == "wechaty-puppet-wechat"
    assert puppet.sidecar.puppet_options == {"uos": True, "endpoint": "/usr/bin/chromium"}
    assert puppet.sidecar.tls is True
    assert puppet.sidecar.account_dir == tmp_path / "accounts" / "default"


def test_a_puppet_name_that_is_no_package_is_a_config_error(tmp_path: Path) -> None:
    acc = account({"puppet": "Wechaty Puppet!"})
    with pytest.raises(ConfigError, match=r"channels\.wechat\.puppet: .*not a puppet"):
        make_puppet(acc, tmp_path)


async def test_too_old_node_is_a_clear_error(tmp_path: Path) -> None:
    from wechat_sdk.adapters.wechaty.node_install import check_node_version

    fake = tmp_path / "node"
    fake.write_text("#!/bin/sh\necho v16.20.0\n")
    fake.chmod(0o755)
    with pytest.raises(SidecarError, match=r"Node\.js v16\.20\.0 is too old.*18\+"):
        await check_node_version(str(fake))


async def test_missing_node_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name, *a, **k: None if name == "npm" else real_which(name)
    )
    with pytest.raises(SidecarError, match=r"npm is not installed.*Node\.js 18\+"):
        await ensure_installed(tmp_path / "cache", "wechaty-puppet-wechat")


async def test_a_stop_during_the_npm_install_ends_npm_too(tmp_path: Path) -> None:
    # a gateway stopped while an account's sidecar packages were installing left
    # `npm install` running on its own, writing into the cache after the lock was let go
    import asyncio
    import os

    from wechat_sdk.adapters.wechaty.node_install import _npm

    pid_file = tmp_path / "npm.pid"
    fake = tmp_path / "npm"
    # npm as a launcher that starts a child (a node), and the pids of both
    fake.write_text(
        f"#!/bin/sh\nsleep 600 &\necho $$ $! > {pid_file}.tmp\nmv {pid_file}.tmp {pid_file}\nwait\n"
    )
    fake.chmod(0o755)
    install = asyncio.create_task(_npm(str(fake), tmp_path, []))
    for _ in range(500):  # (until the fake npm runs)
        if pid_file.exists():
            break
        await asyncio.sleep(0.02)
    pid, child = (int(p) for p in pid_file.read_text().split())
    install.cancel()
    with pytest.raises(asyncio.CancelledError):
        await install
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(pid, 0)

    def dead(pid: int) -> bool:  # gone, or a zombie nobody reaped yet (its parent died)
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except (FileNotFoundError, ProcessLookupError):
            return True

    for _ in range(500):  # the child is killed too
        if dead(child):
            break
        await asyncio.sleep(0.02)
    else:
        os.kill(child, 9)
        raise AssertionError("the process npm started outlived the stop")


def test_config_check_reports_a_service_without_token(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from wechat_sdk.cli import cli

    cfg = tmp_path / "c.json5"
    cfg.write_text('{channels: {wechat: {puppet: "wechaty-puppet-service"}}}')
    result = CliRunner(env={"WECHATY_PUPPET_SERVICE_TOKEN": ""}).invoke(
        cli, ["config", "check", "--config", str(cfg)]
    )
    assert result.exit_code != 0
    assert "channels.wechat.puppetOptions.token" in result.output
