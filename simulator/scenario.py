"""Scenario files: a conversation as data (JSON5), run on the simulator.

See ``docs/scenarios.md``. ``run_scenario`` returns the result that
``wechat-sdk simulate FILE --json`` prints.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import json5
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from simulator.media import MAX_DURATION_S, MAX_MEDIA_BYTES
from simulator.validation import problems as problems_of
from simulator.world import FAULT_KINDS, SimulatedWeChat, TranscriptEntry
from wechat_sdk.agent import Agent
from wechat_sdk.agents import BUILTIN_AGENTS
from wechat_sdk.config import Config, ConfigError, accounts_of, did_you_mean, parse_config
from wechat_sdk.config.loader import read_text
from wechat_sdk.gateway import Gateway
from wechat_sdk.puppet import MediaWord

# BUILTIN_AGENTS is wechat_sdk.agents' table, re-exported for code that imports it from here
__all__ = [
    "BUILTIN_AGENTS",
    "MAX_SCENARIO_BYTES",
    "ScenarioError",
    "ScenarioResult",
    "load_scenario",
    "read_scenario",
    "run_scenario",
]

#: the largest scenario file read (1 MiB, as a config file: a scenario of thousands of steps
#: is a few hundred KB; a bigger file is a mistake, and parsing JSON5 takes seconds a MB)
MAX_SCENARIO_BYTES = 1 << 20


class ScenarioError(ValueError):
    """An invalid scenario; ``str()`` names the dotted path of each problem."""


class _M(BaseModel):
    # strict: every field takes the JSON type it documents ("3" is no number, 1 or "yes" no
    # boolean), as the control API's bodies do; JSON5 has NaN and Infinity: no step takes them
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, allow_inf_nan=False, strict=True
    )


class Media(_M):
    kind: MediaWord
    name: str | None = None
    size: int = Field(1024, ge=0, le=MAX_MEDIA_BYTES)
    duration: float | None = Field(None, ge=0, le=MAX_DURATION_S)


class ContactSpec(_M):
    id: str
    name: str | None = None


class RoomSpec(_M):
    id: str
    topic: str | None = None
    members: list[str] = Field(default_factory=list)
    aliases: dict[str, str] = Field(default_factory=dict)


class AccountSpec(_M):
    id: str
    name: str | None = None
    wxid: str | None = None


class WorldSpec(_M):
    contacts: list[ContactSpec] = Field(default_factory=list)
    rooms: list[RoomSpec] = Field(default_factory=list)
    accounts: list[AccountSpec] = Field(default_factory=list)
    mentionIds: bool = True
    mentionText: bool = True


class Say(_M):
    sender: str = Field(alias="from")
    text: str = ""
    room: str | None = None
    mention: bool | Literal["ids", "text"] = False
    mentionAll: bool = False
    account: str | None = None
    media: Media | None = None


class MediaMatch(_M):
    """The fields of an outbound file an expectation names (as the transcript shows them)."""

    kind: MediaWord | None = None
    name: str | None = None
    size: int | None = None
    mime: str | None = None
    duration: float | None = None


class Match(_M):
    to: str | None = None
    room: str | None = None
    account: str | None = None
    contains: str | None = None
    equals: str | None = None
    media: MediaMatch | None = None


class Approve(_M):
    sender: str = Field(alias="from")
    account: str | None = None
    notify: bool = False


class Fault(_M):
    kind: Literal[FAULT_KINDS]  # type: ignore[valid-type]
    account: str = "default"
    count: int = Field(1, ge=1)
    seconds: float | None = Field(None, ge=0)


class Restart(_M):
    pass


class LoginStep(_M):
    login: str


class SayStep(_M):
    say: Say


class ExpectStep(_M):
    expect: Match


class ExpectNoneStep(_M):
    expectNone: Match


class ApproveStep(_M):
    approve: Approve


class AdvanceStep(_M):
    advance: float = Field(ge=0)


class FaultStep(_M):
    fault: Fault


class RestartStep(_M):
    restart: Restart


Step = Annotated[
    LoginStep
    | SayStep
    | ExpectStep
    | ExpectNoneStep
    | ApproveStep
    | AdvanceStep
    | FaultStep
    | RestartStep,
    Field(union_mode="left_to_right"),
]


class Scenario(_M):
    config: dict[str, Any] = Field(default_factory=dict)
    agent: str = "echo"
    seed: int = 0
    world: WorldSpec = Field(default_factory=WorldSpec)
    steps: list[dict[str, Any]]

    @field_validator("agent")
    @classmethod
    def _built_in(cls, name: str) -> str:
        if name not in BUILTIN_AGENTS:
            raise ValueError(f"{name!r} is not a built-in agent: use {', '.join(BUILTIN_AGENTS)}")
        return name


_STEP_MODELS: dict[str, type[BaseModel]] = {
    "login": LoginStep,
    "say": SayStep,
    "expect": ExpectStep,
    "expectNone": ExpectNoneStep,
    "approve": ApproveStep,
    "advance": AdvanceStep,
    "fault": FaultStep,
    "restart": RestartStep,
}


class ScenarioResult(BaseModel):
    ok: bool
    failures: list[str]
    transcript: list[dict[str, Any]]


def read_scenario(path: Path) -> str:
    """The text of the scenario file at ``path``; `ScenarioError` naming the file when it
    cannot be read, is too large or is not UTF-8 text (the config file's rule)."""
    try:
        return read_text(path, kind="scenario", max_bytes=MAX_SCENARIO_BYTES)
    except ValueError as exc:
        raise ScenarioError(f"(scenario): {exc}") from None


def load_scenario(text: str) -> tuple[Scenario, list[BaseModel], Config]:
    """Parse and validate scenario text; raises ScenarioError with dotted paths.

    Every problem is reported in one pass: the top-level fields, each step, the config, and
    (once those are valid) what the steps name: accounts of the config, rooms of the world.
    """
    try:
        data = json5.loads(text)
    except ValueError as exc:
        raise ScenarioError(f"invalid JSON5: {exc}".replace("<string>:", "line ")) from None
    if not isinstance(data, dict):
        raise ScenarioError("(scenario): expected an object {config, agent, world, steps}")
    problems: list[str] = []
    scenario: Scenario | None = None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problems(exc, Scenario))
    steps: list[tuple[int, BaseModel]] = []
    raw_steps = data.get("steps")
    for i, raw in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        if not isinstance(raw, dict):
            continue  # (the top level's validation says so)
        keys = [k for k in raw if k in _STEP_MODELS]
        if len(raw) != 1 or not keys:
            problems.append(
                f"steps.{i}: expected one of {', '.join(_STEP_MODELS)}, got "
                f"{', '.join(map(str, raw)) or 'an empty object'}{_step_hint(raw)}"
            )
            continue
        model = _STEP_MODELS[keys[0]]
        try:
            steps.append((i, model.model_validate(raw)))
        except ValidationError as exc:
            problems.extend(_problems(exc, model, f"steps.{i}"))
    config: Config | None = None
    raw_config = scenario.config if scenario is not None else data.get("config", {})
    if isinstance(raw_config, dict):
        try:
            config = parse_config(json.dumps(raw_config))
        except ConfigError as exc:
            problems.extend(f"config.{p.path}: {p.message}" for p in exc.problems)
    world = scenario.world if scenario is not None else _world_alone(data.get("world", {}))
    if world is not None and config is not None:  # (a bad agent name hides none of these)
        problems.extend(_check_references(world, steps, config))
    if problems or scenario is None or config is None:
        raise ScenarioError("\n".join(sorted(problems, key=_order)))
    return scenario, [step for _, step in steps], config


