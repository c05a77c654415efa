"""The base of every block of the config: a key it does not know is refused (a typo must
not silently do nothing), and so is ``true`` or ``false`` where a number goes
(``textChunkLimit: true`` would be 1), in a list or a map of numbers too."""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

__all__ = ["StrictModel"]


class StrictModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=False, validate_default=True, allow_inf_nan=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None:
            found = _bool_for_a_number(field.annotation, value)
            if found is not None:
                flag, where = found
                at = f" (at {where})" if where else ""
                raise ValueError(f"expected a number, got {str(flag).lower()}{at}")
        return value


def _bool_for_a_number(annotation: Any, value: Any, where: str = "") -> tuple[bool, str] | None:
    """The first ``true`` or ``false`` in ``value`` where ``annotation`` puts a number,
    and where it is in ``value`` (``[1]``, ``"key"``; "" for ``value`` itself); None when
    there is none. Sees through ``Annotated``, unions (``... | None``), lists and maps."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _bool_for_a_number(get_args(annotation)[0], value, where)
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if isinstance(value, bool):  # (a union with room for a flag takes it)
            return (value, where) if members and all(map(_is_number, members)) else None
        for member in members:
            found = _bool_for_a_number(member, value, where)
            if found is not None:
                return found
        return None
    if isinstance(value, bool):
        return (value, where) if _is_number(annotation) else None
    if origin in (list, tuple, set, frozenset, Sequence) and isinstance(value, list | tuple):
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        if len(args) == 1:  # (list[int], tuple[int, ...]: a fixed tuple has no such field)
            for i, item in enumerate(value):
                found = _bool_for_a_number(args[0], item, f"{where}[{i}]")
                if found is not None:
                    return found
        return None
    if origin in (dict, Mapping) and isinstance(value, dict):
        item_type = get_args(annotation)[1]
        for key, item in value.items():
            found = _bool_for_a_number(item_type, item, f'{where}"{key}"')
            if found is not None:
                return found
    return None


def _is_number(annotation: Any) -> bool:
    """Whether ``annotation`` is a number (``int``, ``float``, ``Annotated`` or a union of
    them), not a flag."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _is_number(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return bool(args) and all(_is_number(a) for a in args)
    return annotation in (int, float)
