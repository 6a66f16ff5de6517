"""Body metrics (paper 5.2, DESIGN 10): audio2photoreal's FID/diversity, EMAGE's beat consistency, physical checks,
action-label agreement and the pair's interaction geometry.

Pose space. Every metric works on joint positions from forward kinematics of what the engine emits (local joint
quaternions + root position, ``runtime.motion.posing.Posed``),
so a model, a baseline and the ground truth are all measured
the same way. FID and diversity use **joint positions in the root's heading frame** (origin on the ground under the
root, yaw removed; Y up; centimetres), not the rotation features: positions are in one unit for every joint, have
no exp-map wrap-around at pi, and ignore where the pair stands and which way it faces, which the interaction
metrics measure separately. The root's own heading-frame x and z are identically 0 and are left out.

Sources:
- audio2photoreal ``utils/eval.py`` (Ng et al. 2024): Frechet distance, FID_g / FID_k, Div_g (``var_g``), Div_k
  (``var_k``), Div_sample (``cross var``).
- EMAGE ``scripts/EMAGE_2024/utils/metric.py`` (``alignment``) and ``emage_trainer.py``: beat consistency (BC).
- LDA (Alexanderson et al. 2023): jerk; foot skating as in the locomotion literature (speed of a foot in contact).
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import linalg
from scipy.signal import argrelextrema
from scipy.spatial.transform import Rotation
from scipy.stats import wasserstein_distance

from runtime.constants import FPS, SAMPLE_RATE
from runtime.formats.arkit import N_BLENDSHAPES
from runtime.motion.posing import Poser
from runtime.motion.root import MotionLayout, forward_kinematics, heading
from runtime.motion.skeleton import Skeleton
from training.data.actions import label_actions

log = logging.getLogger(__name__)

CM = 100.0  # metres -> centimetres: pose vectors for FID / diversity are in cm (so FID is in cm^2)
DIVERSITY_PAIRS = 10_000  # audio2photoreal calculate_diversity: 10,000 random frame pairs
SEGMENT = 600  # frames: audio2photoreal's test clip length T (20 s), the span Div_k's variance is taken over
BC_SIGMA = 0.3  # s, EMAGE on BEAT
BC_ORDER = 7  # frames either side for a local speed minimum (argrelextrema order)
BC_THRESHOLD = 0.3  # a minimum counts as a beat only where the normalised speed exceeds this (EMAGE)
BC_TRIM = 2.0  # s ignored at each end of a clip (EMAGE align_mask = 60 frames)
ONSET_HOP = 512  # samples, librosa onset detection hop (EMAGE, at 16 kHz)
FLOOR_PERCENTILE = 5.0  # a foot joint's floor level: this percentile of its height over the clip
CONTACT_HEIGHT = 0.03  # m above its floor level: a foot joint lower than this ...
CONTACT_VSPEED = 0.10  # m/s ... and moving vertically slower than this is in ground contact
FINGER_NAMES = re.compile(r"thumb|index|middle|ring|pinky|little|finger", re.I)
FOOT_NAMES = re.compile(r"foot|ankle|toe", re.I)


# ----------------------------------------------------------------------------------------------------------------
# Frechet distance and diversity (audio2photoreal utils/eval.py)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
                     ) -> float:  # fmt: skip
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2)), exactly as audio2photoreal (and pytorch-fid).

    If sqrtm(S1 S2) is not finite, ``eps`` I is added to both covariances and it is retried; an imaginary part is
    dropped only if its diagonal is within 1e-3 of 0, otherwise ValueError.
    """
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"mean/covariance shapes differ: {mu1.shape} vs {mu2.shape}, {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # a2p called sqrtm(disp=False): no warning for a singular product, same maths
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            log.warning("fid calculation produces singular product; adding %g to diagonal of cov estimates", eps)
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


