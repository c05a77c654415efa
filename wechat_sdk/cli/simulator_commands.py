"""``wechat-sdk simulate``, ``wechat-sdk demo`` and ``wechat-sdk simulator serve``: the
commands that run on the simulator.

They import it inside the command, never at the top: importing ``wechat_sdk`` (its CLI
too) never loads the simulator (tests/unit/test_import_rules.py).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from wechat_sdk.cli import _err, _escape, _out, account_id_option, cli


@cli.command("simulate")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object: ok, failures, transcript."
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed of the simulated world (default: the scenario's, else 0).",
)
def simulate(scenario: Path, as_json: bool, seed: int | None) -> None:
    """Run a scenario file on the simulator. Exit 1 if an expectation failed, 2 if invalid."""
    import asyncio

    from simulator.scenario import ScenarioError, read_scenario, run_scenario
    from wechat_sdk.idle_loop import new_event_loop

    try:
        text = read_scenario(scenario)
        # the world's virtual clock settles exactly on a loop that says when it is idle
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            result = runner.run(run_scenario(text, seed=seed))
    except ScenarioError as exc:
        if as_json:  # the shape of a run's result; the problems are its failures
            problems = str(exc).splitlines()
            invalid = {"ok": False, "failures": problems, "transcript": [], "error": problems}
            click.echo(json.dumps(invalid, ensure_ascii=False))
        else:
            _err().print(f"[bold red]invalid scenario {_escape(scenario)}:[/]")
            for line in str(exc).splitlines():
                _err().print(f"  {line}", markup=False)
        raise SystemExit(2) from None
    if as_json:
        click.echo(json.dumps(result.model_dump(), ensure_ascii=False))
    else:
        from wechat_sdk.transcript import print_transcript

        print_transcript(result.transcript, _out())
        for failure in result.failures:
            _err().print(f"[red]FAIL[/] {_escape(failure)}", markup=True)
        _out().print("[green]ok[/]" if result.ok else f"[red]{len(result.failures)} failed[/]")
    raise SystemExit(0 if result.ok else 1)


@cli.command("demo")
@click.option(
    "--interactive",
    is_flag=True,
    help="After the story, type as a contact and see the bot's replies live.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the world.")
def demo(interactive: bool, seed: int) -> None:
    """A gateway on the simulator: pairing, group mentions, chunking, media, two accounts."""
    import asyncio

    from rich.console import Console

    from simulator.demo import run_demo
    from wechat_sdk.idle_loop import new_event_loop

    # no hard wrap at 80 columns when the output goes to a file: a link stays whole
    console = Console(highlight=False, soft_wrap=not sys.stdout.isatty())
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(run_demo(console, interactive=interactive, seed=seed))


@cli.group("simulator")
def simulator_group() -> None:
    """The simulator as a server for other programs and languages."""


@simulator_group.command("serve")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0: any free port."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the world.")
@click.option(
    "--account",
    "accounts",
    multiple=True,
    callback=lambda ctx, param, values: tuple(account_id_option(ctx, param, v) for v in values),
    help="An iLink bot account to create at start (repeatable; default: one named bot); "
    "an id as the config's (letters, digits, _ and -).",
)
@click.option(
    "--poll-hold-ms",
    type=click.IntRange(0, 60_000),
    default=30_000,
    show_default=True,
    help="How long getupdates holds a request with nothing to give.",
)
@click.option(
    "--scan-after-ms",
    type=click.IntRange(0, None),
    default=None,
    help="The owner's phone scans and confirms each QR code after this many ms "
    "(default: only when told, POST /sim/accounts/ID/login).",
)
def simulator_serve(
    port: int,
    host: str,
    seed: int,
    accounts: tuple[str, ...],
    poll_hold_ms: int,
    scan_after_ms: int | None,
) -> None:
    """Serve a simulated WeChat over iLink (the official bot API) and its CDN, in real time.

    Point any iLink client at the printed base URL; drive the world (log in, users'
    messages, what the bot sent, faults) through the control API under /sim/.
    """
    import asyncio

    from simulator.ilink.standalone import serve

    def say(line: str) -> None:
        try:
            click.echo(line)
        except BrokenPipeError:
            # the reader went away (`serve ... | head -1`): go on serving, and send what is
            # still buffered, and any later line, nowhere (not to a closed pipe at exit)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)

    try:
        asyncio.run(
            serve(
                host=host,
                port=port,
                seed=seed,
                accounts=accounts or ("bot",),
                poll_hold_s=poll_hold_ms / 1000,
                scan_after_s=scan_after_ms / 1000 if scan_after_ms is not None else None,
                say=say,
            )
        )
    except OSError as exc:  # the port is taken, the address is not this machine's
        from wechat_sdk.config.integrations import host_port  # (IPv6: [::1]:8710)

        where = host_port(host, port)
        _err().print(f"[bold red]cannot serve on {_escape(where)}:[/] {_escape(exc)}")
        raise SystemExit(1) from None
