"""`wechat-sdk gateway run`: the gateway in the foreground, with its control socket."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

from wechat_sdk.agent import Agent
from wechat_sdk.agents import BUILTIN_AGENTS
from wechat_sdk.clock import RealClock
from wechat_sdk.config import (
    Config,
    ConfigError,
    ConfigProblem,
    ResolvedAccount,
    accounts_of,
    load_config,
    located,
)
from wechat_sdk.gateway.control import ControlServer
from wechat_sdk.gateway.gateway import Gateway, state_dir_of
from wechat_sdk.gateway.runner import ACCOUNT_OF_TASK
from wechat_sdk.http.media_links import MediaLinks
from wechat_sdk.logtext import without_secrets

__all__ = [
    "GC_GEN0_THRESHOLD",
    "agent_from_config",
    "check_agents",
    "check_puppets",
    "configure_logging",
    "load_agent",
    "serve",
    "status_answer",
    "tune_gc",
]

log = logging.getLogger("wechat_sdk.gateway")

#: Allocations between two collections of the garbage collector's youngest generation
#: while the gateway serves (Python's default is 700).
GC_GEN0_THRESHOLD = 10_000


def tune_gc() -> None:
    """Make Python's garbage collector cheap for a long-running gateway process.

    What start-up made (the imported modules, the config, the accounts) is collected
    once and then frozen (:func:`gc.freeze`): later full collections no longer walk it
    again and again. The youngest generation is collected every
    :data:`GC_GEN0_THRESHOLD` allocations instead of 700, so a burst of messages
    triggers far fewer collections (each still walks only young objects). In a burst of
    messages, collections took about a sixth of the gateway's time before, and about
    6 % after (docs/benchmarks.md).

    ``wechat-sdk gateway run`` calls it once the accounts have started. It changes the
    whole process, so the library never calls it on its own: a program that runs the
    gateway itself calls it after its own start-up, if it wants the same.
    """
    gc.collect()
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, GC_GEN0_THRESHOLD), gen1, gen2)


class _AccountField(logging.Filter):
    """The account on every line: the record's own, else the account whose task logged it
    (a library's line, a module's line such as ``send failed for good``), else ``-``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "account"):
            record.account = ACCOUNT_OF_TASK.get()
        return True


class _LibraryRecord(logging.Filter):
    """A library's record as one line of the gateway's log: its error's type and first
    line in place of a traceback, URLs cut to their origin and credentials masked (its
    text may repeat a server's URL with its key, or a request's headers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # (a filter's error would be raised into the library's own call: never)
        try:
            text = record.getMessage()
            if record.exc_info is not None and record.exc_info[1] is not None:
                error: BaseException = record.exc_info[1]
                while isinstance(error, BaseExceptionGroup) and error.exceptions:
                    error = error.exceptions[0]  # (anyio's task groups: the first cause)
                lines = str(error).strip().splitlines()
                text += f" ({type(error).__name__}{': ' + lines[0] if lines else ''})"
            text = without_secrets(text)
        except Exception as exc:
            text = f"(a {record.levelname.lower()} line that could not be shown: {exc!r:.80})"
        record.msg, record.args = text, None
        record.exc_info = record.exc_text = record.stack_info = None
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "account": getattr(record, "account", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


#: the loggers ``gateway run`` shows: the SDK's, and the simulator's (its default puppet)
LOGGERS = ("wechat_sdk", "simulator")
#: the libraries whose warnings and errors it shows on the same lines, by their logger's
#: name (their debug and info lines never: they show each request, its URL and headers)
LIBRARY_LOGGERS = ("mcp", "openai", "httpx", "httpcore", "aiohttp", "redis", "grpc")


def configure_logging(fmt: str = "human", level: str = "info") -> None:
    """Logs to stderr, the SDK's and its simulator's; the account id is on every line.
    The libraries' warnings and errors too, each as one line naming its logger, without
    keys (:func:`~wechat_sdk.logtext.without_secrets`)."""
    wanted = logging.getLevelNamesMapping().get(level.upper())
    if wanted is None:
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning or error")
    own = logging.StreamHandler(sys.stderr)
    own.addFilter(_AccountField())
    library = logging.StreamHandler(sys.stderr)
    library.addFilter(_AccountField())
    library.addFilter(_LibraryRecord())
    # (the handler's level, not only the loggers': OPENAI_LOG=debug sets openai's own)
    library.setLevel(max(logging.WARNING, wanted))
    if fmt == "json":
        own.setFormatter(_JsonFormatter())
        library.setFormatter(_JsonFormatter())
    else:
        line = "%(asctime)s %(levelname)-7s [%(account)s] "
        own.setFormatter(logging.Formatter(line + "%(message)s", "%H:%M:%S"))
        library.setFormatter(logging.Formatter(line + "%(name)s: %(message)s", "%H:%M:%S"))
    for names, handler in ((LOGGERS, own), (LIBRARY_LOGGERS, library)):
        for name in names:
            logger = logging.getLogger(name)
            logger.handlers[:] = [handler]
            logger.setLevel(max(wanted, handler.level))
            logger.propagate = False


def load_agent(spec: str) -> Agent:
    """A built-in agent's name (``echo``, :mod:`wechat_sdk.agents`) or
    ``package.module:function``."""
    if spec in BUILTIN_AGENTS:
        return BUILTIN_AGENTS[spec]
    module_name, _, attr = spec.partition(":")
    if not attr or not module_name:
        raise ValueError(
            f"cannot load the agent {spec!r}: use a built-in ({', '.join(BUILTIN_AGENTS)}) or "
            "module:function"
        )
    # like `python -m`, the current folder comes first, so `--agent mybot:agent` finds mybot.py
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not _names_part_of(module_name, exc.name):
            raise ValueError(_import_failed(spec, module_name, exc)) from None
        raise ValueError(
            f"cannot load the agent {spec!r}: no module {exc.name!r} (run from the folder "
            f"that holds {module_name.replace('.', '/')}.py, or install it)"
        ) from exc
    except Exception as exc:  # the module's own code failed: a bug in it, a variable unset
        raise ValueError(_import_failed(spec, module_name, exc)) from None
    agent = getattr(module, attr, None)
    if agent is None or not callable(agent):
        raise ValueError(f"cannot load the agent {spec!r}: {module_name} has no function {attr!r}")
    return cast(Agent, agent)


def _names_part_of(module_name: str, missing: str) -> bool:
    """Whether ``missing`` (a module not found) is ``module_name`` or a package of it:
    the agent's own module is not there, not one that it imports."""
    return module_name == missing or module_name.startswith(missing + ".")


