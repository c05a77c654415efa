"""Problems of a pydantic validation, each as ``dotted.path: what to change``, worded as
the config's are (:func:`wechat_sdk.config.validation_problems`: its messages and its
"did you mean" hints), for scenario files and the control API's bodies."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from wechat_sdk.config import validation_problems

__all__ = ["problems"]


def problems(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> list[str]:
    """Each problem of ``exc`` (from validating ``model``) as ``path: message``, the path
    under ``prefix``; an unknown key names the closest known one, else the known ones."""
    found = validation_problems(exc, model, prefix, list_known=True)
    return [f"{p.path or '(body)'}: {p.message}" for p in found]
