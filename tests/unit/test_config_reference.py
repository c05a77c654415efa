"""The generated configuration reference covers every key of every config model."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from wechat_sdk.config import models
from wechat_sdk.config.reference import reference_markdown, reference_rows

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "channels.wechat"


def all_models() -> set[type[BaseModel]]:
    return {
        obj
        for name, obj in vars(models).items()
        if not name.startswith("_")
        and isinstance(obj, type)
        and issubclass(obj, BaseModel)
        and obj is not BaseModel
        and obj.__module__ == models.__name__
    }


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation holds, directly, in a union, list or as map values."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict:
        return models_in(args[1])
    if origin in (list, typing.Union, types.UnionType, typing.Annotated):
        return [m for arg in args for m in models_in(arg)]
    return []


def expected_keys() -> dict[str, type[BaseModel]]:
    """Every dotted key under channels.wechat, walked from the models (map keys as <id>)."""
    out: dict[str, type[BaseModel]] = {}

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            key = f"{prefix}.{name}"
            out[key] = model
            if name == "accounts" and model is models.WechatConfig:
                continue  # every account key is a top-level key
            is_map = typing.get_origin(info.annotation) is dict or any(
                typing.get_origin(a) is dict for a in typing.get_args(info.annotation)
            )
            for sub in models_in(info.annotation):
                walk(sub, f"{key}.<id>" if is_map else key)

    walk(models.WechatConfig, PREFIX)
    return out


def test_every_field_of_every_reachable_model_is_in_the_reference() -> None:
    keys = {row[0] for row in reference_rows()}
    missing = sorted(set(expected_keys()) - keys)
    assert missing == []


def test_every_model_of_the_module_is_covered_by_the_reference() -> None:
    covered = set(expected_keys().values())
    # Config and ChannelsConfig are the path "channels.wechat" itself; AccountConfig's
    # fields are WechatConfig's (it is the base class), listed at the top level.
    wrappers = {models.Config, models.ChannelsConfig, models.AccountConfig}
    assert all_models() - wrappers <= covered
    assert set(models.AccountConfig.model_fields) <= set(models.WechatConfig.model_fields)
    assert ".".join([*models.Config.model_fields, *models.ChannelsConfig.model_fields]) == PREFIX


def test_every_field_name_of_every_model_appears_in_some_row() -> None:
    last_parts = {row[0].rsplit(".", 1)[-1] for row in reference_rows()}
    for model in all_models() - {models.Config, models.ChannelsConfig}:
        for name in model.model_fields:
            assert name in last_parts, f"{model.__name__}.{name} is not in the reference"


def test_account_overrides_row_is_present() -> None:
    keys = {row[0] for row in reference_rows()}
    assert f"{PREFIX}.accounts.<id>.*" in keys


def test_reference_rows_have_type_default_and_description() -> None:
    for key, type_text, default, description in reference_rows():
        assert type_text, key
        assert default, key
        assert description, key


def test_reference_rows_show_seed_defaults() -> None:
    defaults = {row[0]: row[2] for row in reference_rows()}
    assert defaults[f"{PREFIX}.dmPolicy"] == '`"pairing"`'
    assert defaults[f"{PREFIX}.historyLimit"] == "`20`"
    assert defaults[f"{PREFIX}.draftChunk.idleMs"] == "`1000`"


def test_reference_markdown_has_a_row_for_every_key() -> None:
    table = reference_markdown()
    for key, *_ in reference_rows():
        assert f"`{key}`" in table


def test_configuration_docs_page_has_the_reference_marker() -> None:
    page = ROOT / "docs" / "configuration.md"
    assert "<!-- config-reference -->" in page.read_text(encoding="utf-8")