class Moments:
    """Running mean and covariance (``np.cov(rowvar=False)``) of row vectors, so clips need not be kept."""

    def __init__(self, dim: int) -> None:
        self.n = 0
        self.shift: np.ndarray | None = None  # subtracted before accumulating (numerical stability)
        self.sum = np.zeros(dim)
        self.outer = np.zeros((dim, dim))

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64)
        if self.shift is None:
            self.shift = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
        x = x - self.shift
        self.n += len(x)
        self.sum += x.sum(axis=0)
        self.outer += x.T @ x

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean (D,), covariance (D, D)); needs at least 2 rows."""
        if self.n < 2:
            raise ValueError(f"need at least 2 vectors for a covariance, have {self.n}")
        m = self.sum / self.n
        cov = (self.outer - self.n * np.outer(m, m)) / (self.n - 1)
        return m + self.shift, cov


def fid(gen: Moments, gt: Moments) -> float:
    """Frechet distance between the ground-truth and generated vector sets (audio2photoreal argument order)."""
    mu_gt, cov_gt = gt.stats()
    mu_gen, cov_gen = gen.stats()
    return frechet_distance(mu_gt, cov_gt, mu_gen, cov_gen)


def diversity(x: np.ndarray, pairs: int = DIVERSITY_PAIRS, rng: np.random.Generator | None = None) -> float:
    """Div_g: mean L2 distance between ``pairs`` random frame pairs, each side drawn without replacement.

    audio2photoreal asserts more than 10,000 frames; with fewer, ``min(pairs, N)`` pairs are drawn (the caller
    records how many).
    """
    x = np.asarray(x)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"diversity needs (N >= 2, D) vectors, got {x.shape}")
    rng = rng or np.random.default_rng(0)
    k = min(pairs, len(x))
    first, second = rng.choice(len(x), k, replace=False), rng.choice(len(x), k, replace=False)
    return float(np.linalg.norm(x[first].astype(np.float64) - x[second], axis=1).mean())


def temporal_variance(x: np.ndarray) -> float:
    """Div_k of one sequence (T, D): mean over dimensions of the variance over time (``np.var``, ddof 0)."""
    return float(np.asarray(x, np.float64).var(axis=0).mean())


def sample_variance(x: np.ndarray) -> float:
    """Div_sample of one clip (S, T, D): mean over frames and dimensions of the variance across the S samples."""
    x = np.asarray(x, np.float64)
    if x.ndim != 3 or x.shape[0] < 2:
        raise ValueError(f"Div_sample needs (S >= 2, T, D) samples, got {x.shape}")
    return float(x.var(axis=0).mean())


def segments(n_frames: int, length: int = SEGMENT) -> list[slice]:
    """Non-overlapping ``length``-frame spans; a clip shorter than ``length`` is one span, a shorter rest is dropped."""
    if n_frames < length:
        return [slice(0, n_frames)] if n_frames >= 2 else []
    return [slice(s, s + length) for s in range(0, n_frames - length + 1, length)]


# ----------------------------------------------------------------------------------------------------------------
# Pose space


@dataclass
class BodyMotion:
    """One person's motion in the metrics' space."""

    world: np.ndarray  # (F, J, 3) world joint positions, metres, Y up
    local: np.ndarray  # (F, J, 3) the same in the root's heading frame (root ground point at the origin, yaw removed)
    yaw: np.ndarray  # (F,) radians, heading of the root (from +Z towards +X)
    root: int  # index of the root joint

    @property
    def root_xz(self) -> np.ndarray:
        return self.world[:, self.root][:, [0, 2]]

    def pose_vectors(self) -> np.ndarray:
        """(F, 3 J - 2) float32 heading-frame positions in cm, without the root's x and z (always 0)."""
        flat = self.local.reshape(len(self.local), -1) * CM
        keep = np.ones(flat.shape[1], bool)
        keep[[3 * self.root, 3 * self.root + 2]] = False
        return flat[:, keep].astype(np.float32)


