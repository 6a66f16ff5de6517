"""Motion representation: BVH channels <-> rotations <-> model features (DESIGN section 4).

Rotation maths is scipy's ``Rotation``. BVH convention: a joint's rotation channels in file order name an intrinsic
Euler sequence, "Zrotation Xrotation Yrotation" is R = Rz Rx Ry = ``Rotation.from_euler("ZXY", [z, x, y])``.
Quaternions are scipy's (x, y, z, w) inside this module and (w, x, y, z) at its edge for engines (``quat_wxyz``).
World frame: right-handed, Y up. Positions are in the clip's units (``BvhClip.to_metres`` first for metres).

Model features per frame (as LDA / pymo ``RootTransformer("pos_rot_deltas")``):
``[root_dx, root_dz, root_dyaw, root_height]`` then an exponential map (rotation vector, radians) per joint.
- heading (yaw) = angle about +Y of the root's forward axis ``MotionLayout.forward`` (in the root joint's frame)
  projected on the ground, measured from +Z towards +X;
- dx, dz = the ground step from the previous frame, in the previous frame's heading frame; d-yaw = heading change
  wrapped to [-pi, pi); height = root Y. Frame 0 holds zeros: ``integrate_root`` starts from a given position and
  heading, and applies frame t's deltas to the state of frame t - 1 (frame -1 being the start);
- the root's own rotation is stored relative to its heading, Ry(-yaw) R_root_world, so it holds pitch, roll and
  whatever the rest pose puts there, not the walking direction.
Joints above the root (an extra ``joint_Root`` at the origin) are kept constant and restored on the way back; the
root's world transform is preserved exactly. Other joints' position channels are kept from the template (they are
constant in the data we have seen), or become features with ``MotionLayout.translated``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.spatial.transform import Rotation

from runtime.constants import FPS
from runtime.motion.clip import BvhClip
from runtime.motion.kinematics import (  # noqa: F401 - forward_kinematics, clip_pose, Pose, quat_wxyz re-exported for now
    Pose,
    _position_columns,
    clip_pose,
    expmap_to_quats,
    forward_kinematics,
    local_positions,
    local_quats,
    positions_from_values,
    quat_wxyz,
    quats_to_expmap,
    rotations_from_values,
    write_rotations,
)
from runtime.motion.skeleton import Skeleton, root_joint

log = logging.getLogger(__name__)

ROOT_FEATURES = ("root_dx", "root_dz", "root_dyaw", "root_height")
LEG_NAMES = re.compile(r"leg|thigh|knee|shin|calf|foot|ankle|toe", re.I)  # UpLeg, UpperLeg, LowerLeg, ToeBase ...
LEFT_NAMES = re.compile(r"left|(^|[^a-z])l([^a-z]|$)|^l(?=[A-Z])", re.I)
RIGHT_NAMES = re.compile(r"right|(^|[^a-z])r([^a-z]|$)|^r(?=[A-Z])", re.I)


# ----------------------------------------------------------------------------------------------------------------
# Root trajectory


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Radians wrapped to [-pi, pi)."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _yaw_rotation(yaw: np.ndarray) -> Rotation:
    return Rotation.from_rotvec(np.outer(yaw, [0.0, 1.0, 0.0]))


def root_deltas(positions: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """World root positions (F, 3) and headings (F,) radians -> (F, 4) [dx, dz, dyaw, height] (frame 0: zeros
    but its height)."""
    step = np.diff(positions[:, [0, 2]], axis=0)  # (F-1, 2) ground step x, z
    c, s = np.cos(yaw[:-1]), np.sin(yaw[:-1])  # previous frame's heading
    feats = np.zeros((len(yaw), 4))
    feats[1:, 0] = c * step[:, 0] - s * step[:, 1]  # Ry(-yaw) applied to the step
    feats[1:, 1] = s * step[:, 0] + c * step[:, 1]
    feats[1:, 2] = _wrap(np.diff(yaw))
    feats[:, 3] = positions[:, 1]
    return feats


def integrate_root(
    root_feats: np.ndarray, start_xz: tuple[float, float] | np.ndarray, start_yaw: float
) -> tuple[np.ndarray, np.ndarray]:
    """(F, 4) [dx, dz, dyaw, height] -> world root positions (F, 3) and headings (F,) radians (not wrapped).
    Frame t's deltas move the state of frame t - 1; frame -1 is (start_xz, start_yaw)."""
    root_feats = np.asarray(root_feats, dtype=np.float64)
    yaw = start_yaw + np.cumsum(root_feats[:, 2])  # (F,)
    prev = np.concatenate([[start_yaw], yaw[:-1]])  # heading each step is expressed in
    c, s = np.cos(prev), np.sin(prev)
    dx, dz = root_feats[:, 0], root_feats[:, 1]
    pos = np.empty((len(yaw), 3))
    pos[:, 0] = start_xz[0] + np.cumsum(c * dx + s * dz)  # Ry(yaw) applied to the step
    pos[:, 2] = start_xz[1] + np.cumsum(-s * dx + c * dz)
    pos[:, 1] = root_feats[:, 3]
    return pos, yaw


