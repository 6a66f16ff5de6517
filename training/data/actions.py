"""Per-frame {sit, walk, stand} labels from the hips' trajectory (paper 4.2: "we compute the action mode in a
heuristic way and assign a label among {sit, walk, stand} to each frame").

The rule, on the Hips joint's world position (metres, Y up, floor at y = 0 as mocap stages calibrate it):

1. **sit** where the (median-smoothed) hip height is below ``SIT_FRACTION`` of the standing hip height;
2. else **walk** where the hips' horizontal speed, measured as displacement over a centred ``SPEED_WINDOW_S``
   window, exceeds ``WALK_SPEED``;
3. else **stand**;
4. label runs shorter than ``MIN_SEGMENT_S`` are absorbed by their longer neighbour.

The standing hip height comes from the skeleton (rest-pose hips above the feet) when known, otherwise from a high
percentile of the take's own hip heights. Index order is ``runtime.constants.ACTIONS``.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.ndimage import median_filter

from runtime.constants import ACTIONS
from runtime.motion.clip import BvhClip
from runtime.motion.kinematics import clip_pose
from runtime.motion.skeleton import Skeleton

log = logging.getLogger(__name__)

SIT, WALK, STAND = (ACTIONS.index(a) for a in ("sit", "walk", "stand"))  # 0, 1, 2

# Seated hips are at 55-65 % of the standing hip height (seat 45-55 cm + pelvis over the seat, vs ~0.93 m standing
# for a 1.75 m adult), so 0.8 is about halfway between the two postures: a sit-down or get-up crosses it near its
# temporal midpoint. Squats and deep bows are the cases it gets wrong.
SIT_FRACTION = 0.8
# Walking moves the hips at 0.8-1.6 m/s; standing sway and gesturing at < 0.15 m/s. Sitting down or getting up moves
# the hips back/forward by 0.3-0.45 m, which stays below 0.45 m/s once averaged over a 1 s window, so the window
# keeps those (and turning on the spot) out of "walk" while a walk's start/stop still crosses 0.4 m/s near its
# midpoint (half of a typical walking speed).
WALK_SPEED = 0.4  # m/s
SPEED_WINDOW_S = 1.0
HEIGHT_FILTER_S = 0.3  # median filter on hip height: rejects marker dropouts and single-frame spikes
MIN_SEGMENT_S = 0.4  # no real sit/walk/stand bout is shorter; shorter runs are flicker at a threshold
UPRIGHT_FRACTION = 0.6  # rest hips above the toes / bone length hips -> toes: 0.82 for a T-pose (the foot is flat)
STANDING_PERCENTILE = 90.0  # of the take's hip heights, when no skeleton tells the standing height (assumes the
#   person is upright for at least 10 % of the take)


def rest_hip_height(skeleton: Skeleton, hips: int | None = None) -> float | None:
    """Standing hip height from the rest pose (source units), or None if the rest pose is not upright.

    The height is the Hips joint above the lowest tip (End Site or childless joint) under it (an extra root above
    the hips, at the origin, is not counted): the straight-leg hip height measured to the toes, for a T-pose or
    A-pose skeleton (real standing is ~1-2 % lower: soft knees). Some rigs (e.g. Bandai Namco's) have a rest pose
    with every bone along X; when the hips are less than ``UPRIGHT_FRACTION`` of the bone chain from the hips to
    that tip above it, the rest pose says nothing about standing and None is returned.
    """
    hips = hips_index(skeleton) if hips is None else hips
    n = skeleton.n_joints
    pos = np.zeros((n, 3))
    chain = np.zeros(n)  # bone length from the hips down to each joint
    below = np.zeros(n, dtype=bool)  # the hips and everything under them
    for j, p in enumerate(skeleton.parents):
        pos[j] = skeleton.offsets[j] + (pos[p] if p >= 0 else 0.0)
        below[j] = j == hips or (p >= 0 and below[p])
        if below[j] and j != hips:
            chain[j] = chain[p] + float(np.linalg.norm(skeleton.offsets[j]))
    leaf = below.copy()
    leaf[[p for p in skeleton.parents if p >= 0]] = False
    tips = [(pos[j, 1], chain[j]) for j in np.flatnonzero(leaf)]  # (height, bone length from the hips)
    tips += [(pos[j, 1] + o[1], chain[j] + np.linalg.norm(o)) for j, o in skeleton.end_sites.items() if below[j]]
    lowest_y, lowest_chain = min(tips)  # the toes, in any standing rest pose
    height = float(pos[hips, 1] - lowest_y)
    return height if height >= UPRIGHT_FRACTION * lowest_chain else None


def hips_index(skeleton: Skeleton) -> int:
    """The Hips / pelvis joint: by name (``Hips``, ``*:Hips``, ``pelvis``), else the first joint with positions."""
    for j, name in enumerate(skeleton.names):
        base = name.split(":")[-1].lower()
        if base in ("hips", "hip", "pelvis"):
            return j
    for j in range(skeleton.n_joints):
        if skeleton.has_position(j):
            return j
    raise ValueError("skeleton has no joint named Hips/pelvis and no joint with position channels")


def _runs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index and length of each run of equal labels."""
    change = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [len(labels)]]))
    return starts, lengths


