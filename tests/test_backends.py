"""One contract over every backend available here: the same graph on the same inputs gives the same outputs.

GPU backends (CUDA / TensorRT execution providers, native TensorRT) skip with the reason on a machine without them;
native TensorRT is still exercised up to "no CUDA device found".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.model.backends import BACKENDS, BackendUnavailable, create_backend
from runtime.model.bundle import load_bundle

TOLERANCE = {"ort-cpu": 1e-5, "torch": 1e-4, "ort-cuda": 1e-3, "ort-trt": 2e-2, "trt": 2e-2}  # fp16 engines


def _feed(bundle, name: str, frames: int = 21) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    feed = {}
    for spec in bundle.signature(name).inputs:
        shape = tuple(2 if d == "batch" else frames if d == "frames" else d for d in spec.shape)
        if spec.dtype == "int64":
            feed[spec.name] = rng.integers(0, 3, shape).astype(np.int64)
        elif spec.name == "t":
            feed[spec.name] = np.array([999, 250], np.int64)
        elif spec.name == "context_mask":
            feed[spec.name] = (np.arange(frames)[None, :, None] < 7).repeat(2, 0).astype(np.float32)
        else:
            feed[spec.name] = rng.standard_normal(shape).astype(np.float32)
    return feed


def _create(name: str):
    """The backend ``name``; the torch reference is registered by importing it from export/ (DESIGN 1)."""
    if name == "torch":
        pytest.importorskip("torch", reason="the torch reference backend needs the training extra")
        import export.torch_backend  # noqa: F401 - registers "torch"
    return create_backend(name)


@pytest.mark.parametrize("backend", [*(b for b in BACKENDS if b != "auto"), "torch"])
@pytest.mark.parametrize("graph", ["face_step", "body_upper_k4"])
def test_backend_contract(backend: str, graph: str, untrained_bundle: Path) -> None:
    try:
        engine = _create(backend)
    except BackendUnavailable as e:
        pytest.skip(f"{backend} not available here: {e}")
    reference = load_bundle(untrained_bundle, backend="ort-cpu")
    candidate = load_bundle(untrained_bundle, backend=engine)
    feed = _feed(reference, graph)
    want = reference.graph(graph).run(feed)["x0"]
    got = candidate.graph(graph).run(feed)["x0"]
    assert got.shape == want.shape == feed.get("x", feed.get("noise")).shape
    assert np.abs(got - want).max() < TOLERANCE[backend]


def test_auto_picks_a_backend_that_runs_here() -> None:
    backend = create_backend("auto")
    assert backend.name in BACKENDS


def test_unknown_backend_is_named() -> None:
    with pytest.raises(ValueError, match="unknown backend 'onnx'"):
        create_backend("onnx")


def test_tensorrt_reports_why_it_cannot_run() -> None:
    pytest.importorskip("cuda.bindings", reason="cuda-bindings (dev extra) is needed to reach the GPU check")
    from runtime.model.backends.trt import gpu_name

    try:
        name = gpu_name()
    except BackendUnavailable as e:
        assert "no CUDA device found" in str(e)
        with pytest.raises(BackendUnavailable, match="no CUDA device found"):
            create_backend("trt")
    else:  # pragma: no cover - a GPU machine
        assert name


def test_engine_cache_key(tmp_path: Path) -> None:
    from runtime.model.backends.trt import engine_path

    onnx = tmp_path / "face_step.onnx"
    onnx.write_bytes(b"graph-v1")
    a = engine_path(onnx, "NVIDIA L4", "10.9.0")
    assert a.parent == tmp_path and a.name.startswith("face_step.NVIDIA-L4.trt10.9.0.") and a.suffix == ".engine"
    assert engine_path(onnx, "NVIDIA A10G", "10.9.0") != a  # another GPU
    assert engine_path(onnx, "NVIDIA L4", "10.13.0") != a  # another TensorRT
    onnx.write_bytes(b"graph-v2")
    assert engine_path(onnx, "NVIDIA L4", "10.9.0") != a  # another graph


@pytest.mark.gpu
def test_tensorrt_builds_and_caches_an_engine(untrained_bundle: Path, tmp_path: Path) -> None:
    try:
        backend = create_backend("trt", cache_dir=tmp_path)
    except BackendUnavailable as e:
        pytest.skip(f"GPU only: {e}")
    bundle = load_bundle(untrained_bundle, backend=backend)
    feed = _feed(bundle, "face_step")
    out = bundle.graph("face_step").run(feed)["x0"]
    assert np.isfinite(out).all()
    assert len(list(tmp_path.glob("face_step.*.engine"))) == 1
