"""pytest fixtures for testing a bot on the simulator (registered as a pytest11 entry point).

async def test_my_bot(wechat):
    gateway = await wechat.gateway(my_agent, dmPolicy="open", allowFrom=["*"])
    await wechat.world.say("wxid_alice", "hello")
    assert wechat.world.texts(to="wxid_alice") == ["you said hello"]

The fixtures need no configuration: they run on pytest-asyncio (wechat-sdk's ``testing``
extra installs it) in any ``asyncio_mode``. In the default mode, ``strict``, pytest-asyncio
runs only the tests marked ``asyncio``, so an ``async def`` test that uses ``wechat`` or
``wechat_world`` gets that mark here; other tests, and the user's own async fixtures, are left
to the user's pytest-asyncio settings.

pytest-asyncio's event loops are :class:`~wechat_sdk.idle_loop.IdleAwareEventLoop` (asyncio's
selector loop, which says when it is idle) so the world's virtual clock settles exactly: given
through the ``pytest_asyncio_loop_factories`` hook (pytest-asyncio 1.4 and later), else the
``event_loop_policy`` fixture. A project's own hook or ``event_loop_policy`` fixture takes
precedence (the clock then settles by its fallback, see ``VirtualClock.settle``); on Windows
asyncio's own loop is kept.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from pathlib import Path
from typing import Any

import pytest

from simulator.world import SimulatedWeChat
from wechat_sdk.agent import Agent
from wechat_sdk.config import Config
from wechat_sdk.gateway import Gateway
from wechat_sdk.idle_loop import new_event_loop

__all__ = ["WeChatHarness", "wechat", "wechat_world"]

FIXTURES = frozenset({"wechat", "wechat_world"})
NO_PYTEST_ASYNCIO = (
    "the wechat fixtures run on pytest-asyncio, which is not active: install it with "
    "pip install pytest-asyncio (or remove -p no:asyncio)"
)
# pytest-asyncio (0.24 and later) asks every project for this setting; see pytest_configure
_LOOP_SCOPE_UNSET = r'The configuration option "asyncio_default_fixture_loop_scope" is unset'


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Spare a folder without pytest configuration pytest-asyncio's loop scope reminder.

    While ``asyncio_default_fixture_loop_scope`` is unset, pytest-asyncio warns that a later
    version will run an async fixture without a ``loop_scope`` in a function-scoped loop
    instead of a loop of the fixture's own scope. The plugin's fixtures are function-scoped,
    where both are the same loop, so the reminder says nothing about them; a folder holding
    only a bot and its tests would still get it on every run. This hides that one warning
    when pytest found no configuration file (``config.inipath`` is None); a project with one
    (``pytest.ini``, ``pyproject.toml``...) keeps pytest-asyncio's advice. Runs before
    pytest-asyncio's own ``pytest_configure``, which warns; the setting itself is left alone,
    and so is every other warning.
    """
    if config.inipath is None and _ini_unset(config, "asyncio_default_fixture_loop_scope"):
        warnings.filterwarnings(
            "ignore", message=_LOOP_SCOPE_UNSET, category=pytest.PytestDeprecationWarning
        )
    if config.pluginmanager.hasplugin("asyncio") and not _has_loop_factories_hook(config):
        # registered after pytest-asyncio, so this fixture comes after (overrides) its own
        config.pluginmanager.register(_EventLoopPolicy(), "wechat_sdk_event_loop_policy")


def _has_loop_factories_hook(config: pytest.Config) -> bool:
    caller = getattr(config.hook, "pytest_asyncio_loop_factories", None)
    return caller is not None and caller.spec is not None


@pytest.hookimpl(optionalhook=True, trylast=True)
def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """pytest-asyncio 1.4 and later: run async tests on a loop that says when it is idle."""
    return {"wechat_sdk": new_event_loop}


class _EventLoopPolicy:
    """pytest-asyncio before 1.4: the same loop, through its ``event_loop_policy`` fixture."""

    @pytest.fixture(scope="session")
    def event_loop_policy(self) -> asyncio.AbstractEventLoopPolicy:
        if sys.platform == "win32":
            return asyncio.get_event_loop_policy()  # the proactor, as pytest-asyncio has it

        class IdleAwarePolicy(asyncio.DefaultEventLoopPolicy):
            def new_event_loop(self) -> asyncio.AbstractEventLoop:
                return new_event_loop()

        return IdleAwarePolicy()