def body_motion(skeleton: Skeleton, layout: MotionLayout, joint_rotations: np.ndarray, root_position: np.ndarray
                ) -> BodyMotion:  # fmt: skip
    """Forward kinematics of engine output: (F, J, 4) local quaternions (w, x, y, z) and (F, 3) root position (m).

    Joints above the root are at rest in the engine's output (identity rotation) and get zero offset here, so the
    root lands exactly on ``root_position``; ``skeleton`` must be in metres (as checkpoints and bundles store it).
    """
    q = np.asarray(joint_rotations, np.float64)
    f, j = q.shape[:2]
    if q.shape != (f, skeleton.n_joints, 4) or np.shape(root_position) != (f, 3):
        raise ValueError(f"expected rotations ({f}, {skeleton.n_joints}, 4) and root positions ({f}, 3), got "
                         f"{q.shape} and {np.shape(root_position)}")  # fmt: skip
    root = skeleton.index(layout.root)
    local_pos = np.broadcast_to(np.asarray(skeleton.offsets, np.float64), (f, j, 3)).copy()
    p = skeleton.parents[root]
    while p >= 0:
        local_pos[:, p] = 0.0
        p = skeleton.parents[p]
    local_pos[:, root] = root_position
    pose = forward_kinematics(skeleton, Rotation.from_quat(np.roll(q, -1, axis=-1).reshape(-1, 4)), local_pos)
    yaw = heading(Rotation.from_matrix(pose.rotations[:, root]), np.asarray(layout.forward))
    ground = pose.positions[:, root].copy()
    ground[:, 1] = 0.0
    unyaw = Rotation.from_rotvec(np.outer(-yaw, [0.0, 1.0, 0.0])).as_matrix()  # (F, 3, 3) Ry(-yaw)
    local = np.einsum("fab,fjb->fja", unyaw, pose.positions - ground[:, None])
    return BodyMotion(pose.positions.astype(np.float32), local.astype(np.float32), yaw, root)


Pair = tuple[BodyMotion, BodyMotion]


def pair_from_features(poser: Poser, feats: np.ndarray, placement: tuple[float, float, float]) -> Pair:
    """(2, F, D) per-person ``runtime.motion`` features, integrated from the pair's initial placement (B in A's
    frame: x, z, yaw) and posed exactly as the engine poses them, in the metrics' space."""
    states = poser.initial_states(placement)
    out = []
    for p in (0, 1):
        xz, yaw, _ = poser.integrate(feats[p], states[p])
        posed = poser.pose(feats[p], xz, yaw, np.zeros((len(feats[p]), N_BLENDSHAPES), np.float32))
        out.append(body_motion(poser.skeleton, poser.layout, posed.joint_rotations, posed.root_position))
    return out[0], out[1]


def pair_from_posed(poser: Poser, people: list[tuple[np.ndarray, np.ndarray]]) -> Pair:
    """Engine output per person (joint rotations (F, J, 4) wxyz, root positions (F, 3) m) -> the metrics' space."""
    a, b = (body_motion(poser.skeleton, poser.layout, rot, root) for rot, root in people)
    return a, b


def upper_body_joints(skeleton: Skeleton, layout: MotionLayout) -> np.ndarray:
    """Skeleton indices of the upper body without fingers: spine, neck, head, shoulders, arms, hands (EMAGE's BC set:
    SMPL-X spine x3, neck, collars, head, shoulders, elbows, wrists)."""
    lower = set(layout.lower)
    return np.array([skeleton.index(n) for n in layout.joints if n not in lower and not FINGER_NAMES.search(n)])


def foot_joints(skeleton: Skeleton, layout: MotionLayout) -> np.ndarray:
    """Skeleton indices of the lower-body joints named foot / ankle / toe (ankles and toe bases)."""
    return np.array([skeleton.index(n) for n in layout.lower if FOOT_NAMES.search(n)])


# ----------------------------------------------------------------------------------------------------------------
# Beat consistency (EMAGE)


def joint_speed(positions: np.ndarray, fps: float = FPS) -> np.ndarray:
    """(F, J, 3) -> (F, J) speed: forward difference at the first frame, central in the middle, backward at the end
    (EMAGE ``load_pose``), in position units per second."""
    x = np.asarray(positions, np.float64)
    if len(x) < 2:
        return np.zeros(x.shape[:2])
    return np.linalg.norm(np.gradient(x, 1.0 / fps, axis=0), axis=-1)


def motion_beats(speed: np.ndarray, order: int = BC_ORDER, threshold: float = BC_THRESHOLD) -> np.ndarray:
    """Frame indices of local speed minima (``argrelextrema(np.less, order)``) where the speed exceeds ``threshold``."""
    speed = np.asarray(speed, np.float64)
    minima = argrelextrema(speed, np.less, order=order)[0]
    return minima[speed[minima] > threshold]


