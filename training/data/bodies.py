"""Synthetic two-person body motion with known ground truth, as InterAct-style BVH at 30 fps (DESIGN section 4).

Given a :class:`~training.data.dialogue.Dialogue`, :func:`generate_pair` makes both people's full-body motion
(52 joints with hands, ``training.data.skeleton_def``) and their per-frame {sit, walk, stand} labels:

- ``body_plan``: the pair's episodes (sit / stand together, walk together side by side, one walks a loop while the
  other stands), transitions of 0.6-1.2 s with the label switching at the midpoint, ground paths and headings;
- ``gait``: footsteps planted for their whole stance (no foot skating) and leg IK from the hips;
- ``gestures``: beats on stressed syllables scaled by loudness, hand shapes, nods while listening, head towards the
  partner, breathing and sway;
- here: pelvis motion, hip height (standing, seated, the walking bob the legs' reach allows), and conversion of the
  joint rotations to each joint's own Euler channel order.

Units: features and the plan are metres; the BVH clip is centimetres like mocap, Y up, right-handed, rest pose
T-pose facing +Z. Everything is vectorised over frames; one minute of two-person motion takes well under a second.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d, minimum_filter1d
from scipy.spatial.transform import Rotation

from runtime.constants import FPS
from runtime.motion.clip import BvhClip
from runtime.motion.kinematics import write_rotations
from runtime.motion.skeleton import POSITION_CHANNELS, Skeleton
from training.data.body_plan import LegGeometry, PairPlan, PersonPlan, PlanConfig, plan_pair
from training.data.curves import smooth_noise, wrap_angle
from training.data.dialogue import Dialogue
from training.data.gait import foot_tracks, leg_ik, max_root_height
from training.data.gestures import upper_body
from training.data.skeleton_def import DEFAULT_ROTATION_ORDER, leg_lengths_cm, make_skeleton

log = logging.getLogger(__name__)

CM_PER_M = 100.0
STAND_REACH = 0.996  # standing hip joint to ankle / (thigh + shank): knees soft (~10 degrees), not locked
EYE_ABOVE_HIPS = 0.40  # eye height above the Hips joint, as a fraction of body height (0.70 m at 1.75 m)


@dataclass(frozen=True)
class BodyConfig:
    height_cm: tuple[float, float] = (155.0, 190.0)  # each actor's standing height is drawn from this range
    plan: PlanConfig = field(default_factory=PlanConfig)
    sway_m: float = 0.012  # std of the idle hip sway while standing (periods of several seconds)
    weight_shift_m: float = 0.025  # slow side-to-side weight shifts while standing
    walk_sway_m: float = 0.02  # hips over the stance foot while walking
    seated_tilt_deg: float = -12.0  # pelvis tilts back when seated (negative X)
    pelvis_turn_deg: float = 5.0  # pelvis yaw towards the swing leg while walking
    pelvis_list_deg: float = 3.0  # pelvis roll while walking
    rotation_order: str = DEFAULT_ROTATION_ORDER  # Euler channel order written for every joint


@dataclass
class PersonMotion:
    clip: BvhClip  # 30 fps, centimetres, joint rotations in each joint's channel order (degrees)
    actions: np.ndarray  # (F,) int8 ground-truth label per frame, index into runtime.constants.ACTIONS
    contact: np.ndarray  # (F, 2) bool, left / right foot planted (ground truth)
    height_cm: float

    @property
    def skeleton(self) -> Skeleton:
        return self.clip.skeleton


@dataclass(frozen=True)
class Placement:
    """Where the two people are at frame 0: Hips ground positions and headings in the world frame."""

    positions: np.ndarray  # (2, 2) m, (x, z) of A's and B's Hips
    yaws: np.ndarray  # (2,) rad, headings; a heading faces (sin yaw, cos yaw) in (x, z)

    def relative(self) -> tuple[float, float, float]:
        """B seen from A: (lateral m, positive = A's left; forward m; heading difference rad in [-pi, pi))."""
        d = self.positions[1] - self.positions[0]
        ya = float(self.yaws[0])
        left = d[0] * math.cos(ya) - d[1] * math.sin(ya)
        forward = d[0] * math.sin(ya) + d[1] * math.cos(ya)
        return float(left), float(forward), float(wrap_angle(self.yaws[1] - ya))


@dataclass
class PairMotion:
    people: tuple[PersonMotion, PersonMotion]  # person A, person B (Dialogue.tracks order)
    placement: Placement
    episodes: list[tuple[str, float, float]]  # (kind, start s, end s) of the pair's scenario
    fps: int = FPS


def legs_of(skeleton: Skeleton) -> LegGeometry:
    """The planner's and IK's leg geometry (m) of a generator skeleton."""
    g = leg_lengths_cm(skeleton)
    return LegGeometry(
        thigh=g["thigh"] / CM_PER_M,
        shank=g["shank"] / CM_PER_M,
        ankle_height=g["ankle_height"] / CM_PER_M,
        hip_half_width=g["hip_half_width"] / CM_PER_M,
        hip_height=g["hip_height"] / CM_PER_M,
        toe_forward=g["toe_forward"] / CM_PER_M,
        toe_height=g["toe_height"] / CM_PER_M,
    )


@dataclass
class _Lower:
    """One person's root and legs before the upper body is known."""

    root: np.ndarray  # (F, 3) m Hips position
    hips: Rotation  # (F,) global Hips rotation
    pelvis_yaw: np.ndarray  # (F,) rad
    tilt: np.ndarray  # (F,) rad pelvis pitch
    legs: dict[str, Rotation]
    contact: np.ndarray  # (F, 2)


def _lower_body(rng: np.random.Generator, plan: PersonPlan, skeleton: Skeleton, cfg: BodyConfig) -> _Lower:
    n = len(plan.yaw)
    legs = legs_of(skeleton)
    hip_offsets = skeleton.offsets[[skeleton.index("LeftUpLeg"), skeleton.index("RightUpLeg")]] / CM_PER_M
    drop = -hip_offsets[0, 1]
    feet = foot_tracks(plan, legs)
    sit, walk, standing = plan.sit, plan.walk, (1.0 - plan.sit) * (1.0 - plan.walk)

    forward = np.stack([np.sin(plan.yaw), np.cos(plan.yaw)], axis=-1)  # (F, 2)
    left = np.stack([np.cos(plan.yaw), -np.sin(plan.yaw)], axis=-1)
    shift = np.tanh(1.5 * smooth_noise(rng, n, 4.0 * FPS)[:, 0])  # standing weight shifts, -1 .. 1
    sway = smooth_noise(rng, n, 1.5 * FPS, 2) * cfg.sway_m
    xz = (
        plan.ground
        - (sit * plan.sit_forward)[:, None] * forward  # hips back onto the seat, feet stay put
        + (standing * cfg.weight_shift_m * shift)[:, None] * left
        + ((1.0 - walk) * (1.0 - 0.7 * sit))[:, None] * sway
        + (walk * cfg.walk_sway_m * np.sin(plan.stride))[:, None] * left  # over the stance foot
    )

    tilt = np.radians(cfg.seated_tilt_deg) * sit + math.radians(3.0) * walk
    pelvis_yaw = plan.yaw - math.radians(cfg.pelvis_turn_deg) * np.cos(plan.stride) * walk
    pelvis_yaw += math.radians(1.5) * smooth_noise(rng, n, 2.0 * FPS)[:, 0] * (1.0 - walk)
    roll = (
        -math.radians(cfg.pelvis_list_deg) * np.sin(plan.stride) * walk  # the swing side's hip drops
        - math.radians(3.0) * shift * standing  # the unloaded hip drops in a weight shift
    )
    hips = Rotation.from_euler("YXZ", np.stack([pelvis_yaw, tilt, roll], axis=-1))

    stand_h = legs.ankle_height + STAND_REACH * (legs.thigh + legs.shank) + drop
    nominal = (1.0 - sit) * stand_h + sit * (plan.sit_height + drop)
    limit = max_root_height(xz, hips, hip_offsets, feet, legs)
    limit = gaussian_filter1d(minimum_filter1d(limit, 9, mode="nearest"), 1.5, mode="nearest")
    y = np.minimum(nominal, limit) + 0.003 * smooth_noise(rng, n, 1.0 * FPS)[:, 0] * (1.0 - walk)
    root = np.stack([xz[:, 0], y, xz[:, 1]], axis=-1)
    return _Lower(root, hips, pelvis_yaw, tilt, leg_ik(root, hips, hip_offsets, feet, legs), feet.contact)


def _channels(skeleton: Skeleton, root_m: np.ndarray, local: dict[str, Rotation]) -> np.ndarray:
    """(F, C) BVH channel values: Hips position in cm, every joint's rotation in its own Euler order (degrees,
    scipy's ranges, as mocap exports write them). Joints missing from ``local`` stay at their rest rotation."""
    n = len(root_m)
    quats = np.zeros((n, skeleton.n_joints, 4))
    quats[..., 3] = 1.0  # scipy quaternions are (x, y, z, w)
    for name, rot in local.items():
        quats[:, skeleton.index(name)] = rot.as_quat()
    values = np.zeros((n, skeleton.n_channels))
    write_rotations(skeleton, values, quats)
    start = skeleton.channel_offsets()[0]
    for c, channel in enumerate(skeleton.channels[0]):
        if channel in POSITION_CHANNELS:
            values[:, start + c] = root_m[:, POSITION_CHANNELS.index(channel)] * CM_PER_M
    return values


def generate_pair(
    dialogue: Dialogue,
    rng: np.random.Generator,
    config: BodyConfig = BodyConfig(),
    heights_cm: tuple[float, float] | None = None,
) -> PairMotion:
    """Both people's body motion for ``dialogue`` (person A = ``tracks[0]``): BVH clips, labels, placement.

    Deterministic for a given ``rng`` state. ``heights_cm`` fixes the actors' heights (otherwise drawn from
    ``config.height_cm``).
    """
    n = dialogue.n_frames
    if n < 2:
        raise ValueError(f"dialogue has {n} frames; need at least 2")
    for i, track in enumerate(dialogue.tracks):
        if len(track.activity) != n or len(track.loudness) != n:
            raise ValueError(
                f"dialogue track {i}: activity ({len(track.activity)}) and loudness ({len(track.loudness)}) "
                f"must both have n_frames = {n} frames"
            )
    if heights_cm is None:
        heights_cm = (float(rng.uniform(*config.height_cm)), float(rng.uniform(*config.height_cm)))
    skeletons = [make_skeleton(h, config.rotation_order) for h in heights_cm]
    plan_rng, rng_a, rng_b = rng.spawn(3)
    plan: PairPlan = plan_pair(n, plan_rng, (legs_of(skeletons[0]), legs_of(skeletons[1])), config.plan)
    person_rngs = (rng_a, rng_b)
    lower = [_lower_body(r, p, s, config) for r, p, s in zip(person_rngs, plan.people, skeletons, strict=True)]

    people = []
    for i in (0, 1):
        me, other = lower[i], lower[1 - i]
        d = other.root - me.root  # (F, 3) m
        walking = plan.people[i].walk
        look_yaw = wrap_angle(np.arctan2(d[:, 0], d[:, 2]) - me.pelvis_yaw) * (1.0 - 0.7 * walking)  # eyes ahead
        eye = EYE_ABOVE_HIPS * np.array(heights_cm) / CM_PER_M
        drop = me.root[:, 1] + eye[i] - (other.root[:, 1] + eye[1 - i])
        look_pitch = np.arctan2(drop, np.hypot(d[:, 0], d[:, 2])) - me.tilt  # positive: look down
        own, partner = dialogue.tracks[i], dialogue.tracks[1 - i]
        upper = upper_body(person_rngs[i], own, partner, plan.people[i], look_yaw, look_pitch)
        local = {"Hips": me.hips, **me.legs, **upper}
        values = _channels(skeletons[i], me.root, local)
        clip = BvhClip(skeletons[i], 1.0 / FPS, values)
        people.append(PersonMotion(clip, plan.people[i].labels.copy(), me.contact, heights_cm[i]))
    placement = Placement(
        positions=np.stack([lower[0].root[0, [0, 2]], lower[1].root[0, [0, 2]]]),
        yaws=np.array([lower[0].pelvis_yaw[0], lower[1].pelvis_yaw[0]]),  # the Hips' forward (+Z) on the ground
    )
    log.debug("generated %d frames for two people, episodes: %s", n, [e[0] for e in plan.episodes])
    return PairMotion((people[0], people[1]), placement, plan.episodes)
