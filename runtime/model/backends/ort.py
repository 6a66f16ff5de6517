"""ONNX Runtime backend: CPU by default, CUDA or TensorRT execution providers where present (DESIGN 7)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from runtime.model.backends.base import BackendUnavailable, Signature

log = logging.getLogger(__name__)

_PROVIDERS = {
    "ort-cpu": "CPUExecutionProvider",
    "ort-cuda": "CUDAExecutionProvider",
    "ort-trt": "TensorrtExecutionProvider",
}


def _import_ort():
    try:
        import onnxruntime
    except ImportError as e:  # pragma: no cover - a runtime dependency
        raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime") from e
    return onnxruntime


class OrtGraph:
    def __init__(self, session, name: str, signature: Signature) -> None:
        self.session = session
        self.name = name
        self.signature = signature
        self._outputs = [o.name for o in session.get_outputs()]

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._outputs, self.session.run(self._outputs, dict(feed)), strict=True))


class OrtBackend:
    def __init__(self, name: str = "ort-cpu", threads: int = 1, cache_dir: Path | None = None) -> None:
        ort = _import_ort()
        provider = _PROVIDERS[name]
        if provider not in ort.get_available_providers():
            raise BackendUnavailable(
                f"{name}: onnxruntime has no {provider} here (available: {', '.join(ort.get_available_providers())}); "
                "install onnxruntime-gpu on a machine with an NVIDIA GPU and CUDA"
            )
        self.name = name
        self.threads = threads
        self.cache_dir = cache_dir

    def _options(self):
        ort = _import_ort()
        so = ort.SessionOptions()
        # A 2-core CPU serves the gRPC loop too: few threads, and no spinning that would keep cores busy.
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        so.log_severity_level = 3
        return so

    def _providers(self, path: Path) -> list:
        if self.name == "ort-cpu":
            return ["CPUExecutionProvider"]
        cache = str(self.cache_dir or path.parent)
        cuda = ("CUDAExecutionProvider", {"device_id": 0})
        if self.name == "ort-cuda":
            return [cuda, "CPUExecutionProvider"]
        trt = (
            "TensorrtExecutionProvider",
            {
                "device_id": 0,
                "trt_fp16_enable": True,
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": cache,
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": cache,
            },
        )
        return [trt, cuda, "CPUExecutionProvider"]

    def load(self, path: Path, signature: Signature) -> OrtGraph:
        ort = _import_ort()
        try:
            session = ort.InferenceSession(str(path), self._options(), providers=self._providers(path))
        except Exception as e:  # onnxruntime raises its own exception types
            raise ValueError(f"{path}: onnxruntime cannot load this graph ({e})") from e
        _check_session(session, path, signature)
        log.debug("loaded %s on %s", path.name, session.get_providers()[0])
        return OrtGraph(session, path.stem, signature)


_ORT_TYPES = {"tensor(float)": "float32", "tensor(int64)": "int64", "tensor(float16)": "float16"}


def _check_session(session, path: Path, signature: Signature) -> None:
    """The graph's real I/O must be what the manifest says: names, ranks, fixed sizes, dtypes."""
    for kind, actual, specs in (
        ("input", session.get_inputs(), signature.inputs),
        ("output", session.get_outputs(), signature.outputs),
    ):
        if [a.name for a in actual] != [s.name for s in specs]:
            raise ValueError(
                f"{path}: {kind}s are {[a.name for a in actual]}, the manifest says {[s.name for s in specs]}"
            )
        for a, s in zip(actual, specs, strict=True):
            dtype = _ORT_TYPES.get(a.type, a.type)
            fixed_ok = all(not isinstance(w, int) or g == w for g, w in zip(a.shape, s.shape, strict=False)) and len(
                a.shape
            ) == len(s.shape)
            if dtype != s.dtype or not fixed_ok:
                raise ValueError(
                    f"{path}: {kind} {a.name} is {dtype} {list(a.shape)}, the manifest says {s.dtype} {list(s.shape)}"
                )
