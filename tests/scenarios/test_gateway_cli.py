"""`wechat-sdk gateway run|status|restart|stop` as real processes, on the simulator puppet.

These run in real time (the simulated phone scans each QR code after scanAfterMs), so
they are marked slow; every wait polls against a deadline instead of sleeping blindly.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

DEADLINE_S = 30.0


def config_text(**keys: Any) -> str:
    wechat = {
        "puppet": "simulator",
        "puppetOptions": {"scanAfterMs": 200},
        "dmPolicy": "open",
        "allowFrom": ["*"],
        **keys,
    }
    return json.dumps({"channels": {"wechat": wechat}})


def cli(*args: str | Path, config_env: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own; ``config_env``: the config named by
    ``WECHAT_SDK_CONFIG`` (else none is)."""
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("WECHAT_SDK_CONFIG", None)
    if config_env is not None:
        env["WECHAT_SDK_CONFIG"] = str(config_env)
    return subprocess.run(
        [sys.executable, "-m", "wechat_sdk", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        env=env,
        check=False,
    )


def wait_for(what: str, check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Running:
    """A `wechat-sdk gateway run` process with its stderr in a file."""

    def __init__(
        self, tmp_path: Path, name: str = "run", *args: str, state_dir_option: bool = True
    ) -> None:
        self.config = tmp_path / "config.json5"
        self.state = tmp_path / "state"
        self.log = tmp_path / f"{name}.log"
        self.args = args  # more options of `gateway run`
        #: False: no --state-dir (the config's stateDir says where the state is)
        self.state_dir_option = state_dir_option
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Running:
        env = {**os.environ, "NO_COLOR": "1"}
        env.pop("WECHAT_SDK_CONFIG", None)
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "wechat_sdk",
                    "gateway",
                    "run",
                    "--config",
                    str(self.config),
                    *(("--state-dir", str(self.state)) if self.state_dir_option else ()),
                    *self.args,
                ],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                cwd=self.config.parent,  # where `--agent module:function` finds its module
            )
        return self

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def status(self) -> list[dict[str, Any]] | None:
        result = cli("gateway", "status", "--json", "--state-dir", self.state)
        if result.returncode != 0:
            return None
        accounts: list[dict[str, Any]] = json.loads(result.stdout)
        return accounts

    def wait_ready(self, count: int = 1) -> list[dict[str, Any]]:
        def ready() -> list[dict[str, Any]] | None:
            assert self.proc is not None and self.proc.poll() is None, self.stderr()
            accounts = self.status()
            if accounts and len(accounts) == count and all(a["state"] == "ready" for a in accounts):
                return accounts
            return None

        result: list[dict[str, Any]] = wait_for("every account ready", ready)
        return result

    def wait_exit(self) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=DEADLINE_S)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=DEADLINE_S)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Running]:
    running = Running(tmp_path)
    running.config.write_text(config_text(health={"port": 0}))
    try:
        yield running
    finally:
        running.kill()


def test_status_without_a_gateway_says_how_to_start_one(tmp_path: Path) -> None:
    result = cli("gateway", "status", "--state-dir", tmp_path / "nothing")
    assert result.returncode == 3
    assert "no gateway is running" in result.stderr
    assert "start one with: wechat-sdk gateway run" in result.stderr
    for verb in ("restart", "stop"):
        assert cli("gateway", verb, "--state-dir", tmp_path / "nothing").returncode == 3


def test_run_status_health_and_stop(gateway: Running) -> None:
    gateway.start()
    (account,) = gateway.wait_ready()
    assert account["account"] == "default"
    assert account["user_id"] == "wxid_bot_default"
    assert account["qr_url"] is None

    table = cli("gateway", "status", "--state-dir", gateway.state)
    assert table.returncode == 0
    assert re.search(r"default\s+│\s+ready", table.stdout), table.stdout

    log = gateway.stderr()
    assert "[WeChat] QR Code status: 2" in log
    assert "[WeChat] Scan QR Code at: https://wechaty.js.org/qrcode/" in log
    port = re.search(r"health endpoints on http://127\.0\.0\.1:(\d+)/healthz", log)
    assert port, log
    with urllib.request.urlopen(f"http://127.0.0.1:{port[1]}/readyz", timeout=5) as response:
        assert response.status == 200
        assert json.loads(response.read())["ready"] is True

    stopped = cli("gateway", "stop", "--state-dir", gateway.state)
    assert stopped.returncode == 0 and "gateway stopping" in stopped.stdout
    assert gateway.wait_exit() == 0
    assert "gateway stopped" in gateway.stderr()
    assert not (gateway.state / "control.sock").exists()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port[1]}/healthz", timeout=5)


