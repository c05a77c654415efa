"""``wechat-sdk config check`` and ``wechat-sdk channels capabilities``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from wechat_sdk.capabilities import CAPABILITIES
from wechat_sdk.cli import cli

SECRET = "s3cr3t-token-do-not-print"

VALID = f"""\
{{
  channels: {{
    wechat: {{
      puppet: "wechaty-puppet-service",
      puppetOptions: {{ token: "{SECRET}", endpoint: "127.0.0.1:8788" }},
      defaultAccountId: "home",
      accounts: {{
        home: {{ name: "Home bot", dmPolicy: "open", allowFrom: ["*"] }},
        work: {{ name: "Work bot", allowFrom: ["wxid_boss"] }},
      }},
    }},
  }},
}}
"""

INVALID = """\
{
  channels: {
    wechat: {
      dmPolicy: "pair",
      groups: {
        "*": { requireMentoin: true },
      },
      historyLimit: "lots",
    },
  },
}
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def output_of(result: Result) -> str:
    """stdout and stderr together (click >= 8.2 keeps them apart)."""
    try:
        return result.stdout + result.stderr
    except ValueError:  # stderr not captured separately
        return result.output


@pytest.fixture
def valid_file(tmp_path: Path) -> Path:
    file = tmp_path / "valid.json5"
    file.write_text(VALID, encoding="utf-8")
    return file


@pytest.fixture
def invalid_file(tmp_path: Path) -> Path:
    file = tmp_path / "invalid.json5"
    file.write_text(INVALID, encoding="utf-8")
    return file


# ---------------------------------------------------------------- config check


def test_config_check_valid_file_exits_0_and_lists_each_account(valid_file: Path) -> None:
    result = run("config", "check", "--config", str(valid_file))
    out = output_of(result)
    assert result.exit_code == 0, out
    assert "account home" in out
    assert "account work" in out
    assert "Home bot" in out and "Work bot" in out
    assert "config OK" in out


def test_config_check_shows_the_http_api_and_the_webhooks_without_their_secrets(
    tmp_path: Path,
) -> None:
    """The HTTP API and the webhook endpoints are part of what the gateway will run: the
    check shows where the API listens and which endpoints get which events (by origin:
    a path may hold a key), never the token or a secret (it showed neither)."""
    token = "api-token-0123456789-abcdefghij"
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    file = tmp_path / "integrations.json5"
    file.write_text(
        f"""{{ channels: {{ wechat: {{
            puppet: "simulator",
            api: {{ port: 8790, token: "{token}" }},
            webhooks: [
              {{ url: "https://hooks.example.com/key-in-path/abc?sig=1", secret: "{secret}",
                 events: ["pairing.requested"] }},
            ],
        }} }} }}""",
        encoding="utf-8",
    )
    result = run("config", "check", "--config", str(file))
    out = output_of(result)
    assert result.exit_code == 0, out
    assert "api: http://127.0.0.1:8790" in out
    assert "webhook https://hooks.example.com: pairing.requested" in out
    for hidden in (token, secret, "key-in-path", "sig=1"):
        assert hidden not in out
    shown = json.loads(run("config", "check", "--config", str(file), "--json").stdout)
    assert shown["api"] == {"url": "http://127.0.0.1:8790", "token": "***"}
    assert shown["webhooks"] == [
        {"origin": "https://hooks.example.com", "events": ["pairing.requested"]}
    ]
    assert token not in json.dumps(shown) and secret not in json.dumps(shown)


@pytest.mark.parametrize("host", ["::", "::1"])
def test_config_check_writes_an_ipv6_apis_url_with_its_host_in_brackets(
    host: str, tmp_path: Path
) -> None:
    """With ``api.host: "::"`` the check showed ``http://:::8790``, no URL at all (RFC 3986
    writes an IPv6 host in brackets)."""
    file = tmp_path / "ipv6.json5"
    api = f'api: {{ host: "{host}", port: 8790, token: "api-token-0123456789-abcdefghij" }}'
    file.write_text(f'{{ channels: {{ wechat: {{ puppet: "simulator", {api} }} }} }}')
    result = run("config", "check", "--config", str(file))
    out = output_of(result)
    assert result.exit_code == 0, out
    assert f"api: http://[{host}]:8790 (bearer token set)" in out
    shown = json.loads(run("config", "check", "--config", str(file), "--json").stdout)
    assert shown["api"]["url"] == f"http://[{host}]:8790"


def test_config_check_masks_the_puppet_token(valid_file: Path) -> None:
    result = run("config", "check", "--config", str(valid_file))
    out = output_of(result)
    assert result.exit_code == 0, out
    assert SECRET not in out
    assert "***" in out
    assert "127.0.0.1:8788" in out  # non-secret options are shown


