"""`wechat-sdk simulate`: exit codes, JSON output, expectations, restart."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from wechat_sdk.cli import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "scenarios" / "pairing.json5"


def run(path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["simulate", str(path), *args])
    return result.exit_code, result.output


def test_example_scenario_passes_and_prints_json_transcript() -> None:
    code, out = run(EXAMPLE, "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["ok"] is True and data["failures"] == []
    first = data["transcript"][0]
    assert set(first) == {"t", "direction", "account", "from", "to", "room", "text", "media"}
    assert first == {
        "t": 0.0,
        "direction": "in",
        "account": "default",
        "from": "wxid_alice",
        "to": "wxid_bot_default",
        "room": None,
        "text": "hello",
        "media": None,
    }
    assert any(e["direction"] == "out" and e["room"] == "r1@chatroom" for e in data["transcript"])


def test_failed_expectation_exits_1_and_names_the_step(tmp_path: Path) -> None:
    scenario = tmp_path / "s.json5"
    scenario.write_text("""{
      config: { channels: { wechat: { puppet: "simulator", dmPolicy: "open", allowFrom: ["*"] } } },
      steps: [
        { login: "default" },
        { say: { from: "wxid_a", text: "ping" } },
        { expect: { to: "wxid_a", equals: "pong" } },
        { expectNone: { to: "wxid_a" } },
      ],
    }""")
    code, out = run(scenario, "--json")
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False
    assert data["failures"][0].startswith("step 2 (expect)")
    # the unmatched "ping" echo is still there for expectNone
    assert data["failures"][1].startswith("step 3 (expectNone)")


def test_invalid_scenario_exits_2_with_dotted_paths(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.json5"
    scenario.write_text("""{
      config: { channels: { wechat: { dmPolicy: "pair" } } },
      steps: [ { say: { text: "no sender" } }, { bogus: 1 } ],
    }""")
    code, out = run(scenario)
    assert code == 2
    assert "steps.0.say.from" in out
    assert "steps.1: expected one of login, say" in out
    assert "config.channels.wechat.dmPolicy: expected one of pairing|allowlist|open|disabled" in out
    assert "Traceback" not in out


def test_restart_step_keeps_state_and_media_expectation(tmp_path: Path) -> None:
    scenario = tmp_path / "r.json5"
    scenario.write_text("""{
      config: { channels: { wechat: { puppet: "simulator", dmPolicy: "pairing" } } },
      steps: [
        { login: "default" },
        { say: { from: "wxid_a", text: "hi" } },
        { expect: { to: "wxid_a", contains: "pairing approve" } },
        { restart: {} },
        { say: { from: "wxid_a", text: "hi again" } },
        { expectNone: { to: "wxid_a" } },
        { approve: { from: "wxid_a", notify: true } },
        { expect: { to: "wxid_a", contains: "approved" } },
        { say: { from: "wxid_a", text: "look", media: { kind: "image", size: 30000 } } },
        { expect: { to: "wxid_a", equals: "look" } },
      ],
    }""")
    code, out = run(scenario, "--json")
    data = json.loads(out)
    assert code == 0, data["failures"]
    ins = [e for e in data["transcript"] if e["direction"] == "in" and e["media"]]
    assert ins[0]["media"]["kind"] == "image" and ins[0]["media"]["size"] == 30000


def test_seed_option_changes_generated_ids(tmp_path: Path) -> None:
    scenario = tmp_path / "s.json5"
    scenario.write_text("""{
      config: { channels: { wechat: { puppet: "simulator", dmPolicy: "open", allowFrom: ["*"] } } },
      steps: [
        { login: "default" },
        { say: { from: "wxid_a", text: "x", media: { kind: "file", size: 10 } } },
      ],
    }""")
    a = json.loads(run(scenario, "--json", "--seed", "1")[1])
    b = json.loads(run(scenario, "--json", "--seed", "1")[1])
    assert a == b


def write(tmp_path: Path, text: str) -> Path:
    scenario = tmp_path / "s.json5"
    scenario.write_text(text)
    return scenario


OPEN = 'config: { channels: { wechat: { dmPolicy: "open", allowFrom: ["*"] } } }'


def test_unknown_accounts_and_rooms_are_invalid_at_load_not_a_traceback(tmp_path: Path) -> None:
    code, out = run(
        write(
            tmp_path,
            """{ steps: [
              { login: "default" },
              { fault: { kind: "send_fail", account: "bot2" } },
              { say: { from: "a", account: "nope", text: "x" } },
              { say: { from: "a", room: "nope@chatroom", text: "x" } },
            ] }""",
        )
    )
    assert code == 2, out
    assert "steps.1.fault.account: 'bot2' is not an account of config (accounts: default)" in out
    assert "steps.2.say.account: 'nope' is not an account of config" in out
    assert "steps.3.say.room: no room 'nope@chatroom' in world.rooms" in out
    assert "Traceback" not in out and "KeyError" not in out


def test_a_world_account_missing_from_config_is_invalid(tmp_path: Path) -> None:
    code, out = run(
        write(
            tmp_path,
            f"""{{ {OPEN}, world: {{ accounts: [{{ id: "ghost", name: "Ghost" }}] }},
              steps: [{{ login: "default" }}] }}""",
        )
    )
    assert code == 2, out
    assert "world.accounts.0.id: 'ghost' is not an account of config" in out


def test_slow_poll_on_a_puppet_account_is_invalid(tmp_path: Path) -> None:
    code, out = run(
        write(tmp_path, '{ steps: [{login: "default"}, {fault: {kind: "slow_poll"}}] }')
    )
    assert code == 2, out
    assert "steps.1.fault.kind: slow_poll applies to iLink accounts only" in out


def test_media_the_simulator_cannot_make_is_invalid_at_load_not_a_traceback(
    tmp_path: Path,
) -> None:
    code, out = run(
        write(
            tmp_path,
            f"""{{ {OPEN}, steps: [
              {{ login: "default" }},
              {{ say: {{ from: "a", media: {{ kind: "audio", duration: -1 }} }} }},
              {{ say: {{ from: "a", media: {{ kind: "audio", duration: NaN }} }} }},
              {{ advance: Infinity }},
              {{ say: {{ from: "a", media: {{ kind: "file", size: 1000000000000 }} }} }},
            ] }}""",
        )
    )
    assert code == 2, out
    lines = [line.strip() for line in out.splitlines()[1:]]
    assert lines == [
        "steps.1.say.media.duration: input should be greater than or equal to 0, got -1",
        "steps.2.say.media.duration: Input should be a finite number, got nan",
        "steps.3.advance: Input should be a finite number, got inf",
        "steps.4.say.media.size: input should be less than or equal to 104857600, "
        "got 1000000000000",
    ]


def test_every_problem_in_one_pass_with_did_you_mean(tmp_path: Path) -> None:
    code, out = run(
        write(
            tmp_path,
            """{ sede: 3, steps: [
              { say: { from: "a", txt: "hi" } },
              { sya: { from: "a" } },
              { expect: { to: "a", contain: "hi" } },
              { fault: { kind: "slow_send", seconds: -1 } },
            ] }""",
        )
    )
    assert code == 2, out
    lines = [line.strip() for line in out.splitlines()[1:]]
    assert lines == [
        'sede: unknown key (did you mean "seed"?)',
        'steps.0.say.txt: unknown key (did you mean "text"?)',
        "steps.1: expected one of login, say, expect, expectNone, approve, advance, fault, "
        'restart, got sya (did you mean "say"?)',
        'steps.2.expect.contain: unknown key (did you mean "contains"?)',
        "steps.3.fault.seconds: input should be greater than or equal to 0, got -1",
    ]


def test_a_fault_count_or_seconds_that_is_not_a_number_is_invalid(tmp_path: Path) -> None:
    """``count: true`` was one fault and ``count: "2"`` two, ``seconds: "5"`` five seconds:
    a scenario's numbers are numbers, as the control API's and world.fault's are."""
    code, out = run(
        write(
            tmp_path,
            """{ steps: [
              { fault: { kind: "send_fail", count: true } },
              { fault: { kind: "send_fail", count: "2" } },
              { fault: { kind: "send_fail", count: 2.0 } },
              { fault: { kind: "slow_send", seconds: "5" } },
              { fault: { kind: "slow_send", seconds: false } },
              { fault: { kind: "slow_send", count: 2, seconds: 5 } },
            ] }""",
        )
    )
    assert code == 2, out
    lines = [line.strip() for line in out.splitlines()[1:]]
    assert lines == [
        "steps.0.fault.count: expected a whole number, got true",
        'steps.1.fault.count: expected a whole number, got "2"',
        "steps.2.fault.count: expected a whole number, got 2.0",
        'steps.3.fault.seconds: expected a number, got "5"',
        "steps.4.fault.seconds: expected a number, got false",
    ]


