"""What a library's log line may show: URLs cut to their origin, credentials masked, cut
short (``without_secrets``, for the lines of mcp, httpx, grpc... under ``gateway run``)."""

from __future__ import annotations

import pytest

from wechat_sdk.logtext import without_secrets


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (
            "401 for url 'https://u:pw@m.example/mcp?key=k1' Bearer sk-1",
            "401 for url 'https://m.example' Bearer ***",
        ),
        # an authorization's value is all secret, whatever its scheme (gRPC's to Wechaty)
        ("authorization: Wechaty puppet_service_abc123, next", "authorization: ***, next"),
        ("{'Authorization': 'Token abc def', 'x': 1}", "{'Authorization': '***', 'x': 1}"),
        ("api-key: sk-123 and more", "api-key: *** and more"),
        ("token=abc&x=1", "token=***&x=1"),
        ("password = hunter2", "password = ***"),
        ("'api_key': 'Bearer sk-9'", "'api_key': 'Bearer ***'"),
        ("X-Tenant-Token: tk-0123-default", "X-Tenant-Token: ***"),
        ("retrying in 2 s", "retrying in 2 s"),
    ],
)
def test_a_library_line_shows_no_secret(line: str, shown: str) -> None:
    assert without_secrets(line) == shown


@pytest.mark.parametrize("line", ["key-" * 5000, "x " + "api-key-" * 2500, "a-" * 50_000])
def test_a_long_line_is_read_once_and_cut(line: str) -> None:
    # (names are tried only where a word begins: such a line took minutes to mask)
    out = without_secrets(line, limit=100)
    assert len(out) == 100 and out.endswith("…")
