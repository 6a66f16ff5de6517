"""The bundle is validated on load: a tampered file, a wrong shape, a missing graph each fail with file + reason."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.model.bundle import MANIFEST, BundleError, load_bundle


@pytest.fixture
def bundle_copy(untrained_bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(untrained_bundle, dst, ignore=shutil.ignore_patterns("checkpoints"))
    return dst


def _edit_manifest(folder: Path, change) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    change(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_loads_and_describes_itself(bundle_copy: Path) -> None:
    b = load_bundle(bundle_copy)
    assert b.skeleton.n_joints == 52
    assert b.unrolled("face", 4) == "face_k4" and b.unrolled("face", 3) is None
    mean, std = b.norm("mel")
    assert mean.shape == std.shape == (80,)
    assert set(b.graph_names()) >= {"face_step", "body_lower_step", "body_upper_step"}


def test_tampered_weights_are_refused(bundle_copy: Path) -> None:
    weights = bundle_copy / "face.weights"
    data = bytearray(weights.read_bytes())
    data[1000] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"face\.weights: sha256 does not match"):
        load_bundle(bundle_copy)


def test_missing_graph_is_refused(bundle_copy: Path) -> None:
    (bundle_copy / "body_upper_k4.onnx").unlink()
    with pytest.raises(BundleError, match=r"body_upper_k4\.onnx: listed in the manifest but missing"):
        load_bundle(bundle_copy)


def test_wrong_shape_is_refused_when_the_graph_loads(bundle_copy: Path) -> None:
    def widen(m: dict) -> None:
        spec = next(s for s in m["graphs"]["face_step"]["inputs"] if s["name"] == "mel_self")
        spec["shape"][-1] = 81

    _edit_manifest(bundle_copy, widen)
    bundle = load_bundle(bundle_copy)
    with pytest.raises(ValueError, match=r"face_step\.onnx: input mel_self is float32 .*manifest says float32"):
        bundle.graph("face_step")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.pop("skeleton"), "missing keys \\['skeleton'\\]"),
        (lambda m: m.update(format_version=99), "format_version 99"),
        (lambda m: m["features"].update(n_mels=64), "feature setting n_mels=64"),
        (lambda m: m["clock"].update(fps=25), "clock"),
        (lambda m: m.update(blendshapes=m["blendshapes"][::-1]), "blendshape names"),
        (lambda m: m["defaults"].update(steps=0), "defaults.steps"),
        (lambda m: m["normalisation"]["face"]["std"].__setitem__(0, 0.0), "normalisation.face"),
    ],
)
def test_inconsistent_manifests_are_refused(bundle_copy: Path, change, message: str) -> None:
    _edit_manifest(bundle_copy, change)
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle_copy)


@pytest.mark.parametrize(
    ("text_change", "message"),
    [  # issue 15: NaN / Infinity literals parse in Python's json, 1e999 parses to inf, and were served as healthy
        (lambda t: t.replace('"mean": [', '"mean": [NaN, ', 1), "non-finite number NaN"),
        (lambda t: t.replace('"std": [', '"std": [-Infinity, ', 1), "non-finite number -Infinity"),
        (lambda t: t.replace('"mean": [', '"mean": [1e999, ', 1), r"normalisation\.\w+\.mean\[0\] is not a finite"),
    ],
)
def test_non_finite_numbers_anywhere_are_refused_with_their_place(bundle_copy: Path, text_change, message: str) -> None:
    path = bundle_copy / MANIFEST
    path.write_text(text_change(json.dumps(json.loads(path.read_text()))))
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle_copy)


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m["normalisation"]["upper"]["std"].__setitem__(0, 1e30),  # finite, but float32 features overflow
        lambda m: m.update(defaults="fast"),
        lambda m: m.update(skeleton=5),
        lambda m: m.update(graphs=[1, 2]),
        lambda m: m["graphs"]["face_step"].update(file=None),
        lambda m: m.update(normalisation={"face": "x"}),
        lambda m: m.update(alive=[0.1]),
        lambda m: m["clock"].clear(),
    ],
)
def test_malformed_fields_raise_bundle_error_never_another_type(bundle_copy: Path, change) -> None:
    _edit_manifest(bundle_copy, change)
    with pytest.raises(BundleError, match=r"manifest\.json: "):
        load_bundle(bundle_copy)


def test_a_manifest_that_is_not_utf8_or_not_an_object_is_refused(bundle_copy: Path) -> None:
    (bundle_copy / MANIFEST).write_bytes(b'{"format": "\xff\xfe"}')
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(bundle_copy)
    (bundle_copy / MANIFEST).write_text("[1, 2]")
    with pytest.raises(BundleError, match="must be a JSON object"):
        load_bundle(bundle_copy)


def test_a_bundle_whose_warm_up_is_not_finite_is_refused(bundle_copy: Path) -> None:
    """NaN weights pass every check of the manifest (hashes updated); the warm-up inference catches them."""
    from runtime.model.bundle import sha256_file
    from runtime.model.model import Model

    weights = bundle_copy / "body_upper.weights"
    data = bytearray(weights.read_bytes())
    data[: 1 << 16] = b"\x00\x7e" * (1 << 15)  # float16 NaN over the first weights
    weights.write_bytes(bytes(data))
    _edit_manifest(bundle_copy, lambda m: m["files"].update({"body_upper.weights": sha256_file(weights)}))
    model = Model.load(bundle_copy)
    with pytest.raises(BundleError, match="warm-up of body_upper gave non-finite output"):
        model.warm_up(frames=33, steps=4)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="manifest.json: missing"):
        load_bundle(tmp_path)
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(tmp_path)


def test_runtime_serves_without_torch(bundle_copy: Path) -> None:
    """DESIGN 1: serving never needs torch. A fresh interpreter where importing torch fails runs the engine."""
    code = f"""
import sys

class NoTorch:  # any 'import torch' now fails, as on a machine without it
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed here")

sys.meta_path.insert(0, NoTorch())
import numpy as np
from runtime.model.model import Model
from runtime.engine.stream import Engine
from runtime.engine.settings import SessionSettings
engine = Engine(Model.load({str(bundle_copy)!r}), SessionSettings(seed=3))
tone = (0.1 * np.sin(np.arange(16000) / 10)).astype(np.float32)
engine.push_audio(0, tone); engine.push_audio(1, tone[::-1].copy())
frames = engine.flush()
assert len(frames) == 30, len(frames)
assert "torch" not in sys.modules
print("ok", len(frames))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok 30"