def test_a_value_of_another_type_is_invalid_in_every_field(tmp_path: Path) -> None:
    """``seed: "3"`` was seed 3, ``advance: "60"`` a minute, ``media.size: "10"`` ten bytes,
    ``mentionIds: "yes"`` and ``notify: 1`` true: every field of the format takes the type
    it documents (a number a JSON number, a boolean true or false, a list a list)."""
    code, out = run(
        write(
            tmp_path,
            """{ seed: "3",
              world: {
                mentionIds: "yes", mentionText: 1,
                rooms: [{ id: "r@chatroom", members: ["a"] }],
              },
              steps: [
              { advance: "60" },
              { advance: true },
              { say: { from: "a", media: { kind: "image", size: "10" } } },
              { say: { from: "a", media: { kind: "image", size: 10.0 } } },
              { say: { from: "a", media: { kind: "audio", duration: "2" } } },
              { say: { from: "a", room: "r@chatroom", mention: "yes" } },
              { say: { from: "a", room: "r@chatroom", mention: 1, mentionAll: "true" } },
              { approve: { from: "a", notify: 1 } },
              { expect: { media: { kind: "image", size: "10" } } },
              { expectNone: { media: { knd: "image" } } },
            ] }""",
        )
    )
    assert code == 2, out
    lines = [line.strip() for line in out.splitlines()[1:]]
    assert lines == [
        'seed: expected a whole number, got "3"',
        'world.mentionIds: expected true or false, got "yes"',
        "world.mentionText: expected true or false, got 1",
        'steps.0.advance: expected a number, got "60"',
        "steps.1.advance: expected a number, got true",
        'steps.2.say.media.size: expected a whole number, got "10"',
        "steps.3.say.media.size: expected a whole number, got 10.0",
        'steps.4.say.media.duration: expected a number, got "2"',
        'steps.5.say.mention: expected true or false or one of ids|text, got "yes"',
        "steps.6.say.mention: expected true or false or one of ids|text, got 1",
        'steps.6.say.mentionAll: expected true or false, got "true"',
        "steps.7.approve.notify: expected true or false, got 1",
        'steps.8.expect.media.size: expected a whole number, got "10"',
        'steps.9.expectNone.media.knd: unknown key (did you mean "kind"?)',
    ]


