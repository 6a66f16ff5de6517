"""The synthetic corpus's body skeleton: a Mixamo-like hierarchy with full hands, in centimetres (DESIGN section 4).

Rest pose: **T-pose**. The character stands on the floor (y = 0 at the heels), faces +Z, Y is up and its left side
is +X (right-handed). Arms are horizontal along +-X with the palms down and the thumbs forward (+Z); legs straight
down. Every joint's rest frame is the world frame, so a zero rotation on every channel reproduces the T-pose and
joint angles can be authored directly about world axes (X: pitch, Y: yaw, Z: roll).

Proportions are for a 175 cm adult (hips 95.5 cm, arm span ~ height) and scale uniformly with the actor's height.
Joint names follow Mixamo without the ``mixamorig:`` prefix, so real Mixamo-retargeted BVH reads the same way.
"""

from __future__ import annotations

import numpy as np

from runtime.motion.skeleton import Skeleton

REFERENCE_HEIGHT_CM = 175.0  # the proportions below are for this standing height (floor to head top)
MIN_HEIGHT_CM, MAX_HEIGHT_CM = 140.0, 210.0  # outside this the proportions stop being plausible adults

ROOT_CHANNELS = ("Xposition", "Yposition", "Zposition")
DEFAULT_ROTATION_ORDER = "ZXY"  # Zrotation Xrotation Yrotation, as most mocap BVH writes it

# Leg geometry of the reference actor (cm). Kept as named constants: the generator's leg IK uses them.
HIP_HEIGHT_CM = 95.5  # Hips joint above the floor in the rest pose
HIP_JOINT_DROP_CM = 5.5  # UpLeg (hip joint) below the Hips joint
HIP_HALF_WIDTH_CM = 9.0  # UpLeg to the side of the Hips joint
THIGH_CM = 41.5  # UpLeg -> Leg (knee), straight down
SHANK_CM = 41.0  # Leg -> Foot (ankle), straight down
ANKLE_HEIGHT_CM = HIP_HEIGHT_CM - HIP_JOINT_DROP_CM - THIGH_CM - SHANK_CM  # 7.5 cm: Foot joint above the floor
TOE_HEIGHT_CM = 2.0  # ToeBase joint above the floor
TOE_FORWARD_CM = 12.5  # ToeBase ahead of the ankle

_FINGER_ROOTS = {  # left hand, offset of the first joint from the wrist (cm)
    "Thumb": (2.5, -1.0, 2.8),
    "Index": (9.3, 0.3, 2.6),
    "Middle": (9.6, 0.3, 0.8),
    "Ring": (9.1, 0.2, -1.0),
    "Pinky": (8.4, 0.0, -2.7),
}
_FINGER_BONES = {  # lengths of phalanges 1 -> 2, 2 -> 3, 3 -> tip (cm)
    "Thumb": (3.4, 2.9, 2.4),
    "Index": (4.0, 2.4, 2.0),
    "Middle": (4.4, 2.8, 2.2),
    "Ring": (4.0, 2.6, 2.0),
    "Pinky": (3.2, 2.0, 1.8),
}
FINGERS = tuple(_FINGER_ROOTS)  # ("Thumb", "Index", "Middle", "Ring", "Pinky")
_THUMB_DIR = np.array([0.62, -0.12, 0.78])  # thumb phalanges point forward and out from the wrist