def heading(world_rot: Rotation, forward: np.ndarray) -> np.ndarray:
    """(N,) yaw in radians of the root's forward axis about +Y, from +Z towards +X."""
    f = world_rot.apply(np.asarray(forward, dtype=np.float64))
    return np.arctan2(f[:, 0], f[:, 2])


# ----------------------------------------------------------------------------------------------------------------
# Feature layout


def _ancestors(skeleton: Skeleton, j: int) -> list[int]:
    """Joints above j, top first."""
    chain = []
    while skeleton.parents[j] >= 0:
        j = skeleton.parents[j]
        chain.append(j)
    return chain[::-1]


def _descends(skeleton: Skeleton, j: int, of: set[int]) -> bool:
    return j in of or any(a in of for a in _ancestors(skeleton, j))


def _forward_axis(skeleton: Skeleton, root: int, lower: set[int]) -> tuple[float, float, float]:
    """The root's local forward axis: (left hip - right hip) x (up), where up points from the root to the centre
    of the upper body, all in the rest pose (offsets only). Falls back to +Z when the names do not tell."""
    rest = np.zeros((skeleton.n_joints, 3))
    below = [j for j in range(skeleton.n_joints) if root in _ancestors(skeleton, j)]
    for j in below:
        p = skeleton.parents[j]
        rest[j] = skeleton.offsets[j] + (rest[p] if p != root else 0.0)
    hips = [j for j in below if j in lower and (skeleton.parents[j] == root or skeleton.parents[j] not in lower)]
    left = [j for j in hips if LEFT_NAMES.search(skeleton.names[j]) and not RIGHT_NAMES.search(skeleton.names[j])]
    right = [j for j in hips if RIGHT_NAMES.search(skeleton.names[j]) and not LEFT_NAMES.search(skeleton.names[j])]
    upper = [j for j in below if j not in lower]
    if len(left) == 1 and len(right) == 1 and upper:
        fwd = np.cross(rest[left[0]] - rest[right[0]], rest[upper].mean(axis=0))
        if np.linalg.norm(fwd) > 1e-9:
            return tuple(float(v) for v in fwd / np.linalg.norm(fwd))
    log.warning("no left/right hips under %r: heading uses the root's local +Z", skeleton.names[root])
    return (0.0, 0.0, 1.0)


