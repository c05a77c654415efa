"""Every config example of the docs pages parses, and means what the page says.

Each ```json5 block of the pages below is also saved under ``docs/examples/config/``; a
test checks that every block is one of those files, so the page and the file cannot drift.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wechat_sdk.config import ResolvedAccount, accounts_of, parse_config
from wechat_sdk.inbound.groups import allowed_tool_names, resolve_group

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLES = DOCS / "examples" / "config"
PAGES = ["groups.md", "history.md", "media.md", "reason-codes.md"]
JSON5_BLOCK = re.compile(r"^```json5\n(.*?)^```", re.MULTILINE | re.DOTALL)

FAMILY = "12345678901@chatroom"
WORK = "98765432109@chatroom"


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.json5"))


def load(name: str) -> ResolvedAccount:
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    return accounts_of(parse_config(text, source=name, env={})).default


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_example_file_parses(path: Path) -> None:
    config = parse_config(path.read_text(encoding="utf-8"), source=path.name, env={})
    assert accounts_of(config).accounts


@pytest.mark.parametrize("page", PAGES)
def test_every_json5_block_of_the_page_is_a_saved_example(page: str) -> None:
    saved = {p.read_text(encoding="utf-8").strip() for p in example_files()}
    blocks = JSON5_BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))
    for block in blocks:
        assert block.strip() in saved, f"{page}: json5 block not in docs/examples/config:\n{block}"


def test_pages_show_their_examples() -> None:
    shown = {
        b.strip()
        for page in PAGES
        for b in JSON5_BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))
    }
    for path in example_files():
        if path.stem.startswith(("groups-", "history", "media")):
            assert path.read_text(encoding="utf-8").strip() in shown, path.name


def test_groups_mentions_example() -> None:
    s = load("groups-mentions.json5").settings
    assert s.groupPolicy == "open"
    assert resolve_group(s, "other@chatroom").require_mention is True
    assert resolve_group(s, "other@chatroom").allowed
    assert resolve_group(s, FAMILY).require_mention is False


def test_groups_allowlist_example() -> None:
    account = load("groups-allowlist.json5")
    s = account.settings
    assert resolve_group(s, FAMILY).allowed
    assert resolve_group(s, FAMILY).require_mention is True
    assert resolve_group(s, WORK).require_mention is False
    assert resolve_group(s, "other@chatroom").reason == "group_not_allowed"
    group_allow = account.group_allow_from
    assert group_allow is not None
    assert group_allow.allows("wxid_owner") and group_allow.allows("wxid_partner")
    assert not group_allow.allows("wxid_stranger")


def test_groups_mention_all_example() -> None:
    s = load("groups-mention-all.json5").settings
    assert s.mentionAll is True
    assert s.name == "Molty"


def test_groups_tools_example_matches_the_page() -> None:
    s = load("groups-tools.json5").settings
    registered = ["weather", "search", "calendar", "shell"]

    def tools(room: str) -> set[str]:
        rule = resolve_group(s, room)
        assert rule.allowed and rule.require_mention
        return set(allowed_tool_names(rule.tools, registered))

    assert tools(FAMILY) == {"weather"}
    assert tools(WORK) == {"search", "calendar"}
    assert tools("other@chatroom") == {"weather", "search", "calendar"}


def test_history_example() -> None:
    s = load("history.json5").settings
    assert (s.historyLimit, s.dmHistoryLimit) == (30, 5)
    assert s.stateDir == "~/.clawdbot/wechat"


def test_media_example() -> None:
    account = load("media.json5")
    assert account.settings.mediaMaxMb == 10
    assert account.media_max_bytes == 10 * 1024 * 1024
    assert account.settings.mediaMaxAgeHours == 48


PUPPET_PAGE = DOCS / "puppets.md"


def test_puppets_page_includes_every_puppet_example() -> None:
    text = PUPPET_PAGE.read_text(encoding="utf-8")
    for path in EXAMPLES.glob("puppet-*.json5"):
        assert f'--8<-- "docs/examples/config/{path.name}"' in text, path.name


def test_puppet_examples_mean_what_the_page_says() -> None:
    from wechat_sdk.adapters.wechaty.service import DEFAULT_DISCOVERY_URL, service_settings

    assert load("puppet-simulator.json5").settings.puppet == "simulator"

    node = load("puppet-node.json5").settings
    assert node.puppet == "wechaty-puppet-wechat"
    assert node.puppetOptions.model_dump(exclude_none=True) == {"uos": True}
    assert load("puppet-node-tls.json5").settings.puppetOptions.tls is True

    service = load("puppet-service.json5").settings
    assert service.puppet == "wechaty-puppet-service"
    assert service.puppetOptions.endpoint == "puppet.example.com:8788"
    assert service.puppetOptions.tls is not None and service.puppetOptions.tls is not False
    assert service.puppetOptions.tls is not True
    assert service.puppetOptions.tls.caFile == "/etc/wechat-sdk/wechaty-ca.pem"

    plain = service_settings(
        load("puppet-service-plaintext.json5").settings.puppetOptions, "p", env={}
    )
    assert (plain.endpoint, plain.tls) == ("127.0.0.1:8788", False)

    found = service_settings(
        load("puppet-service-discovery.json5").settings.puppetOptions, "p", env={}
    )
    assert found.endpoint is None and found.tls
    assert found.discovery_url == DEFAULT_DISCOVERY_URL
