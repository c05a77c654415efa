"""Account resolution (CHANNEL_SEMANTICS section 2)."""

from __future__ import annotations

import pytest

from wechat_sdk.config import (
    DEFAULT_ACCOUNT_ID,
    AccountSet,
    ConfigError,
    WechatConfig,
    accounts_of,
    normalize_account_id,
    parse_config,
    resolve_accounts,
)


def resolve(body: str) -> AccountSet:
    return accounts_of(parse_config("{channels: {wechat: " + body + "}}", env={}))


# ---------------------------------------------------------------- one account


def test_no_accounts_map_gives_one_default_account_from_top_level_keys() -> None:
    accounts = resolve('{name: "Top", dmPolicy: "open", allowFrom: ["*"], historyLimit: 7}')
    assert list(accounts.accounts) == [DEFAULT_ACCOUNT_ID]
    account = accounts.default
    assert account.id == "default"
    assert account.is_default
    assert account.enabled
    assert account.settings.name == "Top"
    assert account.settings.dmPolicy == "open"
    assert account.settings.historyLimit == 7
    assert accounts.warnings == ()


def test_empty_accounts_map_gives_the_default_account() -> None:
    accounts = resolve("{accounts: {}}")
    assert list(accounts.accounts) == ["default"]


def test_resolve_accounts_of_an_empty_block() -> None:
    accounts = resolve_accounts(WechatConfig())
    assert accounts.default_id == "default"
    assert accounts.default.settings.dmPolicy == "pairing"


# ---------------------------------------------------------------- inheritance


def test_accounts_inherit_top_level_keys_then_override() -> None:
    accounts = resolve(
        '{name: "Top", historyLimit: 5, puppet: "simulator", '
        'accounts: {a: {}, b: {name: "B", historyLimit: 9}}}'
    )
    a, b = accounts["a"].settings, accounts["b"].settings
    assert (a.name, a.historyLimit, a.puppet) == ("Top", 5, "simulator")
    assert (b.name, b.historyLimit, b.puppet) == ("B", 9, "simulator")


def test_account_without_a_key_gets_the_default_not_another_accounts_value() -> None:
    accounts = resolve("{accounts: {a: {textChunkLimit: 100}, b: {}}}")
    assert accounts["a"].settings.textChunkLimit == 100
    assert accounts["b"].settings.textChunkLimit == 2048


def test_an_ilink_account_counts_its_text_in_utf16_units_as_tencents_client() -> None:
    accounts = resolve('{accounts: {dm: {puppet: "ilink"}, wx: {}}}')
    assert accounts["dm"].text_units == "utf16"
    assert accounts["dm"].settings.textChunkLimit == 4000
    assert accounts["wx"].text_units == "code_points"  # (the seed's count: characters)


def test_account_groups_replace_top_level_groups_without_deep_merge() -> None:
    accounts = resolve(
        '{groups: {"*": {requireMention: true}, g1: {tools: ["a"]}}, '
        "accounts: {a: {groups: {g2: {requireMention: false}}}, b: {}}}"
    )
    assert set(accounts["a"].settings.groups) == {"g2"}
    assert accounts["a"].settings.groups["g2"].requireMention is False
    assert set(accounts["b"].settings.groups) == {"*", "g1"}


def test_account_draft_chunk_replaces_top_level_draft_chunk_shallowly() -> None:
    accounts = resolve(
        "{draftChunk: {minChars: 50, maxChars: 60}, accounts: {a: {draftChunk: {maxChars: 700}}}}"
    )
    chunk = accounts["a"].settings.draftChunk
    assert chunk.maxChars == 700
    assert chunk.minChars == 200  # the model default, not the top-level 50


def test_account_puppet_options_replace_top_level_puppet_options() -> None:
    accounts = resolve(
        '{puppetOptions: {token: "top", endpoint: "h:1"}, '
        'accounts: {a: {puppetOptions: {token: "mine"}}, b: {}}}'
    )
    assert accounts["a"].settings.puppetOptions.token == "mine"
    assert accounts["a"].settings.puppetOptions.endpoint is None
    assert accounts["b"].settings.puppetOptions.token == "top"


# ---------------------------------------------------------------- ids


def test_account_ids_are_lowercased() -> None:
    accounts = resolve('{defaultAccountId: "WORK", accounts: {Work: {}, home: {}}}')
    assert sorted(accounts.accounts) == ["home", "work"]
    assert accounts.default_id == "work"
    assert accounts["work"].id == "work"


