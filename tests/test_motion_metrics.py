"""The animator's body figures (training.metrics.motion) and the streamed body seams (runtime.engine.seams), each on
hand-made motion with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.constants import FPS
from runtime.engine.seams import FrameNoise, join, window_noise
from runtime.motion.skeleton import Skeleton
from training.metrics import motion as mo

NAMES = ("Hips", "Spine", "Head", "LeftForeArm", "LeftHand", "RightForeArm", "RightHand")


def _skeleton() -> Skeleton:
    rot = ("Zrotation", "Xrotation", "Yrotation")
    offsets = np.array([[0, 1.0, 0], [0, 0.3, 0], [0, 0.4, 0], [0.2, 0.1, 0], [0.25, 0, 0], [-0.2, 0.1, 0],
                        [-0.25, 0, 0]], float)  # fmt: skip
    return Skeleton(NAMES, (-1, 0, 1, 1, 3, 1, 5), offsets, (("Xposition", "Yposition", "Zposition", *rot),) +
                    (rot,) * 6)  # fmt: skip


def _still(n: int = 300) -> np.ndarray:
    return np.zeros((n, len(NAMES), 3)) + np.arange(len(NAMES))[None, :, None] * 0.1


def _waving(n: int, amplitude: float, freq: float, hands: tuple[int, ...] = (4, 6)) -> np.ndarray:
    x = _still(n)
    t = np.arange(n) / FPS
    for j in hands:
        x[:, j, 0] += amplitude * np.sin(2 * np.pi * freq * t)
    return x


def test_groups_are_found_by_name_in_ours_and_a_foreign_skeleton() -> None:
    g = mo.group_joints(NAMES)
    assert g["wrists"].tolist() == [4, 6] and g["elbows"].tolist() == [3, 5] and g["head"].tolist() == [2]
    foreign = ("Hips", "Head", "LowerArm_L", "Hand_L", "LowerArm_R", "Hand_R")
    assert mo.group_joints(foreign)["wrists"].tolist() == [3, 5]
    with pytest.raises(ValueError, match="wrists"):
        mo.group_joints(("Hips", "Head", "LeftForeArm"))


def test_body_height_is_the_rest_pose_vertical_extent() -> None:
    assert mo.body_height(_skeleton()) == pytest.approx(0.7)  # hips at 1.0, head at 1.7


def test_a_still_pose_has_no_speed_and_no_strokes() -> None:
    st = mo.MotionStats()
    st.add(_still(), mo.group_joints(NAMES), 1.0, np.arange(300) < 150)
    r = st.result(st)
    assert r["wrists_speed"] == 0 and r["head_speed"] == 0 and r["strokes_per_min"] == 0
    assert r["hand_speed_w1"] == 0


def test_a_sine_gives_its_analytic_speed_and_two_strokes_per_cycle() -> None:
    amplitude, freq, height, n = 0.1, 1.0, 0.5, 20 * FPS
    st = mo.MotionStats()
    st.add(_waving(n, amplitude, freq), mo.group_joints(NAMES), height)
    r = st.result()
    analytic = 2 / np.pi * amplitude * 2 * np.pi * freq / height  # mean |A w cos(w t)| in body heights/s
    assert r["wrists_speed"] == pytest.approx(analytic, rel=0.01)
    assert r["head_speed"] == 0
    assert r["strokes_per_min"] == pytest.approx(2 * freq * 60, rel=0.05)


def test_speaking_and_listening_split_the_frames_and_the_ratio_compares_them() -> None:
    n = 20 * FPS
    moving = _waving(n, 0.1, 1.0)
    x = np.where((np.arange(n) < n // 2)[:, None, None], moving, _waving(n, 0.05, 1.0))
    st = mo.MotionStats()
    st.add(x, mo.group_joints(NAMES), 1.0, np.arange(n) < n // 2)
    r = st.result()
    assert r["speaking_listening_ratio"] == pytest.approx(2.0, rel=0.05)
    ref = mo.MotionStats()
    ref.add(moving, mo.group_joints(NAMES), 1.0)
    assert st.result(ref)["energy_ratio"] == pytest.approx(0.75, rel=0.05)
    assert st.result(ref)["hand_speed_w1"] > 0


def test_window_noise_is_a_function_of_seed_stream_and_frame() -> None:
    a = window_noise(3, "body_lower", 60, (1, 33, 4))
    assert np.array_equal(a, window_noise(3, "body_lower", 60, (1, 33, 4)))
    assert not np.allclose(a, window_noise(3, "body_lower", 66, (1, 33, 4)))
    assert not np.allclose(a, window_noise(3, "body_upper", 60, (1, 33, 4)))
    assert a.dtype == np.float32


def test_frame_noise_gives_a_frame_the_same_draw_in_every_window_and_each_frame_its_own() -> None:
    rolling = FrameNoise(3, "face", 2, 5)
    windows = {first: rolling.window(first, 31).copy() for first in (-24, -21, -18, 30, 27, -24)}  # a jump, a step back
    for first, got in windows.items():
        assert got.shape == (2, 31, 5) and got.dtype == np.float32
        assert np.array_equal(got, FrameNoise(3, "face", 2, 5).window(first, 31))  # whatever came before
    assert np.array_equal(windows[-21][:, :28], windows[-24][:, 3:])  # overlapping windows agree frame by frame
    assert np.array_equal(windows[30][:, :28], windows[27][:, 3:])
    a = windows[-24]
    assert not np.allclose(a[:, 0], a[:, 1])  # each frame its own draw ...
    assert not np.allclose(a, FrameNoise(4, "face", 2, 5).window(-24, 31))  # ... and each seed
    assert abs(float(a.mean())) < 0.2 and 0.8 < float(a.std()) < 1.2  # standard normal


def test_the_seam_carries_the_committed_value_and_velocity_into_the_new_frames_and_dies_out() -> None:
    context, new, rate = 8, 30, 0.4
    history = (0.1 * np.arange(context, dtype=np.float32))[:, None]  # a ramp: value 0.7 and slope 0.1 at the seam
    x = np.zeros((1, context + new, 1), np.float32)  # the new window disagrees: level 0, flat
    out = join(history, x, context, rate)
    k = np.arange(1, new + 1)
    gap, slope = 0.7, 0.1  # c(k) = (g + (v + r g) k) exp(-r k): c(0) = g, c'(0) = v
    assert np.allclose(out[0, context:, 0], (gap + (slope + rate * gap) * k) * np.exp(-rate * k), atol=1e-6)
    assert abs(out[0, -1, 0]) < 1e-3  # gone by the end of the window
    assert np.array_equal(out[0, :context], x[0, :context])  # committed rows untouched
    assert np.array_equal(join(history, x, context, 0.0), x)  # rate 0: off
    assert np.array_equal(join(history[:1], x, context, rate), x)  # one committed frame: no velocity to match
