"""Regenerate aiocri/_proto from proto/ (the `make proto` command).

Only runtime.v1 is compiled: aiocri sends v1 messages on v1alpha2 paths too
(see aiocri/versions.py). `--check` regenerates into a temporary folder and
exits 1 when the committed code differs, which is how tests catch stale code.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "aiocri" / "_proto"
SOURCES = ["runtime/v1/api.proto"]
GENERATED = ["runtime/v1/api_pb2.py", "runtime/v1/api_pb2.pyi"]


def generate(out: Path) -> None:
    from grpc_tools import protoc  # dev dependency, only needed here

    for source in SOURCES:
        args = [
            "protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={out}",
            f"--mypy_out={out}",
            str(PROTO_DIR / source),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {source}")
    # Packages so that aiocri._proto.runtime.v1.api_pb2 imports.
    for pkg in ("runtime", "runtime/v1"):
        (out / pkg / "__init__.py").touch()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the code is stale")
    opts = parser.parse_args()
    if not opts.check:
        generate(OUT_DIR)
        print(f"regenerated {', '.join(GENERATED)} in {OUT_DIR.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        stale = [
            name
            for name in GENERATED
            if not (OUT_DIR / name).exists()
            or not filecmp.cmp(Path(tmp) / name, OUT_DIR / name, shallow=False)
        ]
    if stale:
        print(f"stale generated code: {', '.join(stale)}; run `make proto`", file=sys.stderr)
        return 1
    print("generated code is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
