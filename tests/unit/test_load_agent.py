"""`--agent module:function`: found in the current folder, clear errors otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from wechat_sdk.gateway.service import load_agent


def test_agent_module_in_the_current_folder_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mybot_cwd_probe.py").write_text(
        "async def agent(turn):\n    return 'hi ' + turn.text\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    agent = load_agent("mybot_cwd_probe:agent")
    assert agent.__module__ == "mybot_cwd_probe"


def test_missing_module_or_function_says_what_to_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mybot_probe2.py").write_text("x = 1\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="no module 'nosuchbot'"):
        load_agent("nosuchbot:agent")
    with pytest.raises(ValueError, match="has no function 'agent'"):
        load_agent("mybot_probe2:agent")
    with pytest.raises(ValueError, match="module:function"):
        load_agent("mybot_probe2")


def test_the_agent_error_names_the_agent_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from wechat_sdk.cli import cli

    (tmp_path / "mybot_probe3.py").write_text("async def agent(turn):\n    return None\n")
    (tmp_path / "c.json5").write_text('{ channels: { wechat: { puppet: "simulator" } } }')
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["gateway", "run", "--config", "c.json5", "--agent", "mybot_probe3:agnet"]
    )
    assert result.exit_code == 1
    [line] = [x for x in result.output.splitlines() if x.strip()]
    assert line == (
        "error: cannot load the agent 'mybot_probe3:agnet': mybot_probe3 has no function 'agnet'"
    )


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("async def agent(turn:\n    return 'hi'\n", "SyntaxError"),
        ("import os\nKEY = os.environ['MYBOT_NO_SUCH_KEY']\n", "KeyError: 'MYBOT_NO_SUCH_KEY'"),
        ("import mybot_no_such_dependency\n", "No module named 'mybot_no_such_dependency'"),
        ("from os import no_such_name\n", "ImportError: cannot import name 'no_such_name'"),
    ],
)
def test_an_agent_module_that_fails_to_import_is_said_without_the_clis_traceback(
    tmp_path: Path, source: str, said: str
) -> None:
    """Your first bot's mistake (a typo, a variable not set) ended `gateway run` with a
    Python traceback through click's insides; now an error that names the agent, then
    where in your file it failed."""
    import os
    import subprocess

    (tmp_path / "mybot_broken.py").write_text(source)
    (tmp_path / "c.json5").write_text('{ channels: { wechat: { puppet: "simulator" } } }')
    run = ["gateway", "run", "--config", "c.json5", "--state-dir", str(tmp_path / "state")]
    result = subprocess.run(
        [sys.executable, "-m", "wechat_sdk", *run, "--agent", "mybot_broken:agent"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    err = result.stderr
    assert err.startswith("error: cannot load the agent 'mybot_broken:agent': importing ")
    assert "Traceback" not in err and "click" not in err and "importlib" not in err
    assert said in err
    assert f'File "{tmp_path / "mybot_broken.py"}", line ' in err  # where to look
