"""libespeak-ng binding: audio, exact phoneme/word timings, stress, determinism."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

from runtime.constants import SAMPLE_RATE
from training.data.espeak import PAUSES, native_rate, synthesize

TEXT = "Bob maps people."


@pytest.fixture(scope="module")
def bob():
    return synthesize(TEXT, "en-us+m3", rate=160)


def test_audio_and_monotonic_phonemes_within_the_audio(bob):
    assert bob.sample_rate == SAMPLE_RATE
    assert bob.audio.dtype == np.float32 and bob.audio.ndim == 1
    assert 0.6 < bob.duration < 2.0
    assert 0.02 < float(np.sqrt(np.mean(bob.audio**2))) < 0.5
    starts = np.array([p.start for p in bob.phones])
    assert np.all(np.diff(starts) >= 0)
    assert all(p.end >= p.start for p in bob.phones)
    assert starts[0] >= 0.0 and bob.phones[-1].end <= bob.duration + 1e-9
    assert bob.speech_end <= bob.duration
    assert not any(p.symbol in PAUSES for p in bob.phones)


def test_bilabials_and_stressed_vowels_of_bob_maps_people(bob):
    symbols = [p.symbol for p in bob.phones]
    assert symbols == ["b", "0", "b", "m", "a", "p", "s", "p", "i:", "p", "@L"]
    assert [p.symbol for p in bob.phones if p.stressed] == ["0", "a", "i:"]  # one stressed nucleus a word


def test_word_timings(bob):
    assert [w.text for w in bob.words] == ["Bob", "maps", "people"]
    assert all(a.end <= b.start + 1e-9 for a, b in zip(bob.words, bob.words[1:], strict=False))
    m = next(p for p in bob.phones if p.symbol == "m")
    assert bob.words[1].start == pytest.approx(m.start, abs=1e-3)  # "maps" starts with its m


def test_phoneme_times_match_the_audio(bob):
    """espeak marks a p at its release: the closure before it is silent, the vowels around it are loud."""
    audio, sr = bob.audio, bob.sample_rate

    def rms(t0: float, t1: float) -> float:
        return float(np.sqrt(np.mean(audio[int(t0 * sr) : int(t1 * sr)] ** 2)))

    closures = [rms(p.start - 0.035, p.start - 0.005) for p in bob.phones if p.symbol == "p"]
    vowels = [rms(p.start + 0.2 * (p.end - p.start), p.end - 0.2 * (p.end - p.start)) for p in bob.phones if p.stressed]
    assert max(closures) < 0.2 * min(vowels)


def test_resampling_keeps_duration():
    native = synthesize(TEXT, "en+f2", sample_rate=native_rate())
    resampled = synthesize(TEXT, "en+f2")
    assert native.sample_rate == 22050
    assert len(resampled.audio) == pytest.approx(len(native.audio) * SAMPLE_RATE / 22050, abs=2)
    assert [p.start for p in native.phones] == [p.start for p in resampled.phones]


def test_deterministic_whatever_was_spoken_before(bob):
    synthesize("Something entirely different, and longer, comes first.", "en+f2", rate=190, pitch=70)
    again = synthesize(TEXT, "en-us+m3", rate=160)
    np.testing.assert_array_equal(again.audio, bob.audio)
    assert again.phones == bob.phones


def _child_phones(_: int) -> list:
    return [(p.symbol, p.start) for p in synthesize(TEXT, "en-us+m3", rate=160).phones]


def test_forked_worker_gets_the_same_result(bob):
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.map(_child_phones, [0]) == [[(p.symbol, p.start) for p in bob.phones]]


def test_voice_pitch_and_rate_change_the_speech(bob):
    fast = synthesize(TEXT, "en-us+m3", rate=260)
    assert fast.duration < 0.8 * bob.duration
    assert [p.symbol for p in fast.phones] == [p.symbol for p in bob.phones]


def test_precise_errors():
    with pytest.raises(ValueError, match="voice 'xx-nope'"):
        synthesize("hello", "xx-nope")
    with pytest.raises(ValueError, match="non-empty"):
        synthesize("  ")
    with pytest.raises(ValueError, match="rate"):
        synthesize("hello", rate=20)
    with pytest.raises(ValueError, match="pitch"):
        synthesize("hello", pitch=101)
