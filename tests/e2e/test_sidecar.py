"""The Node sidecar's lifetime: started by the gateway, never outliving it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mock_peer import MockControl

from wechat_sdk import Gateway, parse_config
from wechat_sdk.adapters.wechaty import sidecar as sidecar_module
from wechat_sdk.adapters.wechaty.service import make_puppet
from wechat_sdk.adapters.wechaty.sidecar import SidecarError, SidecarPuppet
from wechat_sdk.config import accounts_of, load_config
from wechat_sdk.puppet import ScanEvent
from wechat_sdk.puppets import SharedRedis

pytestmark = pytest.mark.e2e


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    try:
        with open(f"/proc/{pid}/status") as fh:
            return "zombie" not in fh.read()
    except FileNotFoundError:
        return False


async def test_gateway_runs_a_node_puppet_in_the_sidecar_and_stops_it(tmp_path: Path) -> None:
    config = parse_config(json.dumps({"channels": {"wechat": {"puppet": "wechaty-puppet-mock"}}}))

    async def agent(turn: object) -> None:
        return None

    gateway = Gateway(config, agent=agent, state_dir=tmp_path, show_terminal_qr=False)
    await gateway.start()
    puppet = gateway.runners["default"].puppet
    assert isinstance(puppet, SidecarPuppet)
    for _ in range(600):  # the sidecar starts and the client calls Start (a real process)
        if puppet.client is not None and puppet.client.starts_called:
            break
        await asyncio.sleep(0.1)
    assert puppet.client is not None and puppet.client.starts_called == 1
    pid = puppet.sidecar.pid
    assert pid is not None and alive(pid)
    assert gateway.status()[0].last_error is None
    await gateway.close()
    assert not alive(pid)
    # the puppet's memory card (its login state) is kept in the account's directory
    assert (tmp_path / "accounts" / "default" / "wechaty.memory-card.json").exists()


def test_sidecar_dies_with_a_killed_gateway(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        sys.path.insert(0, {str(Path(__file__).parent.parent / "adapters")!r})
        from mock_peer import mock_sidecar

        async def main():
            sidecar = mock_sidecar(Path({str(tmp_path)!r}))
            await sidecar.start()
            print(sidecar.pid, flush=True)
            await asyncio.sleep(3600)

        asyncio.run(main())
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line.strip().isdigit(), f"the parent did not start a sidecar: {line!r}"
        pid = int(line)
        assert alive(pid)
        parent.send_signal(signal.SIGKILL)  # a crash: no cleanup code runs in the parent
        parent.wait(10)
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(pid), "the sidecar outlived the gateway"
    finally:
        parent.kill()


async def test_a_crashed_sidecar_is_started_again_and_the_account_comes_back(
    tmp_path: Path,
) -> None:
    from mock_peer import MockControl, mock_sidecar

    puppet = SidecarPuppet(mock_sidecar(tmp_path / "peer"))
    config = parse_config(json.dumps({"channels": {"wechat": {"dmPolicy": "open"}}}))

    async def agent(turn: object) -> str:
        return "pong"

    gateway = Gateway(
        config,
        agent=agent,  # type: ignore[arg-type]
        puppet_factory=lambda account: puppet,
        state_dir=tmp_path / "state",
        show_terminal_qr=False,
    )

    async def until(what: str, check: object) -> None:
        for _ in range(400):
            if check():  # type: ignore[operator]
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    await gateway.start()
    try:
        for _round in range(2):
            await until("a QR code", lambda: gateway.status()[0].qr_url)
            assert puppet.sidecar.control_port is not None
            control = MockControl(puppet.sidecar.control_port)
            await control("login")
            await until("ready", lambda: gateway.status()[0].lifecycle == "ready")
            first_pid = puppet.sidecar.pid
            assert first_pid is not None
            if _round == 0:
                os.kill(first_pid, signal.SIGKILL)  # the sidecar crashes
                await until("a new sidecar", lambda pid=first_pid: puppet.sidecar.pid != pid)
        assert gateway.status()[0].reconnects >= 1
    finally:
        await gateway.close()
    assert puppet.sidecar.pid is not None and not alive(puppet.sidecar.pid)


async def test_killed_sidecars_leave_no_file_box_registry_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Puppet Service keeps the files it passes on in file-box's registry, by default
    ``file-box-urn-registry.<pid>`` in the system's temp dir, which only a clean exit
    removes: a killed sidecar (with its gateway, or alone) left one there each time."""
    from mock_peer import mock_sidecar

    system_tmp = tmp_path / "tmp"
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))  # Node's os.tmpdir()
    state = tmp_path / "state"

    with_its_gateway = mock_sidecar(state)  # the gateway is killed, and the kernel kills
    await with_its_gateway.start()  # the sidecar: no stop() runs
    assert with_its_gateway.process is not None
    with_its_gateway.process.kill()
    await with_its_gateway.process.wait()

    alone = mock_sidecar(state)  # the next gateway's sidecar for the account, which crashes
    try:
        await alone.start()
        assert alone.process is not None
        alone.process.kill()
        await alone.process.wait()
        await alone.stop()  # what the gateway does before it starts another

        assert sorted(p.name for p in system_tmp.iterdir()) == []
        assert sorted(str(p.relative_to(state)) for p in state.rglob("*file-box*")) == []
    finally:
        await alone.stop()
        await with_its_gateway.stop()


