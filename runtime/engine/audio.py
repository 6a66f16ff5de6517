"""Speech features on the 30 fps output clock, offline and streaming, a streaming resampler, and one speaker's
audio state in the engine (``SpeakerAudio``) (DESIGN section 2).

Log-mel, exactly:

1. Mel frames: mel frame ``j`` covers samples ``[160 j, 160 j + 400)`` (25 ms window, 10 ms hop, NO centre
   padding), times a periodic Hann window, zero-padded to ``N_FFT = 512``; power spectrum ``|rfft|^2``
   (257 bins) -> Slaney mel filters (80, librosa's, precomputed in ``assets/mel_filters.npy``) ->
   ``log(mel + LOG_FLOOR)``.
2. Resampling to the output clock: output frame ``i`` (time ``i / 30`` s) is the **mean of the mel frames j whose
   start sample 160 j lies in [i * 16000/30, (i+1) * 16000/30)**, i.e. ``j`` from ``ceil(10 i / 3)`` to
   ``ceil(10 (i+1) / 3) - 1`` (4, 3, 3, 4, 3, 3, ... mel frames). The bounds are integer arithmetic
   (``ceil(10 i / 3) = (10 i + 2) // 3``), so nothing drifts over long streams. Output frame ``i`` therefore
   needs audio up to sample ``160 * (ceil(10 (i+1) / 3) - 1) + 400`` (``samples_needed_for_frame``).
3. A whole signal of N samples gives ``ceil(N * 30 / 16000)`` output frames; the end is zero-padded as needed
   (the tail is silence). ``StreamingMel`` produces the same numbers for any chunking (``push`` + ``flush``).

All arithmetic runs in float64 and is cast to float32 at the end, so batching differences (one FFT per frame vs.
thousands at once) stay at the 1e-15 level: streaming equals offline to float32 rounding.

Only numpy (and soxr, for ``StreamingResampler``) is imported here: no librosa in the serving path.
"""

from __future__ import annotations

import logging
from collections import deque
from functools import lru_cache
from pathlib import Path

import numpy as np

from runtime.constants import (
    FPS,
    HOP_LENGTH,
    LOG_FLOOR,
    MAX_INPUT_RATE,
    MEL_FPS,
    MIN_INPUT_RATE,
    N_FFT,
    N_MELS,
    SAMPLE_RATE,
    WIN_LENGTH,
)

log = logging.getLogger(__name__)

MEL_FILTERS_PATH = Path(__file__).resolve().parents[1] / "assets" / "mel_filters.npy"
N_BINS = N_FFT // 2 + 1  # 257 rfft bins
SILENCE = float(np.log(LOG_FLOOR))  # log-mel of digital silence
assert SAMPLE_RATE % HOP_LENGTH == 0, "the integer frame bounds below need a whole number of hops per second"

# Periodic Hann window (as torch.hann_window / scipy get_window("hann") / librosa): (400,) float64.
_WINDOW = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WIN_LENGTH) / WIN_LENGTH)


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """(80, 257) float32 Slaney mel filterbank (librosa's, fmin 0, fmax 8000), from ``assets/mel_filters.npy``."""
    if not MEL_FILTERS_PATH.is_file():
        raise FileNotFoundError(
            f"{MEL_FILTERS_PATH}: mel filter asset missing; regenerate it with scripts/make_mel_filters.py"
        )
    filters = np.load(MEL_FILTERS_PATH)
    if filters.shape != (N_MELS, N_BINS) or filters.dtype != np.float32:
        raise ValueError(
            f"{MEL_FILTERS_PATH}: expected float32 of shape {(N_MELS, N_BINS)}, got {filters.dtype} {filters.shape}"
        )
    return filters


@lru_cache(maxsize=1)
def _mel_filters_t64() -> np.ndarray:
    """(257, 80) float64 transposed filters, for ``power @ filters``."""
    return np.ascontiguousarray(mel_filters().T, dtype=np.float64)


# ---------------------------------------------------------------------------------------------------- frame maths
def first_mel_frame(i: int | np.ndarray) -> int | np.ndarray:
    """Index of the first mel frame pooled into output frame ``i``: ``ceil(i * 100 / 30)`` in integers."""
    return (i * MEL_FPS + FPS - 1) // FPS