@dataclass(frozen=True)
class MotionLayout:
    """Which columns of a feature frame mean what, and the lower/upper split (paper 4.2). Bundle-manifest ready."""

    joints: tuple[str, ...]  # joints with rotation features, skeleton order (the root among them)
    root: str  # the joint whose motion becomes [dx, dz, dyaw, height] (hips / pelvis)
    lower: tuple[str, ...]  # lower-body joints: the root and the legs (network 1); the rest is upper (network 2)
    forward: tuple[float, float, float] = (0.0, 0.0, 1.0)  # root's local forward axis, defines the heading
    translated: tuple[str, ...] = ()  # non-root joints whose position channels are features too

    def __post_init__(self) -> None:
        if self.root not in self.joints:
            raise ValueError(f"MotionLayout.root {self.root!r} is not among its joints")
        for field, names in (("lower", self.lower), ("translated", self.translated)):
            missing = [n for n in names if n not in self.joints]
            if missing:
                raise ValueError(f"MotionLayout.{field}: {missing} are not among its joints {list(self.joints)}")
        if self.root in self.translated:
            raise ValueError("MotionLayout.translated must not list the root: its motion is the root features")

    @classmethod
    def from_skeleton(
        cls,
        skeleton: Skeleton,
        root: str | None = None,
        lower: list[str] | tuple[str, ...] | None = None,
        translated: tuple[str, ...] = (),
        forward: tuple[float, float, float] | None = None,
    ) -> MotionLayout:
        """Layout for a skeleton with standard naming. ``root`` defaults to the joint named hips/pelvis (else the
        first with positions); ``lower`` to the root plus every joint whose name says leg/thigh/knee/shin/calf/
        foot/ankle/toe, and their descendants; joints above the root are left out (kept constant)."""
        r = skeleton.index(root) if root is not None else root_joint(skeleton)
        above = set(_ancestors(skeleton, r))
        joints = [j for j in range(skeleton.n_joints) if j not in above and (j == r or skeleton.rotation_order(j))]
        if lower is None:
            legs = {j for j in joints if LEG_NAMES.search(skeleton.names[j])}
            low = {r} | {j for j in joints if _descends(skeleton, j, legs)}
        else:
            low = {r} | {skeleton.index(n) for n in lower}
            if not low <= set(joints):
                bad = sorted(skeleton.names[j] for j in low - set(joints))
                raise ValueError(f"lower-body joints {bad} have no rotation features (above the root or no rotations)")
        fwd = forward if forward is not None else _forward_axis(skeleton, r, low)
        names = skeleton.names
        return cls(
            tuple(names[j] for j in joints),
            names[r],
            tuple(names[j] for j in joints if j in low),
            tuple(float(v) for v in fwd),
            tuple(translated),
        )

    @cached_property
    def names(self) -> tuple[str, ...]:
        """Feature name per column: root_dx, root_dz, root_dyaw, root_height, <joint>_rx/_ry/_rz[, _px/_py/_pz]."""
        out = list(ROOT_FEATURES)
        for j in self.joints:
            out += [f"{j}_rx", f"{j}_ry", f"{j}_rz"]
            if j in self.translated:
                out += [f"{j}_px", f"{j}_py", f"{j}_pz"]
        return tuple(out)

    @property
    def n_features(self) -> int:
        return len(self.names)

    @cached_property
    def columns(self) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        """Joint name -> (its 3 exp-map columns, its 3 position columns or None)."""
        index = {n: i for i, n in enumerate(self.names)}
        return {
            j: (
                np.array([index[f"{j}_r{a}"] for a in "xyz"]),
                np.array([index[f"{j}_p{a}"] for a in "xyz"]) if j in self.translated else None,
            )
            for j in self.joints
        }

    def _split(self, lower: bool) -> np.ndarray:
        cols = list(range(len(ROOT_FEATURES))) if lower else []
        for j in self.joints:
            if (j in self.lower) == lower:
                rot, pos = self.columns[j]
                cols += list(rot) + (list(pos) if pos is not None else [])
        return np.array(sorted(cols), dtype=int)

    @property
    def lower_columns(self) -> np.ndarray:
        """Column indices of the lower body: the 4 root features, the root's rotation and the legs."""
        return self._split(lower=True)

    @property
    def upper_columns(self) -> np.ndarray:
        """Column indices of everything else: spine, neck, head, arms, hands, fingers."""
        return self._split(lower=False)

    def to_dict(self) -> dict:
        return {
            "joints": list(self.joints),
            "root": self.root,
            "lower": list(self.lower),
            "forward": list(self.forward),
            "translated": list(self.translated),
            "names": list(self.names),
        }

    @classmethod
    def from_dict(cls, d: dict) -> MotionLayout:
        layout = cls(
            tuple(d["joints"]),
            d["root"],
            tuple(d["lower"]),
            tuple(float(v) for v in d.get("forward", (0.0, 0.0, 1.0))),
            tuple(d.get("translated", ())),
        )
        if "names" in d and tuple(d["names"]) != layout.names:
            raise ValueError("motion layout: the stored feature names disagree with the joints they come from")
        return layout


# ----------------------------------------------------------------------------------------------------------------
# Clip <-> features


def _world_transform(skeleton: Skeleton, quats: np.ndarray, pos: np.ndarray, chain: list[int]) -> tuple:
    """World rotation (Rotation of F) and position (F, 3) at the end of ``chain`` (top joint first)."""
    f = quats.shape[0]
    rot, p = Rotation.identity(f), np.zeros((f, 3))
    for j in chain:
        p = p + rot.apply(pos[:, j])
        rot = rot * Rotation.from_quat(quats[:, j])
    return rot, p


def _joint_indices(layout: MotionLayout, skeleton: Skeleton) -> tuple[np.ndarray, int]:
    try:
        return np.array([skeleton.index(n) for n in layout.joints]), skeleton.index(layout.root)
    except KeyError as e:
        raise ValueError(f"motion layout does not fit the skeleton: {e.args[0]}") from None


def root_start(clip: BvhClip, layout: MotionLayout) -> tuple[np.ndarray, float]:
    """The clip's first root ground position (x, z) and heading (radians): ``features_to_clip``'s start."""
    sk = clip.skeleton
    _, r = _joint_indices(layout, sk)
    first = clip.values[:1]
    rot, pos = _world_transform(
        sk, rotations_from_values(sk, first), positions_from_values(sk, first), _ancestors(sk, r) + [r]
    )
    return pos[0, [0, 2]], float(heading(rot, layout.forward)[0])


