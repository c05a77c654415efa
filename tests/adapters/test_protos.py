"""The committed gRPC stubs are what the committed proto generates.

The generator stamps its own version into the stubs (``GRPC_GENERATED_VERSION``, the
protobuf runtime check); any patch release in the pinned range may resolve on a fresh
machine, so the comparison leaves those stamps out and compares everything else.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wechat_sdk.adapters.wechaty.protos import GENERATED, PACKAGE_ROOT, PROTO, generate

_STAMPS = (
    re.compile(r"GRPC_GENERATED_VERSION = '[^']*'"),
    re.compile(r"# Protobuf Python Version: \S+"),
    re.compile(r"ValidateProtobufRuntimeVersion\([^)]*\)", re.DOTALL),
)


def without_version_stamps(code: str) -> str:
    """The generated code with the generator's version stamps blanked."""
    for stamp in _STAMPS:
        code = stamp.sub("<version stamp>", code)
    return code


def test_generated_stubs_are_up_to_date(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    generate(tmp_path)
    # what protoc wrote, not what generate() says it wrote (names made from GENERATED)
    fresh = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert [p.relative_to(tmp_path) for p in fresh] == sorted(PROTO.parent / n for n in GENERATED)
    for new in fresh:
        committed = PACKAGE_ROOT / PROTO.parent / new.name
        assert committed.exists(), f"{committed} is missing: run python3 -m nox -s protos"
        assert without_version_stamps(committed.read_text()) == without_version_stamps(
            new.read_text()
        ), f"{committed.name} is stale: run python3 -m nox -s protos and commit the result"


def test_a_newer_generator_patch_release_is_not_a_stale_stub() -> None:
    committed = (PACKAGE_ROOT / PROTO.parent / "puppet_pb2_grpc.py").read_text()
    bumped = re.sub(
        r"GRPC_GENERATED_VERSION = '[^']*'", "GRPC_GENERATED_VERSION = '9.9.9'", committed
    )
    assert bumped != committed
    assert without_version_stamps(bumped) == without_version_stamps(committed)
    changed = committed.replace("def add_PuppetServicer_to_server", "def add_Other_to_server")
    assert without_version_stamps(changed) != without_version_stamps(committed)


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