def _import_failed(spec: str, module_name: str, exc: BaseException) -> str:
    """Why importing the agent's module failed, with where in the user's files (the
    frames of Python's import machinery and of load_agent left out)."""
    import traceback

    machinery = ("<frozen importlib", importlib.__file__ or "<no importlib file>", __file__)
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(machinery)
    ]
    where = "".join(traceback.format_list(frames))
    what = "".join(traceback.format_exception_only(exc))  # (a SyntaxError: file, line, caret)
    return f"cannot load the agent {spec!r}: importing {module_name} raised\n{where}{what}".rstrip()


def check_puppets(
    accounts: Iterable[ResolvedAccount], config_file: str | os.PathLike[str] | None = None
) -> None:
    """Every enabled account's puppet settings, all problems in one ConfigError that names
    the config file and each problem's line."""
    from wechat_sdk.puppets import check_puppet

    problems: list[ConfigProblem] = []
    for account in accounts:
        if account.enabled:
            try:
                check_puppet(account)
            except ConfigError as exc:
                problems.extend(exc.problems)
    if problems:
        raise located(ConfigError(problems), config_file)


def check_agents(
    accounts: Iterable[ResolvedAccount], config_file: str | os.PathLike[str] | None = None
) -> None:
    """Every enabled account's ``agent`` block as this machine can run it (an MCP
    server's command on PATH), all problems in one ConfigError, as :func:`check_puppets`."""
    from wechat_sdk.config.assistant import agent_problems

    problems: list[ConfigProblem] = []
    seen: set[str] = set()
    for account in accounts:
        agent = account.settings.agent
        if account.enabled and agent is not None:
            for problem in agent_problems(agent, account.key_path("agent")):
                if problem.path not in seen:  # (a top-level block is every account's)
                    seen.add(problem.path)
                    problems.append(problem)
    if problems:
        raise located(ConfigError(problems), config_file)


def agent_from_config(
    config: Config, *, media_link: Callable[[Path], str | None] | None = None
) -> Agent:
    """The assistant of the config's ``agent`` blocks; the built-in echo without one.
    ``media_link``: the signed links of inbound files a webhook agent gets."""
    from wechat_sdk.assistants import configured_assistant

    return configured_assistant(config, media_link=media_link) or BUILTIN_AGENTS["echo"]


def status_answer(gateway: Gateway) -> dict[str, Any]:
    """What ``gateway status`` is answered: each account's status and each webhook
    endpoint's state (no secrets)."""
    return {
        "accounts": [s.to_json() for s in gateway.status()],
        "webhooks": [w.to_json() for w in gateway.webhook_status()],
    }


