"""my_puppet.py: a puppet of your own (Puppets, "Your own puppet"), registered under the
name a config's ``puppet`` gives; and its tests, a gateway that runs on it."""

# ruff: noqa: E402  (each section the page shows has its own imports)

# --8<-- [start:puppet]
import logging
from typing import Any

from wechat_sdk.puppet import OutboundFile, Puppet

log = logging.getLogger("my_puppet")


class AuditedPuppet:
    """The Puppet port around another puppet: every message the bot sends is logged."""

    def __init__(self, inner: Puppet, *, log_texts: bool = False) -> None:
        self.inner = inner
        self.log_texts = log_texts

    def __getattr__(self, name: str) -> Any:
        # the rest of the port is the inner puppet's: self_id, start, stop, events,
        # message, contact, room, room_alias, download, logout
        return getattr(self.inner, name)

    async def send_text(
        self, conversation_id: str, text: str, mention_ids: tuple[str, ...] = ()
    ) -> str | None:
        message_id = await self.inner.send_text(conversation_id, text, mention_ids)
        log.info("sent to %s: %s", conversation_id, text if self.log_texts else "a text")
        return message_id  # the gateway knows the echo of the message by this id

    async def send_file(self, conversation_id: str, file: OutboundFile) -> str | None:
        message_id = await self.inner.send_file(conversation_id, file)
        log.info("sent to %s: a file (%s)", conversation_id, file.kind)
        return message_id


# --8<-- [end:puppet]

# --8<-- [start:register]
from simulator.puppet_entry import make_puppet as simulator_puppet
from wechat_sdk.config import ConfigError, ResolvedAccount
from wechat_sdk.puppets import PuppetContext, PuppetEntry, register_puppet


def make_audited_puppet(account: ResolvedAccount, context: PuppetContext) -> Puppet:
    """An account's puppet: the simulator's, audited."""
    # the simulator's own factory keeps one world per gateway in context.shared, living on
    # context.clock (virtual time in a test), its logins kept under context.state_dir
    inner = simulator_puppet(account, context)
    options = account.settings.puppetOptions.model_extra or {}
    return AuditedPuppet(inner, log_texts=options.get("logTexts", False))


def check_options(account: ResolvedAccount) -> None:
    """The puppet's own options, checked before any account starts."""
    options = account.settings.puppetOptions.model_extra or {}
    if not isinstance(options.get("logTexts", False), bool):
        path = account.key_path("puppetOptions.logTexts")
        raise ConfigError.single(path, "must be true or false")


register_puppet("my-puppet", make_audited_puppet, check=check_options)
# --8<-- [end:register]

# --8<-- [start:entry]
MY_PUPPET = PuppetEntry(make_audited_puppet, check=check_options)
# --8<-- [end:entry]


# --8<-- [start:test]
import asyncio
from pathlib import Path

import pytest

from wechat_sdk import Gateway, load_config, parse_config
from wechat_sdk.clock import VirtualClock
from wechat_sdk.config import accounts_of
from wechat_sdk.puppets import check_puppet

CONFIG = Path(__file__).parent / "config" / "puppet-mine.json5"  # the page's config


async def agent(turn):
    return f"echo: {turn.text}"


@pytest.mark.asyncio  # no wechat fixture: marked for pytest-asyncio
async def test_a_gateway_runs_on_the_puppet_its_config_names(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="my_puppet")
    clock = VirtualClock()
    gateway = Gateway(load_config(CONFIG), agent=agent, clock=clock, state_dir=tmp_path)
    async with gateway:  # the account's puppet is make_audited_puppet's
        await clock.advance(2)  # the simulated phone scans the QR code
        assert gateway.status()[0].lifecycle == "ready"
        sending = asyncio.create_task(gateway.send("wxid_alice", "hello"))
        await clock.run_until_idle()  # (its pacing waits in virtual time)
        await sending
    audit = [r.getMessage() for r in caplog.records if r.name == "my_puppet"]
    assert audit == ["sent to wxid_alice: hello"]


def test_a_wrong_option_is_a_config_error():
    text = '{ channels: { wechat: { puppet: "my-puppet", puppetOptions: { logTexts: "yes" } } } }'
    account = accounts_of(parse_config(text)).default
    with pytest.raises(ConfigError, match=r"puppetOptions\.logTexts: must be true or false"):
        check_puppet(account)


# --8<-- [end:test]
