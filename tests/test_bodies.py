"""Synthetic two-person bodies: skeleton, determinism, postures, gait, placement and speech-driven gestures."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from runtime.constants import ACTIONS, FPS, SAMPLE_RATE
from runtime.motion.kinematics import Pose, clip_pose, local_quats
from runtime.motion.root import MotionLayout
from training.data.bodies import generate_pair
from training.data.dialogue import Dialogue, SpeechTrack, Utterance
from training.data.skeleton_def import FINGERS, make_skeleton, rest_positions

SIT, WALK, STAND = (ACTIONS.index(a) for a in ("sit", "walk", "stand"))


def hand_dialogue(seconds: float, seed: int, speakers: tuple[bool, bool] = (True, True)) -> Dialogue:
    """Turns of 1.5-6 s alternating between A and B, stressed syllables every 0.35-0.8 s, some backchannels.

    Audio is silent: the body generator reads only activity, loudness, stresses and utterances.
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * FPS))
    activity = [np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)]
    utterances: list[list[Utterance]] = [[], []]
    stresses: list[list[float]] = [[], []]
    t, who = 0.5, 0
    while t < seconds - 1.0:
        end = min(t + rng.uniform(1.5, 6.0), seconds - 0.5)
        if speakers[who]:
            activity[who][int(t * FPS) : int(end * FPS)] = True
            utterances[who].append(Utterance("turn", t, end))
            stresses[who] += list(np.arange(t + 0.2, end - 0.1, rng.uniform(0.35, 0.8)))
            if speakers[1 - who] and end - t > 2.5 and rng.random() < 0.4:
                b = t + rng.uniform(0.5, end - t - 1.0)
                activity[1 - who][int(b * FPS) : int((b + 0.5) * FPS)] = True
                utterances[1 - who].append(Utterance("mm-hm", b, b + 0.5, backchannel=True))
        t, who = end + rng.uniform(0.2, 1.0), 1 - who
    tracks = []
    for i in (0, 1):
        loudness = np.where(activity[i], rng.uniform(0.05, 0.2, n), 0.001).astype(np.float32)
        audio = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
        tracks.append(SpeechTrack(audio, [], utterances[i], activity[i], loudness, np.array(sorted(stresses[i]))))
    return Dialogue(seconds, (tracks[0], tracks[1]))


@pytest.fixture(scope="module")
def pair():
    """Three minutes of two people, fixed seed (about 1 s to generate)."""
    return generate_pair(hand_dialogue(180.0, seed=3), np.random.default_rng(3))


@pytest.fixture(scope="module")
def monologue():
    """Two minutes in which A speaks and B only listens: (dialogue, pair)."""
    d = hand_dialogue(120.0, seed=5, speakers=(True, False))
    return d, generate_pair(d, np.random.default_rng(5))


@pytest.fixture(scope="module")
def kinematics(pair) -> list[Pose]:
    """Per person: world joint positions (F, J, 3) in metres and rotations (F, J, 3, 3), from the BVH channels."""
    return [clip_pose(p.clip.to_metres()) for p in pair.people]


def _interior(mask: np.ndarray, margin: int) -> np.ndarray:
    """Frames of ``mask`` at least ``margin`` frames away from any frame outside it."""
    kernel = np.ones(2 * margin + 1)
    return np.convolve(mask.astype(float), kernel, mode="same") >= kernel.size - 0.5


# ------------------------------------------------------------------------------------------------------ skeleton


def test_skeleton_has_hands_feet_end_sites_and_mocap_channels() -> None:
    sk = make_skeleton(175.0)
    assert sk.n_joints == 52
    for side in ("Left", "Right"):
        for finger in FINGERS:
            for k in (1, 2, 3):
                assert sk.parents[sk.index(f"{side}Hand{finger}{k}")] >= 0
        assert sk.names[sk.parents[sk.index(f"{side}HandIndex1")]] == f"{side}Hand"
        assert sk.names[sk.parents[sk.index(f"{side}ToeBase")]] == f"{side}Foot"
    ends = {sk.names[j] for j in sk.end_sites}
    assert ends == {"Head"} | {f"{s}Hand{f}3" for s in ("Left", "Right") for f in FINGERS} | {
        "LeftToeBase",
        "RightToeBase",
    }
    assert sk.channels[0] == ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
    assert all(c == ("Zrotation", "Xrotation", "Yrotation") for c in sk.channels[1:])
    assert make_skeleton(175.0, "XYZ").channels[5] == ("Xrotation", "Yrotation", "Zrotation")


