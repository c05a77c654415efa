"""Arrows point one way: which package may import which, read from the source (ast).

- ``wechat_sdk`` never imports ``simulator``; the one exception is the CLI, the outermost
  layer, inside the commands that run on the simulator (``simulate``, ``demo``), so that
  importing ``wechat_sdk`` never loads it. The simulator plugs itself in from outside (the
  ``wechat_sdk.puppets`` entry point).
- The core (config, inbound, outbound, pairing, agent, stores) never imports an adapter.
- ``config`` imports neither the pipelines (inbound, outbound) nor the gateway.
- ``inbound`` does not import ``outbound``.
- The CLI does not reach into the adapters.

Every import counts, at the top of a module or inside a function, ``TYPE_CHECKING`` ones too.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("wechat_sdk", "simulator")

CORE = (
    "wechat_sdk.config",
    "wechat_sdk.inbound",
    "wechat_sdk.outbound",
    "wechat_sdk.pairing",
    "wechat_sdk.agent",
    "wechat_sdk.stores",
)
ADAPTERS = "wechat_sdk.adapters"
CLI = "wechat_sdk.cli"  # a package: its root group, and a module per command group


@dataclass(frozen=True)
class Import:
    importer: str  # the module that imports
    imported: str  # a module it names (for `from a import b`: a, and a.b)
    line: int
    in_function: bool

    def __str__(self) -> str:
        where = "inside a function" if self.in_function else "at module level"
        return f"{self.importer} imports {self.imported} (line {self.line}, {where})"


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[Import]:
    importer = module_name(path)
    package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(importer, alias.name, node.lineno, in_function))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package, up level - 1
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append(Import(importer, base, node.lineno, in_function))
            for alias in node.names:
                found.append(Import(importer, f"{base}.{alias.name}", node.lineno, in_function))
        inside = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, False)
    return found


def all_imports() -> list[Import]:
    return [
        imp
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for imp in imports_of(path)
    ]


IMPORTS = all_imports()


def violations(importers: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return [
        str(imp)
        for imp in IMPORTS
        if any(within(imp.importer, p) for p in importers)
        and any(within(imp.imported, f) for f in forbidden)
    ]


def test_the_walk_sees_the_imports_it_checks() -> None:
    # the rules below pass only because the walk finds imports, not for want of any
    modules = {imp.importer for imp in IMPORTS}
    assert {
        "wechat_sdk.gateway.gateway",
        "simulator.world",
        CLI,
        f"{CLI}.simulator_commands",
    } <= modules
    assert violations(("wechat_sdk.gateway.gateway",), ("wechat_sdk.inbound",))
    assert violations(("simulator",), ("wechat_sdk",))


def test_the_sdk_never_imports_the_simulator() -> None:
    found = [
        str(imp)
        for imp in IMPORTS
        if within(imp.importer, "wechat_sdk")
        and within(imp.imported, "simulator")
        and not (within(imp.importer, CLI) and imp.in_function)
    ]
    assert found == []


def test_the_cli_uses_the_simulator_only_inside_its_commands() -> None:
    cli = [
        imp for imp in IMPORTS if within(imp.importer, CLI) and within(imp.imported, "simulator")
    ]
    assert cli, "the simulate and demo commands run on the simulator"
    assert all(imp.in_function for imp in cli)


@pytest.mark.parametrize(
    ("importers", "forbidden"),
    [
        pytest.param(CORE, (ADAPTERS,), id="the core imports no adapter"),
        pytest.param(
            ("wechat_sdk.config",),
            ("wechat_sdk.inbound", "wechat_sdk.outbound", "wechat_sdk.gateway", ADAPTERS),
            id="config imports no pipeline, gateway or adapter",
        ),
        pytest.param(
            ("wechat_sdk.inbound",), ("wechat_sdk.outbound",), id="inbound imports no outbound"
        ),
        pytest.param((CLI,), (ADAPTERS,), id="the CLI does not reach into the adapters"),
    ],
)
def test_layers_import_only_what_they_may(
    importers: tuple[str, ...], forbidden: tuple[str, ...]
) -> None:
    assert violations(importers, forbidden) == []
