"""The base of every block of the config: a key it does not know is refused (a typo must
not silently do nothing), and so is ``true`` or ``false`` where a number goes
(``textChunkLimit: true`` would be 1)."""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

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
        if isinstance(value, bool) and field is not None and _is_number(field.annotation):
            raise ValueError(f"expected a number, got {str(value).lower()}")
        return value


def _is_number(annotation: Any) -> bool:
    """Whether a field holds a number (``int``, ``float``, either or None), not a flag."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return bool(args) and bool not in args and all(_is_number(a) for a in args)
    return annotation in (int, float)
