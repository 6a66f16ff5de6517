"""Weights-only checkpoints behind the ``runtime.model.Model`` surface, so evaluation runs the real streaming engine.

``runtime.engine.stream.Engine`` calls only ``model.sample(name, noise, conditions, steps)`` (names ``body_lower``,
``body_upper``, ``face``), ``normalise`` / ``denormalise``, ``dims``, ``poser``, ``bundle.styles``, ``bundle.name``
and ``timings``. ``CheckpointModel`` provides them on top of ``training.tasks.Task`` networks (torch), sampling
with the same ``runtime.model.sampling.sample_ddim`` the bundle's graphs use; a network the checkpoints lack returns
zeros (the training mean once denormalised). ``GroundTruthBody`` replaces the body networks of any such model by
the real motion of a clip (face evaluation: the faces' facing flags then come from the real bodies).
``run_engine`` streams a clip's two microphones through an engine, so evaluation never re-implements windowing.
Also here: the other sources of evaluated motion, offline whole-clip sampling and the simple baselines.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from runtime.constants import ACTIONS, FPS, SAMPLE_RATE
from runtime.engine.frames import Frames
from runtime.engine.settings import SessionSettings
from runtime.engine.stream import Engine
from runtime.formats.arkit import INDEX
from runtime.model.model import Model
from runtime.motion.posing import Poser
from runtime.motion.root import MotionLayout
from runtime.motion.skeleton import Skeleton
from training.config import Experiment, TrainConfig
from training.models.body import as_served
from training.tasks import Task

log = logging.getLogger(__name__)

CHUNK_SECONDS = 0.1  # audio pushed per speaker per call, as a microphone client would (100 ms)
NORMALISED = ("mel", "face", "lower", "upper")


@dataclass(frozen=True)
class BundleInfo:
    """The part of ``runtime.model.bundle.Bundle`` the engine reads."""

    name: str
    styles: list[str]
    defaults: dict = field(default_factory=dict)
    alive: dict = field(default_factory=dict)  # living-face layer parameters; {} = AliveParams' defaults


def load_task(ckpt: dict) -> Task:
    """The checkpoint's networks in eval mode; the training config it stores decides e.g. regression sampling."""
    stored = (ckpt["meta"].get("train") or {}).get("config") or {}
    known = {f.name for f in fields(TrainConfig)}
    exp = Experiment(model=ckpt["kind"], train=TrainConfig(**{k: v for k, v in stored.items() if k in known}))
    task = Task(exp, ckpt["model_config"])
    task.load_net_state(ckpt["state_dict"])
    for m in task.models.values():  # served as export serves them (voice guidance where the config asks for it)
        m.net = as_served(m.net)
    return task.eval()


class CheckpointModel:
    """One or more checkpoints (e.g. a face and a body one, trained on the same corpus) as one engine model."""

    def __init__(self, checkpoints: list[dict], name: str = "") -> None:
        if not checkpoints:
            raise ValueError("CheckpointModel needs at least one checkpoint")
        meta = checkpoints[0]["meta"]
        self.tasks = {c["kind"]: load_task(c) for c in checkpoints}
        self.nets = {n: m for t in self.tasks.values() for n, m in t.models.items()}
        missing = [k for k in NORMALISED if k not in meta["stats"]]
        if missing:
            raise ValueError(f"checkpoint meta lacks normalisation statistics for {missing}")
        self.stats = {k: (np.asarray(v["mean"], np.float32), np.asarray(v["std"], np.float32))
                      for k, v in meta["stats"].items() if k in NORMALISED}  # fmt: skip
        self.dims = {k: len(v[0]) for k, v in self.stats.items()}
        self.poser = Poser(Skeleton.from_dict(meta["skeleton"]), MotionLayout.from_dict(meta["layout"]))
        self.bundle = BundleInfo(name or "+".join(self.tasks), list(meta["styles"]))
        self.timings: dict[str, list[float]] = defaultdict(list)

    normalise = Model.normalise  # the same arithmetic over the same ``stats`` layout as the runtime's
    denormalise = Model.denormalise

    def sample(self, model: str, noise: np.ndarray, conditions: dict[str, np.ndarray], steps: int) -> np.ndarray:
        """Deterministic DDIM in ``steps`` steps from ``noise`` (B, T, D) -> x0 (normalised), as ``Model.sample``."""
        t0 = time.perf_counter()
        if model not in self.nets:
            if model.startswith("body") and "body_single" in self.nets:
                raise ValueError("a body_single checkpoint cannot run in the engine (its lower-body call has no upper "
                                 "context); evaluate it offline")  # fmt: skip
            out = np.zeros_like(noise)
        else:
            cond = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in conditions.items()
                    if k not in ("context", "context_mask")}  # fmt: skip
            with torch.no_grad():
                out = self.nets[model].sample(cond, torch.from_numpy(np.ascontiguousarray(noise)), steps,
                                              torch.from_numpy(conditions["context"]),
                                              torch.from_numpy(conditions["context_mask"])).numpy()  # fmt: skip
        self.timings[model].append(time.perf_counter() - t0)
        return out

    def generate(self, kind: str, batch: dict[str, np.ndarray], noise: dict[str, np.ndarray], steps: int
                 ) -> dict[str, np.ndarray]:  # fmt: skip
        """Offline: one pass over whole sequences through ``Task.sample`` (no context). ``batch`` holds the task's
        normalised conditions (face: mel_self, mel_partner, style, facing; body: mel_a, mel_b, actions, placement);
        ``noise`` maps x0 (face) or lower, upper (body) to (B, T, D). Returns the same names, normalised."""
        if kind not in self.tasks:
            raise ValueError(f"no {kind!r} checkpoint loaded (have {', '.join(self.tasks)})")
        t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}
        first = next(iter(noise.values()))
        t["context_mask"] = torch.zeros(first.shape[0], first.shape[1], 1)
        out = self.tasks[kind].sample(t, steps, {k: torch.from_numpy(v) for k, v in noise.items()})
        return {k: v.numpy() for k, v in out.items()}