def _unit(v: tuple[float, ...] | np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _reference_joints() -> list[tuple[str, str | None, np.ndarray, np.ndarray | None]]:
    """(name, parent, offset, end-site offset or None) for the 175 cm reference, parents first (BVH file order)."""
    j: list[tuple[str, str | None, np.ndarray, np.ndarray | None]] = []

    def add(name: str, parent: str | None, offset, end=None) -> None:
        j.append((name, parent, np.asarray(offset, dtype=np.float64), None if end is None else np.asarray(end)))

    add("Hips", None, (0.0, HIP_HEIGHT_CM, 0.0))
    add("Spine", "Hips", (0.0, 9.5, 0.5))
    add("Spine1", "Spine", (0.0, 11.0, 0.0))
    add("Spine2", "Spine1", (0.0, 12.5, -0.5))
    add("Neck", "Spine2", (0.0, 14.5, 0.5))
    add("Head", "Neck", (0.0, 10.0, 1.0), end=(0.0, 22.0, 0.0))  # head top at 175 cm
    for side, sx in (("Left", 1.0), ("Right", -1.0)):
        m = np.array([sx, 1.0, 1.0])  # mirror across the sagittal plane
        add(f"{side}Shoulder", "Spine2", m * (5.5, 10.5, 0.0))
        add(f"{side}Arm", f"{side}Shoulder", m * (12.0, 0.0, 0.0))  # shoulder joints 35 cm apart
        add(f"{side}ForeArm", f"{side}Arm", m * (28.0, 0.0, 0.0))
        add(f"{side}Hand", f"{side}ForeArm", m * (25.0, 0.0, 0.0))
        for finger in FINGERS:
            bones = _FINGER_BONES[finger]
            direction = _THUMB_DIR if finger == "Thumb" else np.array([1.0, 0.0, 0.0])
            add(f"{side}Hand{finger}1", f"{side}Hand", m * _FINGER_ROOTS[finger])
            add(f"{side}Hand{finger}2", f"{side}Hand{finger}1", m * direction * bones[0])
            add(f"{side}Hand{finger}3", f"{side}Hand{finger}2", m * direction * bones[1], end=m * direction * bones[2])
    for side, sx in (("Left", 1.0), ("Right", -1.0)):
        add(f"{side}UpLeg", "Hips", (sx * HIP_HALF_WIDTH_CM, -HIP_JOINT_DROP_CM, 0.0))
        add(f"{side}Leg", f"{side}UpLeg", (0.0, -THIGH_CM, 0.0))
        add(f"{side}Foot", f"{side}Leg", (0.0, -SHANK_CM, 0.0))
        add(
            f"{side}ToeBase",
            f"{side}Foot",
            (0.0, TOE_HEIGHT_CM - ANKLE_HEIGHT_CM, TOE_FORWARD_CM),
            end=(0.0, 0.0, 7.0),  # toe tip on the floor's 2 cm line, 19.5 cm ahead of the ankle
        )
    return j


def make_skeleton(height_cm: float = REFERENCE_HEIGHT_CM, rotation_order: str = DEFAULT_ROTATION_ORDER) -> Skeleton:
    """The synthetic actor's skeleton, offsets in cm scaled uniformly to ``height_cm`` (floor to head top).

    52 joints (Hips, 5 spine/neck/head, 2 x 19 arm and hand, 2 x 4 leg), 12 End Sites (head top, 10 finger tips,
    2 toe tips). The Hips carry ``Xposition Yposition Zposition`` then the rotations; every other joint carries
    three rotation channels in ``rotation_order`` (e.g. ``"ZXY"`` -> ``Zrotation Xrotation Yrotation``).
    """
    if not MIN_HEIGHT_CM <= height_cm <= MAX_HEIGHT_CM:
        raise ValueError(f"height_cm must be in [{MIN_HEIGHT_CM}, {MAX_HEIGHT_CM}] cm, got {height_cm}")
    order = rotation_order.upper()
    if sorted(order) != ["X", "Y", "Z"]:
        raise ValueError(f"rotation_order must be a permutation of 'XYZ', got {rotation_order!r}")
    rotations = tuple(f"{axis}rotation" for axis in order)
    scale = height_cm / REFERENCE_HEIGHT_CM
    joints = _reference_joints()
    names = tuple(name for name, _, _, _ in joints)
    index = {name: i for i, name in enumerate(names)}
    parents = tuple(-1 if parent is None else index[parent] for _, parent, _, _ in joints)
    offsets = np.stack([offset for _, _, offset, _ in joints]) * scale
    channels = tuple(ROOT_CHANNELS + rotations if parent is None else rotations for _, parent, _, _ in joints)
    end_sites = {i: end * scale for i, (_, _, _, end) in enumerate(joints) if end is not None}
    return Skeleton(names, parents, offsets, channels, end_sites)


def rest_positions(skeleton: Skeleton) -> np.ndarray:
    """(J, 3) joint positions in the rest pose (every rotation zero), source units, root at its offset."""
    pos = np.zeros((skeleton.n_joints, 3))
    for j, p in enumerate(skeleton.parents):
        pos[j] = skeleton.offsets[j] + (pos[p] if p >= 0 else 0.0)
    return pos


def leg_lengths_cm(skeleton: Skeleton) -> dict[str, float]:
    """Leg geometry the generator's IK needs, measured on ``skeleton`` (cm): thigh, shank, ankle height, etc."""
    pos = rest_positions(skeleton)
    up, knee, ankle, toe = (skeleton.index(f"Left{n}") for n in ("UpLeg", "Leg", "Foot", "ToeBase"))
    return {
        "thigh": float(np.linalg.norm(pos[knee] - pos[up])),
        "shank": float(np.linalg.norm(pos[ankle] - pos[knee])),
        "ankle_height": float(pos[ankle, 1]),
        "hip_height": float(pos[skeleton.index("Hips"), 1]),
        "hip_joint_drop": float(pos[0, 1] - pos[up, 1]),
        "hip_half_width": float(abs(pos[up, 0] - pos[0, 0])),
        "toe_forward": float(pos[toe, 2] - pos[ankle, 2]),
        "toe_height": float(pos[toe, 1]),
    }
