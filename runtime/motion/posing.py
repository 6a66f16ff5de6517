"""Model-space body features -> what engines receive (DESIGN 4), and the pair geometry both models condition on.

Per person the body models produce ``runtime.motion`` features: [dx, dz, d-yaw, hip height] + an exponential map
per joint (the root's relative to its heading). Here they become local quaternions (w, x, y, z) per skeleton joint,
the root position in metres (right-handed, Y up), and Live Link Face's head and eye rotations. The two people's
features are split from / joined into the lower and upper blocks the two networks see (A's columns, then B's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.spatial.transform import Rotation

from runtime.formats.arkit import INDEX
from runtime.motion.kinematics import expmap_to_quats, quat_apply, quat_mul
from runtime.motion.root import MotionLayout, integrate_root
from runtime.motion.skeleton import Skeleton

FACING_DEG = 60.0  # a person "faces the partner" when the partner is within this angle of their heading
HOLD_STIFFNESS = 0.05  # per frame: a held root returns to its spot with a time constant of ~0.7 s
EYE_YAW_RAD = 0.5  # eye rotation at a full eyeLookIn/Out weight (~29 degrees)
EYE_PITCH_RAD = 0.4  # eye rotation at a full eyeLookUp/Down weight (~23 degrees)
HEAD_YAW_LIMIT_DEG = 70.0  # head yaw relative to the torso; people turn the head about 70-80 degrees at most
FLOOR_Y = 0.0  # m: the captures' floor; no foot joint or toe tip goes below it
FOOT_NAMES = re.compile(r"foot|toe|ankle", re.I)


@dataclass(frozen=True)
class RootState:
    """Where a person's root is after the last committed frame: ground position (m) and heading (rad), and while
    they sit or stand, the spot they are held to (``anchor``)."""

    x: float
    z: float
    yaw: float
    anchor: tuple[float, float, float] | None = None


class Posed(NamedTuple):
    joint_rotations: np.ndarray  # (N, J, 4) float32 local quaternions (w, x, y, z)
    root_position: np.ndarray  # (N, 3) float32 metres
    rotations: np.ndarray  # (N, 9) float32 Live Link head yaw/pitch/roll, left eye, right eye (radians)


def relative_placement(a: RootState, b: RootState) -> np.ndarray:
    """(4,) float32 B seen from A: [left m, forward m, cos d-yaw, sin d-yaw] (the body models' condition)."""
    dx, dz = b.x - a.x, b.z - a.z
    c, s = np.cos(a.yaw), np.sin(a.yaw)
    dyaw = b.yaw - a.yaw
    return np.array([dx * c - dz * s, dx * s + dz * c, np.cos(dyaw), np.sin(dyaw)], np.float32)


def facing_flags(
    xz_a: np.ndarray, yaw_a: np.ndarray, xz_b: np.ndarray, yaw_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(N,) bool per person: is the partner within FACING_DEG of their heading (forward = (sin yaw, cos yaw))."""

    def faces(xz: np.ndarray, yaw: np.ndarray, other: np.ndarray) -> np.ndarray:
        d = other - xz
        angle = np.arctan2(d[:, 0], d[:, 1]) - yaw
        return np.abs((angle + np.pi) % (2 * np.pi) - np.pi) < np.radians(FACING_DEG)

    return faces(xz_a, yaw_a, xz_b), faces(xz_b, yaw_b, xz_a)


def pair_geometry(pos_a: np.ndarray, yaw_a: np.ndarray, pos_b: np.ndarray, yaw_b: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame facing flags and B-relative-to-A placement of a pair's global root tracks (training data)."""
    fa, fb = facing_flags(pos_a[:, [0, 2]], yaw_a, pos_b[:, [0, 2]], yaw_b)
    placement = np.stack([
        relative_placement(RootState(pa[0], pa[2], ya), RootState(pb[0], pb[2], yb))
        for pa, ya, pb, yb in zip(pos_a, yaw_a, pos_b, yaw_b, strict=True)
    ])  # fmt: skip
    return {"facing": np.stack([fa, fb]), "placement": placement}


class Poser:
    def __init__(self, skeleton: Skeleton, layout: MotionLayout) -> None:
        self.skeleton, self.layout = skeleton, layout
        self.lower_cols, self.upper_cols = layout.lower_columns, layout.upper_columns
        self.n_person = layout.n_features
        self.joints = np.array([skeleton.index(n) for n in layout.joints])
        self.root = skeleton.index(layout.root)
        self.root_k = list(layout.joints).index(layout.root)
        self.rot_cols = np.stack([layout.columns[n][0] for n in layout.joints])  # (K, 3)
        # Joints above the root (an extra static root) stay at rest, so the root's local rotation is its world one.
        head = [i for i, n in enumerate(skeleton.names) if n.lower() == "head"]
        self.head_chain = self._chain(head[0]) if head else []
        feet = [j for j, n in enumerate(skeleton.names) if FOOT_NAMES.search(n) and self._chain(j)]
        self.leg_joints = sorted({k for j in feet for k in self._chain(j)})  # root first, parents before children
        self.feet = feet

    def _chain(self, j: int) -> list[int]:
        """Joints from the root down to j (layout joints only), root first."""
        chain = []
        while j >= 0 and j != self.root:
            chain.append(j)
            j = self.skeleton.parents[j]
        return [self.root] + chain[::-1] if j == self.root else []

    # -- both people <-> the two networks' blocks ----------------------------------------------------------
    def split(self, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2 nl), (N, 2 nu) -> A's and B's full feature frames (N, D)."""
        nl, nu = len(self.lower_cols), len(self.upper_cols)
        people = []
        for p in (0, 1):
            f = np.empty((len(lower), self.n_person), np.float32)
            f[:, self.lower_cols] = lower[:, p * nl : (p + 1) * nl]
            f[:, self.upper_cols] = upper[:, p * nu : (p + 1) * nu]
            people.append(f)
        return people[0], people[1]

    def join(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A's and B's (N, D) features -> (lower (N, 2 nl), upper (N, 2 nu)): the inverse of ``split``."""
        lower = np.concatenate([a[:, self.lower_cols], b[:, self.lower_cols]], axis=1)
        upper = np.concatenate([a[:, self.upper_cols], b[:, self.upper_cols]], axis=1)
        return lower, upper

    # -- root ----------------------------------------------------------------------------------------------
    @staticmethod
    def initial_states(placement: tuple[float, float, float]) -> list[RootState]:
        """A at the origin facing +Z; B at (x left, z forward) of A with heading ``yaw`` relative to A's."""
        x, z, yaw = placement
        return [RootState(0.0, 0.0, 0.0), RootState(float(x), float(z), float(yaw))]

    def integrate(
        self, feats: np.ndarray, state: RootState, hold: np.ndarray | None = None, stiffness: float = HOLD_STIFFNESS
    ) -> tuple[np.ndarray, np.ndarray, list[RootState]]:
        """Root deltas of (N, D) features from ``state`` -> ground xz (N, 2), yaw (N,), state after each frame.

        ``hold`` (N,) bool marks frames whose requested action is not "walk": there the root is pulled towards the
        spot and heading it had when the hold began (a spring of ``stiffness`` per frame), so small biased deltas
        cannot add up to a person sliding or turning away while standing or sitting; sway stays.
        """
        if hold is None or not hold.any() and state.anchor is None:
            pos, yaw = integrate_root(feats[:, :4], (state.x, state.z), state.yaw)
            states = [RootState(float(p[0]), float(p[2]), float(y)) for p, y in zip(pos, yaw, strict=True)]
            return pos[:, [0, 2]], yaw, states
        x, z, yaw, anchor = state.x, state.z, state.yaw, state.anchor
        xz, yaws, states = np.empty((len(feats), 2)), np.empty(len(feats)), []
        for i, (dx, dz, dyaw) in enumerate(np.asarray(feats[:, :3], np.float64)):
            c, s = np.cos(yaw), np.sin(yaw)
            x, z, yaw = x + c * dx + s * dz, z - s * dx + c * dz, yaw + dyaw  # as runtime.motion.integrate_root
            if hold[i]:
                anchor = anchor or (x, z, yaw)
                x, z = x - stiffness * (x - anchor[0]), z - stiffness * (z - anchor[1])
                yaw -= stiffness * ((yaw - anchor[2] + np.pi) % (2 * np.pi) - np.pi)
            else:
                anchor = None
            xz[i], yaws[i] = (x, z), yaw
            states.append(RootState(float(x), float(z), float(yaw), anchor))
        return xz, yaws, states

    def _turn_head(self, quats: np.ndarray, offset: np.ndarray | None) -> None:
        """Add ``offset`` (N, 3) yaw/pitch/roll to the head joint, then limit the head's yaw relative to the torso
        (the neck's parent), in place on ``quats`` (N, J, 4) xyzw local rotations."""
        neck, head = self.head_chain[-2:]
        neck_r, head_r = Rotation.from_quat(quats[:, neck]), Rotation.from_quat(quats[:, head])
        if offset is not None:
            head_r = head_r * Rotation.from_euler("YXZ", offset)
        rel = (neck_r * head_r).as_euler("YXZ")  # the head relative to the torso: yaw, pitch, roll
        limit = np.radians(HEAD_YAW_LIMIT_DEG)
        if np.any(np.abs(rel[:, 0]) > limit):
            rel[:, 0] = np.clip(rel[:, 0], -limit, limit)
            head_r = neck_r.inv() * Rotation.from_euler("YXZ", rel)
        quats[:, head] = head_r.as_quat()

    def _lowest_foot_point(self, quats: np.ndarray, root: np.ndarray) -> np.ndarray:
        """(N,) height of the lowest foot joint or toe tip: forward kinematics of the leg chains only.
        ``quats`` (N, J, 4) xyzw local rotations, ``root`` (N, 3) the root's world position."""
        sk = self.skeleton
        rot, pos = {}, {}
        for j in self.leg_joints:
            if j == self.root:
                rot[j], pos[j] = quats[:, j], root.astype(np.float64)
            else:
                p = sk.parents[j]
                rot[j], pos[j] = quat_mul(rot[p], quats[:, j]), pos[p] + quat_apply(rot[p], sk.offsets[j])
        heights = [pos[j][:, 1] for j in self.feet]
        heights += [(pos[j] + quat_apply(rot[j], sk.end_sites[j]))[:, 1] for j in self.feet if j in sk.end_sites]
        return np.min(heights, axis=0)

    # -- output --------------------------------------------------------------------------------------------
    def pose(
        self, feats: np.ndarray, xz: np.ndarray, yaw: np.ndarray, weights: np.ndarray, head: np.ndarray | None = None
    ) -> Posed:
        """(N, D) features with their integrated root (xz (N, 2), yaw (N,)) and face weights (N, 52) -> output.

        ``head`` (N, 3): yaw, pitch, roll radians added to the head joint (the living-face layer's nods and sway).
        The head's yaw relative to the torso (the neck's parent) is then kept within +-HEAD_YAW_LIMIT_DEG, and the body
        is lifted where a foot joint or toe tip would be below the floor (FLOOR_Y)."""
        n = len(feats)
        local = expmap_to_quats(feats[:, self.rot_cols].astype(np.float64))  # (N, K, 4) xyzw
        heading = np.zeros((n, 4))  # about +Y, xyzw
        heading[:, 1], heading[:, 3] = np.sin(0.5 * yaw), np.cos(0.5 * yaw)
        local[:, self.root_k] = quat_mul(heading, local[:, self.root_k])
        quats = np.zeros((n, self.skeleton.n_joints, 4))
        quats[..., 3] = 1.0
        quats[:, self.joints] = local
        if len(self.head_chain) >= 3:
            self._turn_head(quats, head)
        root = np.stack([xz[:, 0], feats[:, 3], xz[:, 1]], axis=1)  # (N, 3) world hips position
        if self.feet:  # the model's feet may sink a few cm: lift the body so the lowest foot point is on the floor
            root[:, 1] += np.maximum(0.0, FLOOR_Y - self._lowest_foot_point(quats, root))
        rotations = np.zeros((n, 9), np.float32)
        if self.head_chain:
            rel = heading * [-1.0, -1.0, -1.0, 1.0]  # the inverse heading: the head relative to it
            for j in self.head_chain:
                rel = quat_mul(rel, quats[:, j])
            rotations[:, :3] = Rotation.from_quat(rel).as_euler("YXZ")  # yaw (about Y), pitch (about X), roll (Z)
        w = weights
        look_l = w[:, INDEX["eyeLookOutLeft"]] - w[:, INDEX["eyeLookInLeft"]]
        look_r = w[:, INDEX["eyeLookInRight"]] - w[:, INDEX["eyeLookOutRight"]]
        rotations[:, 3] = EYE_YAW_RAD * look_l
        rotations[:, 4] = EYE_PITCH_RAD * (w[:, INDEX["eyeLookUpLeft"]] - w[:, INDEX["eyeLookDownLeft"]])
        rotations[:, 6] = EYE_YAW_RAD * look_r
        rotations[:, 7] = EYE_PITCH_RAD * (w[:, INDEX["eyeLookUpRight"]] - w[:, INDEX["eyeLookDownRight"]])
        wxyz = np.roll(quats, 1, axis=-1).astype(np.float32)
        return Posed(wxyz, root.astype(np.float32), rotations)
