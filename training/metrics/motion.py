"""Body motion measured the way an animator looks at it (issue 13): how fast the hands, elbows, head and hips move,
speaking against listening, how often a hand strikes, and how the hand speeds spread compared with the data.

Units. Speeds are in **body heights per second**: joint speed in the root's heading frame (the body's own frame:
root ground point at the origin, yaw removed, so walking and turning in place do not count as gesturing) divided by
the skeleton's height (the vertical extent of its joints in the rest pose, about 0.93 of stature since the Head
joint is below the crown). That makes a 1.5 m and a 1.9 m person, and a foreign BVH, comparable.

- group speed: mean over the group's joints of the per-frame speed (``training.metrics.body.joint_speed``:
  central differences), averaged over frames: wrists, elbows, head, hips.
- speaking / listening: the same mean over the frames where the person's voice is active / inactive.
- stroke rate: gesture strokes per minute = peaks of the faster wrist's speed (Gaussian-smoothed, sigma 2 frames) with
  a prominence of at least ``STROKE_PROMINENCE`` and at least ``STROKE_GAP`` apart. A hand moving x = A sin(2 pi f t)
  has speed |A 2 pi f cos(2 pi f t)|: 2 f strokes a second.
- energy ratio: generated mean wrist speed / ground truth mean wrist speed.
- hand-speed W1: 1-D Wasserstein distance between the per-frame wrist speed distributions (body heights/s).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks
from scipy.stats import wasserstein_distance

from runtime.constants import FPS
from runtime.motion.skeleton import Skeleton
from training.metrics.body import joint_speed

GROUPS = {  # joint-name patterns of our skeleton (Mixamo-like) and common foreign ones (Bandai Namco, SMPL)
    "wrists": r"^(Left|Right)Hand$|^Hand_[LR]$|wrist",
    "elbows": r"^(Left|Right)ForeArm$|^LowerArm_[LR]$|elbow",
    "head": r"^Head$|^head$",
    "hips": r"^Hips$|^pelvis$",
}
STROKE_PROMINENCE = 0.05  # body heights/s a wrist speed peak must rise above its surroundings to be a stroke
STROKE_GAP = 0.2  # s: two strokes of one hand are at least this far apart
STROKE_SIGMA = 2.0  # frames of smoothing before peak picking (capture noise and jitter are not strokes)
HIST_KEEP = 20_000  # wrist speed samples kept per row for the distribution distance (a stride, not random)


def group_joints(names: list[str] | tuple[str, ...]) -> dict[str, np.ndarray]:
    """Indices of each group's joints in ``names``; ValueError naming a group no joint matches."""
    out = {}
    for group, pattern in GROUPS.items():
        idx = [i for i, n in enumerate(names) if re.search(pattern, n)]
        if not idx:
            raise ValueError(f"no joint of group {group!r} (pattern {pattern!r}) among {list(names)}")
        out[group] = np.array(idx)
    return out


def body_height(skeleton: Skeleton, up: int = 1) -> float:
    """Vertical extent (skeleton units) of the joints in the rest pose (all rotations zero)."""
    rest = np.zeros((skeleton.n_joints, 3))
    for j, p in enumerate(skeleton.parents):
        rest[j] = np.asarray(skeleton.offsets[j], np.float64) + (rest[p] if p >= 0 else 0.0)
    return float(np.ptp(rest[:, up]))


def group_speeds(local: np.ndarray, groups: dict[str, np.ndarray], height: float, fps: float = FPS
                 ) -> dict[str, np.ndarray]:  # fmt: skip
    """(F, J, 3) heading-frame positions -> per group (F,) speed in body heights/s (mean over the group's joints);
    ``wrists`` also keeps both hands apart as ``wrists_each`` (F, 2)."""
    speed = joint_speed(local, fps) / height
    out = {g: speed[:, idx].mean(axis=1) for g, idx in groups.items()}
    out["wrists_each"] = speed[:, groups["wrists"]]
    return out


