"""Start-up time: importing wechat_sdk and the CLI's quick commands, in fresh interpreters.

Run: ``python bench/bench_import.py [--runs 15] [name=path ...]`` where each ``name=path``
is a checkout of this repository (``git worktree add /tmp/base REV`` makes one); without
one, the checkout this script is in (``head``). Never part of the test suite.

Each command runs in a fresh interpreter (this one's ``sys.executable``), with the tree on
``PYTHONPATH``, from an empty working directory, with bytecode cached (a warm-up run per
command and tree writes it under a temporary ``PYTHONPYCACHEPREFIX``, as an installed
package has it). The trees take turns run by run (A B A B ...), so a change in the machine's
speed hits them alike. Per command and tree: the median wall time and the median CPU time
(user + system of the child, ``getrusage``) over the runs; with two trees or more, the
median of the pair-by-pair ratios of each tree's CPU time to the first tree's.

Commands:

- ``python -c pass``: the interpreter alone;
- ``import wechat_sdk``;
- ``from wechat_sdk import Gateway``: what a program that runs a gateway imports;
- ``wechat-sdk --help`` (``python -m wechat_sdk --help``);
- ``wechat-sdk gateway status --state-dir DIR`` with no gateway running (it exits 3);
- ``wechat-sdk gateway status`` reading the state directory from a config file (``HOME``
  points at a temporary directory holding ``.clawdbot/config.json5``).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

COMMANDS: list[tuple[str, list[str]]] = [
    ("python -c pass", ["-c", "pass"]),
    ("import wechat_sdk", ["-c", "import wechat_sdk"]),
    ("from wechat_sdk import Gateway", ["-c", "from wechat_sdk import Gateway"]),
    ("wechat-sdk --help", ["-m", "wechat_sdk", "--help"]),
    (
        "wechat-sdk gateway status --state-dir DIR",
        ["-m", "wechat_sdk", "gateway", "status", "--state-dir", "{state}"],
    ),
    ("wechat-sdk gateway status (config)", ["-m", "wechat_sdk", "gateway", "status"]),
]


def run_once(args: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """Wall and CPU seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,  # gateway status exits 3: no gateway is running
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def ms(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1000:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", help="name=path of a checkout (default: head=.)")
    parser.add_argument("--runs", type=int, default=15, help="runs per command and tree")
    args = parser.parse_args()
    trees = [tuple(t.split("=", 1)) for t in args.trees] or [("head", str(HERE))]

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        (home / ".clawdbot").mkdir(parents=True)
        state = Path(tmp) / "state"
        (home / ".clawdbot" / "config.json5").write_text(
            f'{{ channels: {{ wechat: {{ puppet: "simulator", stateDir: "{state}" }} }} }}\n'
        )
        cwd = Path(tmp) / "cwd"
        cwd.mkdir()
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        base_env.update(HOME=str(home), PYTHONPYCACHEPREFIX=str(Path(tmp) / "pycache"))
        envs = {name: {**base_env, "PYTHONPATH": str(Path(path).resolve())} for name, path in trees}

        print(f"## start-up: {args.runs} runs per command and tree, alternated\n")
        names = [name for name, _ in trees]
        header = "| command | " + " | ".join(f"{n} wall / CPU (ms)" for n in names)
        header += "".join(f" | {n} / {names[0]} (CPU)" for n in names[1:]) + " |"
        print(header)
        print("|---" + "|---:" * (len(names) * 2 - 1) + "|")
        for label, command in COMMANDS:
            argv = [a.replace("{state}", str(state)) for a in command]
            for name in names:  # warm-up: bytecode written, files in the page cache
                run_once(argv, envs[name], str(cwd))
            walls: dict[str, list[float]] = {n: [] for n in names}
            cpus: dict[str, list[float]] = {n: [] for n in names}
            for _ in range(args.runs):
                for name in names:
                    wall, cpu = run_once(argv, envs[name], str(cwd))
                    walls[name].append(wall)
                    cpus[name].append(cpu)
            cells = [f"{ms(walls[n])} / {ms(cpus[n])}" for n in names]
            for n in names[1:]:
                ratios = [a / b for a, b in zip(cpus[n], cpus[names[0]], strict=True) if b > 0]
                cells.append(f"{statistics.median(ratios):.2f}x")
            print(f"| `{label}` | " + " | ".join(cells) + " |", flush=True)
        print()


if __name__ == "__main__":
    main()