def samples_needed_for_frame(i: int) -> int:
    """Samples of audio (from the stream's start) needed before output frame ``i`` is known exactly.

    ``160 * j_last + 400`` with ``j_last = ceil(10 (i+1) / 3) - 1`` the last mel frame of output frame ``i``.
    """
    if i < 0:
        raise ValueError(f"output frame index must be >= 0, got {i}")
    return HOP_LENGTH * (int(first_mel_frame(i + 1)) - 1) + WIN_LENGTH


def mel_frames_for_samples(n: int) -> int:
    """Complete mel frames (400-sample windows, hop 160) inside the first ``n`` samples."""
    return 0 if n < WIN_LENGTH else (n - WIN_LENGTH) // HOP_LENGTH + 1


def frames_for_samples(n: int) -> int:
    """Output frames that are complete (emitted by ``StreamingMel.push``) once ``n`` samples have arrived.

    The inverse of ``samples_needed_for_frame``: frame ``i`` is complete iff ``samples_needed_for_frame(i) <= n``.
    """
    if n < 0:
        raise ValueError(f"sample count must be >= 0, got {n}")
    return mel_frames_for_samples(n) * FPS // MEL_FPS


def n_output_frames(n: int) -> int:
    """Output frames of a whole signal of ``n`` samples (``log_mel``, ``StreamingMel`` after ``flush``).

    ``ceil(n * 30 / 16000)``: every frame whose start time lies inside the signal.
    """
    if n < 0:
        raise ValueError(f"sample count must be >= 0, got {n}")
    return (n * FPS + SAMPLE_RATE - 1) // SAMPLE_RATE


# ---------------------------------------------------------------------------------------------------- computation
def _log_mel_frames(samples: np.ndarray, n_mel: int) -> np.ndarray:
    """(n_mel, 80) float64 log-mel of mel frames 0..n_mel-1 of ``samples`` ((>= 160 (n_mel-1) + 400,) float64)."""
    if n_mel == 0:
        return np.zeros((0, N_MELS), dtype=np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(samples, WIN_LENGTH)[: HOP_LENGTH * n_mel : HOP_LENGTH]
    spectrum = np.fft.rfft(windows * _WINDOW, n=N_FFT, axis=-1)  # (n_mel, 257) complex128
    power = spectrum.real**2 + spectrum.imag**2  # (n_mel, 257)
    return np.log(power @ _mel_filters_t64() + LOG_FLOOR)  # (n_mel, 80)


def _pool(mel: np.ndarray, first_out: int, n_out: int) -> np.ndarray:
    """Mean-pool mel rows into output frames ``first_out .. first_out + n_out - 1``.

    ``mel``: (M, 80) float64 whose row 0 is mel frame ``first_mel_frame(first_out)``. Returns (n_out, 80) float32.
    """
    if n_out == 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    out_idx = np.arange(first_out, first_out + n_out + 1)
    bounds = first_mel_frame(out_idx) - first_mel_frame(first_out)  # (n_out + 1,) row offsets into mel
    sums = np.add.reduceat(mel[: bounds[-1]], bounds[:-1], axis=0)  # (n_out, 80)
    return (sums / np.diff(bounds)[:, None]).astype(np.float32)


def _as_mono(samples: np.ndarray, what: str) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"{what}: expected mono samples of shape (N,), got shape {samples.shape}")
    if not np.issubdtype(samples.dtype, np.floating):
        raise ValueError(f"{what}: expected float samples in [-1, 1], got dtype {samples.dtype}")
    return samples


def log_mel(samples: np.ndarray) -> np.ndarray:
    """Offline log-mel of a whole 16 kHz mono signal on the 30 fps clock.

    samples: (N,) float in [-1, 1] at 16 kHz. Returns (ceil(N * 30 / 16000), 80) float32; the end of the signal is
    zero-padded as needed (see the module docstring for the exact frame rule).
    """
    samples = _as_mono(samples, "log_mel")
    n_out = n_output_frames(len(samples))
    if n_out == 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    n_mel = int(first_mel_frame(n_out))  # mel frames 0..n_mel-1 feed output frames 0..n_out-1
    padded = np.zeros(samples_needed_for_frame(n_out - 1), dtype=np.float64)  # always longer than N
    padded[: len(samples)] = samples
    return _pool(_log_mel_frames(padded, n_mel), 0, n_out)