def test_the_documented_values_of_every_field_are_taken(tmp_path: Path) -> None:
    """Strict types refuse no value the format documents: an integer for a number of
    seconds, a mention of "ids" or "text", an expected file by each of its fields."""
    code, out = run(
        write(
            tmp_path,
            """{ config: { channels: { wechat: { dmPolicy: "pairing" } } }, seed: 3,
              agent: "echo",
              world: {
                mentionIds: true, mentionText: false,
                contacts: [{ id: "a", name: "A" }],
                rooms: [{ id: "r@chatroom", topic: "T", members: ["a"], aliases: { a: "Al" } }],
                accounts: [{ id: "default", name: "Bot", wxid: "wxid_bot" }],
              },
              steps: [
              { login: "default" },
              { say: { from: "a", text: "x", media: { kind: "audio", name: "v.silk",
                       size: 300, duration: 2 } } },
              { expect: { to: "a", account: "default", contains: "pairing" } },
              { approve: { from: "a", account: "default", notify: false } },
              { say: { from: "a", room: "r@chatroom", text: "hi", mention: "ids",
                       mentionAll: false, account: "default" } },
              { expect: { room: "r@chatroom", equals: "hi" } },
              { expectNone: { media: { kind: "audio", name: "v.silk", size: 300,
                                       mime: "audio/silk", duration: 2.5 } } },
              { advance: 60 },
              { advance: 0.5 },
              { fault: { kind: "slow_send", account: "default", count: 1, seconds: 2 } },
              { restart: {} },
            ] }""",
        ),
        "--json",
    )
    assert code == 0, out
    assert json.loads(out)["ok"] is True


