"""The committed gRPC stubs are exactly what scripts/gen_protos.py makes from protos/ today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _gen_module():
    spec = importlib.util.spec_from_file_location("gen_protos", REPO / "scripts" / "gen_protos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stubs_are_current(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (dev extra) regenerates the stubs")
    gen = _gen_module()
    fresh = {p.relative_to(tmp_path): p.read_text() for p in gen.generate(tmp_path)}
    assert fresh, "protoc produced no files"
    for rel, text in fresh.items():
        committed = gen.OUT / rel
        assert committed.is_file(), f"{committed} is missing: run scripts/gen_protos.py"
        assert committed.read_text() == text, f"{committed} is stale: run scripts/gen_protos.py and commit"


def test_every_field_is_commented() -> None:
    """STYLE 8: every field in the .proto carries a comment with its unit or an example."""
    bad = []
    for proto in (REPO / "protos").rglob("*.proto"):
        lines = proto.read_text().splitlines()
        for i, line in enumerate(lines):
            s = line.strip()
            is_field = s.endswith(";") and "=" in s and not s.startswith(("//", "option", "syntax", "package", "rpc"))
            if is_field and "//" not in s and not lines[i - 1].strip().startswith("//"):
                bad.append(f"{proto.name}:{i + 1}: {s}")
    assert not bad, "uncommented fields:\n" + "\n".join(bad)
