"""Export: ONNX Runtime == torch for every graph; the unrolled K-step graph == the runtime's sampler looping the
step graph; the CLI writes a bundle the runtime loads; checkpoints round-trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import export.torch_backend  # noqa: F401 - registers the "torch" reference backend
from export.onnx import INT8_TOLERANCE
from export.onnx import main as export_main
from runtime.engine.audio import log_mel
from runtime.formats.wav import read_audio
from runtime.model.bundle import load_bundle
from runtime.model.model import DEFAULT_BUNDLE, Model
from runtime.model.sampling import sample_ddim
from training.checkpoint import load_weights, save_weights

REPO = Path(__file__).resolve().parents[1]


def _real_mel(bundle, frames: int) -> np.ndarray:
    """Normalised log-mel of real speech when available, else of a chirp (still not random numbers)."""
    sample = Path(__file__).resolve().parents[2] / "shared/external/pyannote-dialogue/sample.wav"
    if sample.exists():
        audio = read_audio(sample).channels[0][16000 * 10 : 16000 * 12]
    else:
        t = np.arange(32000) / 16000
        audio = (0.1 * np.sin(2 * np.pi * (200 + 300 * t) * t)).astype(np.float32)
    mean, std = bundle.norm("mel")
    return ((log_mel(audio)[:frames] - mean) / std).astype(np.float32)


@pytest.mark.parametrize("model", ["face", "body_lower", "body_upper"])
def test_unrolled_graph_equals_runtime_sampler_over_step_graph(model: str, untrained_bundle: Path) -> None:
    m = Model.load(untrained_bundle)
    batch = 2 if model == "face" else 1
    frames = 33
    cond = m.example_conditions(model, batch, frames)
    mel = _real_mel(m.bundle, frames)
    for key in ("mel_self", "mel_partner", "mel_a", "mel_b"):
        if key in cond:
            cond[key] = np.repeat(mel[None], batch, 0)
    cond["context_mask"][:, :10] = 1.0
    cond["context"][:, :10] = np.random.default_rng(0).standard_normal(cond["context"][:, :10].shape)
    noise = np.random.default_rng(1).standard_normal((batch, frames, m._width(model))).astype(np.float32)
    unrolled = m.bundle.graph(f"{model}_k4").run({"noise": noise, **cond})["x0"]
    step = m.bundle.graph(f"{model}_step")
    from runtime.model.sampling import sample_ddim

    looped = sample_ddim(
        lambda x, t: step.run({"x": x, "t": np.full(batch, t, np.int64), **cond})["x0"],
        noise, m.schedule, 4, context=cond["context"], context_mask=cond["context_mask"],
    )  # fmt: skip
    assert np.abs(unrolled - looped).max() < 1e-4
    np.testing.assert_array_equal(unrolled[:, :10], cond["context"][:, :10])  # known frames kept exactly


def test_onnx_matches_torch_on_real_inputs(untrained_bundle: Path) -> None:
    _onnx_matches_torch(untrained_bundle)


def test_default_bundle_is_the_export_of_the_committed_checkpoints() -> None:
    """runtime/assets/default is current: its provenance names export/checkpoints/*.pt by sha256, and its graphs
    compute what those checkpoints compute. After changing either, `make export` rebuilds it."""
    manifest = load_bundle(DEFAULT_BUNDLE).manifest
    for kind, c in manifest["provenance"]["checkpoints"].items():
        assert c["path"].startswith("export/checkpoints/"), (kind, c["path"])
        assert load_weights(REPO / c["path"])["sha256"] == c["sha256"], f"{c['path']} changed since the export"
    _onnx_matches_torch(DEFAULT_BUNDLE)
    assert (DEFAULT_BUNDLE / "README.md").read_text() == (REPO / "export" / "MODEL_CARD.md").read_text()


def test_a_distilled_student_replaces_the_teachers_graph_at_its_k(untrained_bundle: Path, tmp_path: Path) -> None:
    """--students face:2=CKPT: face_k2 comes from the student's checkpoint with its own weights file; the other K
    and the step graph stay the teacher's; both backends agree on every graph."""
    ckpts = untrained_bundle / "checkpoints"
    student = tmp_path / "student.pt"
    c = load_weights(ckpts / "untrained_face.pt")
    state = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in c["state_dict"].items()}
    save_weights(student, "face", c["model_config"], state, c["meta"])  # different weights, same shapes
    out = tmp_path / "students"
    export_main(["--face", str(ckpts / "untrained_face.pt"), "--body", str(ckpts / "untrained_body.pt"),
                 "--out", str(out), "--steps", "2", "4", "--students", f"face:2={student}"])  # fmt: skip
    bundle = load_bundle(out)
    graphs = bundle.manifest["graphs"]
    assert graphs["face_k2"]["weights"] == "face_k2.weights" and graphs["face_k2"]["checkpoint"] == "face_k2"
    assert graphs["face_k4"]["weights"] == graphs["face_step"]["weights"] == "face.weights"
    assert bundle.manifest["provenance"]["checkpoints"]["face_k2"]["path"] == str(student)
    _onnx_matches_torch(out)  # the torch reference builds face_k2 from the student's checkpoint
    m = Model(bundle)
    feed = m.example_conditions("face", 2, 33)
    noise = np.random.default_rng(0).standard_normal((2, 33, 52)).astype(np.float32)
    step = bundle.graph("face_step")  # the teacher's weights, looped twice = what the teacher's K2 graph would give
    batch = np.zeros(2, np.int64)
    teacher_k2 = sample_ddim(lambda x, t: step.run({"x": x, "t": batch + t, **feed})["x0"], noise, bundle.schedule, 2,
                             context=feed["context"], context_mask=feed["context_mask"])  # fmt: skip
    student_k2 = m.sample("face", noise, feed, 2)  # the student's face_k2 graph
    assert np.isfinite(student_k2).all() and np.abs(student_k2 - teacher_k2).max() > 1e-3


def _onnx_matches_torch(path: Path) -> None:
    ort_bundle = load_bundle(path, backend="ort-cpu")
    torch_bundle = load_bundle(path, backend="torch")
    m = Model(ort_bundle)
    mel = _real_mel(ort_bundle, 40)
    for name in ort_bundle.graph_names():
        model = ort_bundle.manifest["graphs"][name]["model"]
        batch = 2 if model == "face" else 1
        feed = m.example_conditions(model, batch, 40)
        for key in ("mel_self", "mel_partner", "mel_a", "mel_b"):
            if key in feed:
                feed[key] = np.repeat(mel[None], batch, 0)
        x = np.random.default_rng(2).standard_normal((batch, 40, m._width(model))).astype(np.float32)
        if ort_bundle.manifest["graphs"][name]["kind"] == "step":
            feed.update(x=x, t=np.full(batch, 500, np.int64))
        else:
            feed["noise"] = x
        a = ort_bundle.graph(name).run(feed)["x0"]
        b = torch_bundle.graph(name).run(feed)["x0"]
        if ort_bundle.manifest["graphs"][name]["precision"] == "int8":  # quantised weights: close, not equal
            assert np.abs(a - b).max() < INT8_TOLERANCE and np.sqrt(np.mean((a - b) ** 2)) < 0.1 * b.std(), name
        else:
            assert np.abs(a - b).max() < 1e-4, name


def test_cpu_sessions_run_the_int8_graphs_unless_asked_for_fp32() -> None:
    """The default bundle's int8 copies (``export.onnx --int8``) serve K 1 on ort-cpu; ``precision="fp32"`` and
    every K without a copy use float32; both stream nearly the same faces and bodies."""
    from runtime.engine.settings import SessionSettings
    from runtime.engine.stream import Engine

    fast, exact = Model.load(DEFAULT_BUNDLE), Model.load(DEFAULT_BUNDLE, precision="fp32")
    assert fast.graph_for("face", 1) == ("face_k1_int8", True) and exact.graph_for("face", 1) == ("face_k1", True)
    assert fast.graph_for("body_upper", 1) == ("body_upper_step_int8", False)
    assert exact.graph_for("body_upper", 1) == ("body_upper_step", False)
    assert fast.graph_for("face", 4) == ("face_k4", True)  # no int8 copy of the K 4 graphs
    voices = [read_audio(REPO / "runtime" / "assets" / "demo" / f"{p}.wav").channels[0][: 4 * 16000] for p in "ab"]
    runs = []
    for model in (fast, exact):
        engine = Engine(model, SessionSettings(steps=1, block=3, lookahead=3, seed=1, degrade=False))
        for p in (0, 1):
            engine.push_audio(p, voices[p])
        runs.append(engine.flush())
    for a, b in zip(*(r.people for r in runs), strict=True):
        assert np.abs(a.blendshapes - b.blendshapes).mean() < 0.02  # weights 0..1
        assert np.abs(a.joint_rotations - b.joint_rotations).mean() < 0.02  # quaternion components


def test_export_cli_writes_a_loadable_bundle(untrained_bundle: Path, tmp_path: Path) -> None:
    ckpts = untrained_bundle / "checkpoints"
    out = tmp_path / "exported"
    export_main(["--face", str(ckpts / "untrained_face.pt"), "--body", str(ckpts / "untrained_body.pt"),
                 "--out", str(out), "--steps", "2", "4", "--fp16"])  # fmt: skip
    bundle = load_bundle(out)
    assert {"face_k2", "face_k4", "body_upper_k2", "face_k4_fp16"} <= set(bundle.graph_names())
    graphs = bundle.manifest["graphs"]
    assert all(g["parity_max_abs_error"] < 1e-4 for g in graphs.values() if g["precision"] == "fp32")
    assert all(g["parity_max_abs_error"] < 1e-2 for g in graphs.values() if g["precision"] == "fp16")
    assert bundle.unrolled("face", 4) == "face_k4" and bundle.unrolled("face", 4, "fp16") == "face_k4_fp16"
    assert not Model(bundle).fp16  # CPU: float32 graphs
    # Every weight once: the step graph and the unrolled graphs of a model share one weights file.
    assert sorted(p.name for p in out.glob("*.weights")) == ["body_lower.weights", "body_upper.weights", "face.weights"]
    with pytest.raises(ValueError, match="is a 'face' checkpoint, expected 'body'"):
        export_main(["--face", str(ckpts / "untrained_face.pt"), "--body", str(ckpts / "untrained_face.pt"),
                     "--out", str(tmp_path / "bad")])  # fmt: skip


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    state = {"face.w": torch.randn(3, 4), "face.steps": torch.tensor([1, 2])}
    meta = {"styles": ["actor_001"], "stats": {"mel": {"mean": [0.0], "std": [1.0]}}}
    sha = save_weights(tmp_path / "c.pt", "face", {"face": {"dim": 8}}, state, meta)
    ckpt = load_weights(tmp_path / "c.pt")
    assert ckpt["sha256"] == sha and ckpt["kind"] == "face" and ckpt["meta"] == meta
    assert ckpt["model_config"] == {"face": {"dim": 8}}
    torch.testing.assert_close(ckpt["state_dict"]["face.w"], state["face.w"].half().float())
    assert ckpt["state_dict"]["face.steps"].dtype == torch.int64
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt: not a readable torch checkpoint"):
        load_weights(tmp_path / "bad.pt")
