"""The bundle's networks as the engine uses them: normalisation, and sampling with K steps (DESIGN 5).

``Model.sample`` prefers the graph with the K-step sampler unrolled inside (one call per block); for any other K it
loops the per-step graph with ``runtime.model.sampling.sample_ddim`` (the same maths). Everything here is numpy.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from pathlib import Path

import numpy as np

from runtime.model.batching import MicroBatcher
from runtime.model.bundle import Bundle, BundleError, load_bundle
from runtime.model.sampling import sample_ddim
from runtime.motion.posing import Poser
from runtime.motion.root import MotionLayout

log = logging.getLogger(__name__)

MODELS = ("body_lower", "body_upper", "face")
OUTPUT = {
    "body_lower": "lower",
    "body_upper": "upper",
    "face": "face",
}  # the normalisation table of each output  # order inside a step: lower -> upper -> faces (DESIGN 5)
DEFAULT_BUNDLE = (
    Path(__file__).resolve().parents[1] / "assets" / "default"
)  # the shipped model (runtime/assets/default)


PRECISIONS = ("auto", "fp32")  # "auto": the bundle's int8 graphs on ort-cpu where present; "fp32": float32 only


class Model:
    def __init__(self, bundle: Bundle, precision: str = "auto") -> None:
        self.bundle = bundle
        self.schedule = bundle.schedule
        self.stats = {k: bundle.norm(k) for k in ("mel", "face", "lower", "upper")}
        self.dims = {k: len(v[0]) for k, v in self.stats.items()}  # lower/upper: both people
        self.fp16 = bundle.backend.name == "ort-cuda"  # float16 graphs where the hardware gains from them
        # int8 graphs where the bundle has them and the CPU runs them (``precision`` "fp32" turns them off)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.int8 = bundle.backend.name == "ort-cpu" and precision != "fp32"
        self._graph_for: dict[tuple[str, int], tuple[str, bool]] = {}  # graph_for's answers (the manifest is fixed)
        self.poser = Poser(bundle.skeleton, MotionLayout.from_dict(bundle.manifest["layout"]))
        # Per-stage seconds of the latest calls (benchmarks read these); bounded so a long-lived server does not grow.
        self.timings: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=10_000))
        self.batcher: MicroBatcher | None = None  # cross-session batching (``batch_across_sessions``)

    def batch_across_sessions(self, max_wait: float, max_batch: int = 16, threads: int = 1) -> MicroBatcher:
        """From now on, graph calls from concurrent threads (sessions) run batched (``runtime.model.batching``)."""
        if self.batcher is None:
            run = lambda name, feeds: self.bundle.graph(name).run(feeds)  # noqa: E731
            self.batcher = MicroBatcher(run, max_wait, max_batch, threads=threads)
        return self.batcher

    def _run(self, name: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.batcher is not None:
            return self.batcher.run(name, feeds)
        return self.bundle.graph(name).run(feeds)

    @classmethod
    def load(
        cls, path: str | Path = DEFAULT_BUNDLE, backend: str = "ort-cpu", threads: int = 1, precision: str = "auto"
    ) -> Model:
        """Load and validate a bundle, bind a backend ("auto", "ort-cpu", ...); ``precision`` "auto" uses the
        bundle's int8 graphs on ort-cpu, "fp32" never does."""
        return cls(load_bundle(path, backend=backend, threads=threads), precision)

    def graph_for(self, model: str, steps: int) -> tuple[str, bool]:
        """(graph name, unrolled?) that samples ``model`` in ``steps`` steps: an unrolled graph if the bundle has one
        (float16 on CUDA, int8 on CPU where present, else float32), otherwise the step graph, looped."""
        if (model, steps) not in self._graph_for:
            precisions = ["fp16"] * self.fp16 + ["int8"] * self.int8 + ["fp32"]
            unrolled = [(n, True) for p in precisions if (n := self.bundle.unrolled(model, steps, p))]
            looped = [(n, False) for p in precisions if (n := self.bundle.step_graph(model, p))]
            self._graph_for[(model, steps)] = (unrolled + looped)[0]
        return self._graph_for[(model, steps)]

    def warm_up(self, frames: int, steps: int) -> None:
        """Load every graph the engine will call and run each once (first calls allocate); BundleError if any output
        is not finite."""
        for model in MODELS:
            batch = 2 if model == "face" else 1
            feed = self.example_conditions(model, batch, frames)
            out = self.sample(model, np.zeros((batch, frames, self._width(model)), np.float32), feed, steps)
            values = self.denormalise(OUTPUT[model], out)
            if not np.isfinite(values).all():
                raise BundleError(f"{self.bundle.path}: warm-up of {model} gave non-finite output (bad weights or "
                                  f"normalisation); refusing to serve")  # fmt: skip
        self.timings.clear()

    def _width(self, model: str) -> int:
        return {"face": self.dims["face"], "body_lower": self.dims["lower"], "body_upper": self.dims["upper"]}[model]

    def example_conditions(self, model: str, batch: int, frames: int) -> dict[str, np.ndarray]:
        """Neutral inputs of the right shapes (warm-up and benchmarks)."""
        width = self._width(model)
        mel = np.zeros((batch, frames, self.dims["mel"]), np.float32)
        ctx = {"context": np.zeros((batch, frames, width), np.float32),
               "context_mask": np.zeros((batch, frames, 1), np.float32)}  # fmt: skip
        if model == "face":
            return {"mel_self": mel, "mel_partner": mel, "style": np.zeros(batch, np.int64),
                    "facing": np.ones((batch, frames, 1), np.float32), **ctx}  # fmt: skip
        cond = {"mel_a": mel, "mel_b": mel, "actions": np.full((batch, frames, 2), 2, np.int64),
                "placement": np.array([[0.0, 1.4, -1.0, 0.0]] * batch, np.float32), **ctx}  # fmt: skip
        if model == "body_upper":
            cond["lower"] = np.zeros((batch, frames, self.dims["lower"]), np.float32)
        return cond

    # -- normalisation -------------------------------------------------------------------------------------
    def normalise(self, name: str, x: np.ndarray) -> np.ndarray:
        mean, std = self.stats[name]
        return ((x - mean) / std).astype(np.float32)

    def denormalise(self, name: str, x: np.ndarray) -> np.ndarray:
        mean, std = self.stats[name]
        return (x * std + mean).astype(np.float32)

    # -- sampling ------------------------------------------------------------------------------------------
    def sample(self, model: str, noise: np.ndarray, conditions: dict[str, np.ndarray], steps: int) -> np.ndarray:
        """Deterministic DDIM in ``steps`` steps from ``noise`` (B, T, D) -> x0 (normalised)."""
        t0 = time.perf_counter()
        name, unrolled = self.graph_for(model, steps)
        if unrolled:
            out = self._run(name, {"noise": noise, **conditions})["x0"]
        else:
            batch = np.zeros(noise.shape[0], np.int64)

            def denoise(x: np.ndarray, t: int) -> np.ndarray:
                return self._run(name, {"x": x, "t": batch + t, **conditions})["x0"]

            out = sample_ddim(denoise, noise, self.schedule, steps,
                              context=conditions["context"], context_mask=conditions["context_mask"])  # fmt: skip
        self.timings[model].append(time.perf_counter() - t0)
        return out
