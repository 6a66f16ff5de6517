"""Inference backends: one interface, several implementations, one contract test over all (DESIGN 7, STYLE 6).

A backend loads a graph file from a bundle and runs it on named numpy arrays, returning named arrays:

    graph = create_backend("ort-cpu").load(path, signature)
    outputs = graph.run({"x": x, "t": t, ...})

``--backend auto|ort-cpu|ort-cuda|ort-trt|trt|torch``. Heavy imports (onnxruntime, tensorrt, torch) happen inside
the module that needs them, with an error that says what to install.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

BACKENDS = ("auto", "ort-cpu", "ort-cuda", "ort-trt", "trt", "torch")


class BackendUnavailable(RuntimeError):
    """This backend cannot run on this machine; the message says why and what to install."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]  # ints for fixed axes, names ("batch", "frames") for dynamic ones
    dtype: str  # numpy dtype name, e.g. "float32", "int64"

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: Mapping) -> TensorSpec:
        return cls(str(d["name"]), tuple(d["shape"]), str(d["dtype"]))


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def check_feed(self, feed: Mapping[str, np.ndarray], graph: str) -> None:
        """Names, ranks, fixed axes and dtypes of a feed; raises ValueError naming the graph and the tensor."""
        missing = [s.name for s in self.inputs if s.name not in feed]
        extra = [n for n in feed if n not in {s.name for s in self.inputs}]
        if missing or extra:
            raise ValueError(f"{graph}: inputs missing {missing}, unexpected {extra}")
        for spec in self.inputs:
            a = feed[spec.name]
            if a.dtype != np.dtype(spec.dtype) or a.ndim != len(spec.shape):
                want = f"{spec.dtype} {spec.shape}"
                raise ValueError(f"{graph}: input {spec.name} must be {want}, got {a.dtype} {a.shape}")
            for size, want in zip(a.shape, spec.shape, strict=True):
                if isinstance(want, int) and size != want:
                    raise ValueError(f"{graph}: input {spec.name} must have shape {spec.shape}, got {a.shape}")


class Graph(Protocol):
    name: str
    signature: Signature

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class Backend(Protocol):
    name: str

    def load(self, path: Path, signature: Signature) -> Graph: ...


def create_backend(name: str = "auto", threads: int = 1, cache_dir: Path | None = None) -> Backend:
    """The backend called ``name``; ``auto`` picks the fastest one that works here (TensorRT, CUDA, then CPU)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "auto":
        for candidate in ("trt", "ort-trt", "ort-cuda"):
            try:
                return create_backend(candidate, threads, cache_dir)
            except BackendUnavailable:
                continue
        return create_backend("ort-cpu", threads, cache_dir)
    if name.startswith("ort-"):
        from runtime.backends.ort import OrtBackend

        return OrtBackend(name, threads=threads, cache_dir=cache_dir)
    if name == "trt":
        from runtime.backends.trt import TrtBackend

        return TrtBackend(cache_dir=cache_dir)
    # The torch reference runs the checkpoints the bundle was exported from; it lives with export (training extra).
    try:
        from export.torch_backend import TorchBackend
    except ImportError as e:
        raise BackendUnavailable(f"torch backend needs the training extra: pip install -e '.[train]' ({e})") from e
    return TorchBackend(threads=threads)