@pytest.mark.parametrize("raw", ["a", "abc_DEF-1", "x" * 64, "0"])
def test_normalize_account_id_accepts_allowed_ids(raw: str) -> None:
    assert normalize_account_id(raw) == raw.lower()


@pytest.mark.parametrize(
    "raw", ["", "Bad Id", "x" * 65, "a.b", "é", "a/b", " work", "work ", "work\t", "\nwork"]
)
def test_normalize_account_id_rejects_other_ids(raw: str) -> None:
    with pytest.raises(ValueError, match="not allowed"):
        normalize_account_id(raw)


def test_bad_account_id_is_not_silently_renamed() -> None:
    with pytest.raises(ConfigError) as info:
        resolve('{accounts: {"my account": {}}}')
    assert "channels.wechat.accounts.my account" in str(info.value)
    # nor stripped: " work" became "work", and beside a "work" was "the same as another"
    with pytest.raises(ConfigError) as info:
        resolve('{accounts: {" work": {}, work: {}}}')
    assert "channels.wechat.accounts. work: account id ' work' is not allowed" in str(info.value)


# ---------------------------------------------------------------- enabled


def test_top_level_enabled_false_disables_every_account() -> None:
    accounts = resolve("{enabled: false, accounts: {a: {}, b: {enabled: true}}}")
    assert [a.enabled for a in accounts.accounts.values()] == [False, False]
    assert accounts.enabled == []


def test_top_level_enabled_false_disables_the_single_default_account() -> None:
    accounts = resolve("{enabled: false}")
    assert accounts.default.enabled is False
    assert accounts.enabled == []


def test_account_enabled_false_disables_only_that_account() -> None:
    accounts = resolve("{accounts: {a: {enabled: false}, b: {}}}")
    assert accounts["a"].enabled is False
    assert accounts["b"].enabled is True
    assert [a.id for a in accounts.enabled] == ["b"]


def test_disabled_account_is_still_listed() -> None:
    accounts = resolve("{accounts: {a: {enabled: false}}}")
    assert "a" in accounts.accounts
    assert accounts.default_id == "a"


# ---------------------------------------------------------------- default account


def test_default_account_id_picks_the_default() -> None:
    accounts = resolve('{defaultAccountId: "b", accounts: {a: {}, b: {}, default: {}}}')
    assert accounts.default_id == "b"
    assert accounts["b"].is_default
    assert not accounts["default"].is_default
    assert accounts.warnings == ()


def test_account_named_default_is_the_default_when_no_default_account_id() -> None:
    accounts = resolve("{accounts: {a: {}, default: {}, z: {}}}")
    assert accounts.default_id == "default"
    assert accounts.warnings == ()


def test_first_sorted_account_is_default_with_a_warning_when_two_or_more() -> None:
    accounts = resolve("{accounts: {zeta: {}, alpha: {}, mid: {}}}")
    assert accounts.default_id == "alpha"
    assert accounts.default.id == "alpha"
    assert len(accounts.warnings) == 1
    assert "alpha" in accounts.warnings[0]
    assert "defaultAccountId" in accounts.warnings[0]


@pytest.mark.parametrize(
    "text",
    [
        '{defaultAccountId: "work", accounts: {work: {enabled: false}, home: {}}}',
        "{accounts: {default: {enabled: false}, home: {}}}",
    ],
)
def test_a_disabled_default_account_is_warned_about(text: str) -> None:
    accounts = resolve(text)
    [warning] = accounts.warnings
    assert f"default account {accounts.default_id!r} is disabled" in warning
    assert "defaultAccountId" in warning


def test_every_account_disabled_is_no_warning_of_the_default() -> None:
    accounts = resolve('{defaultAccountId: "a", accounts: {a: {enabled: false}}}')
    assert accounts.warnings == ()


def test_single_account_is_default_without_a_warning() -> None:
    accounts = resolve("{accounts: {only: {}}}")
    assert accounts.default_id == "only"
    assert accounts.warnings == ()


def test_exactly_one_account_is_marked_default() -> None:
    accounts = resolve("{accounts: {a: {}, b: {}, c: {}}}")
    assert [a.id for a in accounts.accounts.values() if a.is_default] == ["a"]


# ---------------------------------------------------------------- derived values


def test_draft_max_chars_is_clamped_to_text_chunk_limit() -> None:
    accounts = resolve(
        "{textChunkLimit: 300, draftChunk: {minChars: 100, maxChars: 800}, "
        "accounts: {a: {}, b: {textChunkLimit: 5000}}}"
    )
    assert accounts["a"].draft_max_chars == 300
    assert accounts["b"].draft_max_chars == 800


