"""`config check` on a config file far too big, or with thousands of mistakes: a file over
the size limit is refused, naming it and the limit; every unknown key is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from wechat_sdk.config import ConfigError, load_config, parse_config
from wechat_sdk.config.loader import MAX_CONFIG_BYTES


def test_a_file_over_the_size_limit_is_refused_naming_it_and_the_limit(tmp_path: Path) -> None:
    config = tmp_path / "config.json5"
    padding = "// " + "x" * 1000 + "\n"
    body = '{channels: {wechat: {puppet: "simulator"}}}\n'
    config.write_text(body + padding * (MAX_CONFIG_BYTES // len(padding) + 1), encoding="utf-8")
    assert config.stat().st_size > MAX_CONFIG_BYTES
    with pytest.raises(ConfigError) as info:
        load_config(config)
    (problem,) = info.value.problems
    assert str(config) in problem.message
    assert "1 MiB" in problem.message


def test_a_file_just_under_the_limit_loads(tmp_path: Path) -> None:
    config = tmp_path / "config.json5"
    body = '{channels: {wechat: {puppet: "simulator"}}}\n'
    config.write_text(body + " " * (MAX_CONFIG_BYTES - len(body)), encoding="utf-8")
    assert load_config(config).channels.wechat.puppet == "simulator"


def test_every_one_of_8000_unknown_keys_is_reported() -> None:
    n = 8000
    keys = ",\n".join(f"unknownKey{i}: 1" for i in range(n))
    with pytest.raises(ConfigError) as info:
        parse_config("{channels: {wechat: {\n" + keys + "\n}}}", env={})
    problems = info.value.problems
    assert len(problems) == n
    assert {p.path for p in problems} == {f"channels.wechat.unknownKey{i}" for i in range(n)}
    assert all(p.message.startswith("unknown key") for p in problems)
    assert problems[-1].line == n + 1


def test_an_unknown_key_inside_a_union_member_hides_the_union_complaint() -> None:
    """What the collapsing of union errors does, kept when it is made linear."""
    with pytest.raises(ConfigError) as info:
        parse_config("{channels: {wechat: {pacing: {perSecnd: 2}}}}", env={})
    assert [str(p) for p in info.value.problems] == [
        'channels.wechat.pacing.perSecnd: unknown key (did you mean "perSecond"?)'
    ]
