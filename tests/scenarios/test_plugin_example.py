"""The example on the "Testing your bot" page runs, as shown, with the installed pytest plugin."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from simulator.pytest_plugin import WeChatHarness

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "test_my_bot.py"
DOCS_PAGE = ROOT / "docs" / "testing.md"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_example_test_my_bot", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # keep docs/ free of __pycache__
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = dont_write
    return module


def test_example_is_under_ten_lines() -> None:
    assert len(EXAMPLE.read_text(encoding="utf-8").splitlines()) < 10


def test_docs_page_includes_the_example_file() -> None:
    page = DOCS_PAGE.read_text(encoding="utf-8")
    assert page.startswith("# Testing your bot")
    assert '```python\n--8<-- "docs/examples/test_my_bot.py"\n```' in page


async def test_example_test_passes_with_the_wechat_fixture(wechat: WeChatHarness) -> None:
    example = load_example()
    await example.test_my_bot(wechat)
    assert wechat.world.texts(to="wxid_alice") == ["you said hello"]


def test_example_passes_under_pytest_through_the_entry_point() -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_without_pytest_asyncio_the_failure_names_a_package_pip_can_install() -> None:
    # wechat-sdk is not on PyPI (the project of that name there is another one): the advice
    # names pytest-asyncio itself, which is what is missing
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("-p", "no:asyncio", str(EXAMPLE)),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "install it with pip install pytest-asyncio" in output, output
    assert "wechat-sdk[" not in output, output
