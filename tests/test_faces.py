"""Synthetic ARKit faces: ranges, bilabial closure, rest in silence, blinks, listening reactions, helpers."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.constants import FPS
from runtime.formats.arkit import ARKIT_NAMES, INDEX
from training.data.dialogue import Phone
from training.data.faces import (
    EMOTIONS,
    LIP_CHANNELS,
    UPPER_FACE_CHANNELS,
    FaceStyle,
    bilabial_closure_rate,
    bilabial_onsets,
    emotion_name,
    generate_face,
    lip_gap,
    lips_closed,
)
from training.data.speech import generate_dialogue, lip_sentences

REACTIONS = [INDEX[c] for c in ("mouthSmileLeft", "mouthSmileRight", "cheekSquintLeft", "cheekSquintRight",
                                "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "eyeSquintLeft")]  # fmt: skip


@pytest.fixture(scope="module")
def dialogue():
    return generate_dialogue(np.random.default_rng(11), 60.0)


@pytest.fixture(scope="module")
def faces(dialogue):
    return [generate_face(dialogue, k, "joy", np.random.default_rng(k)) for k in (0, 1)]


def _away_from_own_speech(track, frames: int) -> np.ndarray:
    """(F,) bool: at least ``frames`` frames from any of the person's own utterances."""
    near = np.convolve(track.activity.astype(float), np.ones(2 * frames + 1), "same") > 0
    return ~near


def test_shape_range_and_tongue(dialogue, faces):
    for w in faces:
        assert w.shape == (dialogue.n_frames, 52) and w.dtype == np.float32
        assert w.min() >= 0.0 and w.max() <= 1.0
        assert not w[:, INDEX["tongueOut"]].any()
        assert np.all(w[:, INDEX["mouthClose"]] <= w[:, INDEX["jawOpen"]] + 1e-7)


def test_bilabials_close_the_lips_on_time(dialogue, faces):
    for w, track in zip(faces, dialogue.tracks, strict=True):
        assert len(bilabial_onsets(track.phones)) > 20
        assert bilabial_closure_rate(w, track.phones) >= 0.95
        assert bilabial_closure_rate(w, track.phones, tolerance_frames=0) >= 0.9


def test_mouth_moves_with_speech_and_rests_in_silence(dialogue, faces):
    for w, track in zip(faces, dialogue.tracks, strict=True):
        opened = ~lips_closed(w)
        assert opened[track.activity].mean() > 0.5  # the lips are apart for most of the speech
        assert lips_closed(w)[_away_from_own_speech(track, 5)].mean() >= 0.95  # shut 150 ms after speech
        jaw = w[:, INDEX["jawOpen"]]
        open_vowels = [round(p.start * FPS + (p.end - p.start) * FPS / 2) for p in track.phones if p.symbol == "aI"]
        stops = [round(p.start * FPS) for p in track.phones if p.symbol in ("p", "b")]
        assert jaw[open_vowels].mean() > 2.0 * jaw[stops].mean()


def test_mouth_anticipates_speech_onsets():
    clip = lip_sentences(1, np.random.default_rng(4))[0]
    w = generate_face(clip, 0, "neutral", np.random.default_rng(0), FaceStyle())
    onset = round(clip.tracks[0].phones[0].start * FPS)
    lips = w[:, [INDEX[c] for c in LIP_CHANNELS]]
    moving = np.nonzero(lips.max(axis=1) > 0.02)[0]
    assert onset - 6 <= moving[0] < onset  # starts moving 33-200 ms before the first phoneme


def test_blinks_are_plausible(dialogue, faces):
    for w in faces:
        blink = w[:, INDEX["eyeBlinkLeft"]]
        closed = blink > 0.5
        n_blinks = int(np.sum(closed[1:] & ~closed[:-1]))
        assert 8 <= n_blinks <= 35  # per minute
        assert closed.sum() / n_blinks <= 5  # frames shut per blink: ~150 ms
        assert np.corrcoef(blink, w[:, INDEX["eyeBlinkRight"]])[0, 1] > 0.9  # both eyes