def test_media_max_bytes_follows_media_max_mb() -> None:
    accounts = resolve("{mediaMaxMb: 2}")
    assert accounts.default.media_max_bytes == 2 * 1024 * 1024


def test_display_name_falls_back_when_no_name() -> None:
    accounts = resolve('{accounts: {a: {name: "Ann"}, b: {}}}')
    assert accounts["a"].display_name == "Ann"
    assert accounts["b"].display_name


def test_group_allow_from_is_none_when_unset() -> None:
    accounts = resolve('{accounts: {a: {groupAllowFrom: ["wxid_x"]}, b: {}}}')
    assert accounts["a"].group_allow_from is not None
    assert accounts["b"].group_allow_from is None


# ---------------------------------------------------------------- key_path


def test_key_path_names_the_account_when_the_account_wrote_the_key() -> None:
    accounts = resolve('{dmPolicy: "pairing", accounts: {a: {dmPolicy: "disabled"}, b: {}}}')
    assert accounts["a"].key_path("dmPolicy") == "channels.wechat.accounts.a.dmPolicy"
    assert accounts["b"].key_path("dmPolicy") == "channels.wechat.dmPolicy"


def test_key_path_of_a_nested_key_uses_its_top_key() -> None:
    accounts = resolve("{accounts: {a: {draftChunk: {minChars: 10}}, b: {}}}")
    assert accounts["a"].key_path("draftChunk.minChars") == (
        "channels.wechat.accounts.a.draftChunk.minChars"
    )
    assert accounts["b"].key_path("draftChunk.minChars") == "channels.wechat.draftChunk.minChars"


def test_key_path_without_accounts_map_is_top_level() -> None:
    accounts = resolve('{name: "x"}')
    assert accounts.default.key_path("name") == "channels.wechat.name"


def test_puppet_options_written_nowhere_belong_beside_the_accounts_own_puppet() -> None:
    accounts = resolve('{accounts: {a: {}, g: {puppet: "wechaty-puppet-service"}}}')
    assert accounts["g"].key_path("puppetOptions.token") == (
        "channels.wechat.accounts.g.puppetOptions.token"
    )
    assert accounts["a"].key_path("puppetOptions.token") == "channels.wechat.puppetOptions.token"
    # written at the top level, inherited: that is where they are
    shared = resolve(
        '{puppetOptions: {endpoint: "h:1"}, accounts: {g: {puppet: "wechaty-puppet-service"}}}'
    )
    assert (
        shared["g"].key_path("puppetOptions.endpoint") == "channels.wechat.puppetOptions.endpoint"
    )


def test_key_path_uses_the_account_id_as_written() -> None:
    accounts = resolve('{defaultAccountId: "work", accounts: {Work: {name: "w"}}}')
    assert accounts["work"].key_path("name") == "channels.wechat.accounts.Work.name"


def test_cross_field_error_of_a_mixed_case_account_points_at_its_line() -> None:
    text = (
        "{\n  channels: {\n    wechat: {\n      accounts: {\n        Work: {\n"
        '          dmPolicy: "allowlist",\n          allowFrom: [],\n        },\n'
        "      },\n    },\n  },\n}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    [problem] = info.value.problems
    assert problem.path == "channels.wechat.accounts.Work.allowFrom"
    assert problem.line == 7


def test_state_dir_under_an_account_is_refused_with_where_to_move_it() -> None:
    text = '{channels: {wechat: {accounts: {work: {stateDir: "/tmp/elsewhere"}}}}}'
    with pytest.raises(ConfigError) as info:
        accounts_of(parse_config(text, env={}))
    assert "channels.wechat.accounts.work.stateDir: stateDir is gateway-wide" in str(info.value)
    assert "move it to channels.wechat.stateDir" in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("store", '{kind: "memory"}'),
        ("webhooks", "[]"),
        ("api", "{}"),
        ("historyCacheConversations", "10"),
        ("defaultAccountId", '"a"'),
        ("defaultAccount", '"a"'),
        ("accounts", "{}"),
    ],
)
def test_a_key_of_the_whole_block_under_an_account_says_where_it_goes(key: str, value: str) -> None:
    # it said "unknown key" (accounts: 'did you mean "pairingAccount"?'), not where to
    # write it
    with pytest.raises(ConfigError) as err:
        parse_config(f"{{channels: {{wechat: {{accounts: {{a: {{{key}: {value}}}}}}}}}}}")
    (problem,) = err.value.problems
    assert problem.path == f"channels.wechat.accounts.a.{key}"
    assert problem.message == (
        f"unknown key in an account: {key} is written once, for every account: move it "
        f"to channels.wechat.{key}"
    )
