"""Test sessions. `python3 -m nox` runs them all (the README's test command)."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests", "docs"]

PY = "3.11"


@nox.session(python=PY)
def tests(session: nox.Session) -> None:
    """pytest: unit, scenario and adapter tests."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=PY)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6,<1")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PY)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on both packages."""
    session.install("-e", ".[typecheck]")
    session.run("mypy", "--strict", "-p", "wechat_sdk", "-p", "simulator")


@nox.session(python=PY)
def docs(session: nox.Session) -> None:
    """mkdocs build --strict (the configuration reference is generated from the models)."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "build/site")