def test_listening_reactions_follow_the_partner(dialogue, faces):
    """With the person silent, their smiles/brows/squints come while the partner talks: partner audio matters."""
    for k, w in enumerate(faces):
        quiet = _away_from_own_speech(dialogue.tracks[k], 3)
        partner = dialogue.tracks[1 - k].activity
        reaction = w[:, REACTIONS].sum(axis=1)
        assert reaction[quiet & partner].mean() > reaction[quiet & ~partner].mean()
        assert np.corrcoef(reaction[quiet], partner[quiet])[0, 1] > 0.1


def test_deterministic_and_emotion_dependent(dialogue, faces):
    np.testing.assert_array_equal(generate_face(dialogue, 0, "happy", np.random.default_rng(0)), faces[0])
    style = FaceStyle()
    happy = generate_face(dialogue, 0, "happiness", np.random.default_rng(5), style)
    sad = generate_face(dialogue, 0, "sadness", np.random.default_rng(5), style)
    angry = generate_face(dialogue, 0, "Anger", np.random.default_rng(5), style)
    assert happy[:, INDEX["mouthSmileLeft"]].mean() > sad[:, INDEX["mouthSmileLeft"]].mean() + 0.1
    assert sad[:, INDEX["mouthFrownLeft"]].mean() > happy[:, INDEX["mouthFrownLeft"]].mean() + 0.1
    assert angry[:, INDEX["browDownLeft"]].mean() > happy[:, INDEX["browDownLeft"]].mean() + 0.2
    for emotion in EMOTIONS:
        w = generate_face(dialogue, 1, emotion, np.random.default_rng(0))
        assert w.min() >= 0.0 and w.max() <= 1.0
        assert bilabial_closure_rate(w, dialogue.tracks[1].phones) >= 0.95, emotion


def test_helpers_on_hand_made_weights():
    w = np.zeros((6, 52), np.float32)
    w[:, INDEX["jawOpen"]] = [0.0, 0.5, 0.3, 0.3, 0.04, 0.2]
    w[:, INDEX["mouthClose"]] = [0.0, 0.0, 0.3, 0.0, 0.0, 0.3]
    np.testing.assert_allclose(lip_gap(w), [0.0, 0.5, 0.0, 0.3, 0.04, 0.0], atol=1e-7)
    np.testing.assert_array_equal(lips_closed(w), [True, False, True, False, True, True])
    phones = [Phone("m", 1 / FPS, 2 / FPS), Phone("a", 2 / FPS, 3 / FPS), Phone("b", 3.4 / FPS, 4 / FPS)]
    np.testing.assert_array_equal(bilabial_onsets(phones), [1, 3])
    assert bilabial_closure_rate(w, phones) == 1.0  # frame 1 open but 0 and 2 closed; frame 3 open, 2 and 4 closed
    assert bilabial_closure_rate(w, phones, tolerance_frames=0) == 0.0
    assert np.isnan(bilabial_closure_rate(w, [Phone("a", 0.0, 0.1)]))
    with pytest.raises(ValueError, match="shape"):
        lip_gap(np.zeros((4, 51)))


def test_channel_groups_and_errors(dialogue):
    assert "jawOpen" in LIP_CHANNELS and "mouthClose" in LIP_CHANNELS and "eyeBlinkLeft" in UPPER_FACE_CHANNELS
    assert not set(LIP_CHANNELS) & set(UPPER_FACE_CHANNELS)
    assert set(LIP_CHANNELS) | set(UPPER_FACE_CHANNELS) <= set(ARKIT_NAMES)
    assert len(EMOTIONS) == 27 and emotion_name("Aesthetic_Appreciation") == "aesthetic appreciation"
    with pytest.raises(ValueError, match="unknown emotion 'grumpy'"):
        generate_face(dialogue, 0, "grumpy", np.random.default_rng(0))
    with pytest.raises(ValueError, match="speaker"):
        generate_face(dialogue, 2)