@pytest.mark.parametrize("height", [155.0, 175.0, 190.0])
def test_skeleton_scales_to_the_actor_height(height: float) -> None:
    sk = make_skeleton(height)
    rest = rest_positions(sk)
    head_top = rest[sk.index("Head"), 1] + sk.end_sites[sk.index("Head")][1]
    assert head_top == pytest.approx(height)
    assert rest[0, 1] / height == pytest.approx(95.5 / 175.0)  # hips at 95.5 cm for 175 cm
    assert rest[sk.index("LeftArm"), 0] > 0 > rest[sk.index("RightArm"), 0]  # T-pose facing +Z: left is +X
    with pytest.raises(ValueError, match="height_cm"):
        make_skeleton(2.0)


def test_layout_splits_lower_and_upper_body() -> None:
    """runtime.motion's default split by names: the root and the legs below, the rest (spine up, hands) above."""
    sk = make_skeleton(175.0)
    layout = MotionLayout.from_skeleton(sk)
    lower = set(layout.lower)
    upper = set(layout.joints) - lower
    assert layout.root == "Hips" and set(layout.joints) == set(sk.names)
    legs = {f"{s}{j}" for s in ("Left", "Right") for j in ("UpLeg", "Leg", "Foot", "ToeBase")}
    assert lower == {"Hips"} | legs
    assert {"Spine", "Head", "LeftHandPinky3", "RightHandThumb1", "RightShoulder"} <= upper
    assert len(layout.lower_columns) + len(layout.upper_columns) == layout.n_features


# ------------------------------------------------------------------------------------------------ generation


def test_deterministic_for_a_seed_and_finite() -> None:
    d = hand_dialogue(20.0, seed=1)
    a = generate_pair(d, np.random.default_rng(7))
    b = generate_pair(d, np.random.default_rng(7))
    c = generate_pair(d, np.random.default_rng(8))
    for pa, pb, pc in zip(a.people, b.people, c.people, strict=True):
        assert pa.clip.values.shape == (600, pa.skeleton.n_channels)
        assert np.all(np.isfinite(pa.clip.values))
        np.testing.assert_array_equal(pa.clip.values, pb.clip.values)
        np.testing.assert_array_equal(pa.actions, pb.actions)
        assert not np.array_equal(pa.clip.values, pc.clip.values)
    assert a.people[0].clip.frame_time == pytest.approx(1 / 30)


def test_rejects_tracks_of_the_wrong_length() -> None:
    d = hand_dialogue(5.0, seed=0)
    d.tracks[1].activity = d.tracks[1].activity[:-3]
    with pytest.raises(ValueError, match="track 1"):
        generate_pair(d, np.random.default_rng(0))


def test_corpus_has_every_action_and_transitions_take_time(pair) -> None:
    for p in pair.people:
        counts = np.bincount(p.actions, minlength=3)
        assert counts[SIT] > 0 and counts[WALK] > 0 and counts[STAND] > 0, counts
        runs = np.diff(np.flatnonzero(np.diff(p.actions)))
        assert runs.min() >= 5.0 * FPS  # segments last several seconds


def test_seated_hips_are_at_chair_height_and_standing_hips_at_leg_length(pair, kinematics) -> None:
    for p, (pos, _, _) in zip(pair.people, kinematics, strict=True):
        hip_y = pos[:, 0, 1]
        standing_rest = 0.955 * p.height_cm / 175.0  # rest-pose hips of this actor, m
        sitting = _interior(p.actions == SIT, FPS)
        standing = _interior(p.actions == STAND, FPS)
        assert 0.42 < np.median(hip_y[sitting]) < 0.62
        assert np.median(hip_y[standing]) == pytest.approx(standing_rest, rel=0.02)
        knee = np.abs(p.clip.values[:, p.skeleton.channel_offsets()[p.skeleton.index("LeftLeg")] + 1])  # X, degrees
        assert 60 < np.median(knee[sitting]) < 88  # knees bent about a right angle, clear of the 90-degree gimbal


