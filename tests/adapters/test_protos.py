"""The committed gRPC stubs are exactly what the committed proto generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from wechat_sdk.adapters.wechaty.protos import GENERATED, PACKAGE_ROOT, PROTO, generate


def test_generated_stubs_are_up_to_date(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    fresh = generate(tmp_path)
    for new in fresh:
        committed = PACKAGE_ROOT / PROTO.parent / new.name
        assert committed.exists(), f"{committed} is missing: run python3 -m nox -s protos"
        assert committed.read_bytes() == new.read_bytes(), (
            f"{committed.name} is stale: run python3 -m nox -s protos and commit the result"
        )
    assert sorted(p.name for p in fresh) == sorted(GENERATED)


def test_the_proto_keeps_the_wire_names_and_field_numbers() -> None:
    text = (PACKAGE_ROOT / PROTO).read_text()
    assert "package wechaty;" in text
    assert "service Puppet {" in text
    for fact in (
        "repeated string mention_ids = 9;",
        "string talker_id = 6;",
        "string listener_id = 8;",
        "google.protobuf.Timestamp receive_time = 10;",
        "repeated string mentional_ids = 3;",
        "rpc Download (DownloadRequest) returns (stream DownloadResponse)",
        "rpc Upload (stream UploadRequest) returns (UploadResponse)",
    ):
        assert fact in text, fact