def clip_to_features(clip: BvhClip, layout: MotionLayout) -> np.ndarray:
    """(F, D) float64 model features of a clip (layout columns; the module docstring says what they mean)."""
    sk = clip.skeleton
    joints, r = _joint_indices(layout, sk)
    quats, pos = local_quats(clip), local_positions(clip)  # (F, J, 4), (F, J, 3)
    above = _ancestors(sk, r)
    starts = sk.channel_offsets()
    moving = [
        sk.names[a] for a in above if np.ptp(clip.values[:, starts[a] : starts[a + 1]], axis=0).max(initial=0) > 0
    ]
    if moving:
        log.warning(
            "joints above the root %r move (%s): folded into the root, restored as constant", layout.root, moving
        )
    rot_w, pos_w = _world_transform(sk, quats, pos, above + [r])
    yaw = heading(rot_w, layout.forward)
    feats = np.empty((clip.n_frames, layout.n_features))
    feats[:, : len(ROOT_FEATURES)] = root_deltas(pos_w, yaw)
    local = quats[:, joints].copy()  # (F, K, 4)
    local[:, list(joints).index(r)] = (_yaw_rotation(-yaw) * rot_w).as_quat()
    expmap = quats_to_expmap(local)  # (F, K, 3) radians
    for k, name in enumerate(layout.joints):
        rot_cols, pos_cols = layout.columns[name]
        feats[:, rot_cols] = expmap[:, k]
        if pos_cols is not None:
            feats[:, pos_cols] = pos[:, joints[k]]
    return feats


def features_to_clip(
    features: np.ndarray,
    layout: MotionLayout,
    skeleton: Skeleton,
    start_xz: tuple[float, float] | np.ndarray,
    start_yaw: float,
    template: BvhClip | None = None,
    frame_time: float | None = None,
) -> BvhClip:
    """(F, D) features -> BVH clip. Channels the features do not carry (joints above the root, other joints'
    positions, joints left out) come from the template's first frame, else the rest pose (OFFSETs, zero angles).
    ``frame_time`` defaults to the template's, else 1 / FPS."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[1] != layout.n_features:
        raise ValueError(f"features: expected (frames, {layout.n_features}) for this layout, got {features.shape}")
    joints, r = _joint_indices(layout, skeleton)
    root_pos_cols = _position_columns(skeleton, r)
    if root_pos_cols is None:
        raise ValueError(f"root joint {layout.root!r} has no X/Y/Z position channels to carry the root motion")
    if template is not None and template.skeleton.n_channels != skeleton.n_channels:
        raise ValueError(f"template has {template.skeleton.n_channels} channels, skeleton {skeleton.n_channels}")
    if template is not None and template.n_frames:
        base = template.values[:1]
    else:
        base = np.zeros((1, skeleton.n_channels))
        for j in range(skeleton.n_joints):
            for axis, col in zip("XYZ", _position_columns(skeleton, j) or [], strict=False):
                base[0, col] = skeleton.offsets[j]["XYZ".index(axis)]
    n = len(features)
    values = np.repeat(base, n, axis=0)
    pos_w, yaw = integrate_root(features[:, : len(ROOT_FEATURES)], start_xz, start_yaw)
    rot_cols = np.stack([layout.columns[name][0] for name in layout.joints])  # (K, 3)
    quats = expmap_to_quats(features[:, rot_cols])  # (F, K, 4)
    rot_w = _yaw_rotation(yaw) * Rotation.from_quat(quats[:, list(joints).index(r)])
    base_quats, base_pos = rotations_from_values(skeleton, base), positions_from_values(skeleton, base)
    rot_a, pos_a = _world_transform(skeleton, base_quats, base_pos, _ancestors(skeleton, r))  # constant parent
    quats[:, list(joints).index(r)] = (rot_a.inv() * rot_w).as_quat()
    values[:, root_pos_cols] = rot_a.inv().apply(pos_w - pos_a)
    full = np.zeros((n, skeleton.n_joints, 4))
    full[:, joints] = quats
    write_rotations(skeleton, values, full, joints)
    for name in layout.translated:
        cols = _position_columns(skeleton, skeleton.index(name))
        if cols is None:
            raise ValueError(f"translated joint {name!r} has no X/Y/Z position channels")
        values[:, cols] = features[:, layout.columns[name][1]]
    if frame_time is None:
        frame_time = template.frame_time if template is not None else 1.0 / FPS
    return BvhClip(skeleton, frame_time, values)
