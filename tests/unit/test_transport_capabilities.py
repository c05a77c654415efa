"""Capabilities per transport: an iLink account's defaults, its group settings warned about,
and ``wechat-sdk channels capabilities --account``."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from wechat_sdk.capabilities import CAPABILITIES, ILINK_CAPABILITIES
from wechat_sdk.cli import cli
from wechat_sdk.config import accounts_of, parse_config
from wechat_sdk.puppets import capabilities_of

MIXED = """\
{
  channels: {
    wechat: {
      defaultAccountId: "groups",
      accounts: {
        dm: { puppet: "ilink", groupPolicy: "disabled" },
        groups: { puppet: "wechaty-puppet-service" },
      },
    },
  },
}
"""


def test_an_ilink_account_cuts_text_at_4000_characters_by_default() -> None:
    accounts = accounts_of(parse_config(MIXED))
    assert accounts["dm"].settings.textChunkLimit == 4000
    assert accounts["groups"].settings.textChunkLimit == 2048


def test_a_written_text_chunk_limit_wins_over_the_transport_default() -> None:
    text = '{ channels: { wechat: { puppet: "ilink", textChunkLimit: 1500 } } }'
    assert accounts_of(parse_config(text)).default.settings.textChunkLimit == 1500


def test_group_settings_on_an_ilink_account_are_a_warning_that_says_why() -> None:
    (warning,) = accounts_of(parse_config(MIXED)).warnings
    assert warning.startswith("channels.wechat.accounts.dm.groupPolicy is ignored")
    assert "cannot be in a group" in warning
    assert "Wechaty account" in warning


def test_top_level_group_settings_serve_a_wechaty_account_without_a_warning() -> None:
    text = MIXED.replace(
        'dm: { puppet: "ilink", groupPolicy: "disabled" }', 'dm: { puppet: "ilink" }'
    )
    text = text.replace(
        'defaultAccountId: "groups",', 'defaultAccountId: "groups", mentionAll: true,'
    )
    assert accounts_of(parse_config(text)).warnings == ()


def test_top_level_group_settings_with_only_ilink_accounts_are_a_warning() -> None:
    text = (
        '{ channels: { wechat: { puppet: "ilink", groups: { "*": { requireMention: false } } } } }'
    )
    (warning,) = accounts_of(parse_config(text)).warnings
    assert warning.startswith("channels.wechat.groups is ignored")


def test_each_account_has_its_transports_matrix() -> None:
    accounts = accounts_of(parse_config(MIXED))
    assert capabilities_of(accounts["dm"]) == ILINK_CAPABILITIES
    assert capabilities_of(accounts["groups"]) == CAPABILITIES
    assert ILINK_CAPABILITIES.chat_types == ("direct",)
    assert ILINK_CAPABILITIES.typing and ILINK_CAPABILITIES.media
    assert not CAPABILITIES.typing


def test_channels_capabilities_shows_an_accounts_matrix(tmp_path: Path) -> None:
    config = tmp_path / "config.json5"
    config.write_text(MIXED, encoding="utf-8")
    runner = CliRunner()
    args = ["channels", "capabilities", "--config", str(config), "--account"]
    dm = runner.invoke(cli, [*args, "dm", "--json"])
    assert dm.exit_code == 0, dm.output
    assert json.loads(dm.stdout) == ILINK_CAPABILITIES.model_dump(by_alias=True)
    table = runner.invoke(cli, [*args, "groups"])
    assert table.exit_code == 0, table.output
    assert "account groups (puppet wechaty-puppet-service)" in table.stdout
    assert "direct, group" in table.stdout


def test_channels_capabilities_for_an_unknown_account_names_the_accounts(tmp_path: Path) -> None:
    config = tmp_path / "config.json5"
    config.write_text(MIXED, encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["channels", "capabilities", "--config", str(config), "--account", "work"]
    )
    assert result.exit_code != 0
    assert "no account 'work' in the config (accounts: dm, groups)" in result.output


def test_channels_capabilities_with_a_config_alone_shows_its_default_accounts(
    tmp_path: Path,
) -> None:
    # --config without --account printed the seed's matrix, the file ignored
    config = tmp_path / "config.json5"
    config.write_text(MIXED.replace('defaultAccountId: "groups"', 'defaultAccountId: "dm"'))
    result = CliRunner().invoke(cli, ["channels", "capabilities", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "account dm (puppet ilink)" in result.stdout