def _ini_unset(config: pytest.Config, name: str) -> bool:
    try:
        return not config.getini(name)
    except ValueError:  # pytest-asyncio older than 0.24, or not loaded: no such setting
        return False


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, Any, Any]:
    """Mark ``async def`` tests that use the plugin's fixtures with ``pytest.mark.asyncio``.

    ``trylast`` makes this wrapper the innermost, so the mark is on the items before
    pytest-asyncio's own wrapper (around this one) decides which items it runs. A test
    naming a fixture among its arguments is marked before its items are made, so
    pytest-asyncio (1.4 and later) also gives it the plugin's loop (see the module's
    docstring); one that gets them another way (``usefixtures``) is marked afterwards.
    """
    if (
        inspect.iscoroutinefunction(obj)
        and FIXTURES.intersection(inspect.signature(obj).parameters)
        and collector.config.pluginmanager.hasplugin("asyncio")
        and not any(m.name == "asyncio" for m in getattr(obj, "pytestmark", ()))
    ):
        pytest.mark.asyncio(obj)
    result = yield
    if not collector.config.pluginmanager.hasplugin("asyncio"):
        return result
    items = result if isinstance(result, list) else [result]
    for item in items:
        if (
            isinstance(item, pytest.Function)
            and inspect.iscoroutinefunction(item.obj)
            and FIXTURES.intersection(item.fixturenames)
            and item.get_closest_marker("asyncio") is None
        ):
            item.add_marker(pytest.mark.asyncio)
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test using the fixtures without pytest-asyncio fails saying what to install."""
    if (
        isinstance(item, pytest.Function)
        and FIXTURES.intersection(item.fixturenames)
        and not item.config.pluginmanager.hasplugin("asyncio")
    ):
        pytest.fail(NO_PYTEST_ASYNCIO, pytrace=False)


def _asyncio_fixture(function: Callable[..., Any]) -> Any:
    """``pytest_asyncio.fixture``, which pytest-asyncio runs in any ``asyncio_mode``.

    Without pytest-asyncio (wechat-sdk installed without its testing extra) the plugin
    still loads, so pytest keeps working for other projects; a test that uses the fixtures
    then fails in `pytest_runtest_setup`.
    """
    try:
        import pytest_asyncio
    except ImportError:
        return pytest.fixture(function)
    return pytest_asyncio.fixture(function)


class WeChatHarness:
    """A simulated world plus gateways on it, all cleaned up after the test."""

    def __init__(self, world: SimulatedWeChat, state_dir: Path) -> None:
        self.world = world
        self.state_dir = state_dir
        self.gateways: list[Gateway] = []

    async def gateway(
        self,
        agent: Agent,
        config: Config | dict[str, Any] | str | None = None,
        *,
        login: bool | list[str] = True,
        **wechat: Any,
    ) -> Gateway:
        """Start a gateway on the world with ``agent`` and log its accounts in.

        ``config`` is a whole config (model, dict or JSON5 text); keyword arguments are
        ``channels.wechat`` keys (``dmPolicy="open", allowFrom=["*"]``), laid over a dict
        config's. Without ``accounts`` among them (or in a dict config), the gateway runs
        every bot account of the world (an iLink one with ``puppet: "ilink"``).
        """
        gw = self.world.gateway(self._config(config, wechat), agent, state_dir=self.state_dir)
        self.gateways.append(gw)
        await gw.start()
        accounts = list(gw.runners) if login is True else list(login) if login else []
        for account_id in accounts:
            await self.world.login(account_id)
        return gw

    def _config(
        self, config: Config | dict[str, Any] | str | None, wechat: dict[str, Any]
    ) -> Config | dict[str, Any] | str:
        if config is None:
            return {"channels": {"wechat": self._with_world_accounts(wechat)}}
        if not isinstance(config, dict):
            if wechat:
                raise TypeError(
                    "keyword arguments are laid over a dict config only: put "
                    f"{', '.join(sorted(wechat))} in the config itself"
                )
            return config  # (JSON5 text or a Config: as written)
        channels = dict(config.get("channels") or {})
        laid = {**(channels.get("wechat") or {}), **wechat}
        channels["wechat"] = self._with_world_accounts(laid)
        return {**config, "channels": channels}

    def _with_world_accounts(self, wechat: dict[str, Any]) -> dict[str, Any]:
        """The keys, with an ``accounts`` entry for each bot account of the world when it
        has others than one ``default`` (a world made in a ``wechat_world`` override)."""
        sims = self.world.accounts
        if "accounts" in wechat or list(sims) in ([], ["default"]):
            if sims.get("default") is not None and sims["default"].transport == "ilink":
                return {"puppet": "ilink", **wechat}
            return wechat
        accounts = {
            account_id: {"puppet": "ilink"} if sim.transport == "ilink" else {}
            for account_id, sim in sims.items()
        }
        return {**wechat, "accounts": accounts}

    async def close(self) -> None:
        # on the world's clock: a turn still under way (a message said with settle=False)
        # gets its grace in virtual time, which nothing else would move
        for gw in self.gateways:
            await self.world.drive(gw.close())
        await self.world.close()  # its iLink server, if an account used one


@pytest.fixture
def wechat_world() -> SimulatedWeChat:
    """A fresh simulated WeChat (seed 0) with one bot account, ``default``."""
    world = SimulatedWeChat(seed=0)
    world.add_account("default")
    return world


@_asyncio_fixture
async def wechat(wechat_world: SimulatedWeChat, tmp_path: Path) -> AsyncIterator[WeChatHarness]:
    """The simulated world (``wechat.world``) and ``await wechat.gateway(agent, **keys)``."""
    harness = WeChatHarness(wechat_world, tmp_path / "state")
    try:
        yield harness
    finally:
        await harness.close()
