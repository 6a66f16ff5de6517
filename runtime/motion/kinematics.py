"""Rotations and kinematics of BVH skeletons: channels <-> quaternions <-> exponential maps, forward kinematics.

Rotation maths is scipy's ``Rotation``. BVH convention: a joint's rotation channels in file order name an intrinsic
Euler sequence, "Zrotation Xrotation Yrotation" is R = Rz Rx Ry = ``Rotation.from_euler("ZXY", [z, x, y])``.
Quaternions are scipy's (x, y, z, w) inside this module and (w, x, y, z) at its edge for engines (``quat_wxyz``).
World frame: right-handed, Y up.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
from scipy.spatial.transform import Rotation

from runtime.motion.clip import BvhClip
from runtime.motion.skeleton import POSITION_CHANNELS, Skeleton

# ----------------------------------------------------------------------------------------------------------------
# Channels <-> rotations


def _rotation_groups(skeleton: Skeleton) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Euler order -> (joints (G,), their rotation value columns (G, len(order)) in that order)."""
    starts = skeleton.channel_offsets()
    groups: dict[str, tuple[list[int], list[list[int]]]] = {}
    for j, chans in enumerate(skeleton.channels):
        order = skeleton.rotation_order(j)
        if order:
            cols = [int(starts[j]) + chans.index(f"{axis}rotation") for axis in order]
            groups.setdefault(order, ([], []))[0].append(j)
            groups[order][1].append(cols)
    return {o: (np.array(js), np.array(cs)) for o, (js, cs) in groups.items()}


def _position_columns(skeleton: Skeleton, j: int) -> list[int] | None:
    """Value columns of joint j's X, Y, Z position channels, or None if it has not all three."""
    start = int(skeleton.channel_offsets()[j])
    chans = skeleton.channels[j]
    if not all(c in chans for c in POSITION_CHANNELS):
        return None
    return [start + chans.index(c) for c in POSITION_CHANNELS]


def rotations_from_values(skeleton: Skeleton, values: np.ndarray) -> np.ndarray:
    """(F, C) BVH values -> (F, J, 4) local quaternions (x, y, z, w); identity for joints without rotations."""
    f = values.shape[0]
    quats = np.zeros((f, skeleton.n_joints, 4))
    quats[..., 3] = 1.0
    for order, (joints, cols) in _rotation_groups(skeleton).items():
        angles = values[:, cols].reshape(-1, len(order))  # (F * G, k) degrees
        quats[:, joints] = Rotation.from_euler(order, angles, degrees=True).as_quat().reshape(f, len(joints), 4)
    return quats


def write_rotations(
    skeleton: Skeleton, values: np.ndarray, quats: np.ndarray, joints: np.ndarray | None = None
) -> None:
    """Write (F, J, 4) quaternions (x, y, z, w) into the rotation channels of ``values`` (F, C), in place, each
    joint in its own Euler order (only ``joints`` if given). A joint with fewer than three rotation channels gets
    the Euler angles of its order completed with the missing axes, the extra angles dropped."""
    f = values.shape[0]
    for order, (js, cols) in _rotation_groups(skeleton).items():
        keep = np.ones(len(js), bool) if joints is None else np.isin(js, joints)
        if not keep.any():
            continue
        js, cols = js[keep], cols[keep]
        full = order + "".join(a for a in "XYZ" if a not in order)
        rot = Rotation.from_quat(quats[:, js].reshape(-1, 4))
        with warnings.catch_warnings():  # at gimbal lock scipy picks one of the equivalent angle sets: fine here
            warnings.filterwarnings("ignore", message="Gimbal lock")
            angles = rot.as_euler(full, degrees=True)[:, : len(order)]
        values[:, cols] = angles.reshape(f, len(js), len(order))


def local_quats(clip: BvhClip) -> np.ndarray:
    """(F, J, 4) local joint rotations as quaternions (x, y, z, w), scipy's order."""
    return rotations_from_values(clip.skeleton, clip.values)


def quat_wxyz(clip: BvhClip) -> np.ndarray:
    """(F, J, 4) local joint rotations as quaternions (w, x, y, z), the engines' order (DESIGN section 4)."""
    return np.roll(local_quats(clip), 1, axis=-1)


def positions_from_values(skeleton: Skeleton, values: np.ndarray) -> np.ndarray:
    """(F, C) BVH values -> (F, J, 3) each joint's translation from its parent: its position channels where it
    has them (they replace the OFFSET, see ``runtime.formats.bvh``), else its OFFSET; a joint with only some position
    channels keeps the OFFSET on the other axes."""
    pos = np.broadcast_to(np.asarray(skeleton.offsets, dtype=np.float64), (len(values), skeleton.n_joints, 3))
    pos = pos.copy()
    starts = skeleton.channel_offsets()
    for j, chans in enumerate(skeleton.channels):
        for k, ch in enumerate(chans):
            if ch in POSITION_CHANNELS:
                pos[:, j, POSITION_CHANNELS.index(ch)] = values[:, starts[j] + k]
    return pos