def test_a_bad_top_level_field_hides_no_account_or_room_problem(tmp_path: Path) -> None:
    """A misspelt agent (or a step that is no object) made the whole scenario invalid,
    and the accounts and rooms the steps name went unchecked: fixed in rounds."""
    code, out = run(
        write(
            tmp_path,
            '{ agent: "ech", steps: [{ login: "nope" }, { say: { from: "a", room: "zz" } }, "x"] }',
        )
    )
    assert code == 2, out
    lines = [line.strip().partition(":")[0] for line in out.splitlines()[1:]]
    assert lines == ["agent", "steps.0.login", "steps.1.say.room", "steps.2"]


def test_a_file_that_is_not_utf8_is_an_invalid_scenario(tmp_path: Path) -> None:
    """It was a traceback and exit 1, which CI reads as an expectation that failed."""
    path = tmp_path / "latin1.json5"
    path.write_bytes('{ steps: [{ say: { from: "a", text: "café" } }] }'.encode("latin-1"))
    code, out = run(path)
    assert code == 2, out
    assert "is not UTF-8 text" in out
    code, out = run(path, "--json")  # its problem names the file, as the other file errors do
    assert code == 2, out
    [problem] = json.loads(out)["error"]
    assert str(path) in problem and "not UTF-8 text" in problem


def test_a_file_it_may_not_read_is_an_invalid_scenario_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was a traceback. Root reads any file (and for another user click's own check
    refuses a file of mode 000 first), so its open is made to fail as root's does where it
    may not read (a network mount that maps root to nobody)."""
    path = write(tmp_path, '{ steps: [{ login: "default" }] }')
    real_open = Path.open

    def open_refused(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_refused)
    code, out = run(path)
    assert code == 2, out
    assert "Traceback" not in out
    assert f"cannot read {path}: permission denied" in out
    code, out = run(path, "--json")
    assert code == 2, out
    [problem] = json.loads(out)["error"]
    assert str(path) in problem and "permission denied" in problem


def test_json_output_of_an_invalid_scenario_has_the_documented_shape(tmp_path: Path) -> None:
    code, out = run(write(tmp_path, '{ steps: [{ login: "nope" }] }'), "--json")
    assert code == 2
    data = json.loads(out)
    problem = "steps.0.login: 'nope' is not an account of config (accounts: default)"
    assert data == {"ok": False, "failures": [problem], "transcript": [], "error": [problem]}


def test_a_file_over_the_size_limit_is_invalid_naming_it_and_the_limit(tmp_path: Path) -> None:
    """A scenario file had no size cap: a huge one (or the wrong file) was read whole and
    parsed for minutes. Over the limit it is refused, as a config file is."""
    from simulator.scenario import MAX_SCENARIO_BYTES

    body = '{ steps: [{ login: "default" }] }\n'
    path = write(tmp_path, body + " " * MAX_SCENARIO_BYTES)
    code, out = run(path, "--json")
    assert code == 2, out
    [problem] = json.loads(out)["error"]
    assert str(path) in problem and "1 MiB" in problem
    path.write_text(body + " " * (MAX_SCENARIO_BYTES - len(body)), encoding="utf-8")
    code, out = run(path)
    assert code == 0, out
