"""Generate the Python gRPC stubs from protos/ into runtime/serving/protos/ (committed; tests/test_protos.py checks they
are current). Run: ``.venv/bin/python scripts/gen_protos.py``.

grpc_tools writes ``from interact.v1 import interact_pb2``; we rewrite that one import to a relative one so the stubs
live inside the ``runtime`` package without touching ``sys.path``.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROTO_ROOT = REPO / "protos"
OUT = REPO / "runtime" / "serving" / "protos"


def generate(out: Path) -> list[Path]:
    from grpc_tools import protoc  # dev dependency, only needed to regenerate

    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", f"-I{PROTO_ROOT}", f"--python_out={tmp}", f"--pyi_out={tmp}", f"--grpc_python_out={tmp}"]
        if protoc.main(args + [str(p) for p in protos]) != 0:
            raise SystemExit("protoc failed")
        written = []
        for src in sorted(Path(tmp).rglob("*.py*")):
            rel = src.relative_to(tmp)
            text = re.sub(r"^from interact\.v1 import (\w+)", r"from . import \1", src.read_text(), flags=re.M)
            dst = out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(text)
            written.append(dst)
    for pkg in {p.parent for p in written} | {out, *[p.parent.parent for p in written]}:
        if pkg.is_relative_to(out):
            (pkg / "__init__.py").touch()
    return written


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT):
        print(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
