"""End-to-end tests against the real Node Puppet Service (``python3 -m nox -s e2e``).

They need Node.js and npm; the sidecar's npm packages are installed once into
``build/node-cache`` (the first run takes a minute). Skipped, with the reason, when Node
or npm is missing, unless ``WECHAT_SDK_E2E_REQUIRED=1`` (set by the nox session), which
turns a missing Node into a failure.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "adapters"))  # puppet_contract

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if not missing:
        return
    if os.environ.get("WECHAT_SDK_E2E_REQUIRED") == "1":
        raise pytest.UsageError(f"e2e tests need {' and '.join(missing)} on PATH")
    skip = pytest.mark.skip(reason=f"needs {' and '.join(missing)}")
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def node_cache() -> Iterator[Path]:
    """One npm install for the whole run, kept in build/ between runs."""
    cache = Path(os.environ.get("WECHAT_SDK_NODE_CACHE", ROOT / "build" / "node-cache"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WECHAT_SDK_NODE_CACHE", str(cache))
        yield cache


OPENCLAW_TMP = Path("/tmp/openclaw")


@pytest.fixture(scope="session", autouse=True)
def node_temp_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The Node processes' temp files stay in the run's own directory, not in /tmp.

    Node's ``os.tmpdir()`` reads ``TMPDIR``: puppeteer's browser profiles
    (``puppeteer_dev_profile-*``, left behind when a sidecar is killed) and file-box's
    registry go there. The openclaw peer of Tencent's client always makes
    ``/tmp/openclaw`` for its log (a fixed path, no setting moves it): removed after the
    run when it was not there before."""
    temp = tmp_path_factory.mktemp("node-tmp")
    openclaw_was_there = OPENCLAW_TMP.exists()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TMPDIR", str(temp))
        yield temp
    if not openclaw_was_there:
        shutil.rmtree(OPENCLAW_TMP, ignore_errors=True)