def local_positions(clip: BvhClip) -> np.ndarray:
    """(F, J, 3) local joint translations of a clip (``positions_from_values``)."""
    return positions_from_values(clip.skeleton, clip.values)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of (..., 4) quaternions (x, y, z, w): rotate by b, then by a. Plain numpy, so the
    per-block posing pays no per-call overhead (scipy's ``Rotation`` costs ~20 us per object on this CPU)."""
    ax, ay, az, aw = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bx, by, bz, bw = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    out = np.empty(np.broadcast_shapes(a.shape, b.shape))
    out[..., 0] = aw * bx + ax * bw + ay * bz - az * by
    out[..., 1] = aw * by - ax * bz + ay * bw + az * bx
    out[..., 2] = aw * bz + ax * by - ay * bx + az * bw
    out[..., 3] = aw * bw - ax * bx - ay * by - az * bz
    return out


def quat_apply(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(..., 3) vectors ``v`` rotated by unit (..., 4) quaternions ``q`` (x, y, z, w): v + 2w (u x v) + 2u x (u x v)."""
    u = q[..., :3]
    t = 2.0 * _cross(u, v)
    return v + q[..., 3:] * t + _cross(u, t)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a0, a1, a2, b0, b1, b2 = a[..., 0], a[..., 1], a[..., 2], b[..., 0], b[..., 1], b[..., 2]
    out = np.empty(np.broadcast_shapes(a.shape, b.shape))
    out[..., 0] = a1 * b2 - a2 * b1
    out[..., 1] = a2 * b0 - a0 * b2
    out[..., 2] = a0 * b1 - a1 * b0
    return out


def slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation of (..., 4) quaternions (x, y, z, w) at weights t (...), shortest path."""
    shape = q0.shape
    r0 = Rotation.from_quat(q0.reshape(-1, 4))
    step = (r0.inv() * Rotation.from_quat(q1.reshape(-1, 4))).as_rotvec()  # (N, 3) radians, angle <= pi
    return (r0 * Rotation.from_rotvec(step * np.reshape(t, (-1, 1)))).as_quat().reshape(shape)


def quats_to_expmap(quats: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (x, y, z, w) -> (..., 3) exponential maps (rotation vectors, radians, angle <= pi)."""
    return Rotation.from_quat(quats.reshape(-1, 4)).as_rotvec().reshape(*quats.shape[:-1], 3)


def expmap_to_quats(expmap: np.ndarray) -> np.ndarray:
    """(..., 3) exponential maps (radians) -> (..., 4) quaternions (x, y, z, w)."""
    return Rotation.from_rotvec(expmap.reshape(-1, 3)).as_quat().reshape(*expmap.shape[:-1], 4)


def rotation_angle_deg(q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """(...) angle in degrees of the rotation between two (..., 4) quaternion arrays (x, y, z, w)."""
    r0, r1 = Rotation.from_quat(q0.reshape(-1, 4)), Rotation.from_quat(q1.reshape(-1, 4))
    return np.degrees((r0.inv() * r1).magnitude()).reshape(q0.shape[:-1])


# ----------------------------------------------------------------------------------------------------------------
# Forward kinematics


class Pose(NamedTuple):
    positions: np.ndarray  # (F, J, 3) world joint positions, the clip's units
    rotations: np.ndarray  # (F, J, 3, 3) world joint rotation matrices
    end_sites: np.ndarray | None  # (F, E, 3) End Site positions, joints in ascending index order, or None


def forward_kinematics(
    skeleton: Skeleton, local_rot: np.ndarray | Rotation, local_pos: np.ndarray, end_sites: bool = False
) -> Pose:
    """World positions and rotations from local rotations (F, J, 3, 3), or a ``Rotation`` of F * J (frame-major),
    and local translations (F, J, 3). Vectorised over frames; one step per joint, parents first."""
    f, j_count = local_pos.shape[:2]
    if isinstance(local_rot, Rotation):
        local_rot = local_rot.as_matrix().reshape(f, j_count, 3, 3)
    if local_rot.shape != (f, j_count, 3, 3) or j_count != skeleton.n_joints:
        raise ValueError(
            f"forward_kinematics: expected rotations ({f}, {skeleton.n_joints}, 3, 3) and positions "
            f"({f}, {skeleton.n_joints}, 3), got {local_rot.shape} and {local_pos.shape}"
        )
    rot = np.empty_like(local_rot)
    pos = np.empty_like(local_pos, dtype=np.float64)
    for j, p in enumerate(skeleton.parents):
        if p < 0:
            rot[:, j], pos[:, j] = local_rot[:, j], local_pos[:, j]
        else:
            rot[:, j] = rot[:, p] @ local_rot[:, j]
            pos[:, j] = pos[:, p] + np.einsum("fab,fb->fa", rot[:, p], local_pos[:, j])
    ends = None
    if end_sites:
        joints = sorted(skeleton.end_sites)
        offs = np.array([skeleton.end_sites[j] for j in joints]).reshape(-1, 3)  # (E, 3)
        ends = pos[:, joints] + np.einsum("feab,eb->fea", rot[:, joints], offs)
    return Pose(pos, rot, ends)


def clip_pose(clip: BvhClip, end_sites: bool = False) -> Pose:
    """Forward kinematics of a whole clip."""
    rot = Rotation.from_quat(local_quats(clip).reshape(-1, 4))
    return forward_kinematics(clip.skeleton, rot, local_positions(clip), end_sites)
