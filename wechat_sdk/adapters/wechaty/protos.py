"""Regenerate the gRPC stubs from ``_proto/puppet.proto`` (``python3 -m nox -s protos``).

The generated modules are committed; ``tests/adapters/test_protos.py`` regenerates them
into a temporary directory and fails when the committed ones differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[3]
PROTO = Path("wechat_sdk/adapters/wechaty/_proto/puppet.proto")
GENERATED = ("puppet_pb2.py", "puppet_pb2.pyi", "puppet_pb2_grpc.py")


def generate(out_dir: Path, root: Path = PACKAGE_ROOT) -> list[Path]:
    """Run protoc (from grpcio-tools) on the proto; returns the generated files."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{root}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(root / PROTO),
        ]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    return [out_dir / PROTO.parent / name for name in GENERATED]


def main() -> int:
    files = generate(PACKAGE_ROOT)
    for f in files:
        print(f"wrote {f.relative_to(PACKAGE_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
