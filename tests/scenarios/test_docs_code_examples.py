"""Every Python example of the site is a file under docs/examples/, and the files run.

The pages include the files with pymdownx.snippets (``--8<-- "docs/examples/FILE.py"``, or
``FILE.py:section`` for the lines between ``# --8<-- [start:section]`` and
``# --8<-- [end:section]``), so what a page shows is what the tests below execute on the
simulator.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
SNIPPET = re.compile(r'^--8<-- "(?P<path>[^":]+)(?::(?P<section>[\w-]+))?"$')
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")
ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """The top-level fenced blocks of a markdown page as (language, body)."""
    blocks: list[tuple[str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m["fence"], m["info"].strip()
        body: list[str] = []
        i += 1
        while i < len(lines):
            close = FENCE.match(lines[i])
            if (
                close
                and close["fence"][0] == fence[0]
                and len(close["fence"]) >= len(fence)
                and not close["info"].strip()
            ):
                break
            body.append(lines[i])
            i += 1
        blocks.append((info.split()[0] if info else "", "\n".join(body)))
        i += 1
    return blocks


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def python_blocks() -> list[tuple[str, str]]:
    return [
        (page.name, body)
        for page in pages()
        for lang, body in fenced_blocks(page.read_text(encoding="utf-8"))
        if lang in ("python", "py", "pycon")
    ]


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.py"))


def test_the_block_parser_skips_nested_fences() -> None:
    text = "````text\n```python\nx = 1\n```\n````\n\n```python\ny = 2\n```\n"
    assert fenced_blocks(text) == [("text", "```python\nx = 1\n```"), ("python", "y = 2")]


def test_the_site_has_python_examples() -> None:
    assert len(python_blocks()) >= 15
    assert len(example_files()) >= 10


@pytest.mark.parametrize(("page", "body"), python_blocks(), ids=lambda v: str(v)[:40])
def test_every_python_block_includes_an_example_file(page: str, body: str) -> None:
    lines = [line for line in body.splitlines() if line.strip()]
    assert lines, f"{page}: empty python block"
    for line in lines:
        m = SNIPPET.match(line.strip())
        assert m, f"{page}: inline Python; move it to docs/examples/ and include it:\n{body}"
        path = ROOT / m["path"]
        assert path.parent == EXAMPLES and path.is_file(), f"{page}: {m['path']}"
        if m["section"]:
            source = path.read_text(encoding="utf-8")
            for marker in ("start", "end"):
                assert f"# --8<-- [{marker}:{m['section']}]" in source, (page, line)


def test_every_example_file_is_on_a_page() -> None:
    shown = "\n".join(body for _, body in python_blocks())
    for path in example_files():
        assert f"docs/examples/{path.name}" in shown, f"{path.name} is on no page"


def test_the_examples_pass_under_pytest(tmp_path: Path) -> None:
    """All example files in one pytest run, with the plugin from the entry point.

    They run as a reader runs them: copied to a folder with no pytest configuration, so in
    pytest-asyncio's default mode, strict (not this project's ``asyncio_mode = "auto"``).
    """
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns("__pycache__"))
    pass_as_a_reader_runs_them(folder, [p.name for p in example_files()])


def pass_as_a_reader_runs_them(folder: Path, files: list[str]) -> None:
    """``files`` of ``folder`` in one pytest run, from that folder, without this project's
    pytest configuration: each of their tests passes."""
    expected = sum(
        len(re.findall(r"^(?:async )?def test_", (folder / f).read_text(encoding="utf-8"), re.M))
        for f in files
    )
    env = {k: v for k, v in ENV.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        # -P: the folder is not put on sys.path by Python, as with the `pytest` command
        [sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(rf"^{expected} passed", result.stdout, re.M), result.stdout


def shown_test_files() -> dict[str, str]:
    """What a reader who copies a page's blocks of one test file into one file gets: the
    sections in the page's order, by a name of that page and file. A fragment from inside a
    function (a section that starts indented) is left out: it shows a call, not a file."""
    files: dict[str, str] = {}
    for page in pages():
        for lang, body in fenced_blocks(page.read_text(encoding="utf-8")):
            for line in body.splitlines() if lang in ("python", "py") else []:
                m = SNIPPET.match(line.strip())
                if not (m and m["section"] and Path(m["path"]).name.startswith("test_")):
                    continue
                source = (ROOT / m["path"]).read_text(encoding="utf-8")
                start = source.index(f"# --8<-- [start:{m['section']}]\n")
                end = source.index(f"# --8<-- [end:{m['section']}]")
                code = source[start:end].split("\n", 1)[1]
                if code.lstrip("\n")[:1].isspace():
                    continue
                name = f"test_{page.stem.replace('-', '_')}__{Path(m['path']).stem[5:]}.py"
                files[name] = files.get(name, "") + code
    return files


@pytest.mark.slow
def test_the_test_blocks_a_page_shows_run_as_copied(tmp_path: Path) -> None:
    """A page's blocks of one test file, copied in the page's order into one file, pass:
    each block's imports and names come with it or before it on the page."""
    files = shown_test_files()
    assert "test_assistant__assistant_offline.py" in files
    assert "test_simulator_server__ilink_simulator.py" in files
    shutil.copytree(EXAMPLES / "config", tmp_path / "config")  # the configs they read
    for name, code in files.items():
        (tmp_path / name).write_text(code, encoding="utf-8")
    pass_as_a_reader_runs_them(tmp_path, sorted(files))


def test_run_mybot_prints_what_the_first_bot_page_shows() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "run_mybot.py")],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    page = (DOCS / "first-bot.md").read_text(encoding="utf-8")
    shown = [body for lang, body in fenced_blocks(page) if lang == "text" and '"t": ' in body]
    assert shown == [result.stdout.strip()]
