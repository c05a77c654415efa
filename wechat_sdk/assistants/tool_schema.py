"""A Python tool as the model sees it: its JSON schema, made by pydantic from the
function's type hints, and its arguments checked against it before it runs.

    def weather(city: str, days: int = 1) -> str:
        "The forecast for a city."

becomes ``{"name": "weather", "description": "The forecast for a city.", "parameters":
{"type": "object", "properties": {"city": {...}, "days": {...}}, "required": ["city"]}}``.
A parameter's description comes from ``Annotated[str, Field(description=...)]``.
"""

from __future__ import annotations

import functools
import inspect
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from wechat_sdk.config.loader import error_words

__all__ = [
    "MAX_DESCRIPTION_CHARS",
    "BadToolArguments",
    "PythonToolSpec",
    "describe_python_tool",
    "described",
]

#: the longest tool description OpenAI takes (a longer one fails the request: HTTP 400,
#: ``string_above_max_length``); an MCP server's or a docstring's is cut to it
MAX_DESCRIPTION_CHARS = 1024


def described(text: str) -> str:
    """A tool's description as the model is given it: cut to
    :data:`MAX_DESCRIPTION_CHARS`, ending with ``…`` where it was cut.

    >>> len(described("word " * 1000))
    1024
    """
    if len(text) <= MAX_DESCRIPTION_CHARS:
        return text
    return text[: MAX_DESCRIPTION_CHARS - 1] + "…"


class BadToolArguments(ValueError):
    """The model called a tool with arguments that do not fit its parameters."""


@dataclass(frozen=True)
class PythonToolSpec:
    """A Python tool's description and schema, and the model that checks its arguments."""

    description: str
    parameters: dict[str, Any]
    arguments: type[BaseModel]

    def parse(self, raw: str) -> dict[str, Any]:
        """The keyword arguments of a call from the model's JSON text (raises
        :class:`BadToolArguments` saying what is wrong)."""
        try:
            data = json.loads(raw or "{}")
        except ValueError as exc:
            raise BadToolArguments(f"the arguments are not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise BadToolArguments("the arguments must be a JSON object")
        try:
            checked = self.arguments.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {error_words(e)}"
                for e in exc.errors(include_url=False)
            )
            raise BadToolArguments(problems) from None
        return {name: getattr(checked, name) for name in type(checked).model_fields}


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=False)


@functools.lru_cache(maxsize=256)
def describe_python_tool(func: Callable[..., Any]) -> PythonToolSpec:
    """The schema of ``func``'s parameters (``*args``, ``**kwargs`` and unannotated
    parameters are not offered: a parameter without a hint is taken as a string)."""
    signature = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except (NameError, TypeError):
        hints = {}
    fields: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(name, str)
        default = ... if param.default is param.empty else param.default
        fields[name] = (annotation, default)
    model = create_model(f"{_title(func)}Arguments", __base__=_Arguments, **fields)
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    doc = inspect.getdoc(func) or ""
    description = doc.split("\n\n")[0].replace("\n", " ").strip()
    return PythonToolSpec(description, schema, model)


def _title(func: Callable[..., Any]) -> str:
    name = getattr(func, "__name__", "Tool")
    return "".join(part.capitalize() for part in name.split("_")) or "Tool"
