"""benchmarks/run.py: the ``--quick`` smoke run on the untrained bundle writes a complete report (structure, not
values), and the latency definitions give pinned numbers on a synthetic replay."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = ("features", "body_lower", "body_upper", "faces", "posing", "other", "total")
STATS = ("n", "mean", "p50", "p95", "p99", "max")
SECTIONS = ("## Targets", "## 1. Per-stage compute", "## 2. Real-time streaming", "## 3. Scaling",
            "### Memory over a long session", "## 4. Reference samplers", "## 5. Quality vs speed")  # fmt: skip


def _importable() -> None:
    """``benchmarks`` is a folder of the repository, not an installed package."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def finite(x) -> float:
    assert isinstance(x, int | float) and not isinstance(x, bool), f"not a number: {x!r}"
    assert math.isfinite(x), x
    return x


def check_stats(d: dict) -> None:
    assert set(STATS) <= set(d), d
    for k in STATS:
        finite(d[k])


@pytest.mark.slow
def test_quick_run_writes_a_complete_report(untrained_bundle: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "benchmarks/run.py", "--quick", "--bundle", str(untrained_bundle), "--out", str(tmp_path)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    files = sorted(p.name for p in tmp_path.iterdir())
    stems = {Path(f).stem for f in files}
    assert len(stems) == 1 and next(iter(stems)).endswith("-quick"), files
    stem = tmp_path / next(iter(stems))
    assert {p.suffix for p in tmp_path.iterdir()} == {".json", ".md", ".png"}
    assert stem.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    r = json.loads(stem.with_suffix(".json").read_text())
    for key in ("machine", "command", "bundle", "audio", "settings", "compute", "streaming", "scaling", "memory",
                "reference", "quality", "targets", "phases", "elapsed_seconds"):  # fmt: skip
        assert key in r, key
    assert r["quick"] is True and "--quick" in r["command"]
    assert r["bundle"]["trained"] is False
    m = r["machine"]
    assert m["cpu"] and m["cores"] >= 1 and "onnxruntime" in m["libraries"] and m["backends"] == [r["primary_backend"]]

    assert sorted(c["steps"] for c in r["compute"]) == [1, 4]  # one backend, K in {1, 4}, one B/L
    for c in r["compute"]:
        for s in STAGES:
            check_stats(c["stages_ms"][s])
        assert c["blocks"] > 0 and finite(c["rtf"]) > 0 and c["graph"] in ("unrolled", "one step", "step loop")

    assert {(s["transport"], s["steps"]) for s in r["streaming"]} == {(t, k) for t in ("in-process", "grpc")
                                                                      for k in (1, 4)}  # fmt: skip
    for s in r["streaming"]:
        for key in ("latency_ms", "block_latency_ms", "mic_to_frame_ms", "jitter_ms"):
            check_stats(s[key])
        for key in ("lookahead_ms", "algorithmic_ms", "latency_bound_ms", "first_frame_ms", "rtf"):
            finite(s[key])
        assert s["frames_received"] == s["frames_expected"] > 0

    sc = r["scaling"]
    assert 1 <= len(sc["levels"]) <= 2 and 0 <= sc["sustained_sessions"] <= 2 and sc["stopped_because"]
    for level in sc["levels"]:
        for key in ("worst_block_latency_p95_ms", "latency_p95_ms", "cpu_per_session", "rss_per_session_mb"):
            finite(level[key])
    mem = r["memory"]
    assert mem["minutes"] == 1 and len(mem["rss_mb"]) >= 3 and isinstance(mem["flat"], bool)
    for t, mb in mem["rss_mb"]:
        assert finite(t) >= 0 and finite(mb) > 0

    ref = r["reference"][0]
    for key in ("ours_ms", "ddim50_ms", "ddpm150_ms", "speedup_ddim50", "speedup_ddpm150"):
        finite(ref["equal_window"][key])
    for key in ("ours_seconds", "ddim50_seconds", "ddpm150_seconds", "speedup_ddim50", "speedup_ddpm150"):
        finite(ref["whole_clip"][key])

    q = r["quality"]
    if q["available"]:  # the training extra and data/corpus are here; on a fresh clone the section is skipped
        assert {p["steps"] for p in q["points"]} == {1, 4}
        for p in q["points"]:
            finite(p["lip_error"]), finite(p["latency_ms"])
            assert p["fid_g"] is None or finite(p["fid_g"]) >= 0
    else:
        assert q["note"]

    assert len(r["targets"]) >= 5
    for t in r["targets"]:
        assert t["name"] and t["target"] and t["margin"] and t["pass"] in (True, False, None)
    md = stem.with_suffix(".md").read_text()
    for heading in SECTIONS:
        assert heading in md, heading
    assert "Untrained bundle" in md
    assert md.splitlines()[0] in done.stdout  # the Markdown is printed


def test_latency_definitions_on_a_synthetic_replay() -> None:
    """Blocks of B=6 with L=3, each emitted 10 ms after the 40 ms chunk that completes its lookahead arrives."""
    _importable()
    from benchmarks.common import Setting
    from benchmarks.streaming import CHUNK, Replay, analyse
    from runtime.engine.audio import samples_needed_for_frame

    setting = Setting(steps=4, block=6, lookahead=3, context=24)
    rep = Replay(start=100.0, samples=32_000)  # 2 s per speaker: 60 frames
    rep.chunk_ends = list(range(640, 32_000 + 1, 640))
    rep.arrivals = [rep.start + e / 16_000 for e in rep.chunk_ends]
    ends = np.array(rep.chunk_ends)
    for first in range(0, 60, 6):
        need = samples_needed_for_frame(first + 5 + 3)
        if need > rep.samples:
            break  # the flush would commit the rest
        chunk = int(np.searchsorted(ends, need))
        rep.index.append(np.arange(first, first + 6))
        rep.emitted.append(rep.arrivals[chunk] + 0.010)
    out = analyse(rep, setting)
    assert CHUNK == 640
    np.testing.assert_allclose([out["block_latency_ms"][k] for k in ("p50", "max")], [10.0, 10.0], atol=1e-6)
    # A block's first frame waits for 5 more frames (166.7 ms) give or take one 40 ms chunk of quantisation.
    assert 10.0 - 1e-6 <= out["latency_ms"]["p50"] <= 10.0 + 5000 / 30 + 40
    assert 5000 / 30 - 40 + 10 <= out["latency_ms"]["max"] <= 5000 / 30 + 40 + 10
    # Own audio is L = 3 frames earlier than the lookahead: mic->frame exceeds chunk->frame by ~100 ms.
    assert 100 - 40 <= out["mic_to_frame_ms"]["mean"] - out["latency_ms"]["mean"] <= 100 + 40
    # 40 ms chunks and 200 ms blocks: block emissions are exactly one period apart.
    np.testing.assert_allclose(out["jitter_ms"]["max"], 0.0, atol=1e-6)
    assert out["frames_received"] == len(rep.index) * 6 and out["late_frames"] == 0


def test_gpu_paper_counts_flops_from_the_graphs() -> None:
    """The FLOP count reads real shapes: the K4 graph is twice the K2 one, the face (two people) costs more per
    frame than one body part of the same width would, and a longer window costs proportionally more."""
    from benchmarks.gpu_paper import graph_cost
    from runtime.model.model import DEFAULT_BUNDLE, Model

    model = Model.load(DEFAULT_BUNDLE)
    k4, k2 = (model.bundle.unrolled("face", k) for k in (4, 2))
    assert k4 and k2, "the shipped bundle has unrolled K2 and K4 face graphs"
    c4, c2 = graph_cost(model, k4, "face", 33), graph_cost(model, k2, "face", 33)
    assert c4["gflop"] > 0 and abs(c4["gflop"] / c2["gflop"] - 2.0) < 0.05
    longer = graph_cost(model, k4, "face", 66)
    assert 1.9 < longer["gflop"] / c4["gflop"] < 2.6  # linear layers x2, attention grows faster
    assert c4["weights_mb"] == c2["weights_mb"] and c4["compute_nodes"] > c2["compute_nodes"]