def _problems(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> list[str]:
    return [line.replace("(body):", "(scenario):", 1) for line in problems_of(exc, model, prefix)]


def _order(problem: str) -> tuple[int, int]:
    """The top-level fields first, then the steps in order, then the config."""
    head = problem.partition(":")[0].split(".")
    if head[0] == "steps" and len(head) > 1 and head[1].isdigit():
        return (1, int(head[1]))
    return (2, 0) if head[0] == "config" else (0, 0)


def _step_hint(raw: dict[str, Any]) -> str:
    """ " (did you mean "say"?)" for a step whose one key is close to a step's."""
    if len(raw) != 1:
        return ""
    return did_you_mean(str(next(iter(raw))), list(_STEP_MODELS))


def _world_alone(raw: Any) -> WorldSpec | None:
    """The ``world`` block, valid on its own (its problems are said with the scenario's)."""
    try:
        return WorldSpec.model_validate(raw)
    except ValidationError:
        return None


def _check_references(
    world: WorldSpec, steps: list[tuple[int, BaseModel]], config: Config
) -> list[str]:
    """The accounts and rooms the world and the steps name must exist: the world's accounts
    are the config's enabled accounts, its rooms those of ``world.rooms``."""
    configured = accounts_of(config)
    enabled = {a.id: a for a in configured.enabled}
    names = ", ".join(enabled) or "(none)"
    rooms = [r.id for r in world.rooms]
    out: list[str] = []
    for n, spec in enumerate(world.accounts):
        if spec.id not in configured.accounts:
            out.append(
                f"world.accounts.{n}.id: {spec.id!r} is not an account of config: add it "
                f"to config.channels.wechat.accounts, or remove it (config accounts: {names})"
            )

    def account(path: str, account_id: str | None) -> None:
        if account_id is None or account_id in enabled:
            return
        why = (
            "is disabled in config"
            if account_id in configured.accounts
            else "is not an account of config"
        )
        out.append(f"{path}: {account_id!r} {why} (accounts: {names})")

    def room(path: str, room_id: str | None) -> None:
        if room_id is not None and room_id not in rooms:
            known = ", ".join(rooms) or "none"
            out.append(f"{path}: no room {room_id!r} in world.rooms (rooms: {known})")

    for i, step in steps:
        if isinstance(step, LoginStep):
            account(f"steps.{i}.login", step.login)
        elif isinstance(step, SayStep):
            account(f"steps.{i}.say.account", step.say.account)
            room(f"steps.{i}.say.room", step.say.room)
        elif isinstance(step, ExpectStep | ExpectNoneStep):
            word, match = (
                ("expect", step.expect) if isinstance(step, ExpectStep) else
                ("expectNone", step.expectNone)
            )  # fmt: skip
            account(f"steps.{i}.{word}.account", match.account)
            room(f"steps.{i}.{word}.room", match.room)
        elif isinstance(step, ApproveStep):
            account(f"steps.{i}.approve.account", step.approve.account)
        elif isinstance(step, FaultStep):
            f = step.fault
            account(f"steps.{i}.fault.account", f.account)
            resolved = enabled.get(f.account)  # (None: an unknown account, said above)
            if (
                resolved is not None
                and f.kind == "slow_poll"
                and resolved.settings.puppet != "ilink"
            ):
                out.append(
                    f"steps.{i}.fault.kind: slow_poll applies to iLink accounts only "
                    f'(puppet "ilink"), and account {f.account!r} is not one: use another '
                    "fault, or an iLink account"
                )
    return out


async def run_scenario(
    text: str,
    *,
    seed: int | None = None,
    agent: Agent | None = None,
    on_step: Callable[[int, BaseModel], None] | None = None,
) -> ScenarioResult:
    """Run a scenario on a fresh simulated world with a real gateway."""
    scenario, steps, config = load_scenario(text)
    world = SimulatedWeChat(
        seed=scenario.seed if seed is None else seed,
        mention_ids=scenario.world.mentionIds,
        mention_text=scenario.world.mentionText,
    )
    for c in scenario.world.contacts:
        world.add_contact(c.id, c.name)
    for r in scenario.world.rooms:
        world.add_room(r.id, r.topic, r.members, r.aliases)
    specs = {a.id: a for a in scenario.world.accounts}
    for account in accounts_of(config).enabled:
        spec = specs.get(account.id)
        world.add_account(
            account.id,
            wxid=spec.wxid if spec else None,
            name=(spec.name if spec and spec.name else account.settings.name),
            transport="ilink" if account.settings.puppet == "ilink" else "puppet",
        )
    the_agent = agent or BUILTIN_AGENTS[scenario.agent]
    failures: list[str] = []
    matched: set[int] = set()
    with tempfile.TemporaryDirectory(prefix="wechat-sdk-scenario-") as tmp:
        state = Path(tmp)

        def make_gateway() -> Gateway:
            return world.gateway(config, the_agent, state_dir=state)

        gateway = make_gateway()
        await gateway.start()
        try:
            for i, step in enumerate(steps):
                if on_step is not None:
                    on_step(i, step)
                failure = await _run_step(i, step, world, gateway, matched)
                if failure == "restart":
                    await gateway.close()
                    gateway = make_gateway()
                    await gateway.start()
                    await world.run_until_idle()
                elif failure:
                    failures.append(failure)
        finally:
            await gateway.close()
            await world.close()
    return ScenarioResult(
        ok=not failures, failures=failures, transcript=[e.to_json() for e in world.transcript]
    )


async def _run_step(
    i: int, step: BaseModel, world: SimulatedWeChat, gateway: Gateway, matched: set[int]
) -> str | None:
    if isinstance(step, LoginStep):
        try:
            await world.login(step.login)
        except (KeyError, TimeoutError) as exc:
            return f"step {i} (login): {exc}"
    elif isinstance(step, SayStep):
        s = step.say
        media = s.media.model_dump(exclude_none=True) if s.media else None
        try:
            await world.say(
                s.sender,
                s.text,
                room=s.room,
                account=s.account,
                mention=s.mention,
                mention_all=s.mentionAll,
                media=media,
            )
        except KeyError as exc:
            return f"step {i} (say): {exc.args[0]}"
    elif isinstance(step, ApproveStep):
        a = step.approve
        # (an account names the list it keeps, or the one it shares: pairingAccount)
        pending = [r for r in gateway.pairing.list(a.account) if r.sender_id == a.sender]
        if not pending:
            return f"step {i} (approve): no pending pairing request from {a.sender}"
        await world.drive(
            gateway.pairing.approve(pending[0].code, account=pending[0].account_id, notify=a.notify)
        )
    elif isinstance(step, AdvanceStep):
        await world.advance(step.advance)
        return None
    elif isinstance(step, FaultStep):
        f = step.fault
        world.fault(f.kind, f.account, f.count, seconds=f.seconds)
    elif isinstance(step, RestartStep):
        return "restart"
    elif isinstance(step, ExpectStep):
        await world.run_until_idle()
        idx = _find(world.transcript, step.expect, matched)
        if idx is None:
            return f"step {i} (expect): no outbound message with {_describe(step.expect)}"
        matched.add(idx)
        return None
    elif isinstance(step, ExpectNoneStep):
        await world.run_until_idle()
        idx = _find(world.transcript, step.expectNone, matched)
        if idx is not None:
            got = world.transcript[idx].text or json.dumps(world.transcript[idx].media)
            return (
                f"step {i} (expectNone): found an outbound message with "
                f"{_describe(step.expectNone)}: {got!r}"
            )
        return None
    await world.run_until_idle()
    return None


def _find(transcript: list[TranscriptEntry], m: Match, matched: set[int]) -> int | None:
    for idx, e in enumerate(transcript):
        if idx in matched or e.direction != "out":
            continue
        if m.to is not None and e.to != m.to:
            continue
        if m.room is not None and e.room != m.room:
            continue
        if m.account is not None and e.account != m.account:
            continue
        if m.contains is not None and (e.text is None or m.contains not in e.text):
            continue
        if m.equals is not None and e.text != m.equals:
            continue
        if m.media is not None and (
            e.media is None
            or any(e.media.get(k) != v for k, v in m.media.model_dump(exclude_none=True).items())
        ):
            continue
        return idx
    return None


def _describe(m: Match) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in m.model_dump(exclude_none=True).items())
