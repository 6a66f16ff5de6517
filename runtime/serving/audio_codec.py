"""Audio chunks on the wire (proto ``AudioChunk``): float samples -> chunks for clients, chunks -> validated float
samples for the server. Formats: ``runtime.serving.api.AudioFormat``."""

from __future__ import annotations

import numpy as np

from runtime.formats.wav import FULL_SCALE_LIMIT
from runtime.serving.api import MAX_CHUNK_SECONDS, AudioFormat
from runtime.serving.convert import InvalidArgument, enum_name, speaker_from_proto, speaker_to_proto
from runtime.serving.protos.interact.v1 import interact_pb2 as pb


def encode_audio(fmt: AudioFormat, samples: np.ndarray, speaker: int | None) -> list[pb.AudioChunk]:
    """Float samples in [-1, 1] -> chunks of at most 1 s: (N,) mono of ``speaker`` or (N, 2) stereo (speaker None)."""
    samples = np.asarray(samples, dtype=np.float32)
    if fmt.layout == "stereo":
        if speaker is not None or samples.ndim != 2 or samples.shape[1] != 2:
            raise ValueError(f"stereo layout: expected (N, 2) samples and no speaker, got {samples.shape}, {speaker}")
    elif samples.ndim != 1 or speaker not in (0, 1):
        raise ValueError(f"mono layout: expected (N,) samples of speaker 0 or 1, got {samples.shape}, {speaker}")
    if fmt.sample_format == "s16":
        samples = np.clip(np.round(samples * 32768.0), -32768, 32767)
    data = samples.astype(fmt.dtype)
    step = fmt.max_chunk_samples
    tag = speaker_to_proto(speaker)
    return [pb.AudioChunk(speaker=tag, data=data[i : i + step].tobytes()) for i in range(0, len(data), step)]


def decode_audio(fmt: AudioFormat, chunk: pb.AudioChunk) -> list[tuple[int, np.ndarray]]:
    """Validate an ``AudioChunk`` and split it into [(speaker, (N,) float32 samples at ``fmt.sample_rate``)]."""
    if fmt.layout == "stereo":
        if chunk.speaker != pb.SPEAKER_UNSPECIFIED:
            raise InvalidArgument(f"audio.speaker: {enum_name(pb.Speaker, chunk.speaker)} in the stereo layout; "
                                  "stereo chunks carry both people (A left, B right) and leave it "
                                  "SPEAKER_UNSPECIFIED")  # fmt: skip
        speakers = [0, 1]
    else:
        if chunk.speaker == pb.SPEAKER_UNSPECIFIED:
            raise InvalidArgument("audio.speaker: SPEAKER_UNSPECIFIED in the mono-per-speaker layout; tag each chunk "
                                  "SPEAKER_A or SPEAKER_B")  # fmt: skip
        speakers = [speaker_from_proto(chunk.speaker, "audio.speaker")]
    width = fmt.dtype.itemsize * fmt.channels  # bytes per sample frame
    if len(chunk.data) % width:
        raise InvalidArgument(
            f"audio.data: {len(chunk.data)} bytes is not a whole number of samples "
            f"({fmt.dtype.itemsize} bytes x {fmt.channels} channel(s) = {width} bytes each)"
        )
    n = len(chunk.data) // width
    if n > fmt.max_chunk_samples:
        raise InvalidArgument(f"audio.data: {n} samples per channel ({n / fmt.sample_rate:.3f} s) exceeds the limit "
                              f"of {MAX_CHUNK_SECONDS:g} s per chunk ({fmt.max_chunk_samples} samples at "
                              f"{fmt.sample_rate} Hz)")  # fmt: skip
    raw = np.frombuffer(chunk.data, dtype=fmt.dtype).reshape(n, fmt.channels)
    if fmt.sample_format == "s16":
        pcm = raw.astype(np.float32) / np.float32(32768.0)
    else:
        pcm = raw.astype(np.float32)
        if not np.all(np.isfinite(pcm)):
            raise InvalidArgument("audio.data: contains NaN or infinite float samples")
        peak = float(np.abs(pcm).max()) if pcm.size else 0.0
        if peak > FULL_SCALE_LIMIT:
            raise InvalidArgument(f"audio.data: float samples reach {peak:.3g}; they must lie in [-1, 1] (accepted "
                                  f"up to +-{FULL_SCALE_LIMIT:g})")  # fmt: skip
    return [(s, np.ascontiguousarray(pcm[:, c])) for c, s in enumerate(speakers)]