# ---------------------------------------------------------------- wechaty-puppet-wechat's browser

GOING_LIVE = Path(__file__).resolve().parents[2] / "docs/examples/config/going-live-wechat.json5"


def going_live_puppet(state_dir: Path) -> SidecarPuppet:
    """The puppet of the Going live page's config, as written."""
    account = accounts_of(load_config(GOING_LIVE)).default
    puppet = make_puppet(account, state_dir)
    assert isinstance(puppet, SidecarPuppet)
    return puppet


async def test_without_a_browser_the_puppet_says_what_to_do_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sidecar_module, "find_browser", lambda env=None: None)
    for name in ("PUPPETEER_EXECUTABLE_PATH", "WECHATY_PUPPET_WECHAT_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    puppet = going_live_puppet(tmp_path)
    try:
        with pytest.raises(SidecarError) as raised:
            await puppet.start()
    finally:
        await puppet.close()
    assert str(raised.value) == (
        "wechaty-puppet-wechat found no Chromium or Chrome: install Debian's chromium "
        "(apt install chromium), or set puppetOptions.endpoint to the browser's path"
    )
    # what Node really said (puppeteer's advice to run npm install) is kept as the cause
    assert "Could not find expected browser" in str(raised.value.__cause__)


async def test_a_browser_installed_while_the_gateway_runs_is_taken_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser = sidecar_module.find_browser()
    if browser is None:
        pytest.skip("no Chromium or Chrome on this host")
    monkeypatch.setattr(sidecar_module, "find_browser", lambda env=None: None)
    puppet = going_live_puppet(tmp_path)
    try:
        with pytest.raises(SidecarError, match="found no Chromium or Chrome"):
            await puppet.start()
        first = puppet.sidecar.pid
        await puppet.stop()  # what the gateway does between two attempts
        monkeypatch.setattr(sidecar_module, "find_browser", lambda env=None: browser)
        try:  # `apt install chromium` meanwhile: the next attempt drives it
            await puppet.start()
        except SidecarError as exc:  # here without network: the login page did not load
            assert "could not open https://" in str(exc), exc
        assert puppet.sidecar.pid != first and puppet.sidecar.browser == browser
    finally:
        await puppet.close()


async def test_the_going_live_config_starts_the_systems_chromium(tmp_path: Path) -> None:
    """As written, the page's config drives the system's browser: a QR code comes, or
    (on a host that cannot reach WeChat) the error says the login page did not load."""
    if sidecar_module.find_browser() is None:
        pytest.skip("no Chromium or Chrome on this host")
    puppet = going_live_puppet(tmp_path)
    try:
        try:
            await puppet.start()
        except SidecarError as exc:  # the browser ran, and could not open WeChat's page
            assert "could not open https://" in str(exc), exc
            assert puppet.sidecar.browser == sidecar_module.find_browser()
            return
        async for event in puppet.events():  # WeChat reachable: the first QR code
            if isinstance(event, ScanEvent):
                assert event.qrcode
                return
    finally:
        await puppet.close()


async def test_a_node_puppets_memory_card_kept_in_redis_is_the_next_gateways(
    tmp_path: Path, redis_url: str, redis_namespace: str
) -> None:
    """With a Redis store, what the puppet keeps in its memory card (its session) on one
    machine is in its card on the next, read by Node's own memory-card."""
    shared = SharedRedis(redis_url, redis_namespace)
    config = parse_config(json.dumps({"channels": {"wechat": {"puppet": "wechaty-puppet-mock"}}}))

    def on_machine(state_dir: Path) -> SidecarPuppet:
        puppet = make_puppet(accounts_of(config).accounts["default"], state_dir, shared)
        assert isinstance(puppet, SidecarPuppet)
        puppet.sidecar.test_control = True
        return puppet

    first = on_machine(tmp_path / "a")
    try:
        await first.sidecar.start()
        assert first.sidecar.control_port is not None
        control = MockControl(first.sidecar.control_port)
        await control("remember", key="session", value={"cookies": "c00kie"})
    finally:
        await first.close()  # (a clean stop: the account moves)
    second = on_machine(tmp_path / "b")
    try:
        await second.sidecar.start()
        assert second.sidecar.control_port is not None
        recalled = await MockControl(second.sidecar.control_port)("recall", key="session")
        assert recalled["value"] == {"cookies": "c00kie"}
    finally:
        await second.close()
