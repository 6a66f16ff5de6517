"""Motion representation: Euler conventions, forward kinematics, root deltas, layouts, feature round trips."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from runtime.formats.bvh import read_bvh
from runtime.motion import kinematics
from runtime.motion import root as motion
from runtime.motion.clip import BvhClip
from runtime.motion.root import MotionLayout, clip_to_features, features_to_clip, integrate_root, root_deltas
from runtime.motion.skeleton import Skeleton

ZXY6 = ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
ROT = {"ZXY": ("Zrotation", "Xrotation", "Yrotation"), "XYZ": ("Xrotation", "Yrotation", "Zrotation"),
       "ZYX": ("Zrotation", "Yrotation", "Xrotation"), "YZX": ("Yrotation", "Zrotation", "Xrotation")}  # fmt: skip


def walker() -> Skeleton:
    """Mixamo-like names, metres, mixed Euler orders, an extra root above the hips, End Sites on head and toes."""
    joints = [  # name, parent, offset, channels
        ("joint_Root", None, [0, 0, 0], ZXY6),
        ("Hips", "joint_Root", [0, 0.95, 0], ZXY6),
        ("Spine", "Hips", [0, 0.1, 0.01], ROT["XYZ"]),
        ("Neck", "Spine", [0, 0.45, 0], ROT["ZYX"]),
        ("Head", "Neck", [0, 0.1, 0.02], ROT["ZXY"]),
        ("LeftArm", "Spine", [0.18, 0.4, 0], ROT["YZX"]),
        ("LeftHand", "LeftArm", [0.5, 0, 0], ROT["ZXY"]),
        ("RightArm", "Spine", [-0.18, 0.4, 0], ROT["YZX"]),
        ("LeftUpLeg", "Hips", [0.09, -0.06, 0], ROT["ZXY"]),
        ("LeftLeg", "LeftUpLeg", [0, -0.42, 0], ROT["XYZ"]),
        ("LeftFoot", "LeftLeg", [0, -0.4, 0], ROT["ZXY"]),
        ("LeftToeBase", "LeftFoot", [0, -0.05, 0.12], ROT["ZYX"]),
        ("RightUpLeg", "Hips", [-0.09, -0.06, 0], ROT["ZXY"]),
        ("RightLeg", "RightUpLeg", [0, -0.42, 0], ROT["XYZ"]),
        ("RightFoot", "RightLeg", [0, -0.4, 0], ROT["ZXY"]),
        ("RightToeBase", "RightFoot", [0, -0.05, 0.12], ROT["ZYX"]),
    ]
    names = tuple(j[0] for j in joints)
    return Skeleton(
        names,
        tuple(-1 if p is None else names.index(p) for _, p, _, _ in joints),
        np.array([j[2] for j in joints], dtype=float),
        tuple(j[3] for j in joints),
        {4: np.array([0, 0.15, 0]), 11: np.array([0, 0, 0.05]), 15: np.array([0, 0, 0.05])},
    )


def walking_clip(n: int = 240, fps: float = 30.0, seed: int = 0) -> BvhClip:
    """A walk turning at 3 rad/s (heading crosses +-180 degrees several times), pitch and roll on the hips,
    random limb angles with gimbal-locked frames (middle Euler angle at 90 degrees), and a constant, non-trivial
    extra root (0.5 m off the origin, turned 30 degrees)."""
    sk = walker()
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fps
    yaw = 0.4 + 3.0 * t  # radians
    step = 1.2 / fps * np.stack([np.sin(yaw), np.cos(yaw)], axis=1)  # (F, 2) ground step along the heading
    xz = np.cumsum(step, axis=0)
    parent = Rotation.from_euler("ZXY", [0, 0, 30], degrees=True)
    parent_pos = np.array([0.5, 0.0, -0.2])
    hips_world = Rotation.from_rotvec(np.outer(yaw, [0, 1, 0])) * Rotation.from_euler(
        "XZ", np.stack([0.2 * np.sin(5 * t), 0.1 * np.cos(3 * t)], axis=1)
    )
    hips_pos = np.stack([xz[:, 0], 0.95 + 0.03 * np.sin(8 * t), xz[:, 1]], axis=1)
    values = np.zeros((n, sk.n_channels))
    values[:, 0:6] = [*parent_pos, 0, 0, 30]
    values[:, 6:9] = parent.inv().apply(hips_pos - parent_pos)
    values[:, 9:12] = (parent.inv() * hips_world).as_euler("ZXY", degrees=True)
    values[:, 12:] = rng.uniform(-170, 170, (n, sk.n_channels - 12))
    values[::7, 13] = 90.0  # Spine XYZ: Y = 90 -> gimbal lock
    values[::5, 16] = -90.0  # Neck ZYX: Y = -90
    return BvhClip(sk, 1.0 / fps, values)


def assert_same_motion(a: BvhClip, b: BvhClip, deg: float = 1e-4, metres: float = 1e-5, scale: float = 1.0) -> None:
    """Rotations compared as angles (Euler triples are not unique), positions local and world (FK)."""
    assert kinematics.rotation_angle_deg(kinematics.local_quats(a), kinematics.local_quats(b)).max() < deg
    np.testing.assert_allclose(
        kinematics.local_positions(a) * scale, kinematics.local_positions(b) * scale, atol=metres
    )
    pa, pb = kinematics.clip_pose(a, end_sites=True), kinematics.clip_pose(b, end_sites=True)
    np.testing.assert_allclose(pa.positions * scale, pb.positions * scale, atol=metres)
    np.testing.assert_allclose(pa.end_sites * scale, pb.end_sites * scale, atol=metres)


def test_bvh_euler_convention_is_intrinsic_in_channel_order() -> None:
    sk = Skeleton(("A",), (-1,), np.zeros((1, 3)), (ROT["ZXY"],))
    clip = BvhClip(sk, 1 / 30, np.array([[30.0, 20.0, 10.0]]))  # Zrotation, Xrotation, Yrotation in degrees
    z, x, y = np.radians([30.0, 20.0, 10.0])
    rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    got = Rotation.from_quat(kinematics.local_quats(clip)[0, 0]).as_matrix()
    np.testing.assert_allclose(got, rz @ rx @ ry, atol=1e-12)
    w, qx, qy, qz = kinematics.quat_wxyz(BvhClip(sk, 1 / 30, np.array([[0.0, 0.0, 90.0]])))[0, 0]
    np.testing.assert_allclose([w, qx, qy, qz], [np.sqrt(0.5), 0, np.sqrt(0.5), 0], atol=1e-12)


def test_numpy_quaternion_product_and_rotation_agree_with_scipy() -> None:
    """The posing hot path's quaternion maths (kinematics.quat_mul / quat_apply) against scipy's Rotation."""
    rng = np.random.default_rng(3)
    a, b = Rotation.random(50, random_state=1), Rotation.random(50, random_state=2)
    v = rng.normal(size=(50, 3))
    np.testing.assert_allclose(kinematics.quat_mul(a.as_quat(), b.as_quat()), (a * b).as_quat(), atol=1e-12)
    np.testing.assert_allclose(kinematics.quat_apply(a.as_quat(), v), a.apply(v), atol=1e-12)
    np.testing.assert_allclose(kinematics.quat_apply(a.as_quat(), v[0]), a.apply(v[0]), atol=1e-12)  # one offset


def test_forward_kinematics_chain_and_end_site() -> None:
    sk = Skeleton(("A", "B"), (-1, 0), np.array([[1.0, 0, 0], [1.0, 0, 0]]), (ROT["ZXY"], ROT["ZXY"]),
                  {1: np.array([0.0, 2.0, 0.0])})  # fmt: skip
    local = np.stack([Rotation.from_euler("z", [[90]], degrees=True).as_matrix()[0], np.eye(3)])[None]
    pose = kinematics.forward_kinematics(sk, local, sk.offsets[None], end_sites=True)
    np.testing.assert_allclose(pose.positions[0], [[1, 0, 0], [1, 1, 0]], atol=1e-12)  # B = A + Rz90 (1, 0, 0)
    np.testing.assert_allclose(pose.end_sites[0], [[-1, 1, 0]], atol=1e-12)  # + Rz90 (0, 2, 0)
    with pytest.raises(ValueError, match="expected rotations"):
        kinematics.forward_kinematics(sk, local[:, :1], sk.offsets[None])  # one joint's rotations for two


def test_circle_walk_integrates_back_to_the_same_trajectory() -> None:
    n, radius, turn = 200, 2.0, np.radians(4.0)  # 4 degrees per frame: the heading wraps twice
    phi = 0.3 + turn * np.arange(n)
    pos = np.stack([radius * np.sin(phi), np.full(n, 0.9), radius * np.cos(phi)], axis=1)
    yaw = np.arctan2(np.cos(phi), -np.sin(phi))  # facing along the path (clockwise seen from above)
    feats = root_deltas(pos, yaw)
    chord = 2 * radius * np.sin(turn / 2)
    np.testing.assert_allclose(feats[1:, 1], chord * np.cos(turn / 2), atol=1e-12)  # forward step
    np.testing.assert_allclose(np.abs(feats[1:, 0]), chord * np.sin(turn / 2), atol=1e-12)  # sideways drift
    np.testing.assert_allclose(np.abs(feats[1:, 2]), turn, atol=1e-12)  # wrapped, never a 2 pi jump
    np.testing.assert_array_equal(feats[0, :3], 0.0)
    back, back_yaw = integrate_root(feats, pos[0, [0, 2]], yaw[0])
    np.testing.assert_allclose(back, pos, atol=1e-9)
    np.testing.assert_allclose(np.angle(np.exp(1j * (back_yaw - yaw))), 0.0, atol=1e-9)


def test_features_round_trip_synthetic_walk_with_yaw_wrap_and_gimbal_lock() -> None:
    clip = walking_clip()
    layout = MotionLayout.from_skeleton(clip.skeleton)
    assert layout.root == "Hips" and "joint_Root" not in layout.joints
    feats = clip_to_features(clip, layout)
    assert feats.shape == (clip.n_frames, 4 + 3 * 15) and layout.n_features == feats.shape[1]
    assert np.abs(feats[1:, 2]).max() < 0.2  # 0.1 rad per frame turn, wrapped: no +-2 pi jumps
    np.testing.assert_allclose(feats[1:, 1], 1.2 / 30 * np.cos(0.05), atol=2e-3)  # forward step, heading frame
    start_xz, start_yaw = motion.root_start(clip, layout)
    assert start_yaw == pytest.approx(0.4, abs=0.25)  # the walk's heading, give or take pitch and roll
    back = features_to_clip(feats, layout, clip.skeleton, start_xz, start_yaw, template=clip)
    assert_same_motion(clip, back)
    np.testing.assert_allclose(back.values[:, :6], clip.values[:, :6], atol=1e-12)  # extra root restored


def test_features_round_trip_on_bandai_files(external: Path) -> None:
    for path in sorted((external / "bandai-namco-motion").glob("*.bvh")):
        clip = read_bvh(path)
        layout = MotionLayout.from_skeleton(clip.skeleton)
        feats = clip_to_features(clip, layout)
        start_xz, start_yaw = motion.root_start(clip, layout)
        back = features_to_clip(feats, layout, clip.skeleton, start_xz, start_yaw, template=clip)
        assert_same_motion(clip, back, scale=0.01)  # cm -> m for the 1e-5 m bound
        no_template = features_to_clip(feats, layout, clip.skeleton, start_xz, start_yaw)
        assert_same_motion(clip, no_template, scale=0.01)  # OFFSETs for the constant channels: 5e-6 cm apart


def test_round_trip_without_template_uses_rest_pose() -> None:
    sk = walker()
    plain = Skeleton(sk.names[1:], tuple(p - 1 for p in sk.parents[1:]), sk.offsets[1:], sk.channels[1:],
                     {j - 1: o for j, o in sk.end_sites.items()})  # fmt: skip
    clip = BvhClip(plain, 1 / 30, walking_clip(n=60).values[:, 6:].copy())  # no extra root, hips at the top
    layout = MotionLayout.from_skeleton(plain)
    feats = clip_to_features(clip, layout)
    back = features_to_clip(feats, layout, plain, *motion.root_start(clip, layout))
    assert back.frame_time == pytest.approx(1 / 30)
    assert_same_motion(clip, back)


def bandai_like() -> Skeleton:
    names = ["joint_Root", "Hips", "Spine", "Chest", "Neck", "Head"]
    parents = [-1, 0, 1, 2, 3, 4]
    for side in "LR":
        names += [f"Shoulder_{side}", f"UpperArm_{side}", f"LowerArm_{side}", f"Hand_{side}"]
        parents += [3, len(names) - 4, len(names) - 3, len(names) - 2]
    for side in "LR":
        names += [f"UpperLeg_{side}", f"LowerLeg_{side}", f"Foot_{side}", f"Toes_{side}"]
        parents += [1, len(names) - 4, len(names) - 3, len(names) - 2]
    offsets = np.tile([10.0, 0.0, 0.0], (len(names), 1))
    offsets[names.index("UpperLeg_L")] = [-2.2, -6.5, 0]  # the real file's hips: bones along X, left at -Y
    offsets[names.index("UpperLeg_R")] = [-2.2, 6.5, 0]
    return Skeleton(tuple(names), tuple(parents), offsets, tuple([ZXY6] * len(names)))


def test_lower_upper_split_bandai_names(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        layout = MotionLayout.from_skeleton(bandai_like())
    assert not caplog.records  # forward axis found from the hips, not the +Z fallback
    assert layout.forward == pytest.approx((0.0, 0.0, 1.0))  # (left - right hip) x (up = +X): local +Z
    legs = {f"{j}_{s}" for j in ("UpperLeg", "LowerLeg", "Foot", "Toes") for s in "LR"}
    assert set(layout.lower) == {"Hips"} | legs and "joint_Root" not in layout.joints
    upper = set(layout.joints) - set(layout.lower)
    assert upper == {"Spine", "Chest", "Neck", "Head"} | {
        f"{j}_{s}" for j in ("Shoulder", "UpperArm", "LowerArm", "Hand") for s in "LR"
    }
    lower_cols, upper_cols = layout.lower_columns, layout.upper_columns
    assert sorted(np.concatenate([lower_cols, upper_cols]).tolist()) == list(range(layout.n_features))
    assert [layout.names[c] for c in lower_cols[:7]] == [*motion.ROOT_FEATURES, "Hips_rx", "Hips_ry", "Hips_rz"]
    assert all(layout.names[c].split("_r")[0].split("_p")[0] in upper for c in upper_cols)


def test_lower_upper_split_mixamo_names_and_override() -> None:
    sk = walker()
    names = tuple("mixamorig:" + n if n != "joint_Root" else n for n in sk.names)
    sk = Skeleton(names, sk.parents, sk.offsets, sk.channels, sk.end_sites)
    layout = MotionLayout.from_skeleton(sk)
    assert layout.root == "mixamorig:Hips"
    assert layout.forward == pytest.approx((0.0, 0.0, 1.0), abs=0.05)  # +Z, square to the slightly leaning spine
    legs = {f"mixamorig:{s}{j}" for s in ("Left", "Right") for j in ("UpLeg", "Leg", "Foot", "ToeBase")}
    assert set(layout.lower) == {"mixamorig:Hips"} | legs
    assert "mixamorig:LeftHand" not in layout.lower and "mixamorig:LeftArm" not in layout.lower
    override = MotionLayout.from_skeleton(sk, lower=["mixamorig:LeftUpLeg"])
    assert set(override.lower) == {"mixamorig:Hips", "mixamorig:LeftUpLeg"}
    with pytest.raises(ValueError, match="joint_Root"):
        MotionLayout.from_skeleton(sk, lower=["joint_Root"])
    again = MotionLayout.from_dict(layout.to_dict())
    assert again == layout and again.names == layout.names
    tampered = layout.to_dict() | {"names": list(layout.names[::-1])}
    with pytest.raises(ValueError, match="disagree"):
        MotionLayout.from_dict(tampered)


def test_translated_joints_carry_their_positions() -> None:
    clip = walking_clip(n=30)
    sk = clip.skeleton
    six = tuple(ZXY6 if n == "LeftHand" else c for n, c in zip(sk.names, sk.channels, strict=True))
    sk6 = Skeleton(sk.names, sk.parents, sk.offsets, six, sk.end_sites)
    hand = sk6.channel_offsets()[sk.index("LeftHand")]
    values = np.insert(clip.values, hand, 0.0, axis=1)
    values = np.insert(values, hand, 0.0, axis=1)
    values = np.insert(values, hand, 0.0, axis=1)
    values[:, hand : hand + 3] = [0.5, 0.0, 0.0] + 0.05 * np.sin(np.arange(30))[:, None]  # a stretching hand
    clip6 = BvhClip(sk6, clip.frame_time, values)
    layout = MotionLayout.from_skeleton(sk6, translated=("LeftHand",))
    assert "LeftHand_px" in layout.names and layout.n_features == 4 + 3 * 15 + 3
    feats = clip_to_features(clip6, layout)
    back = features_to_clip(feats, layout, sk6, *motion.root_start(clip6, layout), template=clip6)
    assert_same_motion(clip6, back)
    plain = MotionLayout.from_skeleton(sk6)  # without the option the hand keeps the template's first frame
    kept = features_to_clip(clip_to_features(clip6, plain), plain, sk6, *motion.root_start(clip6, plain), clip6)
    assert np.ptp(kept.values[:, hand : hand + 3], axis=0).max() == 0.0


def test_streamed_feet_stay_on_or_above_the_floor(default_session) -> None:
    """Full forward kinematics of the shipped model's output (not the poser's own leg chain): no foot joint or toe
    tip below the floor (its raw feet sink 1-4 cm)."""
    info, frames, _ = default_session
    sk = info.skeleton
    feet = [j for j, n in enumerate(sk.names) if any(k in n.lower() for k in ("foot", "toe"))]
    ends = sorted(sk.end_sites)
    tips = [e for e, j in enumerate(ends) if j in feet]
    assert feet and tips
    for person in frames.people:
        n = len(frames)
        local = np.broadcast_to(np.asarray(sk.offsets, float), (n, sk.n_joints, 3)).copy()
        local[:, 0] = person.root_position
        rot = Rotation.from_quat(person.joint_rotations[..., [1, 2, 3, 0]].reshape(-1, 4).astype(np.float64))
        pose = kinematics.forward_kinematics(sk, rot, local, end_sites=True)
        lowest = np.minimum(pose.positions[:, feet, 1].min(1), pose.end_sites[:, tips, 1].min(1))
        assert lowest.min() > -1e-4, f"a foot {-100 * lowest.min():.1f} cm below the floor"
