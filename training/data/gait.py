"""Feet and legs of the synthetic bodies: footstep trajectories from a plan, and analytic two-bone leg IK.

Feet are placed, not simulated (the plan gives each step's lift and land times and landing point, whole step
lengths along the walking path): a foot stays flat where it landed, rolls up over its fixed toes in the last
~0.25 s before lift-off (heel rise: the trailing leg reaches further without dropping the hips), swings to its next
landing point along a smooth arc, and the legs reach it by inverse kinematics from the hip joints. The toes of a
foot on the floor never slide, so foot skating is zero by construction (up to the Euler round trip).

Frames: the skeleton's rest pose is a T-pose with every joint frame equal to the world frame (Y up, facing +Z,
left = +X; ``training.data.skeleton_def``), so a leg's rest direction is -Y and its knee hinge is the X axis.
All lengths here are metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from runtime.constants import FPS
from training.data.body_plan import LegGeometry, PersonPlan
from training.data.curves import smoothstep

TOE_OUT = math.radians(7.0)  # each foot points this far outwards of the body heading
MAX_REACH = 0.998  # fraction of thigh + shank the IK may use: never a fully locked knee
HEEL_OFF_S = 0.25  # the heel rises over (at most) this long before the foot leaves the floor
HEEL_STRIKE_DEG = 12.0  # toes up just before landing


@dataclass
class FootTracks:
    ankle: np.ndarray  # (F, 2, 3) m, world ankle (Foot joint) targets, left then right
    yaw: np.ndarray  # (F, 2) rad, foot heading (toes towards (sin, cos) in x, z)
    pitch: np.ndarray  # (F, 2) rad about the foot's X axis, positive = toes down (heel up)
    toe: np.ndarray  # (F, 2) rad, toe joint bend relative to the foot, negative = toes up
    contact: np.ndarray  # (F, 2) bool, the foot is on the floor (flat, or on its toes during heel-off)


def _pivot(flat: np.ndarray, yaw: np.ndarray, pitch: np.ndarray, legs: LegGeometry) -> np.ndarray:
    """(N, 3) ankle of a foot whose flat ankle is ``flat`` (N, 3) after rolling ``pitch`` (N,) over its fixed toes."""
    oy, oz = legs.toe_height - legs.ankle_height, legs.toe_forward  # ankle -> toe joint in the foot frame
    dy = np.cos(pitch) * oy - np.sin(pitch) * oz
    dz = np.sin(pitch) * oy + np.cos(pitch) * oz
    return flat + np.stack([(oz - dz) * np.sin(yaw), oy - dy, (oz - dz) * np.cos(yaw)], axis=-1)


def foot_tracks(plan: PersonPlan, legs: LegGeometry) -> FootTracks:
    """Where each ankle is at every frame: planted at its last landing point (rolling onto the toes before it
    lifts), or swinging to the next one."""
    n = len(plan.yaw)
    t = np.arange(n) / FPS
    out = FootTracks(np.zeros((n, 2, 3)), np.zeros((n, 2)), np.zeros((n, 2)), np.zeros((n, 2)), np.ones((n, 2), bool))
    for foot, side in ((0, 1.0), (1, -1.0)):
        steps = plan.steps[plan.steps[:, 0] == foot]
        steps = steps[np.argsort(steps[:, 1])]
        lift, land, push = steps[:, 1], steps[:, 2], steps[:, 6]
        start = np.array([plan.start_feet[foot, 0], legs.ankle_height, plan.start_feet[foot, 1]])
        start_yaw = plan.yaw[0] + side * TOE_OUT
        to = np.column_stack([steps[:, 3], np.full(len(steps), legs.ankle_height), steps[:, 4]])  # (E, 3) flat
        to_yaw = steps[:, 5] + side * TOE_OUT
        planted = np.concatenate([start[None], to])  # (E + 1, 3): before step 0, after each step
        planted_yaw = np.concatenate([[start_yaw], to_yaw])
        prev_land = np.concatenate([[-np.inf], land[:-1]])
        heel_off = np.minimum(HEEL_OFF_S, 0.45 * (lift - prev_land))  # (E,)

        k = np.searchsorted(lift, t, side="right") - 1  # (F,) last step lifted at or before t; -1: none yet
        kk = np.maximum(k, 0)
        swing = (k >= 0) & (t < land[kk]) if len(steps) else np.zeros(n, bool)
        # stance on planted[k + 1]; the next lift is step k + 1, whose heel rises first
        nxt = np.minimum(k + 1, len(steps) - 1)
        if len(steps):
            rise = (k + 1 < len(steps)) & (t >= lift[nxt] - heel_off[nxt])
            stance_pitch = np.where(rise, push[nxt] * smoothstep((t - lift[nxt] + heel_off[nxt]) / heel_off[nxt]), 0)
        else:
            stance_pitch = np.zeros(n)
        base, base_yaw = planted[k + 1], planted_yaw[k + 1]
        ankle = _pivot(base, base_yaw, stance_pitch, legs)
        fyaw, pitch, toe = base_yaw.copy(), stance_pitch, -stance_pitch  # toes flat on the floor
        if swing.any():
            i = np.flatnonzero(swing)
            e = kk[i]
            u = np.clip((t[i] - lift[e]) / np.maximum(land[e] - lift[e], 1e-6), 0.0, 1.0)
            along = 0.5 - 0.5 * np.cos(np.pi * u)  # zero speed at lift-off and landing
            src = _pivot(planted[e], planted_yaw[e], push[e], legs)  # where the heel-off left the ankle
            dst = to[e]
            clearance = np.minimum(0.09, 0.03 + 0.1 * np.linalg.norm(dst[:, [0, 2]] - src[:, [0, 2]], axis=1))
            ankle[i] = src + along[:, None] * (dst - src)
            ankle[i, 1] += clearance * np.sin(np.pi * u)
            fyaw[i] = planted_yaw[e] + along * (to_yaw[e] - planted_yaw[e])
            pitch = pitch.copy()
            pitch[i] = push[e] * (1 - u) ** 2 - math.radians(HEEL_STRIKE_DEG) * np.sin(np.pi * u) * u
            toe = toe.copy()
            toe[i] = -push[e] * (1 - u) ** 2
        out.ankle[:, foot], out.yaw[:, foot], out.pitch[:, foot], out.toe[:, foot] = ankle, fyaw, pitch, toe
        out.contact[:, foot] = ~swing
    return out


def max_root_height(
    root_xz: np.ndarray, hips: Rotation, hip_offsets: np.ndarray, feet: FootTracks, legs: LegGeometry
) -> np.ndarray:
    """(F,) m, the highest the Hips joint may be so both legs reach their ankles with a slightly bent knee.

    ``hip_offsets`` (2, 3) m are the UpLeg offsets from the Hips joint (left, right).
    """
    reach = MAX_REACH * (legs.thigh + legs.shank)
    limit = np.full(len(root_xz), np.inf)
    for foot in (0, 1):
        off = hips.apply(hip_offsets[foot])  # (F, 3)
        dx = root_xz[:, 0] + off[:, 0] - feet.ankle[:, foot, 0]
        dz = root_xz[:, 1] + off[:, 2] - feet.ankle[:, foot, 2]
        vertical = np.sqrt(np.maximum(reach**2 - dx**2 - dz**2, 0.0))
        limit = np.minimum(limit, feet.ankle[:, foot, 1] + vertical - off[:, 1])
    return limit


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def leg_ik(
    root: np.ndarray, hips: Rotation, hip_offsets: np.ndarray, feet: FootTracks, legs: LegGeometry
) -> dict[str, Rotation]:
    """Local rotations of both legs so each ankle reaches its target with the knee towards the foot's toes.

    ``root`` (F, 3) m Hips positions, ``hips`` (F,) global Hips rotations. Returns ``{"LeftUpLeg": Rotation (F,),
    "LeftLeg", "LeftFoot", "LeftToeBase", "Right...": ...}``, each relative to its parent joint.
    """
    l1, l2 = legs.thigh, legs.shank
    out: dict[str, Rotation] = {}
    for foot, side in ((0, "Left"), (1, "Right")):
        hip = root + hips.apply(hip_offsets[foot])  # (F, 3) hip joint
        to_ankle = feet.ankle[:, foot] - hip
        d = np.clip(np.linalg.norm(to_ankle, axis=1), abs(l1 - l2) + 1e-4, (l1 + l2) * (1 - 1e-6))
        u = _unit(to_ankle)
        fy = feet.yaw[:, foot]
        pole = np.stack([np.sin(fy), np.zeros_like(fy), np.cos(fy)], axis=-1)  # knee points over the toes
        pole = _unit(pole - np.sum(pole * u, axis=1, keepdims=True) * u)
        cos_hip = np.clip((l1**2 + d**2 - l2**2) / (2 * l1 * d), -1.0, 1.0)
        thigh = cos_hip[:, None] * u + np.sqrt(1 - cos_hip**2)[:, None] * pole  # (F, 3) unit, hip -> knee
        x = _unit(np.cross(pole, u))  # knee hinge axis (world X in the rest pose)
        y = -thigh  # the thigh's rest direction is -Y
        z = np.cross(x, y)
        thigh_rot = Rotation.from_matrix(np.stack([x, y, z], axis=-1))
        knee = np.pi - np.arccos(np.clip((l1**2 + l2**2 - d**2) / (2 * l1 * l2), -1.0, 1.0))  # flexion, rad
        knee_rot = Rotation.from_rotvec(knee[:, None] * np.array([1.0, 0.0, 0.0]))
        foot_rot = Rotation.from_euler("YX", np.stack([fy, feet.pitch[:, foot]], axis=-1))  # heading, then pitch
        out[f"{side}UpLeg"] = hips.inv() * thigh_rot
        out[f"{side}Leg"] = knee_rot
        out[f"{side}Foot"] = (thigh_rot * knee_rot).inv() * foot_rot
        out[f"{side}ToeBase"] = Rotation.from_rotvec(feet.toe[:, foot, None] * np.array([1.0, 0.0, 0.0]))
    return out
