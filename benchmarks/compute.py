"""Section 1: per-stage compute per block, and the real-time factor, with the audio pushed as fast as it is consumed.

The engine is run unchanged; its stages are timed from outside:

- ``features``: ``StreamingMel.push``/``flush`` of both speakers (wrapped per engine), accumulated over the chunks
  pushed since the previous block and charged to the next block;
- ``body_lower``, ``body_upper``, ``faces``: ``Model.timings`` (one ``Model.sample`` call each per block; faces are
  both people in one batch of 2);
- ``posing``: ``Poser.split``/``integrate``/``pose`` (a per-engine timing proxy replaces ``engine.poser``);
- ``other``: the rest of ``Engine.step`` (windows, normalisation, facing flags, history, voice activity);
- ``total``: features + the whole ``Engine.step``.

Real-time factor = compute seconds (features + every step, flush included) / audio seconds of the session (two
speakers talking for T seconds is T seconds of audio).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np

from benchmarks.common import CHUNK_MS, Setting, stats_ms
from runtime.constants import SAMPLE_RATE
from runtime.engine.stream import Engine
from runtime.model.model import MODELS, Model

log = logging.getLogger(__name__)

STAGES = ("features", "body_lower", "body_upper", "faces", "posing", "other", "total")
_MODEL_STAGE = {"body_lower": "body_lower", "body_upper": "body_upper", "face": "faces"}


class Timers:
    """Seconds accumulated per stage by wrapped callables."""

    def __init__(self) -> None:
        self.acc: dict[str, float] = defaultdict(float)

    def wrap(self, fn: Callable, stage: str) -> Callable:
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.acc[stage] += time.perf_counter() - t0

        return timed

    def take(self, stage: str) -> float:
        return self.acc.pop(stage, 0.0)


class _TimedPoser:
    """Delegates to the model's ``Poser``; times the calls the engine makes per block (this engine only)."""

    def __init__(self, poser, timers: Timers) -> None:
        self._poser = poser
        for name in ("split", "integrate", "pose"):
            setattr(self, name, timers.wrap(getattr(poser, name), "posing"))

    def __getattr__(self, name: str):
        return getattr(self._poser, name)


def instrument(engine: Engine) -> Timers:
    """Time an engine's feature extraction and posing (wrappers on this engine's objects; the model is shared)."""
    timers = Timers()
    for sp in engine.speakers:
        sp.mel.push = timers.wrap(sp.mel.push, "features")
        sp.mel.flush = timers.wrap(sp.mel.flush, "features")
    engine.poser = _TimedPoser(engine.poser, timers)
    return timers


def graph_kind(model: Model, steps: int) -> str:
    """Which graphs a K uses: "unrolled" (the K-step graph of every model), "one step" (K 1: the per-step graph once)
    or "step loop" (the per-step graph K times)."""
    if all(model.bundle.unrolled(m, steps) for m in MODELS):
        return "unrolled"
    return "one step" if steps == 1 else "step loop"


def run_compute(model: Model, setting: Setting, a: np.ndarray, b: np.ndarray) -> dict:
    """Stream (a, b) through a fresh engine in 40 ms chunks, unpaced; per-block stage times and the RTF."""
    model.warm_up(frames=setting.session().window, steps=setting.steps)  # first calls at a new shape allocate
    engine = Engine(model, setting.session())
    timers = instrument(engine)
    model.timings.clear()
    step = int(SAMPLE_RATE * CHUNK_MS / 1000)
    blocks: dict[str, list[float]] = defaultdict(list)
    compute = 0.0
    for i in range(0, len(a), step):
        t0 = time.perf_counter()
        engine.push_audio(0, a[i : i + step])
        engine.push_audio(1, b[i : i + step])
        compute += time.perf_counter() - t0
        while True:
            t0 = time.perf_counter()
            frames = engine.step()
            seconds = time.perf_counter() - t0
            compute += seconds
            if frames is None:
                break
            _charge(blocks, timers, model, seconds)
    t0 = time.perf_counter()
    engine.flush()
    compute += time.perf_counter() - t0
    audio = len(a) / SAMPLE_RATE
    sampling = sum(sum(blocks[s]) for s in _MODEL_STAGE.values()) + sum(sum(v) for v in model.timings.values())
    return {
        **setting.to_dict(),
        "label": setting.label,
        "graph": graph_kind(model, setting.steps),
        "window": setting.session().window,
        "blocks": len(blocks["total"]),
        "audio_seconds": audio,
        "compute_seconds": compute,
        "rtf": compute / audio,
        "sampling_seconds": sampling,  # the three models' Model.sample calls, flush included
        "stages_ms": {s: stats_ms(blocks[s]) for s in STAGES},
    }


def _charge(blocks: dict[str, list[float]], timers: Timers, model: Model, step_seconds: float) -> None:
    """Record one block: the features pushed since the last block, its three samplings, posing, the rest."""
    sampled = 0.0
    for name, stage in _MODEL_STAGE.items():
        calls = model.timings.get(name, [])
        seconds = float(sum(calls))
        calls.clear()
        blocks[stage].append(seconds)
        sampled += seconds
    features, posing = timers.take("features"), timers.take("posing")
    blocks["features"].append(features)
    blocks["posing"].append(posing)
    blocks["other"].append(max(0.0, step_seconds - sampled - posing))
    blocks["total"].append(features + step_seconds)


def run_sweep(model: Model, backend: str, settings: list[Setting], a: np.ndarray, b: np.ndarray) -> list[dict]:
    rows = []
    for s in settings:
        row = {"backend": backend, **run_compute(model, s, a, b)}
        log.info("compute %s %s: total %.1f ms/block (p95 %.1f), RTF %.3f", backend, s.label,
                 row["stages_ms"]["total"]["mean"], row["stages_ms"]["total"]["p95"], row["rtf"])  # fmt: skip
        rows.append(row)
    return rows