def test_walking_speed_is_human(pair, kinematics) -> None:
    for p, (pos, _, _) in zip(pair.people, kinematics, strict=True):
        step = np.linalg.norm(np.diff(pos[:, 0, [0, 2]], axis=0), axis=1) * FPS
        speed = np.convolve(step, np.ones(FPS) / FPS, mode="same")  # m/s, 1 s average (over the gait cycle)
        cruising = _interior(p.actions[1:] == WALK, FPS)
        assert cruising.sum() > 5 * FPS
        assert np.percentile(speed[cruising], 2) > 0.7 and np.percentile(speed[cruising], 98) < 1.55
        standing = _interior(p.actions[1:] == STAND, 2 * FPS)
        assert np.percentile(speed[standing], 99) < 0.15  # idle sway and weight shifts only


def test_planted_feet_do_not_skate(pair, kinematics) -> None:
    """While a foot is on the floor its toes stay put (the ankle may roll up over them before lift-off)."""
    for p, (pos, _, _) in zip(pair.people, kinematics, strict=True):
        for f, side in enumerate(("Left", "Right")):
            toe = pos[:, p.skeleton.index(f"{side}ToeBase")]
            planted = p.contact[1:, f] & p.contact[:-1, f]
            speed = np.linalg.norm(np.diff(toe[:, [0, 2]], axis=0), axis=1) * FPS  # m/s
            assert planted.mean() > 0.7
            assert speed[planted].mean() < 0.005 and np.percentile(speed[planted], 99) < 0.02
            # independent of the generator's own contact flags: toes within 2 cm of their floor height
            low = toe[:, 1] < toe[:, 1].min() + 0.02
            both = low[1:] & low[:-1]
            assert speed[both].mean() < 0.03


def test_the_pair_keeps_apart_and_mostly_faces_each_other(pair, kinematics) -> None:
    """Never closer than 0.6 m; when not walking, each head points within 45 degrees of the partner's head on
    at least 80 % of frames (walkers mostly look ahead)."""
    hips = [pos[:, 0, [0, 2]] for pos, _, _ in kinematics]
    assert np.linalg.norm(hips[0] - hips[1], axis=1).min() > 0.6
    for i, (pos, rots, _) in enumerate(kinematics):
        talking = (pair.people[0].actions != WALK) & (pair.people[1].actions != WALK)
        head = pair.people[i].skeleton.index("Head")
        forward = rots[:, head, :, 2]  # the head's +Z axis in the world
        to_partner = kinematics[1 - i][0][:, head] - pos[:, head]
        off = np.degrees(np.arctan2(forward[:, 0], forward[:, 2]) - np.arctan2(to_partner[:, 0], to_partner[:, 2]))
        off = (off + 180.0) % 360.0 - 180.0
        assert np.mean(np.abs(off[talking]) < 45.0) > 0.8


def test_placement_describes_frame_zero(pair, kinematics) -> None:
    """Hips ground positions and headings (the Hips' +Z axis on the ground) at frame 0, and B seen from A."""
    hips = np.stack([pos[0, 0, [0, 2]] for pos, _, _ in kinematics])
    forward = np.stack([rots[0, 0, :, 2] for _, rots, _ in kinematics])  # (2, 3)
    np.testing.assert_allclose(pair.placement.positions, hips, atol=1e-9)
    np.testing.assert_allclose(pair.placement.yaws, np.arctan2(forward[:, 0], forward[:, 2]), atol=1e-9)
    left, ahead, turn = pair.placement.relative()
    d = hips[1] - hips[0]
    assert np.hypot(left, ahead) == pytest.approx(np.hypot(*d)) and 0.6 < np.hypot(left, ahead) < 3.0
    yaw_a = pair.placement.yaws[0]
    assert ahead == pytest.approx(d[0] * np.sin(yaw_a) + d[1] * np.cos(yaw_a))
    assert -np.pi <= turn < np.pi


