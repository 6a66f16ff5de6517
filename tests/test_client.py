"""runtime/serving/client.py and runtime/serving/convert.py: round trips of every conversion, the sync and async clients
against a real server on port 0, WAV replay (mono pair, stereo file, wall-clock pace), connecting with backoff."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from serving import config, max_diff, speechlike, write_pair

from runtime.constants import SAMPLE_RATE
from runtime.engine.frames import Frames, PersonFrames, StreamInfo
from runtime.engine.settings import Event
from runtime.formats.wav import write_wav
from runtime.motion.skeleton import Skeleton
from runtime.serving.api import AudioFormat, ControlChange, SessionOptions, SessionStatus
from runtime.serving.audio_codec import decode_audio, encode_audio
from runtime.serving.client import AsyncClient, Client
from runtime.serving.convert import (
    control_from_proto,
    control_to_proto,
    event_from_proto,
    event_to_proto,
    frames_from_proto,
    frames_to_proto,
    header_from_proto,
    header_to_proto,
    options_from_proto,
    options_to_proto,
    status_from_proto,
    status_to_proto,
)
from runtime.serving.protos.interact.v1 import interact_pb2 as pb
from runtime.serving.server import ServerThread

STYLES = ["actor_001", "actor_002"]


# ---------------------------------------------------------------------------------------------- conversions
def test_options_round_trip() -> None:
    options = SessionOptions(audio=AudioFormat("s16", 44_100, "stereo"), styles=("actor_002", ""),
                             actions=("walk", "sit"), placement=(0.5, 2.0, -3.0), block=9, lookahead=2, steps=2,
                             seed=12345678901234, face=True, body=False)  # fmt: skip
    assert options_from_proto(options_to_proto(options), STYLES) == options
    default = SessionOptions()
    assert options_from_proto(options_to_proto(default), STYLES) == default
    nothing_chosen = options_to_proto(default)
    nothing_chosen.outputs.face = nothing_chosen.outputs.body = False  # "all false means everything"
    assert options_from_proto(nothing_chosen, STYLES).face and options_from_proto(nothing_chosen, STYLES).body


def _frames(n: int, joints: int, start: int = 10, seed: int = 0) -> Frames:
    rng = np.random.default_rng(seed)

    def person() -> PersonFrames:
        q = rng.standard_normal((n, joints, 4)).astype(np.float32)
        return PersonFrames(rng.random((n, 52), np.float32), rng.standard_normal((n, 9)).astype(np.float32),
                            rng.standard_normal((n, 3)).astype(np.float32), q / np.linalg.norm(q, axis=-1,
                                                                                              keepdims=True),
                            rng.integers(0, 3, n).astype(np.int8), rng.random(n) > 0.5)  # fmt: skip

    index = np.arange(start, start + n)
    return Frames(index, index / 30, (person(), person()))


def test_frames_round_trip_exactly() -> None:
    frames = _frames(6, 23)
    back = frames_from_proto(pb.FrameBatch.FromString(frames_to_proto(frames).SerializeToString()), received_at=5.0)
    assert max_diff(back, frames) == 0.0
    np.testing.assert_array_equal(back.time, frames.time)
    assert np.all(back.emitted_at == 5.0)
    face = frames_from_proto(frames_to_proto(frames, face=True, body=False))
    assert face.people[1].blendshapes.shape == (6, 52) and face.people[1].joint_rotations.shape == (6, 0, 4)
    np.testing.assert_array_equal(face.people[0].blendshapes, frames.people[0].blendshapes)
    body = frames_from_proto(frames_to_proto(frames, face=False, body=True))
    assert body.people[0].blendshapes.shape == (6, 0) and body.people[0].root_position.shape == (6, 3)
    np.testing.assert_array_equal(body.people[1].joint_rotations, frames.people[1].joint_rotations)


def test_header_round_trip() -> None:
    skeleton = Skeleton(("Hips", "Spine", "Head"), (-1, 0, 1), np.array([[0, 0.9, 0], [0, 0.1, 0], [0, 0.5, 0.02]]),
                        (("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"),
                         ("Zrotation", "Xrotation", "Yrotation"), ("Yrotation", "Xrotation", "Zrotation")))  # fmt: skip
    info = StreamInfo("abc", skeleton, algorithmic_latency=0.3, block=6, lookahead=3, context=24, steps=4,
                      model="m-1", styles=("actor_001", ""))  # fmt: skip
    back = header_from_proto(pb.StreamHeader.FromString(header_to_proto(info).SerializeToString()))
    assert back.skeleton.names == skeleton.names and back.skeleton.parents == skeleton.parents
    assert back.skeleton.channels == skeleton.channels  # root positions + each joint's own Euler order
    np.testing.assert_allclose(back.skeleton.offsets, skeleton.offsets, atol=1e-7)  # float32 on the wire
    assert (back.session_id, back.block, back.lookahead, back.context, back.steps, back.model, back.styles) == (
        "abc", 6, 3, 24, 4, "m-1", ("actor_001", ""))  # fmt: skip
    assert back.algorithmic_latency == 0.3 and back.blendshape_names == info.blendshape_names


def test_events_status_and_controls_round_trip() -> None:
    events = (
        Event("speech_start", 1.5, 0),
        Event("frames_dropped", 2.0, None, "slow", 12),
        Event("degraded", 3.0, None, "steps 4 -> 2"),
        Event("control_applied", 4.0, 1, "action -> 1"),
    )
    for e in events:
        assert event_from_proto(event_to_proto(e)) == e
    status = SessionStatus("warning", "900 frames, 2 dropped", 898, 30.0, 0.25, 0.5)
    assert status_from_proto(status_to_proto(status)) == status
    for c in (ControlChange(0, 12.5, action="walk"), ControlChange(1, 0.0, style="actor_002")):
        assert control_from_proto(control_to_proto(c), STYLES) == c
    with pytest.raises(ValueError, match="exactly one of action or style"):
        control_to_proto(ControlChange(0, 1.0, action="sit", style="actor_001"))


def test_audio_encoding() -> None:
    x = speechlike(2.5, 1)
    s16 = AudioFormat("s16", SAMPLE_RATE, "mono")
    chunks = encode_audio(s16, x, speaker=1)
    assert [len(c.data) for c in chunks] == [32000, 32000, 16000]  # at most 1 s per chunk
    assert all(c.speaker == pb.SPEAKER_B for c in chunks)
    decoded = np.concatenate([decode_audio(s16, c)[0][1] for c in chunks])
    np.testing.assert_allclose(decoded, x, atol=0.5 / 32768 + 1e-7)  # PCM16 rounding
    stereo = AudioFormat("f32", 8000, "stereo")
    both = np.stack([x[:4000], -x[:4000]], axis=1)
    (chunk,) = encode_audio(stereo, both, speaker=None)
    (sa, a), (sb, b) = decode_audio(stereo, chunk)
    assert (sa, sb) == (0, 1)
    np.testing.assert_array_equal(a, both[:, 0])
    np.testing.assert_array_equal(b, both[:, 1])
    with pytest.raises(ValueError, match="stereo layout"):
        encode_audio(stereo, x, speaker=0)
    with pytest.raises(ValueError, match="mono layout"):
        encode_audio(s16, both, speaker=None)


# ---------------------------------------------------------------------------------------------- against a server
@pytest.fixture(scope="module")
def server(untrained_bundle: Path):
    with ServerThread(config(untrained_bundle)) as srv:
        yield srv


def test_sync_and_async_clients_agree(server: ServerThread) -> None:
    x, y = speechlike(2.0, 2), speechlike(2.0, 3)
    options = SessionOptions(seed=3)

    with Client(f"127.0.0.1:{server.port}") as c:
        stream = c.open(options)
        for i in range(0, len(x), 640):
            stream.send_audio(x[i : i + 640], 0)
            stream.send_audio(y[i : i + 640], 1)
        stream.end()
        items = list(stream)

    async def run_async():
        async with AsyncClient(f"127.0.0.1:{server.port}") as c:
            s = await c.open(options)
            await s.send_audio(x, 0)
            await s.send_audio(y, 1)
            await s.end()
            return await s.collect()

    result = asyncio.run(run_async())
    frames = [i for i in items if isinstance(i, Frames)]
    assert isinstance(items[-1], SessionStatus) and items[-1].code == "success" and items[-1].frames == 60
    assert not any(isinstance(i, SessionStatus) for i in items[:-1])
    assert all(len(f) == stream.info.block for f in frames[:-1])  # one batch per committed block
    assert max_diff(Frames.concat(frames), result.frames) == 0.0
    assert [i for i in items if isinstance(i, Event)] == result.events
    assert stream.status == items[-1]


def test_replay_stereo_file_equals_two_mono_files(server: ServerThread, tmp_path: Path) -> None:
    a, b = write_pair(tmp_path, seconds=2.0)
    x, y = speechlike(2.0, 1), speechlike(2.37, 2)
    n = len(y)
    stereo = tmp_path / "both.wav"
    write_wav(stereo, np.stack([np.pad(x, (0, n - len(x))), y]), SAMPLE_RATE)
    with Client(f"127.0.0.1:{server.port}") as c:
        pair = c.replay_wavs(a, b, SessionOptions(seed=5), realtime=False)
        both = c.replay_wavs(stereo, None, SessionOptions(seed=5), realtime=False)
        as_stereo = c.replay_wavs(a, b, SessionOptions(audio=AudioFormat(layout="stereo"), seed=5), realtime=False)
        with pytest.raises(ValueError, match="one file needs two channels"):
            c.replay_wavs(a, None)
    assert pair.n_frames == both.n_frames == 72  # ceil(2.37 s x 30)
    assert max_diff(pair.frames, both.frames) == 0.0 and max_diff(pair.frames, as_stereo.frames) == 0.0


def test_replay_at_wall_clock_pace_gives_the_same_frames(server: ServerThread, tmp_path: Path) -> None:
    a, b = write_pair(tmp_path, seconds=1.0)
    with Client(f"127.0.0.1:{server.port}") as c:
        live = c.replay_wavs(a, b, SessionOptions(seed=6), realtime=True, chunk_ms=40)
        batch = c.replay_wavs(a, b, SessionOptions(seed=6), realtime=False, chunk_ms=1000)
    assert max_diff(live.frames, batch.frames) == 0.0
    assert np.all(np.diff(live.frames.emitted_at) >= 0)  # receive times, in order
    assert live.status.latency_p95 >= live.status.latency_p50 > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connect_gives_up_with_a_clear_error() -> None:
    port = _free_port()
    c = Client(f"127.0.0.1:{port}", connect_timeout=0.5)
    try:
        with pytest.raises(ConnectionError, match=rf"127.0.0.1:{port}: not serving after \d+ attempt\(s\) in 0.5 s"):
            c.connect()
    finally:
        c.close()


def test_connect_retries_until_the_server_is_up(untrained_bundle: Path) -> None:
    port = _free_port()
    late = ServerThread(config(untrained_bundle, port=port))
    starter = threading.Timer(0.5, late.start)  # binds after the client's first attempts have failed
    starter.start()
    try:
        with Client(f"127.0.0.1:{port}", connect_timeout=30) as c:  # connect() retries with backoff
            assert c.health() == "SERVING"
            stream = c.open(SessionOptions(seed=1))
            stream.send_audio(speechlike(0.5, 1), 0)
            stream.send_audio(speechlike(0.5, 2), 1)
            stream.end()
            assert stream.collect().n_frames == 15
    finally:
        starter.join()  # start() returns once the model is loaded
        late.stop()
