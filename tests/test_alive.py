"""The living-face layer (runtime.engine.alive) and the head limits of the poser: known answers on hand-made
inputs, independence from block sizes, the switch, and parameters that are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import find_peaks
from scipy.spatial.transform import Rotation

from runtime.constants import FPS
from runtime.engine.alive import AliveLayer, AliveParams
from runtime.engine.frames import Frames
from runtime.engine.settings import SessionSettings
from runtime.engine.stream import Engine
from runtime.formats.arkit import INDEX
from runtime.model.model import Model
from runtime.motion.posing import HEAD_YAW_LIMIT_DEG, Poser
from runtime.motion.root import MotionLayout
from runtime.motion.skeleton import Skeleton

BLINK = [INDEX["eyeBlinkLeft"], INDEX["eyeBlinkRight"]]


def _inputs(seconds: float, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Turn-taking voice activity (4 s turns) and a loudness with syllable-like rises while speaking."""
    n = int(seconds * FPS)
    rng = np.random.default_rng(seed)
    turn = (np.arange(n) // (4 * FPS)) % 2 == 0
    speaking = turn & (rng.random(n) > 0.05)
    loud = np.where(speaking, -4.0 + 2.5 * (np.sin(2 * np.pi * 4 * np.arange(n) / FPS) > 0.3), -9.0)
    return np.full((n, 52), 0.05, np.float32), speaking, ~turn, loud


def _run(layer: AliveLayer, blocks: list[int], seconds: float) -> tuple[np.ndarray, np.ndarray]:
    w, s, q, loud = _inputs(seconds)
    out, heads, i = [], [], 0
    for b in blocks * (len(w) // sum(blocks) + 1):
        if i >= len(w):
            break
        o, h = layer.step(i, w[i : i + b], s[i : i + b], q[i : i + b], loud[i : i + b])
        out.append(o)
        heads.append(h)
        i += b
    return np.concatenate(out), np.concatenate(heads)


def test_output_does_not_depend_on_block_sizes() -> None:
    a = _run(AliveLayer(AliveParams(), seed=5, person=0), [6], 40)
    b = _run(AliveLayer(AliveParams(), seed=5, person=0), [1, 7, 3, 30], 40)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = _run(AliveLayer(AliveParams(), seed=6, person=0), [6], 40)
    d = _run(AliveLayer(AliveParams(), seed=5, person=1), [6], 40)
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[0], d[0])  # seed and person both matter


def test_blinks_have_the_declared_rate_peak_and_shape() -> None:
    w, _ = _run(AliveLayer(AliveParams(), seed=1, person=0), [6], 300)
    blink = w[:, BLINK].mean(axis=1)
    peaks, props = find_peaks(blink, prominence=0.3, width=0)
    per_min = len(peaks) / (len(w) / FPS / 60)
    assert 12 <= per_min <= 32, per_min  # the hazards plus phrase-end and gaze-shift blinks
    assert blink[peaks].min() >= 0.6 and blink[peaks].max() <= 0.95
    width_ms = 1000 * np.median(props["widths"]) / FPS  # at half prominence
    assert 70 <= width_ms <= 170, width_ms  # the real takes: ~100 ms
    assert np.all(np.diff(peaks) >= AliveParams().blink_refractory * FPS)


def test_a_still_layer_is_exactly_still() -> None:
    """Every rate and amplitude 0: the layer returns the model's weights unchanged and no head motion."""
    zero = {k: 0 for k in AliveParams().to_dict()} | {"blink_close_frames": 1, "blink_open_frames": 1,
                                                       "saccade_frames": 1}  # fmt: skip
    w, h = _run(AliveLayer(AliveParams.from_dict(zero), seed=1, person=0), [6], 20)
    np.testing.assert_array_equal(w, _inputs(20)[0])
    assert not h.any()


def test_listener_reacts_when_the_partner_pauses() -> None:
    """A listener (never speaking) whose partner talks in 2 s stretches nods and smiles after the stretches."""
    n = 60 * FPS
    partner = (np.arange(n) // (2 * FPS)) % 2 == 0
    quiet = np.zeros(n, bool)
    layer = AliveLayer(AliveParams(sway_deg=0.0), seed=3, person=1)
    w, head = layer.step(0, np.zeros((n, 52), np.float32), quiet, partner, np.full(n, -9.0))
    nods = find_peaks(head[:, 1], height=np.radians(2))[0]
    pauses = np.flatnonzero(partner[:-1] & ~partner[1:]) + 1
    expected = AliveParams().backchannel * len(pauses) * 2  # backchannel nods are double nods
    assert 0.6 * expected <= len(nods) <= 1.4 * expected
    assert all((p - pauses).min() < FPS for p in nods if (p - pauses >= 0).any())  # each follows a pause
    assert w[:, INDEX["mouthSmileLeft"]].max() > 0.1


@pytest.mark.parametrize("bad", [{"blink_peak": float("nan")}, {"blink_peak": 1.5}, {"wink_rate": 1.0},
                                 {"nod_deg": -1}, {"saccade_frames": 0}, {"smile": True}])  # fmt: skip
def test_bad_parameters_are_named(bad: dict) -> None:
    with pytest.raises(ValueError, match="bundle: alive"):
        AliveParams.from_dict(bad, "bundle: alive")


def test_frames_must_be_consecutive() -> None:
    layer = AliveLayer(AliveParams(), 0, 0)
    w, s, q, loud = _inputs(1)
    layer.step(0, w[:6], s[:6], q[:6], loud[:6])
    with pytest.raises(ValueError, match="expected 6, got 7"):
        layer.step(7, w[6:12], s[6:12], q[6:12], loud[6:12])


def test_engine_switch_turns_the_layer_off(untrained_bundle: Path) -> None:
    model = Model.load(untrained_bundle)
    tone = (0.2 * np.sin(np.arange(32000) / 7) * (np.arange(32000) % 8000 < 5000)).astype(np.float32)

    def run(alive: bool) -> Frames:
        engine = Engine(model, SessionSettings(seed=2, alive=alive))
        engine.push_audio(0, tone)
        engine.push_audio(1, tone[::-1].copy())
        return engine.flush()

    on, off = run(True), run(False)
    assert on.people[0].blendshapes.std(axis=0).sum() > off.people[0].blendshapes.std(axis=0).sum()
    np.testing.assert_array_equal(on.people[0].root_position, off.people[0].root_position)  # bodies untouched


def _neck_head_poser() -> Poser:
    sk = Skeleton(("Hips", "Spine", "Neck", "Head"), (-1, 0, 1, 2), np.array([[0, 1, 0], [0, 0.2, 0], [0, 0.3, 0],
                  [0, 0.1, 0]], float), (("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation",
                  "Yrotation"),) + (("Zrotation", "Xrotation", "Yrotation"),) * 3)  # fmt: skip
    return Poser(sk, MotionLayout.from_skeleton(sk))


def test_head_yaw_is_limited_relative_to_the_torso() -> None:
    poser = _neck_head_poser()
    layout = poser.layout
    feats = np.zeros((3, layout.n_features), np.float32)
    feats[:, 3] = 1.0  # hip height
    for j, deg in (("Neck", 40.0), ("Head", 60.0)):  # 100 degrees in all: past any human neck
        feats[:, layout.columns[j][0]] = Rotation.from_euler("y", [[deg]] * 3, degrees=True).as_rotvec()
    posed = poser.pose(feats, np.zeros((3, 2)), np.zeros(3), np.zeros((3, 52), np.float32))
    np.testing.assert_allclose(np.degrees(posed.rotations[:, 0]), HEAD_YAW_LIMIT_DEG, atol=1e-3)
    feats[:, layout.columns["Head"][0]] = Rotation.from_euler("y", [[10.0]] * 3, degrees=True).as_rotvec()
    nod = np.array([[0.0, np.radians(5), 0.0]] * 3)
    posed = poser.pose(feats, np.zeros((3, 2)), np.zeros(3), np.zeros((3, 52), np.float32), nod)
    np.testing.assert_allclose(np.degrees(posed.rotations[:, :2]), [[50.0, 5.0]] * 3, atol=1e-3)  # within range