def strokes(wrists_each: np.ndarray, fps: float = FPS) -> int:
    """Gesture strokes: speed peaks of the faster hand (F, H) -> count (definition in the module docstring)."""
    if len(wrists_each) < 3:
        return 0
    s = gaussian_filter1d(np.max(np.atleast_2d(wrists_each.T).T, axis=1), STROKE_SIGMA, mode="nearest")
    peaks, _ = find_peaks(s, prominence=STROKE_PROMINENCE, distance=max(1, int(round(STROKE_GAP * fps))))
    return len(peaks)


def hand_speed_distance(generated: np.ndarray, reference: np.ndarray) -> float:
    """1-D Wasserstein distance between two sets of wrist speeds (body heights/s)."""
    if not len(generated) or not len(reference):
        return float("nan")
    return float(wasserstein_distance(generated, reference))


def _ratio(a: float, b: float) -> float:
    return a / b if b and np.isfinite(b) else float("nan")


@dataclass
class MotionStats:
    """Animator's figures of one row, accumulated over people and clips."""

    fps: float = FPS
    sums: dict = field(default_factory=dict)  # (group, "all" | "speaking" | "listening") -> [sum, frames]
    stroke_count: int = 0
    frames: int = 0
    wrists: list = field(default_factory=list)  # per-frame wrist speeds (F,), one array per person and clip

    def add(self, local: np.ndarray, groups: dict[str, np.ndarray], height: float, active: np.ndarray | None = None
            ) -> None:  # fmt: skip
        """One person's motion: (F, J, 3) heading-frame positions, ``active`` (F,) bool = the person speaks."""
        speeds = group_speeds(local, groups, height, self.fps)
        n = len(local)
        masks = {"all": np.ones(n, bool)}
        if active is not None:
            act = np.zeros(n, bool)
            act[: min(n, len(active))] = np.asarray(active[:n], bool)
            masks |= {"speaking": act, "listening": ~act}
        for g in groups:
            for part, mask in masks.items():
                acc = self.sums.setdefault((g, part), [0.0, 0])
                acc[0] += float(speeds[g][mask].sum())
                acc[1] += int(mask.sum())
        self.stroke_count += strokes(speeds["wrists_each"], self.fps)
        self.frames += n
        self.wrists.append(speeds["wrists"].astype(np.float32))

    def mean(self, group: str, part: str = "all") -> float:
        total, n = self.sums.get((group, part), (0.0, 0))
        return total / n if n else float("nan")

    def wrist_samples(self) -> np.ndarray:
        w = np.concatenate(self.wrists) if self.wrists else np.zeros(0, np.float32)
        return w[:: max(1, len(w) // HIST_KEEP)]

    def result(self, truth: MotionStats | None = None) -> dict[str, float]:
        out = {f"{g}_speed": self.mean(g) for g in GROUPS}
        for g in ("wrists", "head"):
            out[f"{g}_speaking"], out[f"{g}_listening"] = self.mean(g, "speaking"), self.mean(g, "listening")
        out["speaking_listening_ratio"] = _ratio(out["wrists_speaking"], out["wrists_listening"])
        out["strokes_per_min"] = self.stroke_count / (self.frames / self.fps / 60) if self.frames else float("nan")
        if truth is not None:
            out["energy_ratio"] = _ratio(out["wrists_speed"], truth.mean("wrists"))
            out["hand_speed_w1"] = hand_speed_distance(self.wrist_samples(), truth.wrist_samples())
        return out


DEFINITIONS = {
    "wrists_speed": "mean wrist speed, heading frame, body heights/s (also elbows, head, hips)",
    "wrists_speaking": "mean wrist speed on frames where the person speaks (listening: where not)",
    "speaking_listening_ratio": "wrists_speaking / wrists_listening",
    "strokes_per_min": f"peaks of the faster wrist's speed, prominence >= {STROKE_PROMINENCE} body heights/s, "
    f">= {STROKE_GAP} s apart",
    "energy_ratio": "generated / ground-truth mean wrist speed",
    "hand_speed_w1": "Wasserstein-1 distance of per-frame wrist speeds to the ground truth's (body heights/s)",
}
