"""Section 4: the same networks sampled the way offline peers sample, timed beside our K-step streaming sampler.

- ``ddim50``: deterministic DDIM, 50 steps (DiffSpeaker's ``num_inference_timesteps``),
  ``runtime.model.sampling.sample_ddim``
- ``ddpm150``: ancestral DDPM, 150 respaced steps (LDA's schedule length), ``runtime.model.sampling.sample_ddpm``

both over each bundle's per-step graph (``<model>_step``), for the three models a block needs (body lower, body
upper, both faces as a batch of 2). Two comparisons, both of sampling compute only (features and posing excluded):

- equal window: one window of C + B + L frames, our K steps (the unrolled graph when the bundle has it) vs the
  reference samplers on the same window; speed-up = reference seconds / ours. This isolates the step count.
- whole clip: the reference samplers in one pass over the whole clip (how DiffSpeaker and LDA generate) vs our
  streaming engine's sampling over the same clip (``sampling_seconds`` of the compute run at that setting:
  overlapping windows of C + B + L frames every B frames). Speed-up = reference seconds / ours.

Inputs are the neutral conditions of ``Model.example_conditions``: speed does not depend on the values.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from benchmarks.common import Setting
from runtime.constants import FPS
from runtime.model.model import MODELS, Model
from runtime.model.sampling import sample_ddim, sample_ddpm

log = logging.getLogger(__name__)

SAMPLERS = {"ddim50": 50, "ddpm150": 150}  # name -> steps
_DIMS = {"face": "face", "body_lower": "lower", "body_upper": "upper"}  # model -> its Model.dims key


def _inputs(model: Model, name: str, frames: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    batch = 2 if name == "face" else 1
    width = model.dims[_DIMS[name]]
    noise = rng.standard_normal((batch, frames, width)).astype(np.float32)
    return noise, model.example_conditions(name, batch, frames)


def reference_sample(model: Model, name: str, sampler: str, noise: np.ndarray, cond: dict,
                     rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    graph = model.bundle.graph(f"{name}_step")
    t_batch = np.zeros(noise.shape[0], np.int64)

    def denoise(x: np.ndarray, t: int) -> np.ndarray:
        # sample_ddpm's update mixes in numpy float64 scalars, so x comes back float64: the graphs take float32
        return graph.run({"x": x.astype(np.float32, copy=False), "t": t_batch + t, **cond})["x0"]

    if sampler == "ddim50":
        return sample_ddim(denoise, noise, model.schedule, SAMPLERS[sampler], context=cond["context"],
                           context_mask=cond["context_mask"])  # fmt: skip
    return sample_ddpm(denoise, noise, model.schedule, SAMPLERS[sampler], rng)


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def equal_window(model: Model, setting: Setting, repeats: int) -> dict:
    """Seconds per block for our K steps and each reference sampler, on one window of C + B + L frames."""
    frames = setting.session().window
    rng = np.random.default_rng(0)
    model.warm_up(frames=frames, steps=setting.steps)
    out: dict[str, float] = {"ours": 0.0, **{s: 0.0 for s in SAMPLERS}}
    for name in MODELS:
        noise, cond = _inputs(model, name, frames, rng)
        reference_sample(model, name, "ddim50", noise, cond, rng)  # warm the step graph at this shape
        out["ours"] += float(np.median([_time(lambda: model.sample(name, noise, cond, setting.steps))  # noqa: B023
                                        for _ in range(repeats)]))  # fmt: skip
        for s in SAMPLERS:
            out[s] += _time(lambda: reference_sample(model, name, s, noise, cond, rng))  # noqa: B023
    model.timings.clear()
    return {"frames": frames, "ours_ms": 1000 * out["ours"], **{f"{s}_ms": 1000 * out[s] for s in SAMPLERS},
            **{f"speedup_{s}": out[s] / out["ours"] for s in SAMPLERS}}  # fmt: skip


def whole_clip(model: Model, frames: int, ours_seconds: float, audio_seconds: float) -> dict:
    """Seconds for each reference sampler over the whole clip in one pass vs our streaming sampling of it."""
    rng = np.random.default_rng(0)
    out: dict[str, float] = {s: 0.0 for s in SAMPLERS}
    for name in MODELS:
        noise, cond = _inputs(model, name, frames, rng)
        model.bundle.graph(f"{name}_step").run({"x": noise, "t": np.zeros(noise.shape[0], np.int64), **cond})
        for s in SAMPLERS:
            out[s] += _time(lambda: reference_sample(model, name, s, noise, cond, rng))  # noqa: B023
    return {"frames": frames, "audio_seconds": audio_seconds, "ours_seconds": ours_seconds,
            "ours_rtf": ours_seconds / audio_seconds,
            **{f"{s}_seconds": out[s] for s in SAMPLERS}, **{f"{s}_rtf": out[s] / audio_seconds for s in SAMPLERS},
            **{f"speedup_{s}": out[s] / ours_seconds for s in SAMPLERS}}  # fmt: skip


def run_reference(model: Model, setting: Setting, compute_row: dict, repeats: int) -> dict:
    """Both comparisons at ``setting``; ``compute_row`` is the compute run of that setting (same clip)."""
    frames = int(np.ceil(compute_row["audio_seconds"] * FPS - 1e-9))
    window = equal_window(model, setting, repeats)
    clip = whole_clip(model, frames, compute_row["sampling_seconds"], compute_row["audio_seconds"])
    log.info("reference at %s: window speed-up x%.1f (DDIM 50), x%.1f (DDPM 150); whole clip x%.1f, x%.1f",
             setting.label, window["speedup_ddim50"], window["speedup_ddpm150"], clip["speedup_ddim50"],
             clip["speedup_ddpm150"])  # fmt: skip
    return {"setting": setting.to_dict(), "label": setting.label, "equal_window": window, "whole_clip": clip}