def test_config_check_masks_every_secret_a_puppet_takes(tmp_path: Path) -> None:
    file = tmp_path / "official.json5"
    options = {
        "token": "T-0123456789",
        "appId": "wx123",
        "appSecret": "APP-SECRET-42",
        "encodingAESKey": "AES-KEY-42",
        "password": "PW-42",
        "passphrase": "PP-42",
        "endpoint": "https://user:URL-PW-42@puppet.example:8788/x?token=URL-TOKEN-42",
    }
    config = {"channels": {"wechat": {"puppet": "simulator", "puppetOptions": options}}}
    file.write_text(json.dumps(config), encoding="utf-8")
    for args in ((), ("--json",)):
        result = run("config", "check", "--config", str(file), *args)
        out = output_of(result)
        assert result.exit_code == 0, out
        for secret in ("T-0123456789", "APP-SECRET-42", "AES-KEY-42", "PW-42", "PP-42"):
            assert secret not in out
        assert "URL-PW-42" not in out and "URL-TOKEN-42" not in out
        assert "wx123" in out and "https://puppet.example:8788/x" in out


def test_config_check_masks_a_key_in_the_agents_base_url(tmp_path: Path) -> None:
    """A proxy's password or an ``api-key`` query in ``agent.baseUrl`` is a key: the
    summary shows the endpoint's origin and path only."""
    file = tmp_path / "agent.json5"
    file.write_text(
        """{ channels: { wechat: { puppet: "ilink", agent: { provider: "openai", model: "m",
        baseUrl: "https://proxyuser:PROXY-PASSWORD@llm.example.com/v1?api-key=AZURE-KEY" },
        } } }"""
    )
    for extra in ([], ["--json"]):
        result = CliRunner().invoke(cli, ["config", "check", "--config", str(file), *extra])
        assert result.exit_code == 0, result.output
        assert "https://llm.example.com/v1" in result.output
        assert "PROXY-PASSWORD" not in result.output and "AZURE-KEY" not in result.output


def test_config_check_json_parses_and_masks_the_token(valid_file: Path) -> None:
    result = run("config", "check", "--config", str(valid_file), "--json")
    assert result.exit_code == 0, output_of(result)
    assert SECRET not in output_of(result)
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["defaultAccountId"] == "home"
    by_id = {a["id"]: a for a in data["accounts"]}
    assert set(by_id) == {"home", "work"}
    assert by_id["home"]["default"] is True
    assert by_id["work"]["default"] is False
    assert by_id["home"]["dmPolicy"] == "open"
    assert by_id["work"]["allowFrom"] == ["wxid_boss"]
    assert by_id["work"]["puppetOptions"]["token"] == "***"
    assert data["warnings"] == []


def test_config_check_shows_every_setting_not_at_its_default(tmp_path: Path) -> None:
    # set at the top level, per account, or by the transport (iLink's textChunkLimit)
    file = tmp_path / "c.json5"
    file.write_text(
        """{channels: {wechat: {defaultAccountId: "home", mediaMaxMb: 5, accounts: {
            home: {pacing: false},
            work: {puppet: "ilink", pairingAccount: "home"},
            short: {puppet: "ilink", textChunkLimit: 2048}}}}}""",
        encoding="utf-8",
    )
    result = run("config", "check", "--config", str(file), "--json")
    assert result.exit_code == 0, output_of(result)
    by_id = {a["id"]: a for a in json.loads(result.stdout)["accounts"]}
    assert by_id["home"]["settings"] == {"mediaMaxMb": 5.0, "pacing": False}
    assert by_id["work"]["settings"] == {
        "mediaMaxMb": 5.0,
        "pairingAccount": "home",
        "textChunkLimit": 4000,
    }
    # the SDK's default, written for a transport whose own default is another
    assert by_id["short"]["settings"] == {"mediaMaxMb": 5.0, "textChunkLimit": 2048}
    text = output_of(run("config", "check", "--config", str(file)))
    assert "  pairingAccount: home\n" in text and "  textChunkLimit: 4000\n" in text
    assert "  pacing: false\n" in text


def test_config_check_json_lists_the_default_account_warning(tmp_path: Path) -> None:
    file = tmp_path / "c.json5"
    file.write_text("{channels: {wechat: {accounts: {b: {}, a: {}}}}}", encoding="utf-8")
    result = run("config", "check", "--config", str(file), "--json")
    assert result.exit_code == 0, output_of(result)
    data = json.loads(result.stdout)
    assert data["defaultAccountId"] == "a"
    assert len(data["warnings"]) == 1