class GroundTruthBody:
    """A model whose body networks return a clip's real motion for the engine's current window.

    The window of the i-th step starts at frame i * block - context (the engine commits ``block`` frames per step;
    ``degrade`` must be off so blocks never change). Frames outside the clip repeat its first / last frame.
    """

    def __init__(self, model, lower: np.ndarray, upper: np.ndarray, settings: SessionSettings) -> None:
        if settings.degrade:
            raise ValueError("GroundTruthBody needs SessionSettings(degrade=False): it tracks fixed-size blocks")
        self.model, self.settings = model, settings
        self.body = {"body_lower": model.normalise("lower", lower), "body_upper": model.normalise("upper", upper)}
        self.steps_run = 0

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def sample(self, model: str, noise: np.ndarray, conditions: dict[str, np.ndarray], steps: int) -> np.ndarray:
        if model not in self.body:
            return self.model.sample(model, noise, conditions, steps)
        if model == "body_lower":
            self.steps_run += 1
        s = self.settings
        start = (self.steps_run - 1) * s.block - s.context
        rows = np.clip(np.arange(start, start + noise.shape[1]), 0, len(self.body[model]) - 1)
        return self.body[model][rows][None]


def stream_faces(model, audio: tuple[np.ndarray, np.ndarray], body: np.ndarray, settings: SessionSettings
                 ) -> np.ndarray:  # fmt: skip
    """(2, F, 52) weights streamed by the engine with the body networks replaced by the real (2, F, D) bodies."""
    lower, upper = model.poser.join(body[0], body[1])
    frames, _ = run_engine(GroundTruthBody(model, lower, upper, settings), audio, settings)
    return np.stack([frames.people[p].blendshapes[: body.shape[1]] for p in (0, 1)])


