"""Audio files in and out: read any WAV/FLAC/OGG soundfile knows, resample with soxr, write WAV (DESIGN section 2).

``read_audio`` keeps channels apart: a stereo file is two speakers (A left, B right), each 16 kHz mono inside the
system. What cannot be read raises ``AudioError`` naming the file and the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from runtime.constants import SAMPLE_RATE

log = logging.getLogger(__name__)

# Sample rates accepted from *files*. Wider than the 8-48 kHz of client streams (constants.MIN/MAX_INPUT_RATE):
# studio files at 88.2/96/176.4/192 kHz are common and soxr resamples them offline just as well.
MIN_FILE_RATE = 8_000
MAX_FILE_RATE = 192_000
MAX_CHANNELS = 32  # a (C, N) array with more "channels" than this is almost certainly (N, C) by mistake


# Float samples are full scale at +-1. Overshoots up to +-2 (+6 dB, inter-sample peaks of mastered audio) pass as
# they are; beyond that the file or stream is not audio at that scale and is refused (it also overflowed soxr).
FULL_SCALE_LIMIT = 2.0


MAX_FILE_SECONDS = 4 * 3600  # a longer file is refused before its samples are allocated (4 h mono = 3.7 GB at 64 kHz)


class AudioError(ValueError):
    """An audio file that cannot be read or written; the message names the file and the reason."""


@dataclass(frozen=True)
class AudioClip:
    """Audio read from a file, resampled to ``rate``.

    channels: (C, N) float32 in [-1, 1] at ``rate`` Hz (C = 1 mono; stereo keeps A = left = row 0, B = right).
    """

    channels: np.ndarray
    rate: int  # Hz of ``channels``
    source_rate: int  # Hz of the file
    source_format: str  # soundfile subtype of the file, e.g. "PCM_16", "PCM_24", "FLOAT"
    path: Path

    @property
    def n_channels(self) -> int:
        return self.channels.shape[0]

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.channels.shape[1] / self.rate


# libsndfile can decode MP3, but its encoder delay and padding shift audio against animation frames.
_MP3_REASON = "MP3 is refused: its encoder delay shifts lip sync; convert the file to WAV"


def _sniff(head: bytes) -> str:
    """A human name for what the first bytes of a file look like."""
    if head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0):
        return "MP3"
    if head.startswith(b"RIFF") or head.startswith(b"RF64"):
        return "WAV"
    if head.startswith(b"fLaC"):
        return "FLAC"
    if head.startswith(b"OggS"):
        return "OGG"
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return "MP4/M4A"
    if head[:64].lstrip().startswith((b"<", b"{")):
        return "text (HTML/XML/JSON)"
    return "unknown data"


def _diagnose(path: Path, error: Exception) -> AudioError:
    """Turn a soundfile failure into an error that says what the file is and why it cannot be read."""
    with open(path, "rb") as f:
        head = f.read(64)
    kind = _sniff(head)
    if kind in ("WAV", "FLAC", "OGG"):
        reason = f"truncated or corrupt {kind} header ({path.stat().st_size} bytes; soundfile: {error})"
    else:
        reason = f"not a WAV/FLAC/OGG audio file (looks like {kind}; soundfile: {error})"
    return AudioError(f"{path}: {reason}")


def _check_header(path: Path, channels: int, frames: int, rate: int) -> None:
    """Refuse what a header claims before memory is allocated for it (issue 15: 258 channels, 0 samples, a corrupt
    FLAC header asking for 64 GiB)."""
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"{path}: header claims {channels} channels, expected 1-{MAX_CHANNELS}")
    if frames <= 0:
        raise AudioError(f"{path}: header claims {frames} samples; the file holds no audio")
    if frames > MAX_FILE_SECONDS * rate:
        raise AudioError(f"{path}: header claims {frames} samples ({frames / rate / 3600:.1f} h at {rate} Hz), more "
                         f"than the {MAX_FILE_SECONDS / 3600:g} h this reader accepts")  # fmt: skip


def read_audio(path: str | Path, rate: int = SAMPLE_RATE) -> AudioClip:
    """Read an audio file and resample every channel to ``rate`` Hz with soxr.

    Accepts what libsndfile reads (WAV PCM 16/24/32 and float, extra RIFF chunks, FLAC, OGG, ...) at
    8-192 kHz, except MP3. Returns channels (C, N) float32. Raises ``AudioError`` naming the file and the reason
    otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file" if not path.exists() else f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes), expected WAV/FLAC/OGG audio")
    try:
        with sf.SoundFile(path) as f:
            source_rate, source_format = int(f.samplerate), str(f.subtype)
            if f.format == "MP3":
                raise AudioError(f"{path}: not a WAV/FLAC/OGG audio file (looks like MP3; {_MP3_REASON})")
            if not MIN_FILE_RATE <= source_rate <= MAX_FILE_RATE:
                raise AudioError(
                    f"{path}: unsupported sample rate {source_rate} Hz, expected {MIN_FILE_RATE}-{MAX_FILE_RATE} Hz"
                )
            _check_header(path, f.channels, f.frames, source_rate)  # before allocating what the header claims
            data = f.read(dtype="float32", always_2d=True)  # (N, C)
    except sf.LibsndfileError as e:
        raise _diagnose(path, e) from e
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path}: contains NaN or infinite samples")
    peak = float(np.abs(data).max()) if data.size else 0.0
    if peak > FULL_SCALE_LIMIT:
        raise AudioError(f"{path}: samples reach {peak:.3g}; float audio must lie in [-1, 1] (accepted up to "
                         f"+-{FULL_SCALE_LIMIT:g})")  # fmt: skip
    if source_rate != rate and len(data):
        data = soxr.resample(data, source_rate, rate, quality="HQ")  # (N', C), each channel on its own
    channels = np.ascontiguousarray(data.T, dtype=np.float32)  # (C, N')
    log.debug("read %s: %s %d Hz -> %s at %d Hz", path, source_format, source_rate, channels.shape, rate)
    return AudioClip(channels, int(rate), source_rate, source_format, path)


def write_wav(path: str | Path, samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> None:
    """Write (N,) mono or (C, N) multi-channel float samples in [-1, 1] as a WAV file.

    PCM subtypes clip to [-1, 1] (with a warning when anything was clipped); "FLOAT" writes the values as they are.
    """
    path = Path(path)
    samples = np.asarray(samples)
    if samples.ndim == 1:
        samples = samples[None, :]
    if samples.ndim != 2 or samples.shape[0] > MAX_CHANNELS:
        raise AudioError(f"{path}: expected samples (N,) or (C, N) with C <= {MAX_CHANNELS}, got shape {samples.shape}")
    if not np.issubdtype(samples.dtype, np.floating):
        raise AudioError(f"{path}: expected float samples in [-1, 1], got dtype {samples.dtype}")
    if not sf.check_format("WAV", subtype):
        raise AudioError(f"{path}: WAV cannot hold subtype {subtype!r} (try PCM_16, PCM_24, PCM_32 or FLOAT)")
    data = samples.T.astype(np.float32)  # (N, C) as soundfile wants
    if subtype.startswith("PCM"):
        n_clipped = int(np.count_nonzero(np.abs(data) > 1.0))
        if n_clipped:
            log.warning("%s: clipping %d samples outside [-1, 1] for %s", path, n_clipped, subtype)
            data = np.clip(data, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, int(rate), subtype=subtype, format="WAV")