def test_config_check_json_of_an_invalid_config_is_json_too(invalid_file: Path) -> None:
    # --json printed nothing on stdout for an invalid config (only the human lines on
    # stderr), so a script reading {"ok": ...} got no JSON at all
    result = run("config", "check", "--config", str(invalid_file), "--json")
    assert result.exit_code == 1, output_of(result)
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert data["file"] == str(invalid_file)
    by_path = {e["path"]: e for e in data["errors"]}
    assert by_path["channels.wechat.dmPolicy"]["line"] == 4
    assert by_path["channels.wechat.dmPolicy"]["message"].startswith("expected one of pairing")
    assert set(by_path) == {
        "channels.wechat.dmPolicy",
        "channels.wechat.groups.*.requireMentoin",
        "channels.wechat.historyLimit",
    }


def test_config_check_uses_the_env_variable(
    valid_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WECHAT_SDK_CONFIG", str(valid_file))
    result = run("config", "check", "--json")
    assert result.exit_code == 0, output_of(result)
    assert json.loads(result.stdout)["defaultAccountId"] == "home"


def test_config_check_invalid_file_exits_1_with_every_error_and_line(invalid_file: Path) -> None:
    result = run("config", "check", "--config", str(invalid_file))
    out = output_of(result)
    assert result.exit_code == 1, out
    assert "Traceback" not in out
    assert result.exception is None or isinstance(result.exception, SystemExit)
    expected = [
        ("channels.wechat.dmPolicy: expected one of pairing|allowlist|open|disabled", 4),
        ("channels.wechat.groups.*.requireMentoin: unknown key", 6),
        ("channels.wechat.historyLimit: expected a whole number", 8),
    ]
    lines = out.splitlines()
    for text, line_no in expected:
        [line] = [x for x in lines if text in x]
        assert f"line {line_no}" in line
    assert str(invalid_file) in out


def test_config_check_missing_file_exits_1_with_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "absent.json5"
    result = run("config", "check", "--config", str(missing))
    out = output_of(result)
    assert result.exit_code == 1, out
    assert str(missing) in out
    assert "Traceback" not in out


@pytest.mark.parametrize("case", ["missing", "too large", "a directory", "not UTF-8"])
def test_a_file_that_cannot_be_read_is_named_in_the_error_header(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every other config error says "config error in FILE:"; a missing or too-large
    file's said only "config error:"."""
    from wechat_sdk.config.loader import MAX_CONFIG_BYTES

    file = tmp_path / "config.json5"
    if case == "too large":
        file.write_text("{}" + " " * MAX_CONFIG_BYTES, encoding="utf-8")
    elif case == "a directory":
        file.mkdir()
    elif case == "not UTF-8":
        file.write_bytes(b"{channels: \xff}")
    monkeypatch.setenv("WECHAT_SDK_CONFIG", str(file))  # (--config takes no directory)
    result = run("config", "check")
    out = output_of(result)
    assert result.exit_code == 1, out
    assert f"config error in {file}:" in out
    as_json = run("config", "check", "--json")
    assert json.loads(as_json.stdout)["file"] == str(file)


def test_config_check_invalid_json5_exits_1_with_line(tmp_path: Path) -> None:
    file = tmp_path / "broken.json5"
    file.write_text("{\n  channels: {\n    wechat: {,\n}\n", encoding="utf-8")
    result = run("config", "check", "--config", str(file))
    out = output_of(result)
    assert result.exit_code == 1, out
    assert "line 3" in out
    assert "Traceback" not in out


def test_python_m_wechat_sdk_config_check_runs(valid_file: Path, invalid_file: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "wechat_sdk", "config", "check", "--config", str(valid_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "account home" in ok.stdout
    assert SECRET not in ok.stdout + ok.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "wechat_sdk", "config", "check", "--config", str(invalid_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1
    assert "channels.wechat.dmPolicy" in bad.stderr
    assert "line 4" in bad.stderr
    assert "Traceback" not in bad.stdout + bad.stderr


# ---------------------------------------------------------------- channels capabilities


def test_channels_capabilities_table_lists_every_capability() -> None:
    result = run("channels", "capabilities")
    out = output_of(result)
    assert result.exit_code == 0, out
    for key in CAPABILITIES.model_dump(by_alias=True):
        assert key in out
    assert "direct, group" in out
    assert re.search(r"typing\s+│ no", out)  # (beyond the seed's matrix: said to a person)


def test_channels_capabilities_json_is_the_seeds_block_key_for_key() -> None:
    """ARCHITECTURE.md: CAPABILITIES.model_dump(by_alias=True) == the seed's JSON; it had
    a typing key the seed's block does not have."""
    seed = {
        "chatTypes": ["direct", "group"],
        "polls": False,
        "reactions": False,
        "edit": False,
        "unsend": False,
        "reply": True,
        "effects": False,
        "groupManagement": False,
        "threads": False,
        "media": True,
        "nativeCommands": False,
        "blockStreaming": True,
    }
    assert json.loads(run("channels", "capabilities", "--json").stdout) == seed


def test_channels_capabilities_json_equals_the_matrix() -> None:
    result = run("channels", "capabilities", "--json")
    assert result.exit_code == 0, output_of(result)
    assert json.loads(result.stdout) == CAPABILITIES.model_dump(by_alias=True)


@pytest.mark.parametrize(
    ("wechat", "meaning"),
    [
        ('dmPolicy: "open"', "allowFrom: [] (dmPolicy open: anyone may DM)"),
        ('dmPolicy: "pairing"', "allowFrom: [] (senders approved by pairing)"),
        (
            'dmPolicy: "pairing", allowFrom: ["wxid_boss"]',
            'allowFrom: ["wxid_boss"] (these and senders approved by pairing)',
        ),
        (
            'dmPolicy: "allowlist", allowFrom: ["wxid_boss"]',
            'allowFrom: ["wxid_boss"] (only these)',
        ),
        ('dmPolicy: "allowlist", allowFrom: ["*"]', 'allowFrom: ["*"] (anyone may DM)'),
        ('dmPolicy: "disabled"', "allowFrom: [] (dmPolicy disabled: nobody may DM)"),
    ],
)
def test_config_check_says_who_may_dm(tmp_path: Path, wechat: str, meaning: str) -> None:
    """An empty allowFrom means different things under each dmPolicy: say which."""
    file = tmp_path / "c.json5"
    file.write_text(f"{{ channels: {{ wechat: {{ {wechat} }} }} }}", encoding="utf-8")
    result = run("config", "check", "--config", str(file))
    assert result.exit_code == 0, output_of(result)
    assert f"  {meaning}\n" in output_of(result)


def test_a_misspelt_value_gets_a_did_you_mean(tmp_path: Path) -> None:
    file = tmp_path / "typo.json5"
    file.write_text('{ channels: { wechat: { dmPolicy: "pairng" } } }\n', encoding="utf-8")
    out = output_of(run("config", "check", "--config", str(file)))
    assert 'got "pairng" (did you mean "pairing"?)' in out


def test_a_bad_puppet_name_names_the_file_and_line(tmp_path: Path) -> None:
    file = tmp_path / "puppet.json5"
    file.write_text('{\n  channels: {\n    wechat: { puppet: "Bad Name!" },\n  },\n}\n')
    result = run("config", "check", "--config", str(file))
    out = output_of(result)
    assert result.exit_code == 1, out
    [line] = [x for x in out.splitlines() if "channels.wechat.puppet" in x]
    assert f"({file}, line 3)" in line


def test_an_unset_name_is_not_shown_as_null(tmp_path: Path) -> None:
    file = tmp_path / "plain.json5"
    file.write_text('{ channels: { wechat: { puppet: "simulator" } } }\n', encoding="utf-8")
    out = output_of(run("config", "check", "--config", str(file)))
    assert "null" not in out
    assert "name: (not set)" in out


def test_with_no_config_the_suggested_first_config_is_the_simulator(tmp_path: Path) -> None:
    out = output_of(run("config", "check", "--config", str(tmp_path / "none.json5")))
    assert 'puppet: "simulator"' in out


def test_config_check_shows_a_webhook_agent_by_its_url_origin(tmp_path: Path) -> None:
    secret = "whsec_" + "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
    agent = {
        "provider": "webhook",
        "url": "https://hooks.example.com/webhook/wechat?token=URLTOKEN123",
        "secret": secret,
        "headers": {"Authorization": "Bearer HEADER-TOKEN-123"},
    }
    path = tmp_path / "config.json5"
    path.write_text(json.dumps({"channels": {"wechat": {"agent": agent}}}))
    for json_out in ((), ("--json",)):
        result = run("config", "check", "--config", str(path), *json_out)
        out = output_of(result)
        assert result.exit_code == 0, out
        assert "https://hooks.example.com/..." in out
        assert "baseUrl" not in out and "api.openai.com" not in out
        for hidden in ("URLTOKEN123", "/webhook/wechat", "HEADER-TOKEN", secret[6:]):
            assert hidden not in out