def beat_alignment(motion_times: np.ndarray, onset_times: np.ndarray, sigma: float = BC_SIGMA) -> float:
    """EMAGE ``GAHR``: mean over audio onsets of exp(-d^2 / (2 sigma^2)), d = distance to the nearest motion beat (s);
    no motion beats scores 0, no onsets NaN."""
    onsets = np.asarray(onset_times, np.float64)
    if onsets.size == 0:
        return float("nan")
    beats = np.asarray(motion_times, np.float64)
    if beats.size == 0:
        return 0.0
    d = np.abs(onsets[:, None] - beats[None, :]).min(axis=1)
    return float(np.exp(-(d**2) / (2 * sigma**2)).mean())


def speech_onsets(audio: np.ndarray, sr: int = SAMPLE_RATE, trim: float = BC_TRIM, active: np.ndarray | None = None,
                  fps: float = FPS) -> np.ndarray:  # fmt: skip
    """Onset times (s, from ``trim`` on) of ``librosa.onset.onset_detect`` (hop 512) on the audio without its first
    and last ``trim`` seconds, as EMAGE's evaluation does. ``active`` (F,) bool at ``fps``: keep only onsets while
    this person speaks. EMAGE's data is monologue; in a dyad the own microphone also carries the partner's voice,
    whose onsets are not this speaker's beats (on the synthetic corpus this raises the ground truth's BC over a
    random real clip's from 0.265 vs 0.252 to 0.303 vs 0.249)."""
    import librosa  # training extra; only the beat-consistency metric needs it

    cut = int(trim * sr)
    y = np.asarray(audio, np.float32)[cut : len(audio) - cut]
    if len(y) < ONSET_HOP * 4:
        return np.zeros(0)
    onsets = librosa.onset.onset_detect(y=y, sr=sr, hop_length=ONSET_HOP, units="time")
    if active is None:
        return onsets
    frames = np.clip(np.round((onsets + trim) * fps).astype(int), 0, len(active) - 1)
    return onsets[np.asarray(active, bool)[frames]]


def beat_consistency(local: np.ndarray, joints: np.ndarray, onsets: np.ndarray, mean_speed: np.ndarray,
                     fps: float = FPS, trim: float = BC_TRIM) -> float:  # fmt: skip
    """EMAGE BC of one clip: for each joint in ``joints``, its speed (normalised by ``mean_speed`` per joint, EMAGE's
    ``mmae``) gives motion beats in the clip without its first/last ``trim`` seconds; BC = mean over those joints
    of ``beat_alignment`` with ``onsets`` (s, relative to the same trimmed start, from ``speech_onsets``).
    NaN when the clip is too short or has no onsets."""
    n = len(local)
    cut = int(round(trim * fps))
    if n - 2 * cut <= 2 * BC_ORDER or len(onsets) == 0:
        return float("nan")
    speed = joint_speed(np.asarray(local)[:, joints], fps) / np.maximum(np.asarray(mean_speed)[joints], 1e-6)
    window = speed[cut : n - cut]
    return float(np.mean([beat_alignment(motion_beats(window[:, k]) / fps, onsets) for k in range(len(joints))]))


# ----------------------------------------------------------------------------------------------------------------
# Physical plausibility


def foot_contact(position: np.ndarray, fps: float = FPS) -> np.ndarray:
    """(F, 3) one foot joint's world position (m) -> (F,) bool ground contact: height within CONTACT_HEIGHT of its
    floor level (the clip's FLOOR_PERCENTILE-th percentile height) and vertical speed below CONTACT_VSPEED."""
    y = np.asarray(position, np.float64)[:, 1]
    if len(y) < 2:
        return np.zeros(len(y), bool)
    floor = np.percentile(y, FLOOR_PERCENTILE)
    return (y < floor + CONTACT_HEIGHT) & (np.abs(np.gradient(y, 1.0 / fps)) < CONTACT_VSPEED)


def foot_skating(world: np.ndarray, feet: np.ndarray, fps: float = FPS) -> tuple[float, int]:
    """(sum, count) of the horizontal speed (cm/s) of each foot joint over its contact frames; the skating of a set
    of clips is sum / count (a planted foot scores 0, a foot sliding along the floor its sliding speed)."""
    total, count = 0.0, 0
    for j in feet:
        p = np.asarray(world, np.float64)[:, j]
        if len(p) < 2:
            continue
        contact = foot_contact(p, fps)
        speed = np.linalg.norm(np.gradient(p[:, [0, 2]], 1.0 / fps, axis=0), axis=1) * CM
        total += float(speed[contact].sum())
        count += int(contact.sum())
    return total, count


