"""Every config example of the seed (the channel's documentation page) works as written.

The seed is kept in the repository (``spec/wechat-channel.md``) and its examples are copied
verbatim into ``seed_examples/``; tests check the copies match the page. Where the project's
shared seed sits beside the checkout (``../shared/seed``), a test checks the kept page is
still the same text.
"""

from __future__ import annotations

import re
from pathlib import Path

import json5
import pytest

from wechat_sdk.capabilities import CAPABILITIES
from wechat_sdk.config import Config, ToolPolicy, accounts_of, parse_config

EXAMPLES = Path(__file__).parent / "seed_examples"
SEED = Path(__file__).resolve().parents[2] / "spec" / "wechat-channel.md"
SHARED_SEED = Path(__file__).resolve().parents[3] / "shared" / "seed" / "wechat-channel.md"

CONFIG_EXAMPLES = [
    "configure",
    "account_configuration",
    "multi_account",
    "group_configuration",
    "streaming_configuration",
    "custom_puppet",
]


def example_text(name: str) -> str:
    return (EXAMPLES / f"{name}.json5").read_text(encoding="utf-8")


def parse_example(name: str) -> Config:
    return parse_config(example_text(name), source=f"{name}.json5", env={})


@pytest.mark.parametrize("name", CONFIG_EXAMPLES)
def test_seed_config_example_parses_as_is(name: str) -> None:
    config = parse_example(name)
    accounts = accounts_of(config)
    assert accounts.accounts
    assert accounts.default_id in accounts.accounts


def test_configure_example_values_land_on_the_default_account() -> None:
    account = accounts_of(parse_example("configure")).default
    s = account.settings
    assert account.id == "default"
    assert account.enabled is True
    assert s.name == "My WeChat Bot"
    assert s.puppet == "wechaty-puppet-wechat"
    assert s.qrCode is True
    assert s.dmPolicy == "pairing"
    assert s.allowFrom == ["*"]
    assert s.groupPolicy == "open"
    assert s.historyLimit == 20
    assert s.dmHistoryLimit == 10
    assert s.textChunkLimit == 2048


def test_account_configuration_example_values_land_on_the_default_account() -> None:
    account = accounts_of(parse_example("account_configuration")).default
    s = account.settings
    assert s.name == "WeChat Bot"
    assert s.puppet == "wechaty-puppet-wechat"
    assert s.dmPolicy == "pairing"
    assert s.allowFrom == ["*"]
    assert s.groupPolicy == "open"
    assert (s.historyLimit, s.dmHistoryLimit) == (20, 10)


def test_multi_account_example_has_two_accounts_and_account1_is_default() -> None:
    accounts = accounts_of(parse_example("multi_account"))
    assert sorted(accounts.accounts) == ["account1", "account2"]
    assert accounts.default_id == "account1"
    assert accounts.default.is_default
    assert not accounts["account2"].is_default
    assert accounts.warnings == ()


def test_multi_account_example_per_account_settings() -> None:
    accounts = accounts_of(parse_example("multi_account"))
    one, two = accounts["account1"], accounts["account2"]
    assert one.settings.name == "Personal WeChat"
    assert one.settings.dmPolicy == "open"
    assert one.settings.allowFrom is None  # open without allowFrom is accepted
    assert two.settings.name == "Work WeChat"
    assert two.settings.dmPolicy == "pairing"
    assert two.settings.allowFrom == ["user1", "user2"]
    assert one.enabled and two.enabled


def test_group_configuration_example_wildcard_and_specific_group() -> None:
    groups = accounts_of(parse_example("group_configuration")).default.settings.groups
    assert set(groups) == {"*", "specific-group-id"}
    assert groups["*"].requireMention is True
    assert groups["*"].tools is None
    assert groups["specific-group-id"].requireMention is False
    assert groups["specific-group-id"].tools == ["weather", "time"]
    assert not isinstance(groups["specific-group-id"].tools, ToolPolicy)


def test_streaming_configuration_example_values() -> None:
    account = accounts_of(parse_example("streaming_configuration")).default
    s = account.settings
    assert s.streamMode == "off"
    assert s.blockStreaming is True
    assert s.draftChunk.minChars == 100
    assert s.draftChunk.maxChars == 500
    assert account.draft_max_chars == 500


def test_custom_puppet_example_keeps_the_token() -> None:
    s = accounts_of(parse_example("custom_puppet")).default.settings
    assert s.puppet == "wechaty-puppet-service"
    assert s.puppetOptions.token == "your-service-token"


def test_capabilities_equal_the_seed_capabilities_block() -> None:
    seed_caps = json5.loads(example_text("capabilities"))
    # (ARCHITECTURE.md's contract: key for key; typing, which iLink added and Wechaty
    # does not have, is left out where it is false)
    assert CAPABILITIES.model_dump(by_alias=True) == seed_caps


def _seed_json5_blocks() -> list[str]:
    return re.findall(r"```json5\n(.*?)```", SEED.read_text(encoding="utf-8"), re.S)


def test_every_seed_config_block_is_copied_verbatim() -> None:
    blocks = [b for b in _seed_json5_blocks() if "channels" in b]
    copies = {name: example_text(name) for name in CONFIG_EXAMPLES}
    assert len(blocks) == len(CONFIG_EXAMPLES)
    for block in blocks:
        assert block in copies.values(), f"seed block not copied verbatim:\n{block}"


def test_seed_capabilities_block_is_copied_verbatim() -> None:
    blocks = [b for b in _seed_json5_blocks() if "chatTypes" in b]
    assert blocks == [example_text("capabilities")]


def test_the_kept_seed_is_the_shared_seed() -> None:
    if not SHARED_SEED.exists():
        pytest.skip(f"no shared seed beside the checkout ({SHARED_SEED})")
    assert SEED.read_text(encoding="utf-8") == SHARED_SEED.read_text(encoding="utf-8"), (
        "the shared seed changed: copy it to spec/wechat-channel.md and update seed_examples/"
    )
