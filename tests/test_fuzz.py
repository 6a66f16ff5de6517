"""Property-based fuzzing of every parser (issue 15): a mutated input either parses to finite, in-range values or
raises the module's documented error type, never anything else.

Seeds are small files written here (so CI without ``../shared/external`` fuzzes too) plus the real files of
``../shared/external`` when present. Mutations: up to 8 bytes replaced, a few bytes inserted or the file truncated.
``INTERACT_FUZZ_EXAMPLES`` sets the examples per parser (default 40 keeps ``make test`` fast; 10000 for a campaign).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.formats.arkit import LIVELINK_NAMES
from runtime.formats.bvh import BvhError, read_bvh, write_bvh
from runtime.formats.livelink_csv import LiveLinkCsvError, read_livelink_csv
from runtime.formats.wav import AudioError, read_audio
from runtime.model.bundle import MANIFEST, BundleError, load_bundle
from runtime.serving.api import AudioFormat
from runtime.serving.audio_codec import decode_audio
from runtime.serving.convert import InvalidArgument
from runtime.serving.protos.interact.v1 import interact_pb2 as pb

EXAMPLES = int(os.environ.get("INTERACT_FUZZ_EXAMPLES", "40"))
EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "external"
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=6))
    if draw(st.integers(0, 4)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def _as_file(data: bytes, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)


def _parse(data: bytes, suffix: str, read, error: type[Exception]):
    """``read`` of ``data`` written to a temporary file: its result, or None if it raised the documented ``error``
    (any other exception fails the test)."""
    path = _as_file(data, suffix)
    try:
        return read(path)
    except error:
        return None
    finally:
        path.unlink()


def _seeds(made: list[bytes], pattern: str, limit: int = 3) -> list[bytes]:
    real = sorted(EXTERNAL.glob(pattern))[:limit] if EXTERNAL.is_dir() else []
    return made + [p.read_bytes()[:200_000] for p in real]


def _bvh_seed() -> bytes:
    from test_bvh import mixed_clip

    with tempfile.TemporaryDirectory() as d:
        write_bvh(Path(d) / "s.bvh", mixed_clip(n_frames=4))
        return (Path(d) / "s.bvh").read_bytes()


def _csv_seed() -> bytes:
    rows = [["Timecode", "BlendShapeCount", *LIVELINK_NAMES]]
    rows += [[f"00:00:00:{i:02d}.000", "61", *(f"{0.01 * ((i + k) % 90):.3f}" for k in range(len(LIVELINK_NAMES)))]
             for i in range(5)]  # fmt: skip
    return ("\n".join(",".join(r) for r in rows) + "\n").encode()


def _wav_seeds() -> list[bytes]:
    out = []
    with tempfile.TemporaryDirectory() as d:
        for subtype, rate in (("PCM_16", 16000), ("FLOAT", 48000)):
            path = Path(d) / f"s_{subtype}.wav"
            sf.write(path, (0.3 * np.sin(np.arange(800) / 7.0)).astype(np.float32), rate, subtype=subtype)
            out.append(path.read_bytes())
    return out


BVH_SEEDS = _seeds([_bvh_seed()], "bandai-namco-motion/*.bvh")
CSV_SEEDS = _seeds([_csv_seed()], "neurosync-player-faces/*.csv", limit=1)
WAV_SEEDS = _seeds(_wav_seeds(), "pyannote-dialogue/*.wav", limit=1)


@FUZZ
@given(mutated(BVH_SEEDS))
def test_bvh_reader(data: bytes) -> None:
    clip = _parse(data, ".bvh", read_bvh, BvhError)
    if clip is None:
        return
    assert np.isfinite(clip.values).all() and np.isfinite(np.asarray(clip.skeleton.offsets)).all()
    assert clip.frame_time > 0


@FUZZ
@given(mutated(CSV_SEEDS))
def test_livelink_csv_reader(data: bytes) -> None:
    take = _parse(data, ".csv", read_livelink_csv, LiveLinkCsvError)
    if take is None:
        return
    assert np.isfinite(take.weights).all() and take.weights.min() >= 0 and take.weights.max() <= 1
    assert np.isfinite(take.rotations).all() and np.isfinite(take.times).all()


@FUZZ
@given(mutated(WAV_SEEDS))
def test_audio_reader(data: bytes) -> None:
    clip = _parse(data, ".wav", read_audio, AudioError)
    if clip is None:
        return
    assert np.isfinite(clip.channels).all() and clip.channels.shape[0] >= 1


@pytest.fixture(scope="module")
def manifest_seed(untrained_bundle: Path) -> tuple[Path, bytes]:
    return untrained_bundle, (untrained_bundle / MANIFEST).read_bytes()


@FUZZ
@given(data=st.data())
def test_bundle_manifest(manifest_seed: tuple[Path, bytes], data) -> None:
    source, seed = manifest_seed
    text = data.draw(mutated([seed]))
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / MANIFEST).write_bytes(text)
        try:
            bundle = load_bundle(folder, verify=False)
        except BundleError:
            return
        stats = json.loads(text)["normalisation"]
        assert all(np.isfinite(bundle.norm(name)).all() for name in stats)


@FUZZ
@given(
    fmt=st.sampled_from([AudioFormat(), AudioFormat("s16", 8000), AudioFormat("f32", 48000, "stereo")]),
    payload=st.binary(max_size=400),
    speaker=st.sampled_from([pb.SPEAKER_UNSPECIFIED, pb.SPEAKER_A, pb.SPEAKER_B, 7]),
)
def test_stream_audio_decoder(fmt: AudioFormat, payload: bytes, speaker: int) -> None:
    try:
        parts = decode_audio(fmt, pb.AudioChunk(speaker=speaker, data=payload))
    except InvalidArgument:
        return
    for who, pcm in parts:
        assert who in (0, 1) and np.isfinite(pcm).all() and np.abs(pcm).max(initial=0) <= 2.0


def test_seed_files_themselves_parse() -> None:
    """The fuzzing starts from valid inputs (otherwise every mutation would just be an error)."""
    for data, suffix, read in ((BVH_SEEDS[0], ".bvh", read_bvh), (CSV_SEEDS[0], ".csv", read_livelink_csv),
                               (WAV_SEEDS[0], ".wav", read_audio)):  # fmt: skip
        assert _parse(data, suffix, read, ()) is not None  # () catches nothing: a seed must parse
