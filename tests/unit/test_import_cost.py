"""What importing wechat_sdk loads: the heavy parts only where they are used.

Each check runs a fresh interpreter and reads its ``sys.modules``: a behaviour, not a
timing (docs/benchmarks.md has the times). ``import wechat_sdk`` loads the agent's types
and nothing heavy; the gateway's names come when asked for, and even then no adapter,
gRPC, Faker or simulator; the CLI's ``--help`` and ``gateway status --state-dir`` load
neither pydantic nor gRPC.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: never loaded by importing wechat_sdk, whatever public name is asked for
NEVER = ("grpc", "google.protobuf", "faker", "simulator", "wechat_sdk.adapters", "segno")
#: loaded only when the gateway's HTTP server starts or a webhook goes out
NEVER += ("aiohttp", "standardwebhooks", "httpx_sse")
#: loaded by ``import wechat_sdk`` only when one of the gateway's names is asked for
HEAVY = ("pydantic", "asyncio", "sqlite3", "regex", "rich", "click")


def loaded_after(code: str) -> set[str]:
    """The modules (and their packages) in ``sys.modules`` after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def present(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [n for n in names if any(m == n or m.startswith(n + ".") for m in modules)]


def test_import_wechat_sdk_loads_nothing_heavy() -> None:
    modules = loaded_after("import wechat_sdk")
    assert present(modules, NEVER) == []
    assert present(modules, HEAVY) == []


def test_every_public_name_imports_without_adapters_grpc_faker_or_simulator() -> None:
    modules = loaded_after(
        "import wechat_sdk\n"
        "from wechat_sdk import *\n"
        "for name in wechat_sdk.__all__: getattr(wechat_sdk, name)"
    )
    assert present(modules, NEVER) == []
    assert "wechat_sdk.gateway.gateway" in modules  # the lazy names were really imported


def test_lazy_names_are_the_real_objects() -> None:
    import wechat_sdk
    from wechat_sdk.config import Config, ConfigError, load_config, parse_config
    from wechat_sdk.gateway import AccountStatus, Gateway
    from wechat_sdk.outbound.chunking import chunk_text

    lazy = {
        "AccountStatus": AccountStatus,
        "Config": Config,
        "ConfigError": ConfigError,
        "Gateway": Gateway,
        "chunk_text": chunk_text,
        "load_config": load_config,
        "parse_config": parse_config,
    }
    for name, value in lazy.items():
        assert getattr(wechat_sdk, name) is value
    assert set(wechat_sdk.__all__) <= set(dir(wechat_sdk))
    with pytest.raises(AttributeError, match="no_such_name"):
        wechat_sdk.no_such_name  # noqa: B018


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["gateway", "--help"], ["gateway", "status", "--state-dir", "{tmp}"]],
    ids=["help", "gateway-help", "gateway-status"],
)
def test_cli_help_and_status_load_neither_pydantic_nor_grpc(
    argv: list[str], tmp_path: Path
) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    modules = loaded_after(
        f"from wechat_sdk.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass"
    )
    assert present(modules, NEVER) == []
    assert present(modules, ("pydantic", "regex", "sqlite3")) == []
    assert "wechat_sdk.gateway.gateway" not in modules
