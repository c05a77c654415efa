"""Config loading and validation (CHANNEL_SEMANTICS section 1)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from wechat_sdk.config import (
    CONFIG_ENV,
    Config,
    ConfigError,
    ToolPolicy,
    accounts_of,
    load_config,
    parse_config,
)
from wechat_sdk.config import models as config_models
from wechat_sdk.config.loader import validation_problems
from wechat_sdk.config.strict import StrictModel


def wechat(body: str, env: dict[str, str] | None = None) -> Config:
    """Parse ``{channels: {wechat: BODY}}``."""
    return parse_config("{channels: {wechat: " + body + "}}", env={} if env is None else env)


def error_of(body: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        wechat(body, env)
    return info.value


# ---------------------------------------------------------------- defaults


def test_empty_config_gets_the_seed_defaults() -> None:
    s = accounts_of(parse_config("{}", env={})).default.settings
    assert s.enabled is True
    assert s.puppet == "wechaty-puppet-wechat"
    assert s.qrCode is True
    assert s.dmPolicy == "pairing"
    assert s.groupPolicy == "open"
    assert s.historyLimit == 20
    assert s.dmHistoryLimit == 10
    assert s.textChunkLimit == 2048
    assert s.streamMode == "partial"


def test_defaults_beyond_the_seed() -> None:
    s = accounts_of(wechat("{}")).default.settings
    assert s.mediaMaxMb == 30
    assert s.pacing is not False
    assert s.pacing.perSecond == 1
    assert s.pacing.burst == 5
    assert s.pacing.chunkGapMs == 1000
    assert s.pacing.jitterMs == 300
    assert s.draftChunk.idleMs == 1000
    assert s.draftChunk.breakPreference == "paragraph"
    assert s.chunkMode == "length"
    assert s.markdown == "plain"


def test_pacing_false_turns_pacing_off() -> None:
    assert accounts_of(wechat("{pacing: false}")).default.settings.pacing is False


def test_pacing_true_is_an_error() -> None:
    err = error_of("{pacing: true}")
    assert "channels.wechat.pacing" in str(err)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ("{textChunkLimit: true}", "channels.wechat.textChunkLimit"),
        ("{pacing: {perSecond: false}}", "channels.wechat.pacing.perSecond"),
        ("{accounts: {a: {mediaMaxMb: true}}}", "channels.wechat.accounts.a.mediaMaxMb"),
        ("{agent: {provider: 'openai', model: 'm', temperature: true}}", "temperature"),
        ("{api: {port: true}}", "channels.wechat.api.port"),
        ("{store: {kind: 'redis', url: 'redis://h', leaseTtlS: true}}", "leaseTtlS"),
    ],
)
def test_true_or_false_where_a_number_goes_is_an_error(body: str, path: str) -> None:
    # (they were taken as 1 and 0: textChunkLimit: true cut every reply into letters)
    err = str(error_of(body))
    assert path in err and "expected a number, got" in err


class OptionalLimit(StrictModel):
    limit: Annotated[int, Field(ge=0)] | None = None


class ListOfSizes(StrictModel):
    sizes: list[int] = Field(default_factory=list)


class MapOfWeights(StrictModel):
    weights: dict[str, Annotated[float, Field(ge=0)]] | None = None


@pytest.mark.parametrize(
    ("model", "data", "said"),
    [
        (OptionalLimit, {"limit": True}, "limit: expected a number, got true"),
        (ListOfSizes, {"sizes": [1, False]}, "sizes: expected a number, got false (at [1])"),
        (
            MapOfWeights,
            {"weights": {"a": 1.5, "b": True}},
            'weights: expected a number, got true (at "b")',
        ),
    ],
)
def test_true_or_false_where_a_number_goes_is_an_error_in_every_shape(
    model: type[StrictModel], data: dict[str, Any], said: str
) -> None:
    """A number field written Annotated[int, ...] | None, or numbers in a list or a map,
    took true as 1: the check looked at a bare int or float (or a union of them) only."""
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    assert [str(p) for p in validation_problems(info.value, model)] == [said]


def test_numbers_in_every_shape_are_still_taken() -> None:
    assert OptionalLimit.model_validate({"limit": "3"}).limit == 3
    assert OptionalLimit.model_validate({"limit": None}).limit is None
    assert ListOfSizes.model_validate({"sizes": [1, "2"]}).sizes == [1, 2]
    assert MapOfWeights.model_validate({"weights": {"a": 1}}).weights == {"a": 1.0}


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ("true", "got true"),
        ("{id: 'x'}", 'got {"id": "x"}'),
        ('{"\\ud800": 1}', 'got {"?": 1}'),  # (half a character: it failed in pydantic)
    ],
)
def test_an_allow_from_entry_that_is_no_id_is_said_as_written(entry: str, said: str) -> None:
    # ("got True": Python's words for the file's true)
    err = str(error_of("{allowFrom: [" + entry + "]}"))
    assert "channels.wechat.allowFrom: entries must be contact ids (strings), " + said in err


def test_a_number_from_a_variable_is_still_taken() -> None:
    settings = accounts_of(wechat('{textChunkLimit: "${LIMIT}"}', {"LIMIT": "500"}))
    assert settings.default.settings.textChunkLimit == 500


def test_a_key_written_twice_in_one_object_is_an_error_naming_both_lines() -> None:
    # json5 keeps the last: an allowlist written first and "open" further down meant open
    text = (
        '{channels: {wechat: {\n dmPolicy: "allowlist",\n allowFrom: ["wxid_a"],\n'
        ' "dmPolicy": "open",\n}}}'
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    (problem,) = info.value.problems
    assert problem.path == "channels.wechat.dmPolicy"
    assert "written twice in one object (lines 2 and 4)" in problem.message
    assert problem.line == 4


def test_a_key_written_twice_elsewhere_in_the_file_is_left_to_its_owner() -> None:
    # (the file is shared: another section's JSON5, twice a key or not, is not ours to refuse)
    text = "{agents: {x: 1, x: 2}, channels: {telegram: {a: 1, a: 2}, wechat: {}}}"
    assert accounts_of(parse_config(text, env={})).default_id == "default"


def test_channels_written_twice_is_an_error_it_may_replace_the_wechat_block() -> None:
    text = '{channels: {wechat: {dmPolicy: "allowlist"}},\n channels: {wechat: {}}}'
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    assert [p.path for p in info.value.problems] == ["channels"]


def test_other_channels_and_sections_are_left_alone() -> None:
    config = parse_config(
        "{agents: {x: 1}, channels: {telegram: {token: 'x'}, wechat: {}}}", env={}
    )
    assert accounts_of(config).default_id == "default"


# ---------------------------------------------------------------- aliases


def test_default_account_alias_sets_default_account_id() -> None:
    config = wechat('{defaultAccount: "b", accounts: {a: {}, b: {}}}')
    assert config.channels.wechat.defaultAccountId == "b"
    assert accounts_of(config).default_id == "b"


def test_group_tools_as_a_list() -> None:
    groups = wechat('{groups: {g1: {tools: ["weather", "time"]}}}').channels.wechat.groups
    assert groups["g1"].tools == ["weather", "time"]


def test_group_tools_as_allow_also_allow_deny_object() -> None:
    config = wechat('{groups: {g1: {tools: {allow: ["a"], alsoAllow: ["b"], deny: ["c"]}}}}')
    tools = config.channels.wechat.groups["g1"].tools
    assert isinstance(tools, ToolPolicy)
    assert (tools.allow, tools.alsoAllow, tools.deny) == (["a"], ["b"], ["c"])


def test_group_tools_object_typo_names_the_dotted_path_and_suggests() -> None:
    err = error_of('{groups: {g1: {tools: {allw: ["a"]}}}}')
    assert 'channels.wechat.groups.g1.tools.allw: unknown key (did you mean "allow"?)' in str(err)


def test_group_tools_of_wrong_type_is_one_error() -> None:
    err = error_of("{groups: {g1: {tools: 5}}}")
    assert len(err.problems) == 1
    assert err.problems[0].path == "channels.wechat.groups.g1.tools"


# ---------------------------------------------------------------- ${VAR}


def test_env_var_is_substituted() -> None:
    config = wechat(
        '{name: "${BOT_NAME}", puppetOptions: {token: "t-${TOK}"}}',
        env={"BOT_NAME": "Bob", "TOK": "123"},
    )
    s = config.channels.wechat
    assert s.name == "Bob"
    assert s.puppetOptions.token == "t-123"


def test_env_var_in_a_list_is_substituted() -> None:
    config = wechat('{allowFrom: ["${ME}", "wxid_b"]}', env={"ME": "wxid_me"})
    assert config.channels.wechat.allowFrom == ["wxid_me", "wxid_b"]


def test_env_var_in_a_key_is_substituted() -> None:
    """ "In any string": a room id kept out of the file stayed "${ROOM}", a group that
    does not exist, and under an open policy the map made every real group unheard."""
    config = wechat(
        '{groups: {"${ROOM}": {requireMention: false}, "$${LIT}": {}}}',
        env={"ROOM": "123@chatroom"},
    )
    assert sorted(config.channels.wechat.groups) == ["${LIT}", "123@chatroom"]
    with pytest.raises(ConfigError) as info:
        wechat('{groups: {"${A}": {}, "${B}": {}}}', env={"A": "r@chatroom", "B": "r@chatroom"})
    assert [str(p) for p in info.value.problems] == [
        "channels.wechat.groups.${B}: is 'r@chatroom' once its variables are replaced, as "
        "another key is"
    ]


def test_double_dollar_is_a_literal() -> None:
    config = wechat('{name: "$${BOT_NAME}"}', env={"BOT_NAME": "Bob"})
    assert config.channels.wechat.name == "${BOT_NAME}"


def test_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WECHAT_SDK_TEST_NAME", "from-os")
    config = parse_config('{channels: {wechat: {name: "${WECHAT_SDK_TEST_NAME}"}}}')
    assert config.channels.wechat.name == "from-os"


def test_missing_env_var_names_the_path_and_the_variable() -> None:
    err = error_of('{puppetOptions: {token: "${UNSET_VAR}"}}')
    text = str(err)
    assert "channels.wechat.puppetOptions.token" in text
    assert "UNSET_VAR" in text
    assert len(err.problems) == 1


# ---------------------------------------------------------------- load_config


VALID = '{channels: {wechat: {name: "from file"}}}'


def test_load_config_with_explicit_path(tmp_path: Path) -> None:
    file = tmp_path / "c.json5"
    file.write_text(VALID, encoding="utf-8")
    assert load_config(file).channels.wechat.name == "from file"
    assert load_config(str(file)).channels.wechat.name == "from file"


def test_load_config_from_env_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "env.json5"
    file.write_text('{channels: {wechat: {name: "via env"}}}', encoding="utf-8")
    monkeypatch.setenv(CONFIG_ENV, str(file))
    assert load_config().channels.wechat.name == "via env"


def test_explicit_path_wins_over_env_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "env.json5"
    env_file.write_text('{channels: {wechat: {name: "via env"}}}', encoding="utf-8")
    explicit = tmp_path / "explicit.json5"
    explicit.write_text(VALID, encoding="utf-8")
    monkeypatch.setenv(CONFIG_ENV, str(env_file))
    assert load_config(explicit).channels.wechat.name == "from file"


def test_load_config_default_path_under_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".clawdbot").mkdir()
    (tmp_path / ".clawdbot" / "config.json5").write_text(
        '{channels: {wechat: {name: "default path"}}}', encoding="utf-8"
    )
    assert load_config().channels.wechat.name == "default path"


def test_missing_file_names_the_path_and_how_to_create_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "config.json5"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    text = str(info.value)
    assert str(missing) in text
    assert "create it" in text
    assert "channels" in text  # shows a minimal config


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    file = tmp_path / "c.json5"
    file.write_text(VALID, encoding="utf-8")
    file.chmod(0)
    try:
        with pytest.raises(ConfigError) as info:
            load_config(file)
        assert str(file) in str(info.value)
        assert "permission denied" in str(info.value)
    finally:
        file.chmod(0o600)


def test_directory_given_as_the_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert "directory" in str(info.value)


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    file = tmp_path / "c.json5"
    file.write_bytes(b'{channels: {wechat: {name: "\xff\xfe"}}}')
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert "UTF-8" in str(info.value)


def test_error_of_a_loaded_file_carries_the_source(tmp_path: Path) -> None:
    file = tmp_path / "c.json5"
    file.write_text('{channels: {wechat: {dmPolicy: "pair"}}}', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert info.value.source == str(file)
    assert str(file) in info.value.render()


# ---------------------------------------------------------------- bad input


def test_invalid_json5_reports_line_and_column() -> None:
    text = "{\n  channels: {\n    wechat: {\n      name: 'x' 'y',\n    }\n  }\n}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    message = str(info.value)
    assert "invalid JSON5" in message
    assert "line 4" in message
    assert "column" in message
    assert info.value.problems[0].line == 4


def test_invalid_json5_at_a_line_break_reports_line_and_column() -> None:
    text = "{\n  channels: {\n    wechat: {,\n}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    [problem] = info.value.problems
    assert problem.line == 3
    assert "line 3, column" in problem.message
    assert "\n" not in str(info.value)  # one problem, one line


def test_file_holding_a_list_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("[1, 2]", env={})
    assert "must hold an object" in str(info.value)


def test_wrong_type_names_the_dotted_path() -> None:
    err = error_of('{historyLimit: "many"}')
    assert str(err) == 'channels.wechat.historyLimit: expected a whole number, got "many"'


def test_wrong_bool_type_names_the_dotted_path() -> None:
    err = error_of("{qrCode: 5}")
    assert str(err) == "channels.wechat.qrCode: expected true or false, got 5"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ("{puppetOptions: {token: 8675309867530986753}}", "puppetOptions.token"),
        (
            "{accounts: {a: {puppetOptions: {token: 8675309867530986753}}}}",
            "accounts.a.puppetOptions.token",
        ),
        ("{api: {port: 0, token: 8675309867530986753}}", "api.token"),
        (
            '{webhooks: [{url: "https://x.example", secret: 8675309867530986753}]}',
            "webhooks.0.secret",
        ),
        ('{agent: {model: "m", apiKey: 8675309867530986753}}', "agent.apiKey"),
        (
            '{agent: {provider: "webhook", url: "https://x.example", secret: 8675309867530986753}}',
            "agent.secret",
        ),
        (
            '{agent: {model: "m", headers: {Authorization: 8675309867530986753}}}',
            "agent.headers.Authorization",
        ),
        (
            '{agent: {model: "m", headers: {Authorization: {bearer: 86753}}}}',
            "agent.headers.Authorization",
        ),
        ('{store: {kind: "redis", url: 8675309867530986753}}', "store.url"),
    ],
)
def test_a_secret_of_the_wrong_type_is_named_by_its_type_never_its_value(
    body: str, path: str
) -> None:
    err = error_of(body)
    assert f"channels.wechat.{path}: expected a string, got " in str(err)
    assert "8675309867530986753" not in str(err) and "86753" not in str(err)


def test_a_key_that_is_no_secret_still_shows_its_value() -> None:
    err = error_of("{agent: {model: 8675309867530986753}}")
    assert str(err) == "channels.wechat.agent.model: expected a string, got 8675309867530986753"


def test_every_key_said_to_be_never_logged_is_kept_out_of_messages() -> None:
    from wechat_sdk.config.loader import _is_secret

    def walk(model: type[BaseModel], path: list[str]) -> list[list[str]]:
        found = []
        for name, field in model.model_fields.items():
            if "never logged" in (field.description or ""):
                found.append([*path, name])
        return found

    from wechat_sdk.config.assistant import AgentConfig, McpServerConfig
    from wechat_sdk.config.integrations import ApiConfig, WebhookEndpoint

    base = ["channels", "wechat"]
    said = [
        *walk(config_models.PuppetOptions, [*base, "puppetOptions"]),
        *walk(ApiConfig, [*base, "api"]),
        *walk(WebhookEndpoint, [*base, "webhooks", "0"]),
        *walk(AgentConfig, [*base, "agent"]),
        *walk(McpServerConfig, [*base, "agent", "mcpServers", "t"]),
    ]
    assert len(said) >= 6
    assert [p for p in said if not _is_secret(p)] == []


def test_wrong_type_inside_an_account_names_the_account_path() -> None:
    err = error_of("{accounts: {work: {textChunkLimit: [1]}}}")
    assert "channels.wechat.accounts.work.textChunkLimit" in str(err)


def test_out_of_range_number_names_the_dotted_path() -> None:
    err = error_of("{textChunkLimit: 0}")
    assert "channels.wechat.textChunkLimit:" in str(err)
    assert "got 0" in str(err)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ("{mediaMaxMb: Infinity}", "channels.wechat.mediaMaxMb"),
        ("{mediaMaxMb: NaN}", "channels.wechat.mediaMaxMb"),
        ("{mediaMaxAgeHours: Infinity}", "channels.wechat.mediaMaxAgeHours"),
        ("{pacing: {perSecond: Infinity}}", "channels.wechat.pacing.perSecond"),
        ("{accounts: {a: {mediaMaxMb: 1e308}}}", "channels.wechat.accounts.a.mediaMaxMb"),
    ],
)
def test_infinite_or_huge_numbers_are_errors(body: str, path: str) -> None:
    err = error_of(body)
    assert [p.path for p in err.problems] == [path]


def test_non_string_allow_from_entry_names_the_dotted_path() -> None:
    err = error_of("{allowFrom: [true]}")
    assert "channels.wechat.allowFrom" in str(err)


def test_dm_policy_typo_key_says_did_you_mean() -> None:
    err = error_of('{dmPolicyy: "open"}')
    assert str(err) == 'channels.wechat.dmPolicyy: unknown key (did you mean "dmPolicy"?)'


def test_require_mention_typo_inside_groups_says_did_you_mean() -> None:
    err = error_of('{groups: {"*": {requireMentoin: true}}}')
    assert str(err) == (
        'channels.wechat.groups.*.requireMentoin: unknown key (did you mean "requireMention"?)'
    )


def test_unknown_key_inside_an_account_says_did_you_mean() -> None:
    err = error_of("{accounts: {a: {histroyLimit: 3}}}")
    assert (
        'channels.wechat.accounts.a.histroyLimit: unknown key (did you mean "historyLimit"?)'
        in str(err)
    )


def test_typo_of_wechat_channel_is_reported() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("{channels: {wechta: {}}}", env={})
    assert "channels.wechta" in str(info.value)
    assert '"wechat"' in str(info.value)


def test_dm_policy_enum_typo_exact_text() -> None:
    err = error_of('{dmPolicy: "pair"}')
    assert str(err) == (
        "channels.wechat.dmPolicy: expected one of pairing|allowlist|open|disabled, "
        'got "pair" (did you mean "pairing"?)'
    )


def test_group_policy_enum_typo_lists_group_policies() -> None:
    err = error_of('{groupPolicy: "pairing"}')
    assert str(err) == (
        'channels.wechat.groupPolicy: expected one of open|allowlist|disabled, got "pairing"'
    )


def test_dm_policy_open_without_wildcard_in_allow_from_is_an_error() -> None:
    err = error_of('{dmPolicy: "open", allowFrom: ["wxid_a"]}')
    assert len(err.problems) == 1
    assert err.problems[0].path == "channels.wechat.allowFrom"
    assert '"*"' in err.problems[0].message


def test_dm_policy_open_with_wildcard_is_accepted() -> None:
    config = wechat('{dmPolicy: "open", allowFrom: ["*"]}')
    assert accounts_of(config).default.settings.dmPolicy == "open"


def test_dm_policy_open_without_allow_from_is_accepted() -> None:
    config = wechat('{dmPolicy: "open"}')
    assert accounts_of(config).default.settings.allowFrom is None


def test_dm_policy_open_on_account_with_top_level_list_lacking_wildcard_is_an_error() -> None:
    err = error_of('{allowFrom: ["wxid_a"], accounts: {a: {dmPolicy: "open"}}}')
    assert "channels.wechat.allowFrom" in str(err)


def test_allowlist_with_empty_allow_from_is_an_error() -> None:
    err = error_of('{dmPolicy: "allowlist", allowFrom: []}')
    assert str(err).startswith("channels.wechat.allowFrom: ")
    assert "allowlist" in str(err)


def test_an_empty_group_allow_from_is_an_error_unless_groups_are_off() -> None:
    """It answered no group message, without a word (an empty DM allowlist is an error)."""
    err = error_of('{groupPolicy: "allowlist", groups: {"*": {}}, groupAllowFrom: []}')
    assert str(err).startswith("channels.wechat.groupAllowFrom: groupAllowFrom allows no")
    err = error_of("{accounts: {work: {groupAllowFrom: []}}}")
    assert "channels.wechat.accounts.work.groupAllowFrom: " in str(err)
    wechat('{groupPolicy: "disabled", groupAllowFrom: []}')  # (groups are off anyway)


def test_numbers_and_bools_written_as_strings_are_accepted_for_env_substitution() -> None:
    config = wechat('{historyLimit: "${N}", qrCode: "${Q}"}', env={"N": "5", "Q": "false"})
    assert (config.channels.wechat.historyLimit, config.channels.wechat.qrCode) == (5, False)


def test_allowlist_without_allow_from_is_an_error() -> None:
    err = error_of('{dmPolicy: "allowlist"}')
    assert "channels.wechat.allowFrom" in str(err)


def test_allowlist_on_an_account_names_the_account_path() -> None:
    err = error_of('{accounts: {work: {dmPolicy: "allowlist", allowFrom: []}}}')
    assert "channels.wechat.accounts.work.allowFrom" in str(err)


def test_account_id_with_a_space_is_an_error() -> None:
    err = error_of('{accounts: {"Bad Id": {}}}')
    assert "channels.wechat.accounts.Bad Id:" in str(err)
    assert "not allowed" in str(err)


def test_account_id_of_65_chars_is_an_error() -> None:
    long_id = "a" * 65
    err = error_of('{accounts: {"' + long_id + '": {}}}')
    assert f"channels.wechat.accounts.{long_id}:" in str(err)


def test_account_id_of_64_chars_is_accepted() -> None:
    ok_id = "a" * 64
    assert ok_id in accounts_of(wechat('{accounts: {"' + ok_id + '": {}}}')).accounts


def test_account_ids_colliding_after_lowercasing_is_an_error() -> None:
    err = error_of("{accounts: {Work: {}, work: {}}}")
    assert len(err.problems) == 1
    assert "channels.wechat.accounts.work" in str(err)
    assert "lowercasing" in str(err)


def test_default_account_id_naming_no_account_is_an_error() -> None:
    err = error_of('{defaultAccountId: "nope", accounts: {a: {}}}')
    assert str(err).startswith("channels.wechat.defaultAccountId: ")
    assert "nope" in str(err)


def test_draft_chunk_min_greater_than_max_is_an_error() -> None:
    err = error_of("{draftChunk: {minChars: 600, maxChars: 500}}")
    assert str(err).startswith("channels.wechat.draftChunk.minChars: ")
    assert "600" in str(err) and "500" in str(err)


def test_draft_chunk_min_equal_to_max_is_accepted() -> None:
    s = accounts_of(wechat("{draftChunk: {minChars: 500, maxChars: 500}}")).default.settings
    assert s.draftChunk.minChars == s.draftChunk.maxChars == 500


def test_unset_env_var_is_an_error() -> None:
    err = error_of('{name: "${UNSET_VAR}"}', env={})
    assert str(err).startswith("channels.wechat.name: ")
    assert "UNSET_VAR" in str(err)


def test_all_errors_are_reported_at_once() -> None:
    err = error_of('{dmPolicy: "pair", historyLimit: "x", groups: {"*": {requireMentoin: 1}}}')
    lines = str(err).splitlines()
    assert len(lines) == 3
    assert {p.path for p in err.problems} == {
        "channels.wechat.dmPolicy",
        "channels.wechat.historyLimit",
        "channels.wechat.groups.*.requireMentoin",
    }


def test_a_variable_unset_outside_channels_wechat_is_left_alone() -> None:
    """The rest of the file belongs to the rest of the gateway, which replaces its own
    variables: an unset one there (another channel's token, say) failed this SDK's whole
    config, and one set was replaced in a section this SDK does not read."""
    config = parse_config(
        """{
          agents: {model: "${UNSET_MODEL}"},
          "${UNSET_KEY}": 1,
          channels: {telegram: {token: "${UNSET_TG}"}, wechat: {name: "${BOT}"}},
        }""",
        env={"BOT": "Bob"},
    )
    assert config.channels.wechat.name == "Bob"
    assert config.model_extra == {"agents": {"model": "${UNSET_MODEL}"}, "${UNSET_KEY}": 1}
    assert config.channels.model_extra == {"telegram": {"token": "${UNSET_TG}"}}
    err = error_of('{name: "${UNSET_NAME}"}', env={})
    assert [p.path for p in err.problems] == ["channels.wechat.name"]


def test_env_and_type_errors_are_reported_together() -> None:
    err = error_of('{name: "${UNSET_VAR}", qrCode: "maybe"}', env={})
    assert {p.path for p in err.problems} == {"channels.wechat.name", "channels.wechat.qrCode"}


def test_cross_field_errors_of_several_accounts_are_reported_together() -> None:
    err = error_of(
        '{accounts: {a: {dmPolicy: "allowlist", allowFrom: []}, '
        'b: {dmPolicy: "open", allowFrom: ["x"]}}}'
    )
    assert {p.path for p in err.problems} == {
        "channels.wechat.accounts.a.allowFrom",
        "channels.wechat.accounts.b.allowFrom",
    }


MULTI_LINE = """\
// my config
{
  channels: {
    wechat: {
      name: "bot",
      dmPolicy: "pair",
      groups: {
        "*": {
          requireMentoin: true,
        },
      },
      historyLimit: "x",
    },
  },
}
"""


def test_problems_carry_the_file_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(MULTI_LINE, source="c.json5", env={})
    lines = {p.path: p.line for p in info.value.problems}
    assert lines == {
        "channels.wechat.dmPolicy": 6,
        "channels.wechat.groups.*.requireMentoin": 9,
        "channels.wechat.historyLimit": 12,
    }
    assert "line 6" in info.value.render()


def test_cross_field_problem_carries_the_file_line() -> None:
    text = (
        '{\n  channels: {\n    wechat: {\n      dmPolicy: "open",\n      allowFrom: ["a"],\n'
        "    },\n  },\n}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    assert [p.line for p in info.value.problems] == [5]


def test_account_problem_carries_the_line_of_the_account_key() -> None:
    text = (
        '{\n  channels: {\n    wechat: {\n      accounts: {\n        "Bad Id": {},\n'
        "      },\n    },\n  },\n}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    assert [p.line for p in info.value.problems] == [5]


# ---------------------------------------------------------------- property tests


def _field_names() -> list[str]:
    names: set[str] = set()
    for obj in vars(config_models).values():
        if isinstance(obj, type) and issubclass(obj, BaseModel) and obj is not BaseModel:
            names.update(obj.model_fields)
    names.add("defaultAccount")
    return sorted(names)


FIELD_NAMES = _field_names()
ENUM_WORDS = [
    "pairing",
    "allowlist",
    "open",
    "disabled",
    "off",
    "partial",
    "block",
    "length",
    "newline",
    "plain",
    "keep",
    "paragraph",
    "sentence",
    "*",
    "default",
    "${HOME}",
    "$${X}",
    "${NOPE_NOT_SET_1}",
    "Bad Id",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(ENUM_WORDS)
)
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=8)


@st.composite
def json_nested(draw: st.DrawFn, depth: int = 3) -> Any:
    """A scalar, a list or an object (each as likely), nested up to ``depth`` deep. Built
    by hand, not with st.recursive: Hypothesis checks the function st.recursive extends
    with by reading its source for a use of its argument, and now and then warned that it
    had none (a HypothesisDeprecationWarning: a deprecation, so an error to come)."""
    shape = draw(st.sampled_from(["scalar", "list", "object"])) if depth else "scalar"
    if shape == "scalar":
        return draw(scalars)
    if shape == "list":
        return draw(st.lists(json_nested(depth - 1), max_size=4))
    return draw(st.dictionaries(keys, json_nested(depth - 1), max_size=5))


json_values = json_nested()
wechat_blocks = st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=8)
account_maps = st.dictionaries(
    st.sampled_from(["a", "b", "default", "Work", "work", "Bad Id"]), wechat_blocks, max_size=3
)


@st.composite
def wechat_documents(draw: st.DrawFn) -> Any:
    block = draw(wechat_blocks)
    if draw(st.booleans()):
        block["accounts"] = draw(account_maps)
    return {"channels": {"wechat": block}}


documents = json_values | wechat_documents()


def _parse_or_config_error(text: str) -> None:
    try:
        config = parse_config(text, env={"HOME": "/home/x"})
    except ConfigError as exc:
        assert exc.problems
        assert str(exc)
        return
    assert isinstance(config, Config)
    accounts = accounts_of(config)
    assert accounts.default_id in accounts.accounts
    for account in accounts.accounts.values():
        assert account.draft_max_chars <= account.settings.textChunkLimit
        assert account.media_max_bytes > 0
        assert account.display_name
        assert account.allow_from is not None
        account.group_allow_from  # noqa: B018 - must not raise


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
@pytest.mark.filterwarnings("error::hypothesis.errors.HypothesisWarning")
def test_random_documents_give_a_config_or_a_config_error(document: Any) -> None:
    _parse_or_config_error(json.dumps(document))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_random_text_gives_a_config_or_a_config_error(text: str) -> None:
    _parse_or_config_error(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=60))
def test_random_bytes_loaded_from_a_file_give_only_config_errors(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "c.json5"
        file.write_bytes(data)
        try:
            load_config(file)
        except ConfigError as exc:
            assert exc.problems


@pytest.mark.parametrize("value", ['""', '"  "', '"*"', '"wx:"', '"wechat: * "'])
def test_pairing_notify_names_one_contact(value: str) -> None:
    # an empty one sent nothing, "*" sent the notice to a contact "*": both silently
    error = error_of(f"{{pairingNotify: {value}}}")
    (problem,) = error.problems
    assert problem.path == "channels.wechat.pairingNotify"
    assert "one contact id" in problem.message
    error = error_of(f"{{accounts: {{work: {{pairingNotify: {value}}}}}}}")
    assert error.problems[0].path == "channels.wechat.accounts.work.pairingNotify"


def test_pairing_notify_is_normalised_as_allow_from_entries_are() -> None:
    (account,) = accounts_of(wechat('{pairingNotify: " WeChat:wxid_owner "}')).enabled
    assert account.settings.pairingNotify == "wxid_owner"


def test_default_account_written_under_both_of_its_names_says_to_keep_one() -> None:
    # it said 'channels.wechat.defaultAccount: unknown key (did you mean "defaultAccount"?)'
    error = error_of('{defaultAccountId: "a", defaultAccount: "b", accounts: {a: {}, b: {}}}')
    (problem,) = error.problems
    assert problem.path == "channels.wechat.defaultAccount"
    assert problem.message == (
        "defaultAccount and defaultAccountId are two names of one key, and both are "
        "written: keep one"
    )