def test_a_config_wrong_elsewhere_still_names_the_running_gateway_by_its_state_dir(
    gateway: Running,
) -> None:
    """The CLI finds the gateway by the config's stateDir: a config edited wrong (the
    restart it is for is refused by the gateway, with its problems) sent it to the default
    directory ("no gateway is running") or stopped at its own config error."""
    state = str(gateway.state)
    gateway.config.write_text(config_text(stateDir=state))
    gateway.start()
    gateway.wait_ready()
    gateway.config.write_text(config_text(stateDir=state, dmPolicy="sometimes"))
    for how in ({"config_env": gateway.config}, {}):
        flag: tuple[str | Path, ...] = () if how else ("--config", gateway.config)
        refused = cli("gateway", "restart", *flag, **how)
        assert refused.returncode == 1, refused.stderr
        assert "invalid config, the running gateway keeps the old one" in refused.stderr
        status = cli("gateway", "status", "--json", *flag, **how)
        assert status.returncode == 0 and json.loads(status.stdout)[0]["state"] == "ready"
    gateway.config.write_text("{ channels: ")  # not even JSON5: said, not guessed at
    broken = cli("gateway", "status", "--config", gateway.config)
    assert broken.returncode != 3 and "config error" in broken.stderr, broken.stderr


@pytest.mark.parametrize("where", ["a file", "under a file", "too long for a socket"])
def test_a_state_directory_that_cannot_be_used_is_said_without_a_traceback(
    tmp_path: Path, where: str
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a folder")
    state = {
        "a file": notes,
        "under a file": notes / "state",
        "too long for a socket": tmp_path / ("x" * 120),  # (a Unix socket's path: ~107 bytes)
    }[where]
    config = tmp_path / "config.json5"
    config.write_text(config_text(stateDir=str(state)))
    result = cli("gateway", "run", "--config", config)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"error: cannot use the state directory {state}" in result.stderr
    assert "choose another with --state-dir DIR or the config's stateDir" in result.stderr


def test_restart_refuses_an_invalid_config_and_applies_a_valid_one(gateway: Running) -> None:
    gateway.start()
    gateway.wait_ready()

    # a second gateway on the same state directory is refused
    second = Running(gateway.config.parent, name="second").start()
    assert second.wait_exit() == 1
    assert "a gateway is already running on" in second.stderr()
    # the command it gives reaches the running gateway (not on the default directory)
    assert f"(stop it with: wechat-sdk gateway stop --state-dir {gateway.state})" in (
        second.stderr()
    )

    gateway.config.write_text(config_text(dmPolicy="sometimes"))
    refused = cli("gateway", "restart", "--state-dir", gateway.state)
    assert refused.returncode == 1
    assert "invalid config, the running gateway keeps the old one" in refused.stderr
    assert "channels.wechat.dmPolicy" in refused.stderr
    assert "restart refused, the running config is kept" in gateway.stderr()
    assert len(gateway.wait_ready()) == 1  # still running, on the old config

    gateway.config.write_text(
        config_text(defaultAccountId="home", accounts={"home": {}, "work": {"name": "Work"}})
    )
    applied = cli("gateway", "restart", "--state-dir", gateway.state)
    assert applied.returncode == 0, applied.stderr
    assert "gateway restarted with the new config" in applied.stdout
    accounts = gateway.wait_ready(count=2)
    assert [a["account"] for a in accounts] == ["home", "work"]

    assert cli("gateway", "stop", "--state-dir", gateway.state).returncode == 0
    assert gateway.wait_exit() == 0


def test_restart_refuses_a_new_state_dir_or_store_and_the_gateway_keeps_running(
    tmp_path: Path,
) -> None:
    """The state directory and the store are opened once, at the start: a restart took a
    config that moved them and went on in the old directory, where status, stop and
    pairing with that config no longer found it, or stopped every account (a Redis store)."""
    running = Running(tmp_path, state_dir_option=False)
    state = str(running.state)
    running.config.write_text(config_text(stateDir=state))
    running.start()
    try:
        running.wait_ready()
        redis = {"kind": "redis", "url": "redis://127.0.0.1:9/0"}
        moved = {"stateDir": str(tmp_path / "elsewhere")}
        for change in (moved, {"stateDir": state, "store": redis}):
            running.config.write_text(config_text(**change))
            refused = cli("gateway", "restart", "--state-dir", running.state)
            assert refused.returncode == 1, refused.stderr
            assert "the running gateway keeps the old one" in refused.stderr
            key = "store" if "store" in change else "stateDir"
            assert f"channels.wechat.{key}: a restart cannot change it" in refused.stderr
            assert "stop the gateway and run it again" in refused.stderr
            assert len(running.wait_ready()) == 1  # still running, on the old config
        # found by the config's new stateDir: said "no gateway is running", where one runs
        running.config.write_text(config_text(**moved))
        lost = cli("gateway", "restart", "--config", running.config)
        assert lost.returncode == 3, lost.stderr
        said = " ".join(lost.stderr.split())
        assert f"It looked in {tmp_path / 'elsewhere'}, the stateDir of {running.config}" in said
        assert "a restart cannot move a gateway to another state directory" in said
        assert "wechat-sdk gateway stop --state-dir OLD_DIR" in said
        assert f"wechat-sdk gateway run --config {running.config}" in said
        assert len(running.wait_ready()) == 1
        assert not (tmp_path / "elsewhere").exists()
        running.config.write_text(config_text(stateDir=state))
        assert cli("gateway", "stop", "--config", running.config).returncode == 0
        assert running.wait_exit() == 0
    finally:
        running.kill()


def test_sigterm_stops_gracefully_and_the_next_process_needs_no_scan(
    gateway: Running, tmp_path: Path
) -> None:
    gateway.start()
    gateway.wait_ready()
    assert gateway.proc is not None
    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.wait_exit() == 0
    log = gateway.stderr()
    assert "stopping: in-flight replies get up to 10 s" in log
    assert "gateway stopped" in log
    card = json.loads(
        (gateway.state / "accounts" / "default" / "simulator-session.json").read_text()
    )
    assert card["wxid"] == "wxid_bot_default"

    again = Running(tmp_path, name="again").start()
    try:
        (account,) = again.wait_ready()
        assert account["user_id"] == "wxid_bot_default"
        log = again.stderr()
        assert "logged in as Bot default (wxid_bot_default)" in log
        assert "QR Code" not in log  # the kept session: no QR code, no scan
        again.proc.send_signal(signal.SIGINT)  # type: ignore[union-attr]
        assert again.wait_exit() == 0
    finally:
        again.kill()


LONGBOT = """
PARTS = [f"Part {i:02d} of the long answer." for i in range(1, 21)]


async def agent(turn):
    return "\\n\\n".join(PARTS) if turn.text == "long" else f"echo {turn.text}"
"""
PARTS = [f"Part {i:02d} of the long answer." for i in range(1, 21)]


def long_reply_gateway(tmp_path: Path) -> tuple[Path, Path]:
    """A config in ``tmp_path`` for ``gateway run --agent longbot:agent`` on the simulator,
    one part of the long answer a message, paced; its inbox and transcript."""
    inbox, transcript = tmp_path / "inbox", tmp_path / "transcript.jsonl"
    inbox.mkdir()
    (tmp_path / "longbot.py").write_text(LONGBOT)
    (tmp_path / "config.json5").write_text(
        config_text(
            puppetOptions={"scanAfterMs": 200, "inbox": str(inbox), "transcript": str(transcript)},
            textChunkLimit=40,  # one part a message: 20 messages
            pacing={"perSecond": 2, "burst": 1, "chunkGapMs": 500, "jitterMs": 0},
        )
    )
    return inbox, transcript


def ask_long(inbox: Path) -> None:
    """Alice asks for the long answer (the file appears whole in the inbox)."""
    (inbox / "long.tmp").write_text(json.dumps({"from": "wxid_alice", "text": "long"}))
    (inbox / "long.tmp").rename(inbox / "long.json")


def sent_texts(transcript: Path) -> list[str]:
    if not transcript.exists():
        return []
    lines = [json.loads(line) for line in transcript.read_text().splitlines() if line]
    return [e["text"] for e in lines if e["direction"] == "out" and e["to"] == "wxid_alice"]


def test_sigterm_mid_reply_keeps_the_rest_and_the_next_process_sends_it_once(
    tmp_path: Path,
) -> None:
    inbox, transcript = long_reply_gateway(tmp_path)
    args = ("--agent", "longbot:agent", "--grace", "0.5")
    first = Running(tmp_path, "first", *args).start()
    try:
        first.wait_ready()
        ask_long(inbox)
        wait_for("a few parts sent", lambda: len(sent_texts(transcript)) >= 3)
        assert first.proc is not None
        first.proc.send_signal(signal.SIGTERM)
        assert first.wait_exit() == 0
    finally:
        first.kill()
    cut = sent_texts(transcript)
    assert 3 <= len(cut) < len(PARTS)
    assert cut == PARTS[: len(cut)]
    log = first.stderr()
    assert "stopping: in-flight replies get up to 0.5 s" in log
    kept = re.search(r"\((\d+) message\(s\) sent, (\d+) kept in the store", log)
    assert kept, log
    assert (int(kept[1]), int(kept[2])) == (len(cut), len(PARTS) - len(cut))

    second = Running(tmp_path, "second", *args).start()
    try:
        second.wait_ready()
        wait_for("the rest sent", lambda: len(sent_texts(transcript)) >= len(PARTS))
        time.sleep(1.5)  # more than the pacing gap: anything sent twice would show now
        assert sent_texts(transcript) == PARTS  # the rest once, in order, nothing twice
        log = second.stderr()
        assert f"kept from the last stop: {len(PARTS) - len(cut)} message(s) and 0 turn(s)" in log
        assert second.proc is not None
        second.proc.send_signal(signal.SIGTERM)
        assert second.wait_exit() == 0
    finally:
        second.kill()


def test_a_second_signal_while_stopping_is_said_and_the_stop_goes_on(tmp_path: Path) -> None:
    # a second Ctrl-C during the grace was ignored without a word: it looked like a hang
    inbox, transcript = long_reply_gateway(tmp_path)
    running = Running(tmp_path, "twice", "--agent", "longbot:agent", "--grace", "2").start()
    try:
        running.wait_ready()
        ask_long(inbox)
        wait_for("a part sent", lambda: len(sent_texts(transcript)) >= 1)
        assert running.proc is not None
        running.proc.send_signal(signal.SIGINT)
        wait_for("stopping", lambda: "stopping: in-flight replies" in running.stderr())
        running.proc.send_signal(signal.SIGINT)
        assert running.wait_exit() == 0
    finally:
        running.kill()
    log = running.stderr()
    assert "already stopping: in-flight replies get up to 2 s in all" in log
    assert "gateway stopped" in log


def test_grace_must_be_a_number_of_seconds() -> None:
    result = cli("gateway", "run", "--grace", "nan")
    assert result.returncode == 2 and "--grace" in result.stderr


def test_gateway_run_shows_the_simulators_warnings_as_its_own(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the simulator is gateway run's default puppet: its lines (a bad inbox file) came
    # bare, without the time, level and account of every other line
    import logging

    from wechat_sdk.gateway.service import configure_logging

    configure_logging()
    logging.getLogger("simulator").warning("ignoring inbox file m.json: not JSON")
    err = capsys.readouterr().err
    assert re.search(r"^\d\d:\d\d:\d\d WARNING +\[-\] ignoring inbox file m\.json", err, re.M)


def test_gateway_run_shows_the_libraries_warnings_on_its_lines_without_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the libraries the gateway uses (mcp, openai, httpx, aiohttp) logged through Python's
    # last resort: bare lines, JSON or not, a traceback, a server's URL with its key
    import logging

    from wechat_sdk.gateway.service import configure_logging

    configure_logging("human", "debug")
    logging.getLogger("openai").setLevel(logging.DEBUG)  # (what OPENAI_LOG=debug does)
    url = "https://bob:pw-0123456789@api.example.com/v1/chat/completions?key=k-0123456789"
    headers = {"Authorization": "Bearer sk-0123456789", "x-api-key": "k-0123456789"}
    logging.getLogger("openai._base_client").debug("Request options: %s", {"headers": headers})
    logging.getLogger("httpx").info('HTTP Request: POST %s "HTTP/1.1 200 OK"', url)
    logging.getLogger("aiohttp.client").warning("Unclosed connection to %s, %s", url, headers)
    try:
        raise ValueError(f"Client error '401 Unauthorized' for url '{url}'\nmore")
    except ValueError:
        logging.getLogger("mcp.client.streamable_http").exception("Error in post_writer")
    err = capsys.readouterr().err
    assert "Request options" not in err and "HTTP Request" not in err  # (debug, info)
    lines = err.splitlines()
    assert len(lines) == 2 and "Traceback" not in err
    assert re.match(r"\d\d:\d\d:\d\d WARNING +\[-\] aiohttp\.client: Unclosed connection", lines[0])
    assert "to https://api.example.com, {'Authorization': '***', 'x-api-key': '***'}" in err
    assert lines[1].endswith(
        "ERROR   [-] mcp.client.streamable_http: Error in post_writer "
        "(ValueError: Client error '401 Unauthorized' for url 'https://api.example.com')"
    )
    assert "0123456789" not in err


def test_a_library_line_names_the_cause_in_a_group_and_a_bad_one_never_raises(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import logging

    from wechat_sdk.gateway.service import configure_logging

    configure_logging("human", "info")
    try:  # (the mcp SDK's errors come out of anyio's task groups)
        raise ExceptionGroup("unhandled errors in a TaskGroup", [ConnectionRefusedError("no")])
    except ExceptionGroup:
        logging.getLogger("mcp.client.streamable_http").exception("Error in post_writer")
    logging.getLogger("httpx").warning("bad %s", 1, 2)  # (a library's own mistake)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("Error in post_writer (ConnectionRefusedError: no)")
    assert "a warning line that could not be shown" in lines[1]
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        configure_logging("human", "loud")
