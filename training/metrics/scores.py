"""Body metrics of one evaluation row, accumulated over clips and samples and pooled as audio2photoreal pools."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from runtime.constants import FPS
from training.metrics import body as bm
from training.metrics import motion as mo

log = logging.getLogger("training.evaluate")


@dataclass
class BodyContext:
    """What every body row is scored with, from the ground truth and the skeleton."""

    onsets: list[tuple[np.ndarray, np.ndarray]]  # per clip, per person: speech onsets (s from the trimmed start)
    mean_speed: np.ndarray  # (J,) mean heading-frame joint speed of the ground truth (EMAGE's BC normaliser)
    upper: np.ndarray  # BC joints
    feet: np.ndarray  # foot-skating joints
    standing: float | None  # rest hip height (m) for the action heuristic
    active: list[tuple[np.ndarray, np.ndarray]]  # per clip, per person: (F,) bool voice activity
    groups: dict[str, np.ndarray]  # joint groups of the animator's figures (training.metrics.motion)
    height: float  # body height (m) the speeds are divided by


class BodyScores:
    """One row's body metrics, accumulated over clips (each with S samples) and pooled as audio2photoreal pools."""

    def __init__(self, ctx: BodyContext) -> None:
        self.ctx = ctx
        self.g: bm.Moments | None = None  # per-frame pose vectors (FID_g)
        self.k: bm.Moments | None = None  # their first differences (FID_k)
        self.pool: list[np.ndarray] = []  # pose vectors (Div_g)
        self.div_k: list[float] = []
        self.div_s: list[tuple[float, int]] = []  # (value, frames)
        self.bc: list[tuple[float, int]] = []
        self.sums = {"skate": [0.0, 0], "jerk": [0.0, 0], "action": [0, 0]}  # (sum, count)
        self.distance: list[np.ndarray] = []  # m
        self.facing: list[np.ndarray] = []  # degrees
        self.motion = mo.MotionStats()

    def add(self, index: int, labels: np.ndarray, samples: list[bm.Pair]) -> None:
        ctx = self.ctx
        vectors = [[m.pose_vectors() for m in pair] for pair in samples]  # S x 2 x (F, D) cm
        for pair, vecs in zip(samples, vectors, strict=True):
            for p, (m, v) in enumerate(zip(pair, vecs, strict=True)):
                if self.g is None:
                    self.g, self.k = bm.Moments(v.shape[1]), bm.Moments(v.shape[1])
                self.g.add(v)
                self.k.add(np.diff(v, axis=0))
                self.pool.append(v)
                self.div_k += [bm.temporal_variance(v[seg]) for seg in bm.segments(len(v))]
                for key, (total, count) in (("skate", bm.foot_skating(m.world, ctx.feet)), ("jerk", bm.jerk(m.world)),
                                            ("action", bm.action_agreement(m.world[:, m.root], labels[p], FPS,
                                                                           ctx.standing))):  # fmt: skip
                    self.sums[key][0] += total
                    self.sums[key][1] += count
                self.motion.add(m.local, ctx.groups, ctx.height, ctx.active[index][p])
                bc = bm.beat_consistency(m.local, ctx.upper, ctx.onsets[index][p], ctx.mean_speed)
                if np.isfinite(bc):
                    self.bc.append((bc, len(v) - 2 * int(round(bm.BC_TRIM * FPS))))
            a, b = pair
            self.distance.append(bm.pair_distance(a.root_xz, b.root_xz))
            self.facing += [bm.facing_angle(a.root_xz, a.yaw, b.root_xz), bm.facing_angle(b.root_xz, b.yaw, a.root_xz)]
        if len(samples) >= 2:
            for p in (0, 1):
                self.div_s.append((bm.sample_variance(np.stack([v[p] for v in vectors])), len(vectors[0][p])))

    def result(self, truth: BodyScores, seed: int) -> dict[str, float]:
        def weighted(items: list[tuple[float, int]]) -> float:
            return sum(v * n for v, n in items) / sum(n for _, n in items) if items else float("nan")

        def safe_fid(gen: bm.Moments, gt: bm.Moments) -> float:
            try:
                return bm.fid(gen, gt)
            except ValueError as e:
                log.warning("FID undefined: %s", e)
                return float("nan")

        pool, sums = np.concatenate(self.pool), {k: v[0] / max(1, v[1]) for k, v in self.sums.items()}
        distance, facing = np.concatenate(self.distance), np.concatenate(self.facing)
        return {"fid_g": safe_fid(self.g, truth.g), "fid_k": safe_fid(self.k, truth.k),
                "div_g": bm.diversity(pool, rng=np.random.default_rng(seed)),
                "div_g_pairs": min(bm.DIVERSITY_PAIRS, len(pool)), "div_k": float(np.mean(self.div_k)),
                "div_sample": weighted(self.div_s), "beat_consistency": weighted(self.bc),
                "foot_skating": sums["skate"],
                "foot_contact_fraction": self.sums["skate"][1] / max(1, len(pool) * len(self.ctx.feet)),
                "jerk": sums["jerk"], "action_agreement": sums["action"],
                "distance_w1": bm.distribution_distance(distance, np.concatenate(truth.distance)),
                "facing_w1": bm.distribution_distance(facing, np.concatenate(truth.facing)),
                "distance_mean": float(distance.mean()), "facing_mean": float(facing.mean()),
                **self.motion.result(truth.motion)}  # fmt: skip