async def pairing_command(gateway: Gateway, request: dict[str, Any]) -> dict[str, Any] | None:
    """The control socket's answer to a pairing command of the CLI (``pairing approve``
    tells the gateway of the approval, for its webhook event, and asks it to tell the
    sender with ``--notify``); None for another command."""
    cmd = request.get("cmd")
    if cmd == "pairing_approved":  # approved by the CLI: the webhook event
        gateway.events.pairing_approved(
            str(request["account"]), code=str(request["code"]), sender_id=str(request["sender"])
        )
        return {"ok": True}
    if cmd == "notify_approved":
        await gateway.pairing.notify_approved(str(request["account"]), str(request["sender"]))
        return {"ok": True}
    return None


async def serve(
    config_file: Path | None,
    state_dir: Path | None,
    agent: Agent | None,
    *,
    grace_s: float = 10.0,
    gc_tuning: bool = False,
    only_accounts: list[str] | None = None,
) -> int:
    """Run until SIGINT/SIGTERM or `gateway stop`. Returns the exit code.

    ``agent``: None answers with the config's ``agent`` blocks (:func:`agent_from_config`).

    ``only_accounts``: run only these accounts (``--accounts``).

    ``gc_tuning``: call :func:`tune_gc` once the accounts have started (``gateway run``
    does; it changes the whole process).
    """
    config = load_config(config_file)
    check_puppets(accounts_of(config).accounts.values(), config_file)
    check_agents(accounts_of(config).accounts.values(), config_file)
    # the signed media links: made by a webhook agent, served by the gateway's API server
    links = MediaLinks(state_dir_of(config, state_dir) / "media" / "inbound", RealClock())
    if agent is None:
        agent = agent_from_config(config, media_link=links.link)
    gateway = Gateway(
        config, agent=agent, state_dir=state_dir, media_links=links, only_accounts=only_accounts
    )
    # in a terminal, the number an iLink login's phone shows is asked for here too
    if sys.stdin is not None and sys.stdin.isatty():
        from wechat_sdk.gateway.verify_code import TerminalCodePrompt

        gateway.code_prompt = TerminalCodePrompt(state_dir=gateway.state_dir)
    stop = asyncio.Event()
    #: the start, a restart and the stop, one at a time: a restart under way when the stop
    #: comes ends first (it would start accounts on a store the stop closes)
    changing = asyncio.Lock()

    async def handle(request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "status":
            return {"ok": True, **status_answer(gateway)}
        if cmd == "stop":
            stop.set()
            return {"ok": True}
        if cmd == "restart":
            try:
                new = load_config(config_file)
                check_puppets(accounts_of(new).accounts.values(), config_file)
                check_agents(accounts_of(new).accounts.values(), config_file)
                async with changing:
                    if stop.is_set():
                        return {"ok": False, "error": "the gateway is stopping: not restarted"}
                    await gateway.reload(new, grace_s)
            except ConfigError as exc:
                exc = located(exc, config_file)  # (the reload's own problems: their lines)
                log.error("restart refused, the running config is kept:\n%s", exc.render())
                return {
                    "ok": False,
                    "error": "invalid config, the running gateway keeps "
                    "the old one:\n" + exc.render(),
                }
            log.info("config reloaded and accounts restarted")
            return {"ok": True}
        answer = await pairing_command(gateway, request)
        if answer is not None:
            return answer
        if cmd == "verify_code":  # the number an iLink login's phone shows (channels verify-code)
            from wechat_sdk.gateway.verify_code import (
                OUTCOME_WORDS,
                VerifyCodeProblem,
                submit_verify_code,
            )

            account = request.get("account")
            try:
                outcome = await submit_verify_code(
                    gateway, str(account) if account else None, str(request.get("code", ""))
                )
            except VerifyCodeProblem as exc:
                return {"ok": False, "error": str(exc), "code": exc.code}
            return {"ok": True, "outcome": outcome, "message": OUTCOME_WORDS[outcome]}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    control = ControlServer(gateway.state_dir, handle)
    await control.start()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():  # (a second Ctrl-C: said, so that it is not taken for a hang)
            log.warning(
                "already stopping: in-flight replies get up to %g s in all; what is left "
                "then is kept for the next start",
                grace_s,
            )
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal)
    started = False
    try:
        async with changing:
            await gateway.start()  # a health port in use raises here: the socket goes too
        started = True
        if gc_tuning:
            tune_gc()
        log.info(
            "gateway running: %d account(s); state in %s", len(gateway.runners), gateway.state_dir
        )
        await stop.wait()
    finally:
        if started:  # (a start that failed has no replies in flight to wait for)
            log.info("stopping: in-flight replies get up to %g s", grace_s)
        await control.stop_answering()
        try:
            async with changing:
                await gateway.close(grace_s)
        finally:  # (the directory is this gateway's until what is left is kept)
            await control.stop()
        log.info("gateway stopped")
    return 0
