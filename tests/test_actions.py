"""The {sit, walk, stand} heuristic: hand-made hip trajectories, real mocap, and the synthetic corpus's ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.constants import ACTIONS, FPS, SAMPLE_RATE
from runtime.formats.bvh import read_bvh
from runtime.motion.clip import BvhClip
from runtime.motion.skeleton import Skeleton
from training.data.actions import (
    MIN_SEGMENT_S,
    hips_index,
    label_actions,
    label_clip,
    rest_hip_height,
)
from training.data.bodies import generate_pair
from training.data.curves import smoothstep
from training.data.dialogue import Dialogue, SpeechTrack
from training.data.skeleton_def import make_skeleton

SIT, WALK, STAND = (ACTIONS.index(a) for a in ("sit", "walk", "stand"))
STANDING_HIPS = 0.93  # m


def _noisy(hips: np.ndarray, seed: int = 0) -> np.ndarray:
    """Add what real mocap hips carry: 3 mm marker jitter and a slow 1.5 cm sway."""
    rng = np.random.default_rng(seed)
    n = len(hips)
    t = np.arange(n) / FPS
    sway = 0.015 * np.stack([np.sin(0.7 * t), np.zeros(n), np.sin(0.5 * t + 1.0)], axis=-1)
    return hips + sway + 0.003 * rng.standard_normal((n, 3))


def _scripted(segments: list[tuple[str, float]], transition: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(F, 3) hips and (F,) labels for a script of (action, seconds): walking at 1.1 m/s along +X, sitting down
    0.4 m back onto a 0.5 m seat; each change takes ``transition`` s, centred on the boundary."""
    n = int(sum(d for _, d in segments) * FPS)
    t = np.arange(n) / FPS
    labels = np.zeros(n, dtype=np.int8)
    walk, sit = np.zeros(n), np.zeros(n)
    start = 0.0
    for action, duration in segments:
        end = start + duration
        labels[(t >= start) & (t < end)] = ACTIONS.index(action)
        w = smoothstep((t - start + transition / 2) / transition) - smoothstep((t - end + transition / 2) / transition)
        if action == "walk":
            walk += w
        if action == "sit":
            sit += w
        start = end
    x = np.cumsum(1.1 * walk) / FPS - 0.4 * sit
    y = STANDING_HIPS + (0.5 - STANDING_HIPS) * sit
    return np.stack([x, y, np.zeros(n)], axis=-1), labels


def test_standing_walking_and_sitting_alone() -> None:
    n = 10 * FPS
    t = np.arange(n) / FPS
    still = _noisy(np.tile([0.0, STANDING_HIPS, 0.0], (n, 1)))
    walking = _noisy(np.stack([1.0 * t, STANDING_HIPS + 0.02 * np.sin(2 * np.pi * 1.8 * t), 0.02 * t], axis=-1))
    seated = _noisy(np.tile([0.0, 0.5, 0.0], (n, 1)))
    assert np.all(label_actions(still, FPS, STANDING_HIPS) == STAND)
    assert np.all(label_actions(walking, FPS, STANDING_HIPS) == WALK)
    assert np.all(label_actions(seated, FPS, STANDING_HIPS) == SIT)


def test_a_scripted_take_with_transitions() -> None:
    hips, truth = _scripted([("stand", 6), ("walk", 8), ("stand", 6), ("sit", 10), ("stand", 5), ("walk", 6)])
    for standing in (STANDING_HIPS, None):  # from the skeleton, or from the take itself
        labels = label_actions(_noisy(hips), FPS, standing)
        assert np.mean(labels == truth) > 0.97
        changes = np.flatnonzero(np.diff(labels)) + 1
        assert len(changes) == 5  # one label change per transition, no flicker
        np.testing.assert_allclose(changes / FPS, [6, 14, 20, 30, 35], atol=0.35)


def test_sitting_down_is_not_walking() -> None:
    """Stepping back 0.4 m onto a seat within 0.6 s is fast, but not a walk."""
    hips, _ = _scripted([("stand", 5), ("sit", 5), ("stand", 5)], transition=0.6)
    assert not np.any(label_actions(_noisy(hips), FPS, STANDING_HIPS) == WALK)


