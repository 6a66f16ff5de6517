"""The streaming engine's invariants (DESIGN 5), on a real bundle of untrained networks."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from runtime.engine.frames import Frames
from runtime.engine.settings import FACE_NOISE, SessionSettings
from runtime.engine.stream import Engine
from runtime.model.model import Model


@pytest.fixture(scope="module")
def model(untrained_bundle: Path) -> Model:
    return Model.load(untrained_bundle)


def _speech(seconds: float, seed: int) -> np.ndarray:
    """Bursts of noisy tone with pauses: changes in energy like speech, deterministic."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    envelope = (np.sin(2 * np.pi * 1.3 * t + seed) > 0).astype(np.float32)
    return (envelope * (0.2 * np.sin(2 * np.pi * 180 * t) + 0.02 * rng.standard_normal(n))).astype(np.float32)


def _run(model: Model, a: np.ndarray, b: np.ndarray, chunk: int, settings: SessionSettings) -> tuple[Frames, Engine]:
    engine = Engine(model, settings)
    out = []
    for i in range(0, max(len(a), len(b)), chunk):
        engine.push_audio(0, a[i : i + chunk])
        engine.push_audio(1, b[i : i + chunk])
        while (f := engine.step()) is not None:
            out.append(f)
    if (f := engine.flush()) is not None:
        out.append(f)
    return Frames.concat(out), engine


def test_frames_are_complete_ordered_and_valid(model: Model) -> None:
    a, b = _speech(2.5, 0), _speech(2.5, 1)[:-3000]  # B ends earlier: silence makes up the difference
    frames, engine = _run(model, a, b, 640, SessionSettings(seed=1))
    assert len(frames) == int(np.ceil(len(a) * 30 / 16000)) == 75
    np.testing.assert_array_equal(frames.index, np.arange(75))
    np.testing.assert_allclose(frames.time, np.arange(75) / 30)
    for p in frames.people:
        assert p.blendshapes.shape == (75, 52) and p.blendshapes.min() >= 0 and p.blendshapes.max() <= 1
        norms = np.linalg.norm(p.joint_rotations, axis=-1)
        np.testing.assert_allclose(norms, 1.0, atol=1e-5)
        assert np.isfinite(p.root_position).all() and np.isfinite(p.rotations).all()
    assert engine.step() is None and engine.flush() is None  # nothing is emitted twice
    with pytest.raises(RuntimeError, match="after flush"):
        engine.push_audio(0, a[:10])


@pytest.mark.parametrize("chunk", [1, 160, 16000])
@pytest.mark.parametrize("face_noise", FACE_NOISE)
def test_output_does_not_depend_on_chunk_size(model: Model, chunk: int, face_noise: str) -> None:
    a, b = _speech(1.5, 2), _speech(1.5, 3)
    reference, _ = _run(model, a, b, 640, SessionSettings(seed=4, face_noise=face_noise))
    frames, _ = _run(model, a, b, chunk, SessionSettings(seed=4, face_noise=face_noise))
    for p, q in zip(reference.people, frames.people, strict=True):
        np.testing.assert_array_equal(p.blendshapes, q.blendshapes)
        np.testing.assert_array_equal(p.joint_rotations, q.joint_rotations)


def test_seed_is_the_only_source_of_variety(model: Model) -> None:
    a, b = _speech(1.0, 5), _speech(1.0, 6)
    one, _ = _run(model, a, b, 800, SessionSettings(seed=7))
    same, _ = _run(model, a, b, 800, SessionSettings(seed=7))
    other, _ = _run(model, a, b, 800, SessionSettings(seed=8))
    np.testing.assert_array_equal(one.people[0].blendshapes, same.people[0].blendshapes)
    assert not np.array_equal(one.people[0].blendshapes, other.people[0].blendshapes)


def test_controls_apply_from_their_time(model: Model) -> None:
    engine = Engine(model, SessionSettings(seed=1, actions=("stand", "sit")))
    engine.control(0, 0.5, action="walk")
    engine.push_audio(0, _speech(1.0, 1))
    engine.push_audio(1, _speech(1.0, 2))
    frames = engine.flush()
    actions = frames.people[0].action
    assert (actions[:15] == 2).all() and (actions[15:] == 1).all()  # stand until 0.5 s, then walk
    assert (frames.people[1].action == 0).all()
    assert any(e.kind == "control_applied" and e.time == 0.5 for e in engine.drain_events())
    with pytest.raises(ValueError, match="unknown style 'nobody'"):
        engine.control(1, 2.0, style="nobody")
    with pytest.raises(ValueError, match="finite number of seconds"):
        engine.control(1, float("nan"), action="sit")


