"""Synthetic dialogues: determinism, timing contracts, microphone realism, lip-subset clips."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.constants import FPS, SAMPLE_RATE
from training.data.speech import VOICES, frame_rms, generate_dialogue, lip_sentences

DURATION = 40.0


@pytest.fixture(scope="module")
def dialogue():
    return generate_dialogue(np.random.default_rng(0), DURATION)


def test_same_seed_same_dialogue(dialogue):
    again = generate_dialogue(np.random.default_rng(0), DURATION)
    for a, b in zip(dialogue.tracks, again.tracks, strict=True):
        np.testing.assert_array_equal(a.audio, b.audio)
        np.testing.assert_array_equal(a.activity, b.activity)
        np.testing.assert_array_equal(a.loudness, b.loudness)
        assert a.phones == b.phones and a.utterances == b.utterances
    other = generate_dialogue(np.random.default_rng(1), 10.0)
    assert (
        other.tracks[0].voice != dialogue.tracks[0].voice or other.tracks[0].utterances != dialogue.tracks[0].utterances
    )


def test_tracks_cover_exactly_the_duration(dialogue):
    assert dialogue.duration == DURATION
    for track in dialogue.tracks:
        assert track.audio.shape == (int(DURATION * SAMPLE_RATE),) and track.audio.dtype == np.float32
        assert track.activity.shape == track.loudness.shape == (int(DURATION * FPS),)
        assert np.abs(track.audio).max() <= 1.0
    assert dialogue.n_frames == int(DURATION * FPS)


def test_two_distinct_voices_in_range(dialogue):
    a, b = (t.extras["voice"] for t in dialogue.tracks)
    assert a.name != b.name
    assert all(130 <= v.rate <= 200 for v in (a, b))
    assert {t.voice for t in dialogue.tracks} == {a.name, b.name}


def test_activity_matches_utterances_and_phones_lie_inside_them(dialogue):
    t = np.arange(dialogue.n_frames) / FPS
    for track in dialogue.tracks:
        expected = np.zeros_like(track.activity)
        for u in track.utterances:
            expected |= (t >= u.start) & (t < u.end)
            assert 0.0 <= u.start < u.end <= DURATION
        np.testing.assert_array_equal(track.activity, expected)
        assert 0.2 < track.activity.mean() < 0.8
        starts = [p.start for p in track.phones]
        assert starts == sorted(starts)
        for p in track.phones:
            assert any(u.start <= p.start and p.end <= u.end + 1e-9 for u in track.utterances), p
        np.testing.assert_array_equal(track.stresses, [p.start for p in track.phones if p.stressed])
        assert len(track.stresses) > DURATION * track.activity.mean()  # > 1 stressed vowel a speaking second


def test_turn_taking_pauses_and_backchannels(dialogue):
    turns = sorted(
        ((u.start, u.end, k) for k, tr in enumerate(dialogue.tracks) for u in tr.utterances if not u.backchannel)
    )
    assert len(turns) >= 6
    switches = [(b[0] - a[1]) for a, b in zip(turns, turns[1:], strict=False) if a[2] != b[2]]
    assert all(-0.85 <= gap <= 1.6 for gap in switches), switches  # pauses 0.2-1.5 s, overlaps up to 0.8 s
    for k, track in enumerate(dialogue.tracks):
        own = sorted((u.start, u.end) for u in track.utterances)
        assert all(a[1] <= b[0] for a, b in zip(own, own[1:], strict=False))  # a speaker never overlaps themself
        partner = dialogue.tracks[1 - k]
        for u in (u for u in track.utterances if u.backchannel):
            assert u.end - u.start < 1.5
            assert any(p.start < u.start < p.end for p in partner.utterances)  # said while the partner talks


def _db(x: np.ndarray) -> float:
    return 20 * np.log10(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) + 1e-12)


def test_partner_bleed_and_room_noise_levels(dialogue):
    a, b = dialogue.tracks
    spf = SAMPLE_RATE // FPS
    only_b = np.repeat(~a.activity & b.activity, spf)[: len(a.audio)]
    silent = np.repeat(~a.activity & ~b.activity, spf)[: len(a.audio)]
    bleed = _db(a.audio[: len(only_b)][only_b]) - _db(b.audio[: len(only_b)][only_b])
    assert -34.0 < bleed < -20.0  # the partner is heard, 25-30 dB down
    assert -66.0 < _db(a.audio[: len(silent)][silent]) < -44.0  # room noise between turns
    np.testing.assert_array_less(0.0, np.abs(a.audio[: len(silent)][silent]).max())  # never digital silence


def test_loudness_follows_the_clean_voice(dialogue):
    for track in dialogue.tracks:
        np.testing.assert_allclose(track.loudness, frame_rms(track.extras["clean"], dialogue.n_frames))
        assert np.median(track.loudness[track.activity]) > 0.02
        interior = ~np.convolve(track.activity, np.ones(3), "same").astype(bool)  # a frame away from speech
        assert track.loudness[interior].max() == 0.0


def test_frame_rms_windows():
    audio = np.zeros(SAMPLE_RATE, np.float32)
    audio[SAMPLE_RATE // 2 :] = 0.5  # a step at 0.5 s = frame 15
    rms = frame_rms(audio, FPS)
    assert rms[13] == 0.0 and rms[14] == 0.0 and rms[16] == pytest.approx(0.5)
    assert 0.3 < rms[15] < 0.4  # centred window half inside the step: sqrt(0.5) * 0.5


def test_lip_sentences_are_clean_single_speaker_clips():
    clips = lip_sentences(3, np.random.default_rng(2))
    assert len(clips) == 3
    for clip in clips:
        speaker, silent = clip.tracks
        assert not silent.activity.any() and not silent.audio.any() and silent.phones == []
        u = speaker.utterances[0]
        lead = speaker.audio[: int(u.start * SAMPLE_RATE) - 1]
        assert 0.3 <= u.start <= 0.6 and not lead.any()  # no noise, no bleed
        assert 0.4 <= clip.duration - u.end <= 0.7
        assert any(p.symbol in "pbm" for p in speaker.phones) or len(speaker.phones) < 10
        assert speaker.extras["voice"].name in {v.name for v in VOICES}


def test_precise_errors():
    with pytest.raises(ValueError, match="duration_s"):
        generate_dialogue(np.random.default_rng(0), 1.0)
    with pytest.raises(ValueError, match="n must be"):
        lip_sentences(-1, np.random.default_rng(0))
