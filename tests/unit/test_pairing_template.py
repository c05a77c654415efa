"""pairingMessage: a template that cannot be filled is refused when the config is loaded,
naming the key and the fields there are; and filling one never takes the account down."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from simulator import Recorder
from simulator.pytest_plugin import WeChatHarness
from wechat_sdk.cli import cli
from wechat_sdk.config import ConfigError, parse_config

FIELDS_NAMED = ("{code}", "{senderId}", "{botName}", "{command}")

BAD_TEMPLATES = [
    "{0}",  # positional
    "{}",  # automatic numbering
    "{code",  # unclosed
    "code}",  # lone closing brace
    "{code!z}",  # unknown conversion
    "{code!r}",  # a repr of the code, quotes and all
    "{code.upper}",  # attribute access: a method's repr
    "{code[0]}",  # indexing
    "{Code}",  # a typo: would reach the stranger as it is
    "{code:>{senderId}}",  # nested field in a format spec
    "{code:d}",  # a number format on text
    "{code:>99999999}",  # a huge padding
]


def error_of(body: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config("{channels: {wechat: " + body + "}}", env={})
    return info.value


@pytest.mark.parametrize("template", BAD_TEMPLATES)
def test_a_bad_top_level_template_is_refused_naming_the_key_and_the_fields(
    template: str,
) -> None:
    err = error_of(f"{{pairingMessage: {template!r}}}".replace("'", '"'))
    (problem,) = err.problems
    assert problem.path == "channels.wechat.pairingMessage"
    for name in FIELDS_NAMED:
        assert name in problem.message


@pytest.mark.parametrize("template", BAD_TEMPLATES)
def test_a_bad_account_template_is_refused_naming_the_account_key(template: str) -> None:
    body = '{accounts: {work: {pairingMessage: "' + template + '"}}}'
    err = error_of(body)
    (problem,) = err.problems
    assert problem.path == "channels.wechat.accounts.work.pairingMessage"
    assert "{code}" in problem.message


@pytest.mark.parametrize(
    "template",
    [
        "Ask the owner: {command}",
        "{botName} here. Code {code} for {senderId}; the owner runs {command}",
        "literal braces {{like this}} and {code}",
        "padded [{code:>10}] [{senderId:.5}] [{botName:*^20}]",
    ],
)
def test_good_templates_load(template: str) -> None:
    config = parse_config('{channels: {wechat: {pairingMessage: "' + template + '"}}}', env={})
    assert config.channels.wechat.pairingMessage == template


#: templates a stranger could never pair with: no code in them, or one cut short
CODELESS = [
    "no fields at all",
    "Hi, this is {botName}. Ask the owner to let you in.",
    "Your id is {senderId}",
    "Your code: {code:.4}",  # a precision cuts the code
    "Ask the owner to run: {command:.20}",
]


@pytest.mark.parametrize("template", CODELESS)
def test_a_template_that_gives_no_whole_code_is_refused_saying_to_add_it(template: str) -> None:
    # accepted before: each stranger got a message without the code they must pass on
    for body, path in (
        ('{pairingMessage: "' + template + '"}', "channels.wechat.pairingMessage"),
        (
            '{accounts: {work: {pairingMessage: "' + template + '"}}}',
            "channels.wechat.accounts.work.pairingMessage",
        ),
    ):
        (problem,) = error_of(body).problems
        assert problem.path == path
        assert problem.message.startswith("invalid template: ")
        assert "add {code}" in problem.message
        for name in FIELDS_NAMED:
            assert name in problem.message


def test_the_message_of_a_codeless_template_says_why(tmp_path: Path) -> None:
    config = tmp_path / "config.json5"
    config.write_text('{channels: {wechat: {pairingMessage: "Ask the owner, {botName} here"}}}')
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(config)])
    assert result.exit_code != 0
    said = " ".join(result.output.split())
    assert (
        "channels.wechat.pairingMessage: invalid template: it has no {code}, so a stranger "
        "gets no code to pair with: add {code} (or {command}, which holds it), whole"
    ) in said


async def test_a_template_that_slipped_past_validation_sends_the_default_message(
    wechat: WeChatHarness,
) -> None:
    """Settings changed after loading (no validation) still get a code out, and the
    account stays up for the next stranger."""
    agent = Recorder()
    gw = await wechat.gateway(agent)
    settings = gw.runners["default"].inbound.account.settings
    settings.pairingMessage = "{0} {code.upper}"
    world = wechat.world

    await world.say("wxid_stranger", "hi")
    await world.say("wxid_other", "hi")

    for who in ("wxid_stranger", "wxid_other"):
        (text,) = world.texts(to=who)
        assert re.search(r"Pairing code: \w{8}", text), text
    (status,) = gw.status()
    assert status.lifecycle == "ready"
    assert status.reconnects == 0
    assert len(gw.pairing.list()) == 2