def test_no_label_run_is_shorter_than_the_minimum() -> None:
    n = 20 * FPS
    rng = np.random.default_rng(1)
    y = 0.8 * STANDING_HIPS + 0.03 * rng.standard_normal(n)  # hovering at the sit threshold
    labels = label_actions(np.stack([np.zeros(n), y, np.zeros(n)], axis=-1), FPS, STANDING_HIPS)
    runs = np.diff(np.concatenate([[0], np.flatnonzero(np.diff(labels)) + 1, [n]]))
    assert runs.min() >= MIN_SEGMENT_S * FPS


def test_rejects_input_that_is_not_hips_in_metres() -> None:
    with pytest.raises(ValueError, match=r"\(F, 3\)"):
        label_actions(np.zeros((10, 2)), FPS)
    with pytest.raises(ValueError, match="NaN"):
        label_actions(np.full((10, 3), np.nan), FPS)
    with pytest.raises(ValueError, match="metres"):
        label_actions(np.tile([0.0, 93.0, 0.0], (10, 1)), FPS)  # centimetres
    with pytest.raises(ValueError, match="fps"):
        label_actions(np.tile([0.0, 0.9, 0.0], (10, 1)), 0)


def test_hips_and_rest_height_from_a_skeleton() -> None:
    sk = make_skeleton(175.0)
    assert hips_index(sk) == 0
    assert rest_hip_height(sk) == pytest.approx(95.5 - 2.0)  # above the toe joints, 2 cm over the floor
    # a Mixamo export: prefixed names, an extra root above the hips
    names = ("Root", "mixamorig:Hips", "mixamorig:LeftUpLeg", "mixamorig:LeftLeg")
    offsets = np.array([[0.0, 0.0, 0.0], [0.0, 100.0, 0.0], [10.0, -5.0, 0.0], [0.0, -45.0, 0.0]])
    rot = ("Zrotation", "Xrotation", "Yrotation")
    channels = (("Xposition", "Yposition", "Zposition") + rot,) * 2 + (rot,) * 2
    mixamo = Skeleton(names, (-1, 0, 1, 2), offsets, channels, {3: np.array([0.0, -45.0, 0.0])})
    assert hips_index(mixamo) == 1
    assert rest_hip_height(mixamo) == pytest.approx(95.0)


def _silent_dialogue(seconds: float) -> Dialogue:
    n = int(seconds * FPS)
    tracks = [
        SpeechTrack(
            np.zeros(int(seconds * SAMPLE_RATE), np.float32),
            [],
            [],
            np.zeros(n, bool),
            np.zeros(n, np.float32),
            np.zeros(0),
        )
        for _ in range(2)
    ]
    return Dialogue(seconds, (tracks[0], tracks[1]))


def test_agrees_with_the_synthetic_ground_truth(tmp_path) -> None:
    """Three minutes of two people (fixed seed), labelled from the BVH hips alone: >= 97 % of frames agree."""
    from runtime.formats import bvh

    pair = generate_pair(_silent_dialogue(180.0), np.random.default_rng(2024))
    for i, person in enumerate(pair.people):
        clip = person.clip
        bvh.write_bvh(tmp_path / f"{i}.bvh", clip)  # through the file, as the training pipeline sees it
        clip = read_bvh(tmp_path / f"{i}.bvh")
        labels = label_clip(clip)
        assert np.bincount(person.actions, minlength=3).min() > 0  # the take has all three actions
        assert np.mean(labels == person.actions) >= 0.97


def test_real_mocap_gestures_are_standing(external) -> None:
    """Bandai Namco clips: one actor gesturing in place (extra root joint, 6 channels per joint, cm)."""
    for path in sorted((external / "bandai-namco-motion").glob("*.bvh")):
        clip = read_bvh(path)
        labels = label_clip(clip)
        assert len(labels) == clip.n_frames
        assert np.mean(labels == STAND) > 0.95, (path.name, np.bincount(labels, minlength=3))


def test_label_clip_reads_a_generated_clip_in_centimetres() -> None:
    pair = generate_pair(_silent_dialogue(12.0), np.random.default_rng(0))
    clip = pair.people[0].clip
    assert isinstance(clip, BvhClip) and clip.units == "cm"
    labels = label_clip(clip)
    assert labels.shape == (clip.n_frames,) and labels.dtype == np.int8
