"""Inference backends: one interface, several implementations, one contract test over all (DESIGN 7, STYLE 6).

A backend loads a graph file from a bundle and runs it on named numpy arrays, returning named arrays:

    graph = create_backend("ort-cpu").load(path, signature)
    outputs = graph.run({"x": x, "t": t, ...})

``--backend auto|ort-cpu|ort-cuda|ort-trt|trt``. Heavy imports (onnxruntime, tensorrt) happen inside the module
that needs them, with an error that says what to install. Backends that live outside the deployable core register
themselves: importing ``export.torch_backend`` (training extra) adds ``torch``, the reference that runs the
checkpoints a bundle was exported from. The runtime never imports export/ or torch (DESIGN 1).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from runtime.model.backends.base import Backend, BackendUnavailable, Graph, Signature, TensorSpec

__all__ = ["BACKENDS", "Backend", "BackendUnavailable", "Graph", "Signature", "TensorSpec", "backend_names",
           "create_backend", "register_backend"]  # fmt: skip

BACKENDS = ("auto", "ort-cpu", "ort-cuda", "ort-trt", "trt")  # built in; see ``register_backend`` for others
_REGISTERED: dict[str, Callable[..., Backend]] = {}  # name -> factory(threads=..., cache_dir=...)


def register_backend(name: str, factory: Callable[..., Backend]) -> None:
    """Make ``create_backend(name)`` return ``factory(threads=..., cache_dir=...)``; for backends outside runtime/."""
    if name in BACKENDS:
        raise ValueError(f"backend {name!r} is built in and cannot be replaced")
    _REGISTERED[name] = factory


def backend_names() -> tuple[str, ...]:
    """Every name ``create_backend`` accepts right now: the built-in ones and those registered so far."""
    return BACKENDS + tuple(_REGISTERED)


def create_backend(name: str = "auto", threads: int = 1, cache_dir: Path | None = None) -> Backend:
    """The backend called ``name``; ``auto`` picks the fastest one that works here (TensorRT, CUDA, then CPU)."""
    if name in _REGISTERED:
        return _REGISTERED[name](threads=threads, cache_dir=cache_dir)
    if name not in BACKENDS:
        hint = " (the torch reference registers itself on `import export.torch_backend`)" if name == "torch" else ""
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(backend_names())}{hint}")
    if name == "auto":
        for candidate in ("trt", "ort-trt", "ort-cuda"):
            try:
                return create_backend(candidate, threads, cache_dir)
            except BackendUnavailable:
                continue
        return create_backend("ort-cpu", threads, cache_dir)
    if name.startswith("ort-"):
        from runtime.model.backends.ort import OrtBackend

        return OrtBackend(name, threads=threads, cache_dir=cache_dir)
    from runtime.model.backends.trt import TrtBackend

    return TrtBackend(cache_dir=cache_dir)
