"""Every message quoted on the Troubleshooting page is one the code prints.

Each line of the page's plain code blocks is cut at its first placeholder (``DIR``,
``HOST:PORT``, ``URL``, ``N``, ``<...>``, ``...``, an example path or id); that fixed start
must appear in the package's code, with f-string fields and ``%s`` placeholders removed, so
a reworded message fails here until the page follows.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "troubleshooting.md"
BLOCK = re.compile(r"^ *```\n(.*?)^ *```", re.M | re.S)
PLACEHOLDER = re.compile(
    r"\b(DIR|HOST:PORT|URL|PORT|ID|N)\b|<[^>]+>|\.\.\.|/home/you|\bBot\b|\bwxid_|\d+(\.\d+)? ?s\b"
    r"|msg-\d+|\b[2-5]\b|https?://"
    # values the code formats in: an account id, a key path, a tool name, a logout reason
    r"|\b(?:failed|ready|logged_out|waiting_for_scan)(?:: [\w ]+)?$"
    r"|\bdefault\b|channels\.wechat\.(?:\w+\.)*\w+: |^npm\b|\(logged out on the phone\)"
    # a puppet's name, and the browser's error code
    r"|\bwechaty-puppet-wechat\b|net::ERR_[A-Z_]+"
)
PREFIXES = ("puppet error: ", "config error:")


def quoted() -> list[str]:
    lines = []
    for block in BLOCK.findall(PAGE.read_text(encoding="utf-8")):
        lines.extend(line.strip() for line in block.splitlines() if line.strip())
    return lines


def source() -> str:
    files = [*(ROOT / "wechat_sdk").rglob("*.py"), *(ROOT / "simulator").rglob("*.py")]
    text = "\n".join(p.read_text(encoding="utf-8") for p in files if "_proto" not in p.parts)
    text = re.sub(r"""["']\s*\n\s*f?["']""", "", text)  # adjacent literals join, as in Python
    text = re.sub(r"\{[^{}\n]*\}", "", text)  # f-string fields
    return re.sub(r"%[-#0-9.]*[sdrfg]", "", text)


def test_the_page_quotes_messages() -> None:
    assert len(quoted()) >= 15


@pytest.mark.parametrize("line", quoted())
def test_quoted_message_is_in_the_code(line: str) -> None:
    code = source()
    for prefix in PREFIXES:
        if line.startswith(prefix):
            assert prefix.rstrip(" :") in code
            line = line.removeprefix(prefix)
    fixed = PLACEHOLDER.split(line)[0].strip()
    if len(fixed) < 8:  # the line starts with a value: check its longest literal part
        parts = [p.strip() for p in PLACEHOLDER.split(line) if p and p.strip()]
        if not parts:  # nothing but a value after a prefix checked above
            return
        fixed = max(parts, key=len)
    assert fixed in code, f"not in the code: {fixed!r}"


def test_the_browser_lines_are_what_the_sidecar_makes_of_node_errors() -> None:
    """The page quotes, word for word, the lines the real Node errors become."""
    from wechat_sdk.adapters.wechaty.sidecar import explain_puppet_error

    node_errors = [  # the first lines of what the Puppet Service answered Start with
        "UNKNOWN: Error: Could not find expected browser (chrome) locally. Run `npm install` "
        "to download the correct Chromium revision (982053).",
        "UNKNOWN: Error: net::ERR_NAME_NOT_RESOLVED at https://wx.qq.com",
    ]
    lines = quoted()
    for said in node_errors:
        line = explain_puppet_error("wechaty-puppet-wechat", said)
        assert line is not None
        if "https://wx.qq.com" in line:  # the page writes URL for the address
            line = line.replace("https://wx.qq.com", "URL")
        assert f"puppet error: {line}" in lines


def test_the_no_gateway_message_is_quoted_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page quoted the first line only; the second says which state directory the
    command looked in and why, and how to reach a gateway whose stateDir changed. Run as
    the page's user: a config at the default path that sets no stateDir."""
    from click.testing import CliRunner

    from wechat_sdk.cli import cli

    home = tmp_path / "you"
    (home / ".clawdbot").mkdir(parents=True)
    (home / ".clawdbot" / "config.json5").write_text(
        '{ channels: { wechat: { puppet: "simulator" } } }', encoding="utf-8"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("WECHAT_SDK_CONFIG", raising=False)
    result = CliRunner().invoke(cli, ["gateway", "status"])
    assert result.exit_code == 3, result.output
    said = result.stderr.replace(str(home), "/home/you").splitlines()
    assert len(said) == 2, said
    for line in said:
        assert line in quoted()