def _absorb_short_runs(labels: np.ndarray, min_len: int) -> np.ndarray:
    """Relabel runs shorter than ``min_len`` frames with their longer neighbour's label, shortest first."""
    labels = labels.copy()
    while True:
        starts, lengths = _runs(labels)
        if len(starts) < 2:
            return labels
        short = np.flatnonzero(lengths < min_len)
        if short.size == 0:
            return labels
        r = short[np.argmin(lengths[short])]
        before = lengths[r - 1] if r > 0 else -1
        after = lengths[r + 1] if r + 1 < len(starts) else -1
        source = r - 1 if before >= after else r + 1
        labels[starts[r] : starts[r] + lengths[r]] = labels[starts[source]]


def label_actions(hip_positions: np.ndarray, fps: float, standing_hip_height: float | None = None) -> np.ndarray:
    """(F,) int8 action per frame (0 sit, 1 walk, 2 stand) from (F, 3) Hips world positions in metres, Y up.

    ``standing_hip_height`` (m above the floor) comes from the skeleton when known (:func:`rest_hip_height`);
    otherwise the take's ``STANDING_PERCENTILE``-th percentile hip height is used.
    """
    hips = np.asarray(hip_positions, dtype=np.float64)
    if hips.ndim != 2 or hips.shape[1] != 3:
        raise ValueError(f"hip_positions must be (F, 3) metres, got shape {hips.shape}")
    if not np.all(np.isfinite(hips)):
        raise ValueError("hip_positions contains NaN or inf")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    n = len(hips)
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    height = median_filter(hips[:, 1], size=max(1, int(round(HEIGHT_FILTER_S * fps))) | 1, mode="nearest")
    if standing_hip_height is None:
        standing_hip_height = float(np.percentile(height, STANDING_PERCENTILE))
    if not 0.3 < standing_hip_height < 2.0:
        raise ValueError(
            f"standing hip height {standing_hip_height:.3f} m is not a human's; are the positions in metres "
            "with Y up and the floor at y = 0?"
        )
    half = max(1, int(round(SPEED_WINDOW_S * fps / 2)))
    idx = np.arange(n)
    ahead, behind = np.minimum(idx + half, n - 1), np.maximum(idx - half, 0)
    span = np.maximum(ahead - behind, 1) / fps  # s, shorter at the ends of the take
    speed = np.linalg.norm(hips[ahead][:, [0, 2]] - hips[behind][:, [0, 2]], axis=1) / span  # m/s

    labels = np.full(n, STAND, dtype=np.int8)
    labels[speed > WALK_SPEED] = WALK
    labels[height < SIT_FRACTION * standing_hip_height] = SIT
    return _absorb_short_runs(labels, max(1, int(round(MIN_SEGMENT_S * fps))))


def label_clip(clip: BvhClip) -> np.ndarray:
    """(F,) int8 action labels of a BVH clip: its Hips trajectory through :func:`label_actions`, with the standing
    height from the skeleton's rest pose when that is upright (else from the take). Centimetre files are converted
    (``BvhClip.to_metres``)."""
    clip = clip.to_metres()
    hips = clip_pose(clip).positions[:, hips_index(clip.skeleton)]  # (F, 3) m, world
    return label_actions(hips, clip.fps, rest_hip_height(clip.skeleton))
