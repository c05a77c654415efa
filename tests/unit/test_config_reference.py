"""The generated configuration reference covers every key of every config model."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from wechat_sdk.config import accounts_of, models, parse_config
from wechat_sdk.config.reference import key_html, reference_markdown, reference_rows

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
        assert f"| {key_html(key)} |" in table


def test_key_cells_break_only_after_a_dot() -> None:
    html = key_html(f"{PREFIX}.groups.<id>.groupAllowFrom")
    assert html == (
        '<code class="config-key">channels.<wbr>wechat.<wbr>groups.<wbr>&lt;id&gt;.<wbr>'
        "groupAllowFrom</code>"
    )


def test_no_bare_braces_in_the_table() -> None:
    """Braces outside a code span at the end of a cell are eaten by attr_list on the site
    (``groups.<id>.tools`` rendered as "a list or")."""
    table = reference_markdown()
    outside_code = re.sub(r"`[^`]*`", "", table)
    assert "{" not in outside_code and "}" not in outside_code
    assert "a list or `{allow, alsoAllow, deny}` |" in table


def test_configuration_docs_page_has_the_reference_marker() -> None:
    page = ROOT / "docs" / "configuration.md"
    assert "<!-- config-reference -->" in page.read_text(encoding="utf-8")


def test_the_configuration_pages_first_example_really_pairs() -> None:
    """The page's first config makes strangers pair: ``allowFrom: ["*"]`` would let
    everyone in without a code."""
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    first = re.search(r'^```json5\n--8<-- "([^"]+)"\n```', page, re.MULTILINE)
    assert first is not None
    text = (ROOT / first[1]).read_text(encoding="utf-8")
    account = accounts_of(parse_config(text, source=first[1], env={})).default
    assert account.settings.dmPolicy == "pairing"
    assert account.allow_from.allows("wxid_owner")
    assert not account.allow_from.allows("wxid_stranger")
