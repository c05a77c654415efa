"""The configuration reference (every key, its type and default), made from the models."""

from __future__ import annotations

import html
import json
import re
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from wechat_sdk.config.models import WechatConfig

__all__ = ["key_html", "reference_markdown", "reference_rows"]


def reference_rows(
    model: type[BaseModel] = WechatConfig, prefix: str = "channels.wechat"
) -> list[tuple[str, str, str, str]]:
    """(dotted key, type, default, description) for every key, nested models expanded."""
    rows: list[tuple[str, str, str, str]] = []
    for name, info in model.model_fields.items():
        key = f"{prefix}.{name}"
        rows.append((key, _type_text(info.annotation), _default_text(info), info.description or ""))
        if name == "accounts":  # every account key is a top-level key above
            rows.append(
                (
                    f"{key}.<id>.*",
                    "any key above",
                    "inherited",
                    "overrides the top-level key for this account (shallow)",
                )
            )
            continue
        for sub, sub_prefix in _nested(info.annotation, key):
            rows.extend(reference_rows(sub, sub_prefix))
    return rows


def reference_markdown() -> str:
    """The rows as a markdown table (the site's configuration reference)."""
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for key, type_text, default, description in reference_rows():
        cells = [key_html(key), _literal_braces(type_text), default, _literal_braces(description)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def key_html(key: str) -> str:
    """A dotted key as inline HTML that a narrow column breaks after a dot, never inside a
    name: ``<code class="config-key">channels.<wbr>wechat.<wbr>...</code>``."""
    parts = [html.escape(part, quote=False) for part in key.split(".")]
    return '<code class="config-key">' + ".<wbr>".join(parts) + "</code>"


_BRACES = re.compile(r"\{[^{}`]*\}")


def _literal_braces(text: str) -> str:
    """``{allow, alsoAllow, deny}`` as a code span: bare braces at the end of a table cell
    are read as an attribute list by the site's attr_list extension, which eats them."""
    return _BRACES.sub(lambda m: f"`{m[0]}`", text)


def _nested(annotation: Any, key: str) -> list[tuple[type[BaseModel], str]]:
    out: list[tuple[type[BaseModel], str]] = []
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, key)]
    if origin is dict:
        value = typing.get_args(annotation)[1]
        for model, _ in _nested(value, key):
            out.append((model, f"{key}.<id>"))
        return out
    for arg in typing.get_args(annotation):
        out.extend(_nested(arg, key))
    return out


def _type_text(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(
            json.dumps(a) if not isinstance(a, bool) else str(a).lower() for a in args
        )
    if origin in (typing.Union, types.UnionType):
        parts = [_type_text(a) for a in args if a is not type(None)]
        text = " or ".join(parts)
        return f"{text} (optional)" if type(None) in args else text
    if origin is typing.Annotated:
        return _type_text(args[0])
    if origin is list:
        return f"list of {_type_text(args[0])}"
    if origin is dict:
        return f"map of {_type_text(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default_text(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value: Any = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if isinstance(value, BaseModel):
        dumped = value.model_dump(exclude_none=True)
        return "see below" if dumped else "`{}`"
    if value is None:
        return "unset"
    return f"`{json.dumps(value, ensure_ascii=False)}`"