def offline_faces(model: CheckpointModel, mel: np.ndarray, style: np.ndarray, facing: np.ndarray, steps: int,
                  rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """(2, F, 52) weights in one pass over whole sequences: raw log-mel (2, F, 80) of A and B, style ids (2,),
    facing flags (2, F); row p is person p (own microphone mel[p], partner's mel[1 - p])."""
    m = model.normalise("mel", mel)
    batch = {"mel_self": m, "mel_partner": m[::-1].copy(), "style": np.asarray(style, np.int64),
             "facing": np.asarray(facing, np.float32)[..., None]}  # fmt: skip
    noise = {"x0": rng.standard_normal((2, mel.shape[1], model.dims["face"])).astype(np.float32)}
    return np.clip(model.denormalise("face", model.generate("face", batch, noise, steps)["x0"]), 0.0, 1.0)


def stream_bodies(model, audio: tuple[np.ndarray, np.ndarray], actions: np.ndarray, settings: SessionSettings
                  ) -> list[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """Per person (joint rotations (F, J, 4) wxyz, root positions (F, 3) m) streamed by the engine; ``actions``
    (2, F) become per-frame controls (the settings' ``actions`` should hold frame 0's)."""
    frames, _ = run_engine(model, audio, settings, actions=actions)
    n = actions.shape[1]
    return [(frames.people[p].joint_rotations[:n], frames.people[p].root_position[:n]) for p in (0, 1)]


def offline_bodies(model: CheckpointModel, mel: np.ndarray, actions: np.ndarray, placement: np.ndarray, steps: int,
                   rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """(2, F, D) per-person features in one pass: raw log-mel (2, F, 80), actions (2, F), placement (4,) of B seen
    from A at frame 0. Runs the hierarchical pair (``body``) or the single network (``body_single``)."""
    m = model.normalise("mel", mel)
    batch = {"mel_a": m[:1], "mel_b": m[1:], "actions": np.asarray(actions, np.int64).T[None],
             "placement": np.asarray(placement, np.float32)[None]}  # fmt: skip
    noise = {k: rng.standard_normal((1, mel.shape[1], model.dims[k])).astype(np.float32) for k in ("lower", "upper")}
    out = model.generate("body" if "body" in model.tasks else "body_single", batch, noise, steps)
    a, b = model.poser.split(model.denormalise("lower", out["lower"][0]), model.denormalise("upper", out["upper"][0]))
    return np.stack([a, b])


def mean_face(model, n: int) -> np.ndarray:
    """Baseline (2, n, 52): the training mean face on every frame."""
    mean = np.clip(model.stats["face"][0], 0.0, 1.0)
    return np.broadcast_to(mean, (2, n, len(mean))).copy()


def energy_jaw(model, mel: np.ndarray) -> np.ndarray:
    """Baseline (2, F, 52) from raw log-mel (2, F, 80): jawOpen = e x (mean + 2 std of the training jawOpen), e = the
    own microphone's mean log-mel mapped from its 5th..95th percentile over the clip to 0..1; the rest at the mean."""
    out = mean_face(model, mel.shape[1])
    j = INDEX["jawOpen"]
    mean, std = model.stats["face"][0][j], model.stats["face"][1][j]
    energy = mel.mean(axis=2)  # (2, F) natural-log power
    lo, hi = np.percentile(energy, 5, axis=1, keepdims=True), np.percentile(energy, 95, axis=1, keepdims=True)
    out[..., j] = np.clip((energy - lo) / np.maximum(hi - lo, 1e-6), 0.0, 1.0) * (mean + 2 * std)
    return np.clip(out, 0.0, 1.0)


def mean_pose(model, n: int) -> np.ndarray:
    """Baseline (2, n, D): the training mean features of each person (mean pose, mean root deltas)."""
    zeros = {k: np.zeros((n, model.dims[k]), np.float32) for k in ("lower", "upper")}
    a, b = model.poser.split(model.denormalise("lower", zeros["lower"]), model.denormalise("upper", zeros["upper"]))
    return np.stack([a, b])


def random_real(train: list, n: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Baseline: a real pair's (2, n, D) features from a random training sequence (``SeqArrays``) and window, with
    its own initial placement (x, z, yaw); the longest sequence, repeated, when none is n frames long."""
    long = [s for s in train if s.n_frames >= n] or [max(train, key=lambda s: s.n_frames)]
    s = long[int(rng.integers(len(long)))]
    reps = -(-n // s.n_frames)
    start = int(rng.integers(s.n_frames * reps - n + 1))
    x, z, c, si = (float(v) for v in s.placement[0, start % s.n_frames])
    return np.concatenate([s.body] * reps, axis=1)[:, start : start + n], (x, z, float(np.arctan2(si, c)))


def action_controls(labels: np.ndarray) -> list[tuple[float, str]]:
    """(F,) action ids -> [(time s, action name)] at every change after frame 0 (for ``Engine.control``)."""
    change = np.flatnonzero(np.diff(labels)) + 1
    return [(i / FPS, ACTIONS[int(labels[i])]) for i in change]


def run_engine(model, audio: tuple[np.ndarray, np.ndarray], settings: SessionSettings,
               actions: np.ndarray | None = None) -> tuple[Frames, float]:  # fmt: skip
    """Stream two 16 kHz microphones through a fresh engine in CHUNK_SECONDS chunks, stepping after every chunk, then
    flush. ``actions`` (2, F) per-frame labels become controls at their change times. Returns (frames, seconds)."""
    t0 = time.perf_counter()
    engine = Engine(model, settings)
    if actions is not None:
        for p in (0, 1):
            for at, name in action_controls(actions[p]):
                engine.control(p, at, action=name)
    chunk = int(CHUNK_SECONDS * SAMPLE_RATE)
    out = []
    for start in range(0, max(len(audio[0]), len(audio[1])), chunk):
        for p in (0, 1):
            piece = audio[p][start : start + chunk]
            if len(piece):
                engine.push_audio(p, piece)
        while (frames := engine.step()) is not None:
            out.append(frames)
    tail = engine.flush()
    if tail is not None:
        out.append(tail)
    return Frames.concat(out), time.perf_counter() - t0
