"""Problems of a pydantic validation, each as ``dotted.path: what to change``, worded as
the config's are (``wechat_sdk.config``: its messages and its "did you mean" hints), for
scenario files and the control API's bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

# the config loader's own wording, union collapsing and "did you mean" rule: one home for them
from wechat_sdk.config.errors import ConfigProblem
from wechat_sdk.config.loader import _clean_loc, _collapse_unions, _message, _model_of

__all__ = ["keys_of", "problems", "unknown_key"]


def problems(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> list[str]:
    """Each problem of ``exc`` (from validating ``model``) as ``path: message``, the path
    under ``prefix``; an unknown key names the closest known one."""
    found: list[ConfigProblem] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        loc = _clean_loc([str(p) for p in err["loc"]])
        if err["type"] == "extra_forbidden":
            message = unknown_key(loc[-1], _keys_at(model, loc[:-1]))
        else:
            message = _message(err, loc, None)
        path = ".".join([prefix, *loc] if prefix else loc)
        if f"{path}\0{message}" not in seen:
            seen.add(f"{path}\0{message}")
            found.append(ConfigProblem(path, message))
    return [f"{p.path or '(body)'}: {p.message}" for p in _collapse_unions(found)]


def keys_of(model: type[BaseModel]) -> list[str]:
    """The keys ``model`` takes, as written (a field's alias when it has one)."""
    return [info.alias or name for name, info in model.model_fields.items()]


def unknown_key(key: str, known: list[str]) -> str:
    """``unknown key``, with the closest of ``known`` (``(did you mean "text"?)``), else
    the keys to use."""
    if not known:
        return "unknown key"
    # the config's "did you mean" (a choice among the known keys, as for a wrong value)
    choice = {"type": "literal_error", "ctx": {"expected": ", ".join(map(repr, known))}}
    said = _message({**choice, "input": key}, [key], None)
    hint = said[said.rfind(" (did you mean") :] if "(did you mean" in said else ""
    return f"unknown key{hint}" if hint else f"unknown key: use {', '.join(known)}"


def _keys_at(model: type[BaseModel], parents: list[str]) -> list[str]:
    current: Any = model
    for part in parents:
        if part.isdigit():  # an item of a list of models (steps.0, world.rooms.1)
            continue
        fields = getattr(current, "model_fields", None)
        if not fields:
            return []
        by_key = {info.alias or name: info for name, info in fields.items()}
        if part not in by_key:
            return []
        current = _model_of(by_key[part].annotation)
    if not (isinstance(current, type) and issubclass(current, BaseModel)):
        return []
    return keys_of(current)