def jerk(world: np.ndarray, fps: float = FPS) -> tuple[float, int]:
    """(sum, count) of |third finite difference| x fps^3 over frames and joints (m/s^3; LDA's jerk, mean |d3x|)."""
    x = np.asarray(world, np.float64)
    if len(x) < 4:
        return 0.0, 0
    d3 = np.linalg.norm(np.diff(x, n=3, axis=0), axis=-1) * fps**3  # (F - 3, J)
    return float(d3.sum()), int(d3.size)


def action_agreement(hips: np.ndarray, labels: np.ndarray, fps: float = FPS, standing_hip_height: float | None = None
                     ) -> tuple[int, int]:  # fmt: skip
    """(agreeing, total) frames: ``label_actions`` on the (F, 3) world hips (m) against the requested (F,) labels."""
    labels = np.asarray(labels)
    if len(labels) != len(hips):
        raise ValueError(f"labels ({len(labels)}) and hips ({len(hips)}) differ in length")
    got = label_actions(np.asarray(hips, np.float64), fps, standing_hip_height)
    return int((got == labels).sum()), len(labels)


# ----------------------------------------------------------------------------------------------------------------
# Interaction


def pair_distance(xz_a: np.ndarray, xz_b: np.ndarray) -> np.ndarray:
    """(F,) ground distance between the two roots (m)."""
    return np.linalg.norm(np.asarray(xz_a, np.float64) - np.asarray(xz_b, np.float64), axis=1)


def facing_angle(xz: np.ndarray, yaw: np.ndarray, other_xz: np.ndarray) -> np.ndarray:
    """(F,) degrees in [0, 180] between a person's heading (sin yaw, cos yaw) and the direction to the partner."""
    d = np.asarray(other_xz, np.float64) - np.asarray(xz, np.float64)
    angle = np.arctan2(d[:, 0], d[:, 1]) - np.asarray(yaw, np.float64)
    return np.degrees(np.abs((angle + np.pi) % (2 * np.pi) - np.pi))


def distribution_distance(generated: np.ndarray, reference: np.ndarray) -> float:
    """1-D Wasserstein-1 distance between two samples of a quantity (its units)."""
    return float(wasserstein_distance(np.ravel(generated), np.ravel(reference)))


DEFINITIONS = {
    "pose_space": "FK joint positions in the root's heading frame (root ground point at the origin, yaw removed), "
                  "cm, root x/z dropped; interaction and physical metrics use world positions (m)",
    "fid_g": "Frechet distance (audio2photoreal utils/eval.py) of per-frame pose vectors, gt vs generated (cm^2)",
    "fid_k": "the same on first differences of the pose vectors (cm^2)",
    "div_g": "mean L2 distance of 10,000 random generated frame pairs (fewer if fewer frames: div_g_pairs), cm",
    "div_k": "mean over (sample, person, 600-frame segment, dim) of the variance over time, cm^2",
    "div_sample": "mean over (clip, person, frame, dim) of the variance across samples, cm^2 (needs >= 2 samples)",
    "beat_consistency": "EMAGE BC: librosa onsets of the own microphone while the person speaks vs minima of the "
                        "heading-frame speed of 13 upper-body joints (order 7, > 0.3 x gt mean speed), sigma 0.3 s, "
                        "2 s trimmed per end",
    "foot_skating": "mean horizontal speed (cm/s) of ankle/toe joints in contact (height < floor + 3 cm and "
                    "|vertical speed| < 0.1 m/s; floor = the joint's 5th-percentile height in the clip)",
    "jerk": "mean |third difference| x fps^3 of world joint positions (m/s^3)",
    "action_agreement": "fraction of frames where label_actions(generated hips) equals the requested label",
    "distance_w1": "1-D Wasserstein distance of the pair's root distance (m), generated vs gt",
    "facing_w1": "1-D Wasserstein distance of each person's angle between heading and partner (deg), generated vs gt",
    "rtf": "compute seconds / audio seconds of the row on this machine (torch, CPU)",
}  # fmt: skip
