"""runtime/formats/wav.py: real WAV variants, generated PCM24/stereo files, round trips and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from runtime.formats import wav
from runtime.formats.wav import AudioError, read_audio, write_wav


def _tone(n: int, rate: int, hz: float = 440.0, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * hz * np.arange(n) / rate)).astype(np.float32)


def test_real_pcm16_with_list_chunk(external: Path) -> None:
    path = external / "pyannote-dialogue" / "sample.wav"
    clip = read_audio(path)
    raw, rate = sf.read(path, dtype="int16")
    assert (clip.rate, clip.source_rate, clip.source_format) == (16000, 16000, "PCM_16")
    assert clip.channels.shape == (1, 480000) and clip.channels.dtype == np.float32
    np.testing.assert_array_equal(clip.channels[0], raw.astype(np.float32) / 32768.0)  # no resampling at 16 kHz


def test_real_float32_with_fact_chunk(external: Path) -> None:
    clip = read_audio(external / "pyannote-dialogue" / "dev00.wav")
    assert clip.source_format == "FLOAT" and clip.channels.shape == (1, 480001)
    assert 0.01 < np.abs(clip.channels).max() <= 1.0


def test_real_88k_resampled_to_16k(external: Path) -> None:
    path = external / "neurosync-player-generated" / "audio.wav"
    clip = read_audio(path)
    n_source = sf.info(path).frames  # 896256 samples at 88.2 kHz
    assert (clip.source_rate, clip.rate, clip.source_format) == (88200, 16000, "PCM_16")
    assert abs(clip.duration - n_source / 88200) <= 1 / 16000  # within one output sample period
    # Same loudness after resampling (speech energy sits well below 8 kHz).
    raw = sf.read(path, dtype="float32")[0]
    assert np.sqrt(np.mean(clip.channels**2)) == pytest.approx(np.sqrt(np.mean(raw**2)), rel=0.05)


def test_pcm24_and_stereo_channels_stay_apart(tmp_path: Path) -> None:
    left, right = _tone(44100, 44100, 300.0, 0.5), _tone(44100, 44100, 1200.0, 0.25)
    path = tmp_path / "stereo24.wav"
    sf.write(path, np.stack([left, right], axis=1), 44100, subtype="PCM_24")
    clip = read_audio(path)
    assert clip.source_format == "PCM_24" and clip.channels.shape == (2, 16000)
    # Each channel keeps its own tone: compare to the analytic tone at 16 kHz away from the edges.
    expected = np.stack([_tone(16000, 16000, 300.0, 0.5), _tone(16000, 16000, 1200.0, 0.25)])
    np.testing.assert_allclose(clip.channels[:, 200:-200], expected[:, 200:-200], atol=2e-3)


def test_read_at_other_rate(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    write_wav(path, _tone(16000, 16000), 16000)
    clip = read_audio(path, rate=8000)
    assert clip.rate == 8000 and clip.channels.shape == (1, 8000)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT"])
def test_write_read_round_trip(tmp_path: Path, subtype: str) -> None:
    rng = np.random.default_rng(0)
    samples = rng.uniform(-0.9, 0.9, size=(2, 1600)).astype(np.float32)
    path = tmp_path / f"rt_{subtype}.wav"
    write_wav(path, samples, 16000, subtype=subtype)
    clip = read_audio(path)
    assert clip.source_format == subtype
    np.testing.assert_allclose(clip.channels, samples, atol={"PCM_16": 1 / 32767}.get(subtype, 1e-6))


def test_write_mono_and_clipping(tmp_path: Path) -> None:
    path = tmp_path / "loud.wav"
    write_wav(path, np.array([0.0, 2.0, -3.0, 0.5], dtype=np.float32), 16000)
    np.testing.assert_allclose(read_audio(path).channels[0], [0.0, 1.0, -1.0, 0.5], atol=1 / 32767)


def test_write_rejects_bad_shapes(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"\(C, N\)"):
        write_wav(tmp_path / "x.wav", np.zeros((1600, 2), np.float32), 16000)  # (N, C) by mistake
    with pytest.raises(AudioError, match="float"):
        write_wav(tmp_path / "x.wav", np.zeros(16, np.int16), 16000)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="nope.wav: no such file"):
        read_audio(tmp_path / "nope.wav")


def test_zero_length_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: empty file \(0 bytes\)"):
        read_audio(path)


def test_mp3_renamed_wav(tmp_path: Path) -> None:
    path = tmp_path / "song.wav"
    id3 = b"ID3\x04\x00\x00\x00\x00\x00\x00"  # ID3v2.4 tag header, empty tag
    frame = b"\xff\xfb\x90\x64" + bytes(413)  # MPEG-1 Layer III frame sync + header, 128 kbit/s 44.1 kHz
    path.write_bytes(id3 + frame * 3)
    with pytest.raises(AudioError, match=r"song\.wav: not a WAV/FLAC/OGG audio file \(looks like MP3"):
        read_audio(path)


def test_truncated_header(tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    write_wav(good, _tone(1600, 16000), 16000)
    path = tmp_path / "cut.wav"
    path.write_bytes(good.read_bytes()[:30])  # RIFF/WAVE/fmt chunk cut in the middle
    with pytest.raises(AudioError, match=r"cut\.wav: truncated or corrupt WAV header"):
        read_audio(path)


def test_text_file_named_wav(tmp_path: Path) -> None:
    path = tmp_path / "page.wav"
    path.write_text("<html><body>404 Not Found</body></html>")
    with pytest.raises(AudioError, match=r"not a WAV/FLAC/OGG audio file \(looks like text"):
        read_audio(path)


def test_unsupported_sample_rate(tmp_path: Path) -> None:
    path = tmp_path / "slow.wav"
    sf.write(path, _tone(400, 4000), 4000, subtype="PCM_16")
    with pytest.raises(AudioError, match=r"slow\.wav: unsupported sample rate 4000 Hz, expected 8000-192000 Hz"):
        read_audio(path)


def test_real_mp3_renamed_wav_is_refused(tmp_path: Path) -> None:
    if not sf.check_format("MP3", "MPEG_LAYER_III"):
        pytest.skip("this libsndfile cannot write MP3")
    path = tmp_path / "encoded.wav"
    sf.write(path, _tone(16000, 16000), 16000, format="MP3", subtype="MPEG_LAYER_III")  # decodable MP3
    with pytest.raises(AudioError, match=r"encoded\.wav: not a WAV/FLAC/OGG audio file \(looks like MP3"):
        read_audio(path)


def test_float_samples_far_beyond_full_scale_are_refused_before_resampling(tmp_path: Path) -> None:
    """Issue 15: a float WAV of 3e38 samples read as 1,600 inf after resampling to 16 kHz."""
    path = tmp_path / "loud.wav"
    sf.write(path, np.full(4800, 3e38, np.float32), 48000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"loud\.wav: samples reach 3e\+38; float audio must lie in \[-1, 1\]"):
        read_audio(path)
    ok = tmp_path / "hot.wav"  # an overshoot of mastered audio (+3 dB) passes untouched
    sf.write(ok, np.full(480, 1.4, np.float32), 48000, subtype="FLOAT")
    assert np.isfinite(read_audio(ok).channels).all()


def test_headers_are_checked_before_their_samples_are_allocated(tmp_path: Path, monkeypatch) -> None:
    """Issue 15: headers claiming 258 channels or 0 samples were read silently."""
    many = tmp_path / "many.wav"
    sf.write(many, np.zeros((10, 40), np.float32), 16000, subtype="FLOAT")  # 40 channels
    with pytest.raises(AudioError, match=r"many\.wav: header claims 40 channels, expected 1-32"):
        read_audio(many)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1), np.float32), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match=r"empty\.wav: header claims 0 samples"):
        read_audio(empty)
    long = tmp_path / "long.wav"  # the length limit, scaled down (libsndfile clamps a data chunk to the file size)
    sf.write(long, np.zeros(16000, np.int16), 16000, subtype="PCM_16")
    monkeypatch.setattr(wav, "MAX_FILE_SECONDS", 0.5)
    with pytest.raises(AudioError, match=r"long\.wav: header claims 16000 samples .* more than the 0.000138889 h"):
        read_audio(long)