class StreamingMel:
    """Log-mel features of one speaker's 16 kHz stream, equal to ``log_mel`` of everything pushed, for any chunking.

    State machine: ``push`` (any number of times) -> ``flush`` (once). Invariants: frames are emitted once, in order;
    after ``flush`` the total emitted equals ``log_mel(concatenated input)``; memory is bounded (under one window
    of samples plus one chunk, and at most 4 mel frames are held between calls).
    """

    def __init__(self) -> None:
        self._buf = np.zeros(0, dtype=np.float64)  # samples from absolute index HOP * self._next_mel on
        self._next_mel = 0  # next mel frame to compute
        self._mel = np.zeros((0, N_MELS), dtype=np.float64)  # computed, not yet pooled; row 0 = first mel frame
        # of output frame self._emitted
        self._emitted = 0
        self._seen = 0
        self._flushed = False

    @property
    def samples_seen(self) -> int:
        """Samples pushed so far (padding added by ``flush`` not included)."""
        return self._seen

    @property
    def frames_emitted(self) -> int:
        """Output frames returned so far."""
        return self._emitted

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add (N,) float samples at 16 kHz; return the (k, 80) float32 output frames completed by them (k >= 0)."""
        if self._flushed:
            raise RuntimeError("StreamingMel.push after flush: start a new StreamingMel for a new stream")
        samples = _as_mono(samples, "StreamingMel.push")
        self._seen += len(samples)
        self._consume(samples)
        return self._emit(self._next_mel * FPS // MEL_FPS)

    def flush(self) -> np.ndarray:
        """End of stream: zero-pad the tail and return the remaining (k, 80) float32 frames."""
        if self._flushed:
            raise RuntimeError("StreamingMel.flush called twice")
        self._flushed = True
        n_out = n_output_frames(self._seen)
        if n_out > self._emitted:
            self._consume(np.zeros(samples_needed_for_frame(n_out - 1) - self._seen, dtype=np.float64))
        return self._emit(n_out)

    def _consume(self, samples: np.ndarray) -> None:
        """Append samples, compute every mel frame now complete, drop samples no later frame needs."""
        self._buf = np.concatenate([self._buf, samples.astype(np.float64, copy=False)])
        n_new = mel_frames_for_samples(len(self._buf))
        if n_new:
            self._mel = np.concatenate([self._mel, _log_mel_frames(self._buf, n_new)])
            self._buf = self._buf[HOP_LENGTH * n_new :]
            self._next_mel += n_new

    def _emit(self, n_complete: int) -> np.ndarray:
        """Pool output frames ``self._emitted .. n_complete - 1`` and forget the mel rows they used."""
        n_out = n_complete - self._emitted
        if n_out <= 0:
            return np.zeros((0, N_MELS), dtype=np.float32)
        frames = _pool(self._mel, self._emitted, n_out)
        used = int(first_mel_frame(n_complete) - first_mel_frame(self._emitted))
        self._mel = self._mel[used:]
        self._emitted = n_complete
        return frames


class StreamingResampler:
    """Streaming sample-rate conversion of one mono channel to 16 kHz with soxr (DESIGN section 2: never by hand).

    ``push`` returns whatever output soxr has ready (its filter delay holds some back); ``flush`` returns the rest.
    The concatenated output equals ``soxr.resample`` of the whole input to float32 rounding.
    """

    def __init__(self, in_rate: int, out_rate: int = SAMPLE_RATE, quality: str = "HQ") -> None:
        if not MIN_INPUT_RATE <= in_rate <= MAX_INPUT_RATE:
            raise ValueError(
                f"StreamingResampler: input sample rate {in_rate} Hz, expected {MIN_INPUT_RATE}-{MAX_INPUT_RATE} Hz"
            )
        import soxr  # a core dependency, imported here so that feature code needs numpy only

        self.in_rate = int(in_rate)
        self.out_rate = int(out_rate)
        self._stream = None
        if self.in_rate != self.out_rate:  # equal rates pass through untouched
            self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality=quality)
        self._flushed = False
        self.samples_in = 0
        self.samples_out = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        """(N,) float samples at ``in_rate`` -> (M,) float32 samples at ``out_rate`` (M may be 0)."""
        if self._flushed:
            raise RuntimeError("StreamingResampler.push after flush: start a new one for a new stream")
        samples = np.ascontiguousarray(_as_mono(samples, "StreamingResampler.push"), dtype=np.float32)
        self.samples_in += len(samples)
        out = samples.copy() if self._stream is None else self._stream.resample_chunk(samples, last=False)
        self.samples_out += len(out)
        return out

    def flush(self) -> np.ndarray:
        """End of stream: the (M,) float32 samples soxr still holds."""
        if self._flushed:
            raise RuntimeError("StreamingResampler.flush called twice")
        self._flushed = True
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        out = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        self.samples_out += len(out)
        return out


SPEECH_MIN_FRAMES = 3  # 0.1 s of voice before a person counts as speaking
PAUSE_MIN_FRAMES = 12  # 0.4 s of quiet before they stop (pauses between words are shorter)


class SpeakerAudio:
    """One speaker's audio -> normalised mel frames at the output clock."""

    def __init__(self) -> None:
        self.mel = StreamingMel()
        self.frames: deque[np.ndarray] = deque()  # raw log-mel rows not yet dropped
        self.first = 0  # frame index of frames[0]
        self.samples = 0  # samples accepted so far (pushed or filled)
        self.last_arrival: float | None = None  # monotonic s of this speaker's latest audio
        self.late = False  # being filled with silence (until its audio comes back)
        self.speaking = False  # the energy detector's state (hysteresis)
        self.voiced = False  # the debounced state: frames' ``speaking`` and the speech events
        self.run = 0  # frames the detector has disagreed with ``voiced``
        self.energy_floor = -8.0  # adaptive noise floor of the frame energy (log units)

    @property
    def n_frames(self) -> int:
        return self.first + len(self.frames)

    def push(self, pcm: np.ndarray) -> None:
        self.samples += len(pcm)
        self.frames.extend(self.mel.push(pcm))

    def voice_activity(self, energy: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[tuple[int, bool]]]:
        """Per frame of mean log-mel ``energy`` (N,): (detector (N,) bool, debounced (N,) bool, changes). The
        detector compares the energy with an adaptive floor (hysteresis: on above floor + 3, off below floor + 2).
        The debounced state follows it once it has held for SPEECH_MIN_FRAMES (on) or PAUSE_MIN_FRAMES (off), so a
        pause between words or a click does not end or start speech; ``changes`` lists (offset, on) where it flips."""
        detector, voiced, changes = np.zeros(len(energy), bool), np.zeros(len(energy), bool), []
        for i, e in enumerate(energy):
            self.energy_floor = min(e, self.energy_floor + 0.002) if e > self.energy_floor else e
            self.speaking = bool(e > self.energy_floor + (2.0 if self.speaking else 3.0))
            self.run = self.run + 1 if self.speaking != self.voiced else 0
            if self.run >= (SPEECH_MIN_FRAMES if self.speaking else PAUSE_MIN_FRAMES):
                self.voiced, self.run = self.speaking, 0
                changes.append((i, self.voiced))
            detector[i], voiced[i] = self.speaking, self.voiced
        return detector, voiced, changes

    def drop_before(self, index: int) -> None:
        while self.frames and self.first < index:
            self.frames.popleft()
            self.first += 1

    def window(self, start: int, stop: int) -> np.ndarray:
        """(stop - start, 80) raw log-mel; frames before 0 (or beyond what exists) are silence."""
        out = np.full((stop - start, N_MELS), SILENCE, np.float32)
        a, b = max(start, self.first), min(stop, self.n_frames)
        if b > a:
            out[a - start : b - start] = np.stack([self.frames[i - self.first] for i in range(a, b)])
        return out
