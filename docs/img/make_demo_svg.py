"""Draw docs/img/demo.svg: the first chapters of `wechat-sdk demo`, as a terminal shows them.

    python docs/img/make_demo_svg.py [--chapters 3] [--width 92] [--out docs/img/demo.svg]

It runs the command itself (``python -m wechat_sdk demo``: seed 0, virtual time, so the
output is the same on every run) with colours forced on, keeps what comes before chapter 1
and chapters 1 to ``--chapters``, then the demo's last line, prints that on a rich
``Console(record=True)`` of ``--width`` columns and saves it with rich's ``save_svg``.
Nothing is written by hand: run it again whenever the demo's output changes, and commit the
new picture.

The picture needs no network: rich's template asks for the Fira Code font from a CDN,
which this script leaves out (a browser draws the SVG with its own monospace font; rich
sets each run of text to its exact width, so the columns still line up). The lines made
only of block characters (the QR code the demo draws) get a font as tall as the line, so
the code is drawn without a gap between its rows.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
from pathlib import Path

from rich.console import CONSOLE_SVG_FORMAT, Console
from rich.text import Text

OUT = Path(__file__).with_name("demo.svg")
TITLE = "python3 -m wechat_sdk demo"
CHAPTER = re.compile(r"^(\d+)\. ")
# rich's template without its @font-face rules (they fetch Fira Code from cdnjs)
SVG_FORMAT = re.sub(r"@font-face \{\{.*?\}\}\s*", "", CONSOLE_SVG_FORMAT, flags=re.DOTALL)
SVG_FORMAT = SVG_FORMAT.replace(
    "font-family: Fira Code, monospace;",
    'font-family: "Fira Code", "DejaVu Sans Mono", Menlo, Consolas, monospace;',
)
TEXT = re.compile(r"(<text [^>]*)>([^<]*)</text>")
BLOCKS = re.compile(r"(?:&#160;|[ █▀▄])*[█▀▄](?:&#160;|[ █▀▄])*")


def demo_lines() -> list[tuple[str, str]]:
    """(plain text, the same line with its ANSI styles) for every line the demo prints."""
    env = {**os.environ, "FORCE_COLOR": "1", "COLORTERM": "truecolor", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    out = subprocess.run(
        [sys.executable, "-m", "wechat_sdk", "demo"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    return [(Text.from_ansi(line).plain, line) for line in out.splitlines()]


def excerpt(lines: list[tuple[str, str]], chapters: int) -> list[str]:
    """The styled lines up to the end of chapter ``chapters``, then a gap, then the last
    non-empty line (the demo's summary)."""
    kept: list[str] = []
    for plain, styled in lines:
        m = CHAPTER.match(plain)
        if m and int(m[1]) > chapters:
            break
        kept.append(styled)
    last = next(styled for plain, styled in reversed(lines) if plain.strip())
    while kept and not kept[-1].strip():
        kept.pop()
    while kept and not kept[0].strip():
        kept.pop(0)
    return [*kept, "", "\x1b[2m   … the other chapters left out …\x1b[0m", "", last]


def solid_blocks(svg: str) -> str:
    """Draw the lines of block characters with a font as tall as a line (rich draws 20 px
    text on 24.4 px lines, which leaves a gap between the rows of a QR code)."""
    line = re.search(r"line-height: ([0-9.]+)px", svg)
    if line is None:
        return svg
    size = line[1]

    def grow(m: re.Match[str]) -> str:
        if not BLOCKS.fullmatch(m[2]):
            return m[0]
        return f'{m[1]} style="font-size: {size}px">{m[2]}</text>'

    return TEXT.sub(grow, svg)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chapters", type=int, default=3, help="last chapter shown")
    parser.add_argument("--width", type=int, default=92, help="terminal columns")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    shown = excerpt(demo_lines(), args.chapters)
    svg = Console(
        file=io.StringIO(),
        record=True,
        width=args.width,
        force_terminal=True,
        color_system="truecolor",
    )
    for line in shown:
        svg.print(Text.from_ansi(line), highlight=False, crop=True, soft_wrap=False)
    # a fixed id: the same output gives the same file, byte for byte
    picture = svg.export_svg(title=TITLE, code_format=SVG_FORMAT, unique_id="demo")
    args.out.write_text(solid_blocks(picture), encoding="utf-8")
    print(f"{args.out}: {len(shown)} lines of the demo's output")
    return 0


if __name__ == "__main__":
    sys.exit(main())
