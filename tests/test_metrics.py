"""Metric functions on hand-made inputs with known answers (training/metrics)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from runtime.constants import FPS
from runtime.formats.arkit import INDEX, N_BLENDSHAPES
from runtime.motion.root import MotionLayout
from runtime.motion.skeleton import Skeleton
from training.data.actions import STAND
from training.data.dialogue import Phone
from training.metrics import body as bm
from training.metrics import face as fm

RNG = np.random.default_rng(0)


# -- Frechet distance and diversity (audio2photoreal) --------------------------------------------------------------


def _moments(x: np.ndarray, batches: int = 1) -> bm.Moments:
    m = bm.Moments(x.shape[1])
    for part in np.array_split(x, batches):
        m.add(part)
    return m


def test_moments_match_numpy_cov_when_accumulated_in_pieces():
    x = RNG.normal(5.0, 2.0, (500, 3))
    mean, cov = _moments(x, batches=7).stats()
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False), rtol=1e-9)


def test_fid_of_identical_sets_is_zero():
    x = RNG.normal(size=(2000, 4)) @ RNG.normal(size=(4, 4))
    assert bm.fid(_moments(x), _moments(x)) == pytest.approx(0.0, abs=1e-8)


def test_fid_of_a_shifted_gaussian_set_is_the_squared_shift():
    x = RNG.normal(size=(3000, 3)) @ np.diag([1.0, 2.0, 0.5])
    shift = np.array([1.0, -2.0, 0.5])
    assert bm.fid(_moments(x + shift), _moments(x)) == pytest.approx(float(shift @ shift), rel=1e-9)


def test_frechet_distance_of_diagonal_gaussians_has_the_closed_form():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)  # same means: sum (sqrt(a_i) - sqrt(b_i))^2 = 1 + 0 + 4
    assert bm.frechet_distance(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b)) == pytest.approx(expected)
    assert expected == 5.0


def test_diversity_scales_with_the_data_and_is_zero_for_a_constant():
    x = RNG.normal(size=(300, 5))
    one = bm.diversity(x, rng=np.random.default_rng(1))
    assert bm.diversity(3 * x, rng=np.random.default_rng(1)) == pytest.approx(3 * one)
    assert bm.diversity(np.ones((300, 5)), rng=np.random.default_rng(1)) == 0.0


def test_div_k_of_a_constant_is_zero_and_of_a_square_wave_its_variance():
    assert bm.temporal_variance(np.full((600, 4), 7.0)) == 0.0
    wave = np.tile([[0.0], [1.0]], (300, 2))  # (600, 2) alternating 0, 1: variance 0.25 per dimension
    assert bm.temporal_variance(wave) == pytest.approx(0.25)


def test_div_sample_is_the_variance_across_samples():
    base = RNG.normal(size=(50, 3))
    assert bm.sample_variance(np.stack([base, base])) == 0.0
    assert bm.sample_variance(np.stack([base, base + 2.0])) == pytest.approx(1.0)  # (d / 2)^2 for d = 2


def test_segments_cut_600_frame_spans_and_keep_short_clips_whole():
    assert bm.segments(1500) == [slice(0, 600), slice(600, 1200)]
    assert bm.segments(300) == [slice(0, 300)]


# -- Face -----------------------------------------------------------------------------------------------------------


def _face(n: int = 90, value: float = 0.2) -> np.ndarray:
    return np.full((n, N_BLENDSHAPES), value)


def test_lip_error_is_zero_for_identical_faces_and_the_offset_of_a_shifted_lip():
    gt = _face()
    assert fm.lip_error(gt, gt) == 0.0
    shifted = gt.copy()
    shifted[:, INDEX["mouthClose"]] += 0.15  # one lip channel off by 0.15, another by less
    shifted[:, INDEX["jawOpen"]] -= 0.05
    assert fm.lip_error(shifted, gt) == pytest.approx(0.15)
    brows = gt.copy()
    brows[:, INDEX["browInnerUp"]] += 0.5  # not a lip channel
    assert fm.lip_error(brows, gt) == 0.0


def test_fdd_compares_upper_face_dynamics_per_channel():
    gt = _face()
    gt[:, INDEX["browInnerUp"]] += 0.1 * (-1.0) ** np.arange(90)  # std 0.1 on one upper-face channel
    still = _face()
    assert fm.fdd(gt, gt) == 0.0
    assert fm.fdd(still, gt) == pytest.approx(0.1 / len(fm.UPPER_INDICES))
    assert fm.fdd_signed(still, gt) == pytest.approx(0.1 / len(fm.UPPER_INDICES))  # > 0: generated too still


def test_closure_counts_on_a_constructed_face():
    w = _face(value=0.0)
    w[:, INDEX["jawOpen"]] = 0.5  # lips open everywhere ...
    w[29:32, INDEX["jawOpen"]] = 0.0  # ... except around frame 30 (1.0 s)
    phones = [Phone("p", 1.0, 1.05), Phone("a", 1.05, 1.3), Phone("m", 2.0, 2.1), Phone("t", 2.5, 2.6)]
    assert fm.closure_counts(w, phones) == (1, 2)  # the p at 1.0 s closes, the m at 2.0 s does not
    assert fm.closure_counts(w, [Phone("t", 1.0, 1.1)]) == (0, 0)


def test_shut_while_open_counts_generated_closures_where_the_truth_is_open():
    gt = _face(value=0.0)
    gt[:, INDEX["jawOpen"]] = 0.5  # open on all 90 frames but 3
    gt[29:32, INDEX["jawOpen"]] = 0.0
    assert fm.shut_while_open(gt, gt) == (0, 87)
    mumbling = gt.copy()
    mumbling[60:70, INDEX["mouthClose"]] = 0.48  # gap 0.02 on 10 open frames
    mumbling[70:75, INDEX["mouthClose"]] = 0.42  # gap 0.08: not closed
    assert fm.shut_while_open(mumbling, gt) == (10, 87)
    closed = _face(value=0.0)  # a face that never opens: every closure scored, every open frame shut
    assert fm.shut_while_open(closed, gt) == (87, 87) and fm.closure_counts(closed, [Phone("p", 1.0, 1.1)]) == (1, 1)


def test_listener_reaction_is_one_for_a_smile_that_follows_the_partner():
    n = 300
    partner = (np.arange(n) // 30) % 2 == 1  # speaks every other second
    own = np.zeros(n, bool)
    w = _face(n, 0.0)
    w[:, INDEX["mouthSmileLeft"]] = 0.3 * partner
    r, used = fm.listener_reaction(w, own, partner)
    assert r == pytest.approx(1.0) and used == n
    assert fm.listener_reaction(_face(n), own, partner) == (0.0, n)  # a constant face does not react
    r, used = fm.listener_reaction(w, np.ones(n, bool), partner)  # never silent: undefined
    assert np.isnan(r) and used == 0


def test_speech_activity_marks_utterance_frames():
    active = fm.speech_activity([(1.0, 2.0)], 90)
    assert active.sum() == 30 and active[30] and not active[29] and not active[60]


# -- Body: pose space -------------------------------------------------------------------------------------------------


def _skeleton() -> Skeleton:
    rot = ("Zrotation", "Xrotation", "Yrotation")
    return Skeleton(
        ("Hips", "Spine", "Head", "LeftUpLeg", "LeftFoot"),
        (-1, 0, 1, 0, 3),
        np.array([[0, 0, 0], [0, 0.3, 0], [0, 0.4, 0], [0.1, 0, 0], [0, -0.85, 0]], float),
        (("Xposition", "Yposition", "Zposition", *rot), rot, rot, rot, rot),
    )


def _posed(n: int, yaw: float, root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = np.zeros((n, 5, 4))
    q[..., 0] = 1.0  # identity (w, x, y, z)
    q[:, 0] = np.roll(Rotation.from_rotvec([0.0, yaw, 0.0]).as_quat(), 1)  # root turned by yaw about +Y
    return q, np.broadcast_to(root, (n, 3)).copy()


def test_body_motion_puts_the_rest_pose_on_the_root_and_removes_position_and_heading():
    sk = _skeleton()
    layout = MotionLayout.from_skeleton(sk)
    at_origin = bm.body_motion(sk, layout, *_posed(4, 0.0, np.array([0.0, 0.9, 0.0])))
    np.testing.assert_allclose(at_origin.world[0, 2], [0.0, 1.6, 0.0], atol=1e-6)  # head = root + 0.3 + 0.4
    np.testing.assert_allclose(at_origin.world[0, 4], [0.1, 0.05, 0.0], atol=1e-6)  # foot 5 cm above the floor
    moved = bm.body_motion(sk, layout, *_posed(4, 1.0, np.array([2.0, 0.9, -3.0])))
    np.testing.assert_allclose(moved.yaw, 1.0, atol=1e-9)
    np.testing.assert_allclose(moved.local, at_origin.local, atol=1e-6)  # heading frame: same pose
    assert moved.pose_vectors().shape == (4, 3 * 5 - 2)


def test_joint_selections_by_name():
    sk = _skeleton()
    layout = MotionLayout.from_skeleton(sk)
    assert [sk.names[j] for j in bm.upper_body_joints(sk, layout)] == ["Spine", "Head"]
    assert [sk.names[j] for j in bm.foot_joints(sk, layout)] == ["LeftFoot"]


# -- Body: beat consistency (EMAGE) -----------------------------------------------------------------------------------


def test_beat_alignment_is_one_on_the_beat_and_gaussian_off_it():
    onsets = np.array([1.0, 2.0, 3.0])
    assert bm.beat_alignment(onsets, onsets) == pytest.approx(1.0)
    assert bm.beat_alignment(onsets + bm.BC_SIGMA, onsets) == pytest.approx(np.exp(-0.5))
    assert bm.beat_alignment(np.zeros(0), onsets) == 0.0
    assert np.isnan(bm.beat_alignment(onsets, np.zeros(0)))


def test_motion_beats_are_speed_minima_above_the_threshold():
    t = np.arange(300)
    speed = 1.0 + 0.5 * np.cos(2 * np.pi * t / 60)  # minima at 30, 90, ... (value 0.5 > 0.3)
    np.testing.assert_array_equal(bm.motion_beats(speed), [30, 90, 150, 210, 270])
    assert bm.motion_beats(speed - 0.9).size == 0  # minima at 0 < threshold 0.3: pauses, not beats


# -- Body: physical plausibility, actions, interaction ----------------------------------------------------------------


def _world_with_foot(foot: np.ndarray) -> np.ndarray:
    world = np.zeros((len(foot), 2, 3))
    world[:, 1] = foot
    return world


def test_foot_skating_is_zero_for_a_planted_foot_and_the_speed_of_a_sliding_one():
    n = 120
    planted = np.tile([0.1, 0.08, 0.3], (n, 1))
    total, count = bm.foot_skating(_world_with_foot(planted), np.array([1]))
    assert count == n and total == 0.0
    sliding = planted.copy()
    sliding[:, 0] += 0.5 * np.arange(n) / FPS  # 0.5 m/s along x at floor height
    total, count = bm.foot_skating(_world_with_foot(sliding), np.array([1]))
    assert count == n and total / count == pytest.approx(50.0)  # cm/s
    lifted = planted.copy()
    lifted[:, 1] += 0.2 * np.sin(np.arange(n) / 5.0) ** 2  # swinging up and down: mostly not in contact
    assert bm.foot_skating(_world_with_foot(lifted), np.array([1]))[1] < n / 2


def test_jerk_is_zero_for_constant_velocity_and_six_for_t_cubed():
    t = np.arange(60) / FPS
    linear = np.zeros((60, 1, 3))
    linear[:, 0, 0] = 1.5 * t
    assert bm.jerk(linear)[0] == pytest.approx(0.0, abs=1e-6)
    cubic = np.zeros((60, 1, 3))
    cubic[:, 0, 0] = t**3  # third derivative 6 m/s^3, exactly the third difference / dt^3
    total, count = bm.jerk(cubic)
    assert total / count == pytest.approx(6.0)


def test_action_agreement_is_one_when_the_heuristic_agrees():
    hips = np.tile([0.0, 0.95, 0.0], (90, 1))  # standing still
    labels = np.full(90, STAND)
    assert bm.action_agreement(hips, labels, FPS, 0.95) == (90, 90)
    agree, total = bm.action_agreement(hips, np.zeros(90, int), FPS, 0.95)  # asked to sit
    assert (agree, total) == (0, 90)


def test_pair_geometry_distance_and_facing_angles():
    a, b = np.zeros((3, 2)), np.tile([0.0, 2.0], (3, 1))  # B 2 m in front of A (+Z)
    np.testing.assert_allclose(bm.pair_distance(a, b), 2.0)
    np.testing.assert_allclose(bm.facing_angle(a, np.zeros(3), b), 0.0)  # A faces +Z: towards B
    np.testing.assert_allclose(bm.facing_angle(b, np.full(3, np.pi), a), 0.0, atol=1e-9)  # B turned back to A
    np.testing.assert_allclose(bm.facing_angle(a, np.full(3, np.pi / 2), b), 90.0)
    assert bm.distribution_distance(np.arange(10.0), np.arange(10.0) + 1.0) == pytest.approx(1.0)
