"""runtime/engine/audio.py: the frame rule, librosa parity, streaming == offline for any chunking, the resampler."""

from __future__ import annotations

import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import soxr

from runtime.constants import HOP_LENGTH, LOG_FLOOR, N_MELS, WIN_LENGTH
from runtime.engine.audio import (
    MEL_FILTERS_PATH,
    PAUSE_MIN_FRAMES,
    SPEECH_MIN_FRAMES,
    SpeakerAudio,
    StreamingMel,
    StreamingResampler,
    first_mel_frame,
    frames_for_samples,
    log_mel,
    mel_filters,
    n_output_frames,
    samples_needed_for_frame,
)
from runtime.formats.wav import read_audio

REPO = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def _read_speech(path: Path) -> np.ndarray:
    return read_audio(path).channels[0, :80000]


@pytest.fixture
def speech(external: Path) -> np.ndarray:
    """First 5 s of real two-person speech, (80000,) float32 at 16 kHz."""
    return _read_speech(external / "pyannote-dialogue" / "sample.wav")


def _stream(samples: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Push ``samples`` in chunks of the given sizes (cycled), check emission timing, flush; -> (F, 80)."""
    mel, out, i, k = StreamingMel(), [], 0, 0
    while i < len(samples):
        chunk = samples[i : i + sizes[k % len(sizes)]]
        frames = mel.push(chunk)
        i, k = i + len(chunk), k + 1
        assert frames.shape == (frames.shape[0], N_MELS) and frames.dtype == np.float32
        assert mel.frames_emitted == frames_for_samples(i)  # every frame leaves as soon as it is known
        out.append(frames)
    out.append(mel.flush())
    assert mel.samples_seen == len(samples)
    return np.concatenate(out)


# ----------------------------------------------------------------------------------------------- filters, imports
def test_mel_filters_asset_equals_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    filters = mel_filters()
    assert filters.shape == (80, 257) and filters.dtype == np.float32
    expected = librosa.filters.mel(sr=16000, n_fft=512, n_mels=80, fmin=0.0, fmax=8000.0, htk=False, norm="slaney")
    np.testing.assert_array_equal(filters, expected.astype(np.float32), err_msg=f"regenerate {MEL_FILTERS_PATH}")


def test_runtime_audio_imports_neither_librosa_nor_torch() -> None:
    code = (
        "import sys, runtime.engine.audio; bad = {'librosa', 'torch', 'soxr'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# ----------------------------------------------------------------------------------------------- frame rule
def test_frame_bounds_are_the_documented_integers() -> None:
    # Output frame i pools mel frames ceil(10 i / 3) .. ceil(10 (i+1) / 3) - 1: sizes 4, 3, 3, 4, 3, 3.
    assert [first_mel_frame(i) for i in range(7)] == [0, 4, 7, 10, 14, 17, 20]
    assert samples_needed_for_frame(0) == 160 * 3 + 400 == 880
    assert samples_needed_for_frame(2) == 160 * 9 + 400
    # No float drift after 10 hours at 30 fps: exact integer bound.
    i = 30 * 3600 * 10
    assert first_mel_frame(i) == -(-10 * i // 3) == 3_600_000
    assert [n_output_frames(n) for n in (0, 1, 533, 534, 16000, 16001)] == [0, 1, 1, 2, 30, 31]


def test_frames_for_samples_inverts_samples_needed() -> None:
    needed = [samples_needed_for_frame(i) for i in range(40)]
    for n in range(0, needed[-1]):
        assert frames_for_samples(n) == sum(need <= n for need in needed), n


# ----------------------------------------------------------------------------------------------- offline values
def test_log_mel_matches_librosa_with_the_documented_framing(speech: np.ndarray) -> None:
    librosa = pytest.importorskip("librosa")
    x = speech[:16000]
    ours = log_mel(x)  # (30, 80)
    # librosa centres a 400-sample window inside its 512-sample frame: shift by 56 so its frame j = our [160j, +400).
    padded = np.concatenate([np.zeros(56), x, np.zeros(2000)]).astype(np.float64)
    power = librosa.feature.melspectrogram(
        y=padded, sr=16000, n_fft=512, hop_length=160, win_length=400, center=False, power=2.0, n_mels=80
    ).T  # (mel frames, 80)
    mel = np.log(power + LOG_FLOOR)
    expected = np.stack([mel[first_mel_frame(i) : first_mel_frame(i + 1)].mean(0) for i in range(len(ours))])
    assert ours.shape == (30, 80)
    np.testing.assert_allclose(ours, expected, atol=1e-4)


def test_silence_is_the_log_floor_and_the_tail_is_zero_padded() -> None:
    out = log_mel(np.zeros(1000, dtype=np.float32))
    assert out.shape == (2, 80)  # ceil(1000 * 30 / 16000)
    np.testing.assert_allclose(out, np.log(LOG_FLOOR), rtol=1e-6)
    assert log_mel(np.zeros(0, dtype=np.float32)).shape == (0, N_MELS)


def test_complete_frames_do_not_change_when_audio_is_appended() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(20000).astype(np.float32) * 0.1
    k = frames_for_samples(12000)
    np.testing.assert_array_equal(log_mel(x[:12000])[:k], log_mel(x)[:k])
    assert not np.allclose(log_mel(x[:12000])[-1], log_mel(x)[len(log_mel(x[:12000])) - 1])  # the padded tail did


def test_a_tone_lights_its_own_mel_band() -> None:
    t = np.arange(16000) / 16000
    for hz in (300.0, 2000.0):
        out = log_mel((0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32))
        peak = int(np.argmax(out[5:-5].mean(0)))
        assert np.argmax(mel_filters()[:, round(hz / 16000 * 512)]) == peak


def test_log_mel_rejects_non_mono() -> None:
    with pytest.raises(ValueError, match=r"log_mel: expected mono samples of shape \(N,\), got shape \(2, 100\)"):
        log_mel(np.zeros((2, 100), np.float32))


# ----------------------------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("sizes", [[160], [80000], [1, 7, 999, 3, 533, 160, 4000], "random"], ids=str)
def test_streaming_equals_offline_on_speech(speech: np.ndarray, sizes: list[int] | str) -> None:
    if sizes == "random":
        sizes = np.random.default_rng(2).integers(1, 3000, size=50).tolist()
    offline = log_mel(speech)
    streamed = _stream(speech, sizes)
    assert streamed.shape == offline.shape == (150, 80)
    assert np.abs(streamed - offline).max() < 1e-5


def test_streaming_one_sample_chunks(speech: np.ndarray) -> None:
    x = speech[:-17]  # 5 s less a few samples: the flush pads a partial frame
    np.testing.assert_allclose(_stream(x, [1]), log_mel(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("n", [0, 1, 399, 880, 881, 16000, 33333])
def test_streaming_equals_offline_on_noise(n: int) -> None:
    x = (np.random.default_rng(n).standard_normal(n) * 0.3).astype(np.float32)
    streamed = _stream(x, [641, 17, 160]) if n else StreamingMel().flush()
    assert streamed.shape == (n_output_frames(n), 80)
    np.testing.assert_allclose(streamed, log_mel(x), atol=1e-5, rtol=0)


def test_streaming_memory_is_bounded() -> None:
    mel = StreamingMel()
    rng = np.random.default_rng(3)
    for _ in range(200):
        mel.push(rng.standard_normal(int(rng.integers(1, 2000))).astype(np.float32))
        assert len(mel._buf) < WIN_LENGTH  # only the samples of mel frames not yet computed
        assert len(mel._mel) < 4  # only the mel frames of the output frame not yet complete
    assert mel._next_mel == (mel.samples_seen - WIN_LENGTH) // HOP_LENGTH + 1


def test_streaming_state_machine_errors() -> None:
    mel = StreamingMel()
    mel.push(np.zeros(100, np.float32))
    assert mel.flush().shape == (1, 80)
    with pytest.raises(RuntimeError, match="push after flush"):
        mel.push(np.zeros(10, np.float32))
    with pytest.raises(RuntimeError, match="flush called twice"):
        mel.flush()
    with pytest.raises(ValueError, match="dtype int16"):
        StreamingMel().push(np.zeros(10, np.int16))


# ----------------------------------------------------------------------------------------------- resampler
@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_streaming_resampler_equals_one_shot(rate: int) -> None:
    rng = np.random.default_rng(rate)
    t = np.arange(rate) / rate  # 1 s
    x = (0.4 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(rate)).astype(np.float32)
    reference = soxr.resample(x, rate, 16000, quality="HQ")
    for chunk in (7, 441, 1000, rate):
        resampler = StreamingResampler(rate)
        parts = [resampler.push(x[i : i + chunk]) for i in range(0, len(x), chunk)] + [resampler.flush()]
        out = np.concatenate(parts)
        assert len(out) == len(reference) == 16000, chunk
        assert out.dtype == np.float32 and np.abs(out - reference).max() < 1e-4, chunk
        assert (resampler.samples_in, resampler.samples_out) == (rate, 16000)


def test_streaming_resampler_passthrough_and_limits() -> None:
    x = np.linspace(-1, 1, 321, dtype=np.float32)
    resampler = StreamingResampler(16000)
    np.testing.assert_array_equal(np.concatenate([resampler.push(x), resampler.flush()]), x)
    for bad in (4000, 96000):
        with pytest.raises(ValueError, match=f"input sample rate {bad} Hz, expected 8000-48000 Hz"):
            StreamingResampler(bad)


def test_voice_activity_is_debounced_into_turns() -> None:
    """Words with short pauses are one turn; a click is no turn; a long pause ends it. Frames at 30 fps."""
    quiet, loud = -8.0, -3.0
    energy = np.full(30, quiet).tolist()  # 1 s of room noise
    energy += [loud] * 2 + [quiet] * 10  # a 2-frame click
    for _ in range(4):  # four words of 0.3 s with 0.2 s pauses between them
        energy += [loud] * 9 + [quiet] * 6
    energy += [quiet] * 30  # then 1 s of quiet
    sp = SpeakerAudio()
    detector, voiced, changes = sp.voice_activity(np.array(energy))
    assert np.sum(np.diff(detector.astype(int)) != 0) >= 9  # the raw detector flips on every word and the click
    start = 30 + 12 + SPEECH_MIN_FRAMES - 1  # the first word's third frame
    end = 30 + 12 + 4 * 15 - 6 + PAUSE_MIN_FRAMES - 1  # PAUSE_MIN_FRAMES into the final quiet
    assert changes == [(start, True), (end, False)]
    assert not voiced[:start].any() and voiced[start:end].all() and not voiced[end:].any()
    # streamed in blocks of 6 frames: the same
    sp = SpeakerAudio()
    parts = [sp.voice_activity(np.array(energy[i : i + 6]))[1] for i in range(0, len(energy), 6)]
    np.testing.assert_array_equal(np.concatenate(parts), voiced)
