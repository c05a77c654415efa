"""Every config example of the docs pages parses, and means what the page says.

Each ```json5 block of the site is either included from a file with pymdownx.snippets
(``--8<-- "docs/examples/config/...json5"``, the seed's examples under
``tests/unit/seed_examples/``, scenario files under ``examples/``), or written on the page
and then also saved under ``docs/examples/config/``: a test checks that every such block is
one of those files, so the page and the file cannot drift. Every block that is a config is
parsed, every scenario is run, and the capability block is compared with the code.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import json5
import pytest

from simulator.scenario import run_scenario
from wechat_sdk.capabilities import CAPABILITIES, ILINK_CAPABILITIES
from wechat_sdk.config import ResolvedAccount, accounts_of, parse_config
from wechat_sdk.inbound.groups import allowed_tool_names, resolve_group

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples" / "config"
SEED_EXAMPLES = Path(__file__).parent / "seed_examples"
PAGES = sorted(p.name for p in DOCS.glob("*.md"))
JSON5_BLOCK = re.compile(r"^```json5\n(.*?)^```", re.MULTILINE | re.DOTALL)
SNIPPET = re.compile(r'^--8<-- "([^"]+)"$')
INCLUDE_DIRS = [EXAMPLES, SEED_EXAMPLES, ROOT / "examples" / "scenarios"]


def included_file(block: str) -> Path | None:
    """The file a block includes with ``--8<--``, or None for a block written inline."""
    m = SNIPPET.match(block.strip())
    return ROOT / m[1] if m else None


def page_blocks() -> list[tuple[str, str]]:
    """(page, text) of every json5 block of the site, with snippet includes resolved."""
    out = []
    for page in PAGES:
        for block in JSON5_BLOCK.findall((DOCS / page).read_text(encoding="utf-8")):
            path = included_file(block)
            out.append((page, path.read_text(encoding="utf-8") if path else block))
    return out


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
        path = included_file(block)
        if path is not None:
            assert path.is_file(), f"{page}: {path} does not exist"
            assert path.parent in INCLUDE_DIRS, f"{page}: {path} is not an example file"
            continue
        assert block.strip() in saved, f"{page}: json5 block not in docs/examples/config:\n{block}"


def test_the_site_shows_json5_examples() -> None:
    assert len(page_blocks()) >= 15


@pytest.mark.parametrize(
    ("page", "text"), page_blocks(), ids=lambda v: v if v.endswith(".md") else ""
)
def test_every_json5_block_works(page: str, text: str) -> None:
    """A config parses into accounts; a scenario runs green; capabilities match the code."""
    data = json5.loads(text)
    if "steps" in data:
        result = asyncio.run(run_scenario(text))
        assert result.ok, f"{page}: {result.failures}"
    elif "chatTypes" in data:
        # a transport's matrix, as the code gives it
        matrices = [c.model_dump(by_alias=True) for c in (CAPABILITIES, ILINK_CAPABILITIES)]
        assert data in matrices
    else:
        assert "channels" in data, f"{page}: a json5 block that is neither config nor scenario"
        assert accounts_of(parse_config(text, source=page, env={})).accounts


def test_pages_show_their_examples() -> None:
    shown = {text.strip() for _, text in page_blocks()}
    for path in [*example_files(), *SEED_EXAMPLES.glob("*.json5")]:
        assert path.read_text(encoding="utf-8").strip() in shown, f"{path.name} is on no page"


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


def test_accounts_example() -> None:
    accounts = accounts_of(parse_config((EXAMPLES / "accounts.json5").read_text(), env={}))
    assert sorted(accounts.accounts) == ["old", "personal", "work"]
    assert accounts.default_id == "personal"
    personal, work, old = accounts["personal"], accounts["work"], accounts["old"]
    assert [a.enabled for a in (personal, work, old)] == [True, True, False]
    assert (personal.settings.name, work.settings.name) == ("Molty", "Work Bot")
    # shared keys reach every account; an account's own list replaces the shared one
    assert personal.settings.allowFrom == ["wxid_owner"]
    assert work.settings.allowFrom == ["wxid_owner", "wxid_colleague"]
    assert personal.settings.dmPolicy == work.settings.dmPolicy == "pairing"
    assert work.settings.groups["*"].requireMention is True
    assert (personal.settings.textChunkLimit, work.settings.textChunkLimit) == (2048, 1000)


def test_pairing_example() -> None:
    account = load("pairing.json5")
    assert account.settings.dmPolicy == "pairing"
    assert account.allow_from.allows("wxid_owner")
    assert not account.allow_from.allows("wxid_stranger")
    assert account.settings.pairingNotify == "wxid_owner"


PUPPET_PAGE = DOCS / "puppets.md"


def test_puppets_page_includes_every_puppet_example() -> None:
    text = PUPPET_PAGE.read_text(encoding="utf-8")
    examples = sorted(EXAMPLES.glob("puppet-*.json5"))
    assert examples, f"no puppet-*.json5 in {EXAMPLES}"
    for path in examples:
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