def test_controls_of_one_frame_apply_in_arrival_order_and_are_bounded(model: Model) -> None:
    """Issue 15: STAND then SIT at the same time ended as STAND (enum order); 1M pending controls took 0.5 s a block."""
    from runtime.engine.stream import MAX_PENDING_CONTROLS, TooManyControls

    engine = Engine(model, SessionSettings(seed=1, actions=("walk", "walk")))
    engine.control(0, 0.5, action="stand")
    engine.control(0, 0.5, action="sit")
    engine.control(1, 0.5, action="sit")
    engine.control(1, 0.5, action="stand")
    engine.push_audio(0, _speech(1.0, 1))
    engine.push_audio(1, _speech(1.0, 2))
    frames = engine.flush()
    assert (frames.people[0].action[15:] == 0).all() and (frames.people[1].action[15:] == 2).all()  # the last wins
    engine = Engine(model, SessionSettings(seed=1))
    for i in range(MAX_PENDING_CONTROLS):
        engine.control(i % 2, 100.0 + i / 30, action="sit")
    with pytest.raises(TooManyControls, match="already waiting"):
        engine.control(0, 200.0, style="")
    assert len(engine.pending_controls) == MAX_PENDING_CONTROLS


def test_silent_speaker_times_out_into_silence(model: Model) -> None:
    engine = Engine(model, SessionSettings(seed=1, speaker_timeout=0.5))
    a = _speech(3.0, 1)
    for i in range(30):  # A arrives in real time, 100 ms per chunk; B sends nothing
        engine.push_audio(0, a[i * 1600 : (i + 1) * 1600], t=100.0 + i * 0.1)
    late = [e for e in engine.drain_events() if e.kind == "input_late"]
    assert len(late) == 1 and late[0].speaker == 1 and late[0].time == 0.0  # one event per gap
    assert engine.speakers[1].samples == engine.speakers[0].samples == 48000  # kept level with A
    frames = []
    while (f := engine.step()) is not None:
        frames.append(f)
    assert sum(len(f) for f in frames) >= 90 - 9  # A's audio kept producing frames
    engine.push_audio(1, _speech(0.5, 3), t=103.0)  # B comes back: its audio continues from the present
    assert engine.speakers[1].samples == 56000
    assert not [e for e in engine.drain_events() if e.kind == "input_late"]


def test_uploads_faster_than_real_time_never_time_out(model: Model) -> None:
    """10 s of A, then 10 s of B, sent in a moment: no silence is invented, 300 frames come out."""
    engine = Engine(model, SessionSettings(seed=1, speaker_timeout=0.5))
    engine.push_audio(0, _speech(10.0, 1), t=5.0)
    engine.push_audio(1, _speech(10.0, 2), t=5.01)
    assert not [e for e in engine.drain_events() if e.kind == "input_late"]
    assert len(engine.flush()) == 300


def test_buffers_stay_bounded(model: Model) -> None:
    settings = SessionSettings(seed=1, block=6, lookahead=3, context=24)
    frames, engine = _run(model, _speech(20.0, 1), _speech(20.0, 2), 4000, settings)
    assert len(frames) == 600
    for sp in engine.speakers:
        assert len(sp.frames) <= settings.window + 10
    assert engine.hist["lower"].shape[0] == settings.context and engine.hist_face.shape[1] == settings.context


def test_an_engine_without_settings_runs_at_the_bundles_defaults(model: Model) -> None:
    d = model.bundle.defaults
    s = Engine(model).settings
    assert (s.block, s.lookahead, s.context, s.steps) == (d["block"], d["lookahead"], d["context"], d["steps"])
    assert (s.block, s.steps) != (SessionSettings.block, SessionSettings.steps), "needs a bundle unlike the class"
    asked = SessionSettings.from_bundle(d, block=5, steps=None)
    assert (asked.block, asked.steps) == (5, d["steps"])


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="steps must be 1..8"):
        SessionSettings(steps=0).validate()
    with pytest.raises(ValueError, match="placement must be finite"):
        SessionSettings(placement=(float("inf"), 1.0, 0.0)).validate()
    with pytest.raises(ValueError, match="actions must be among"):
        SessionSettings(actions=("fly", "stand")).validate()
    with pytest.raises(ValueError, match="face_noise must be one of"):
        SessionSettings(face_noise="window").validate()


class _SlowModel(Model):
    """The real model, slowed down as if the machine were busy: compute falls behind real time."""

    def sample(self, *args, **kwargs):
        time.sleep(0.02)
        return super().sample(*args, **kwargs)


def test_degrades_in_a_declared_way_when_behind(untrained_bundle: Path) -> None:
    slow = _SlowModel(Model.load(untrained_bundle).bundle)
    engine = Engine(slow, SessionSettings(seed=1, block=1, lookahead=1, context=8, steps=4))
    engine.push_audio(0, _speech(1.0, 1))
    engine.push_audio(1, _speech(1.0, 2))
    while engine.step() is not None:
        pass
    degraded = [e for e in engine.drain_events() if e.kind == "degraded"]
    assert degraded and "steps 4 -> 2" in degraded[0].message
    assert engine.settings.steps < 4