def _joint_angle(p, name: str) -> np.ndarray:
    """(F,) degrees: how far joint ``name`` is rotated from its rest pose."""
    return np.degrees(Rotation.from_quat(local_quats(p.clip)[:, p.skeleton.index(name)]).magnitude())


def _angular_speed(p, names: list[str]) -> np.ndarray:
    """(F - 1,) mean angular speed (rad/s) of the named joints' local rotations."""
    quats = local_quats(p.clip)
    total = np.zeros(len(quats) - 1)
    for name in names:
        r = Rotation.from_quat(quats[:, p.skeleton.index(name)])
        total += (r[1:] * r[:-1].inv()).magnitude() * FPS
    return total / len(names)


def test_gestures_follow_speech(monologue) -> None:
    """A speaks, B only listens: A's arms and hands move far more while speaking than while silent, and than B."""
    d, pair = monologue
    arms = [f"{s}{j}" for s in ("Left", "Right") for j in ("Arm", "ForeArm", "Hand", "HandIndex1", "HandThumb2")]
    a, b = pair.people
    still_a = _interior(a.actions == STAND, FPS)[1:]
    still_b = _interior(b.actions == STAND, FPS)[1:]
    speaking = d.tracks[0].activity[1:]
    silent = _interior(~d.tracks[0].activity, FPS)[1:]  # a second away from A's speech (and its gestures' end)
    speed_a, speed_b = _angular_speed(a, arms), _angular_speed(b, arms)
    assert (still_a & silent).sum() > 5 * FPS
    assert speed_a[still_a & speaking].mean() > 2.0 * speed_a[still_a & silent].mean()
    assert speed_a[still_a & speaking].mean() > 2.0 * speed_b[still_b & speaking].mean()


def test_beats_land_on_stressed_syllables(monologue) -> None:
    """Averaged over A's stresses, the elbows' fast component (a beat extends the elbow: the hand drops) is lowest
    exactly at the stressed syllable, within +-0.5 s."""
    d, pair = monologue
    a = pair.people[0]
    elbows = sum(_joint_angle(a, f"{side}ForeArm") for side in ("Left", "Right"))  # (F,) degrees
    beat = elbows - gaussian_filter1d(elbows, 0.25 * FPS)
    stress = np.round(np.asarray(d.tracks[0].stresses) * FPS).astype(int)
    stress = stress[(stress > FPS) & (stress < len(beat) - FPS)]
    lags = np.arange(-FPS // 2, FPS // 2 + 1)
    locked = np.array([beat[stress + lag].mean() for lag in lags])
    assert lags[np.argmin(locked)] == 0
    assert locked.min() < -1.0  # degrees: a visible stroke, not noise


def test_listeners_nod_after_the_partner_finishes(monologue) -> None:
    """Head pitch (the X channel of Neck and Head) moves more in the 1.2 s after the partner's turns end."""
    d, pair = monologue
    listener = pair.people[1]
    sk = listener.skeleton
    pitch = sum(listener.clip.values[:, sk.channel_offsets()[sk.index(j)] + 1] for j in ("Neck", "Head"))
    nodding = np.abs(np.diff(pitch)) * FPS  # deg/s
    after_turn = np.zeros_like(nodding, dtype=bool)
    for u in d.tracks[0].utterances:
        after_turn[int(u.end * FPS) : int((u.end + 1.2) * FPS)] = True
    still = _interior(listener.actions == STAND, FPS)[1:]
    assert nodding[still & after_turn].mean() > 1.5 * nodding[still & ~after_turn].mean()


def test_bvh_round_trip(tmp_path, pair) -> None:
    bvh = pytest.importorskip("runtime.formats.bvh", reason="runtime.formats.bvh not written yet")
    if not hasattr(bvh, "write_bvh"):
        pytest.skip("runtime.formats.bvh.write_bvh not written yet")
    clip = pair.people[0].clip
    path = tmp_path / "a.bvh"
    bvh.write_bvh(path, clip)
    back = bvh.read_bvh(path)
    assert back.skeleton.names == clip.skeleton.names
    assert back.skeleton.channels == clip.skeleton.channels
    assert back.frame_time == pytest.approx(clip.frame_time)
    np.testing.assert_allclose(back.values, clip.values, atol=1e-4)
