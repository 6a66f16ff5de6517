"""Faults against a real server on port 0: every bad input gets its precise status and message while a healthy session
on the same server keeps producing correct, complete output; clients vanishing; a slow consumer; bounded buffers."""

from __future__ import annotations

import asyncio
import math
import os
import resource
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
import pytest
from serving import assert_valid, max_diff, model_for, reference, running, speechlike, wait_until, write_pair

from runtime.constants import FPS, SAMPLE_RATE
from runtime.engine.frames import Frames
from runtime.formats.wav import read_audio
from runtime.serving.api import AudioFormat, SessionOptions
from runtime.serving.client import AsyncClient
from runtime.serving.convert import options_to_proto, session_settings
from runtime.serving.outbox import Outbox
from runtime.serving.protos.interact.v1 import interact_pb2 as pb
from runtime.serving.protos.interact.v1 import interact_pb2_grpc as pb_grpc
from runtime.serving.session import Session, SessionLimits

SEED = 7
INVALID, ORDER = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION


def cfg(fmt: AudioFormat | None = None, edit=None, **options) -> pb.ClientMessage:
    config = options_to_proto(SessionOptions(audio=fmt or AudioFormat(), seed=SEED, **options))
    if edit is not None:
        edit(config)
    return pb.ClientMessage(config=config)


def audio(data: bytes = bytes(1280), speaker: int = pb.SPEAKER_A) -> pb.ClientMessage:
    return pb.ClientMessage(audio=pb.AudioChunk(speaker=speaker, data=data))


def control(**fields) -> pb.ClientMessage:
    return pb.ClientMessage(control=pb.Control(**{"time": 1.0, "speaker": pb.SPEAKER_A, **fields}))


def floats(*values: float) -> bytes:
    return np.array(values, "<f4").tobytes()


def setattr_(path: str, value):
    def edit(config: pb.SessionConfig) -> None:
        *parents, name = path.split(".")
        target = config
        for p in parents:
            target = getattr(target, p)
        setattr(target, name, value)

    return edit


END = pb.ClientMessage(end_of_audio=pb.EndOfAudio())
ONE_SECOND = [audio(bytes(64000), pb.SPEAKER_A), audio(bytes(64000), pb.SPEAKER_B)]  # f32, 16 kHz
STEREO_S16 = AudioFormat("s16", SAMPLE_RATE, "stereo")

CASES = [  # (id, messages, code, expected text in the status message)
    ("audio before config", [audio()], ORDER, "audio before config; the first message must be config"),
    ("control before config", [control(action=pb.ACTION_SIT)], ORDER, "control before config"),
    ("end before config", [END], ORDER, "end_of_audio before config"),
    ("nothing at all", [], ORDER, "the stream ended before config"),
    ("empty first message", [pb.ClientMessage()], ORDER, "an empty message before config"),
    ("config twice", [cfg(), cfg()], ORDER, "config sent twice; it must be the first message, exactly once"),
    ("no end_of_audio", [cfg(), *ONE_SECOND], ORDER, "the client closed the stream before end_of_audio"),
    ("audio after end", [cfg(), *ONE_SECOND, END, audio()], ORDER, "audio after end_of_audio"),
    ("empty message", [cfg(), pb.ClientMessage()], INVALID, "ClientMessage: no kind set"),
    ("format unspecified", [cfg(edit=setattr_("audio.sample_format", 0))], INVALID,
     "config.audio.sample_format: SAMPLE_FORMAT_UNSPECIFIED"),
    ("format unknown", [cfg(edit=setattr_("audio.sample_format", 7))], INVALID,
     "config.audio.sample_format: unknown value 7"),
    ("layout unspecified", [cfg(edit=setattr_("audio.layout", 0))], INVALID,
     "config.audio.layout: CHANNEL_LAYOUT_UNSPECIFIED"),
    ("no audio format", [cfg(edit=lambda c: c.ClearField("audio"))], INVALID, "config.audio: missing"),
    ("rate too low", [cfg(edit=setattr_("audio.sample_rate", 7999))], INVALID,
     "config.audio.sample_rate: 7999 Hz; expected 8000-48000 Hz"),
    ("rate too high", [cfg(edit=setattr_("audio.sample_rate", 48001))], INVALID, "config.audio.sample_rate: 48001"),
    ("odd byte count", [cfg(AudioFormat("s16")), audio(bytes(3))], INVALID,
     "audio.data: 3 bytes is not a whole number of samples (2 bytes x 1 channel(s)"),
    ("half a stereo frame", [cfg(AudioFormat("f32", 16000, "stereo")), audio(bytes(12), pb.SPEAKER_UNSPECIFIED)],
     INVALID, "audio.data: 12 bytes is not a whole number of samples (4 bytes x 2 channel(s) = 8 bytes each)"),
    ("chunk over 1 s", [cfg(), audio(bytes(4 * 16001))], INVALID,
     "audio.data: 16001 samples per channel (1.000 s) exceeds the limit of 1 s per chunk (16000 samples at 16000 Hz)"),
    ("chunk over 1 s at 8 kHz", [cfg(AudioFormat("s16", 8000)), audio(bytes(2 * 8001))], INVALID,
     "(8000 samples at 8000 Hz)"),
    ("NaN audio", [cfg(), audio(floats(0.1, np.nan))], INVALID, "audio.data: contains NaN or infinite"),
    ("infinite audio", [cfg(), audio(floats(np.inf, 0.0))], INVALID, "audio.data: contains NaN or infinite"),
    # issue 15: huge floats passed at 16 kHz and ended INTERNAL after resampling at 48 kHz
    ("huge float audio at 48 kHz", [cfg(AudioFormat("f32", 48000)), audio(floats(3e38, -3e38, 0.5))], INVALID,
     "audio.data: float samples reach 3e+38; they must lie in [-1, 1]"),
    ("float audio beyond +-2", [cfg(), audio(floats(0.1, 2.5))], INVALID, "float samples reach 2.5"),
    ("mono chunk without speaker", [cfg(), audio(speaker=pb.SPEAKER_UNSPECIFIED)], INVALID,
     "audio.speaker: SPEAKER_UNSPECIFIED in the mono-per-speaker layout"),
    ("stereo chunk with speaker", [cfg(STEREO_S16), audio(bytes(8), pb.SPEAKER_B)], INVALID,
     "audio.speaker: SPEAKER_B in the stereo layout"),
    ("unknown speaker", [cfg(), audio(speaker=5)], INVALID, "audio.speaker: unknown value 5"),
    ("placement NaN", [cfg(placement=(float("nan"), 1.4, 3.1))], INVALID, "config.placement.x: nan"),
    ("placement absurd", [cfg(placement=(0.0, 1e6, 3.1))], INVALID, "config.placement.z: 1000000.0; expected finite"),
    ("placement yaw inf", [cfg(placement=(0.0, 1.4, float("inf")))], INVALID, "config.placement.yaw: inf"),
    ("unknown style", [cfg(styles=("nobody", ""))], INVALID,
     "config.person_a.style: unknown style 'nobody'; the model has actor_001, actor_002"),
    ("unknown action", [cfg(edit=setattr_("person_b.action", 9))], INVALID, "config.person_b.action: unknown value 9"),
    ("too many steps", [cfg(steps=99)], INVALID, "config.settings: steps must be 1..8, got 99"),
    ("block too large", [cfg(block=500)], INVALID, "config.settings: block must be 1..90 frames, got 500"),
    ("lookahead too large", [cfg(lookahead=500)], INVALID, "config.settings: lookahead must be 0..90 frames"),
    ("control time NaN", [cfg(), control(time=float("nan"), action=pb.ACTION_SIT)], INVALID, "control.time: nan"),
    ("control time negative", [cfg(), control(time=-1.0, action=pb.ACTION_SIT)], INVALID, "control.time: -1.0"),
    ("control time absurd", [cfg(), control(time=1e12, action=pb.ACTION_SIT)], INVALID, "control.time: 1000000000000"),
    ("control without speaker", [cfg(), control(speaker=0, action=pb.ACTION_SIT)], INVALID,
     "control.speaker: SPEAKER_UNSPECIFIED; expected SPEAKER_A or SPEAKER_B"),
    ("control action unspecified", [cfg(), control(action=pb.ACTION_UNSPECIFIED)], INVALID,
     "control.action: ACTION_UNSPECIFIED"),
    ("control unknown action", [cfg(), control(action=42)], INVALID, "control.action: unknown value 42"),
    ("control unknown style", [cfg(), control(style="nobody")], INVALID, "control.style: unknown style 'nobody'"),
    ("control changes nothing", [cfg(), control()], INVALID, "control.change: neither action nor style is set"),
]  # fmt: skip


def call(port: int, messages: list[pb.ClientMessage]) -> grpc.RpcError:
    """Send ``messages`` with the sync API (it reports the server's status even when a write races it)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        try:
            for _ in pb_grpc.InteractStub(ch).Stream(iter(messages), timeout=30):
                pass
        except grpc.RpcError as e:
            return e
    raise AssertionError("the call ended OK")


@pytest.fixture(scope="module")
def server(untrained_bundle: Path):
    with running(untrained_bundle) as srv:
        yield srv


def _check_reference(bundle: Path, result, a: Path, b: Path, seed: int = SEED) -> None:
    x, y = (read_audio(p).channels[0] for p in (a, b))
    n = max(len(x), len(y))
    x, y = np.pad(x, (0, n - len(x))), np.pad(y, (0, n - len(y)))
    assert_valid(result.frames, math.ceil(n / SAMPLE_RATE * FPS))
    settings = replace(session_settings(SessionOptions(seed=seed), model_for(bundle).bundle.defaults, 0), degrade=False)
    assert max_diff(result.frames, reference(model_for(bundle), x, y, settings)) < 1e-5


def test_bad_inputs_fail_precisely_while_another_session_streams(server, untrained_bundle: Path,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    a, b = write_pair(tmp_path)

    async def main():
        async with AsyncClient(f"127.0.0.1:{server.port}") as c:
            healthy = asyncio.create_task(c.replay_wavs(a, b, SessionOptions(seed=SEED), realtime=True, chunk_ms=100))
            errors = await asyncio.to_thread(lambda: [call(server.port, msgs) for _, msgs, _, _ in CASES])
            still_running = not healthy.done()
            return await healthy, errors, still_running

    result, errors, still_running = asyncio.run(main())
    failures = []
    for (name, _, code, text), e in zip(CASES, errors, strict=True):
        if e.code() != code or text not in e.details():
            failures.append(f"{name}: got {e.code().name} {e.details()!r}, expected {code.name} {text!r}")
    assert not failures, "\n".join(failures)
    assert still_running, "the healthy session should have been streaming during the bad calls"
    _check_reference(untrained_bundle, result, a, b)
    assert result.status.code == "success"


def test_vanishing_clients_are_cleaned_up(server, untrained_bundle: Path, tmp_path: Path) -> None:
    """One client process is killed mid-stream, another client closes its channel mid-stream: both sessions are
    released, and a session streaming meanwhile is complete and correct."""
    a, b = write_pair(tmp_path)
    ended = server.server.metrics.ended_by_code  # a vanished client's call ends CANCELLED, or FAILED_PRECONDITION
    before = sum(ended.values())  # if gRPC delivers the closed connection as a half-close first
    doomed = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import asyncio, numpy as np
        from runtime.serving.client import AsyncClient
        async def main():
            async with AsyncClient("127.0.0.1:{server.port}") as c:
                s = await c.open()
                while True:
                    await s.send_audio(np.zeros(640, np.float32), 0)
                    await s.send_audio(np.zeros(640, np.float32), 1)
                    await asyncio.sleep(0.04)
        asyncio.run(main())
    """)])  # fmt: skip

    async def main():
        await asyncio.to_thread(wait_until, lambda: server.server.metrics.active == 1, "the subprocess's session")
        async with AsyncClient(f"127.0.0.1:{server.port}") as c:
            healthy = asyncio.create_task(c.replay_wavs(a, b, SessionOptions(seed=SEED), realtime=True))
            gone = AsyncClient(f"127.0.0.1:{server.port}")
            stream = await gone.open(SessionOptions(seed=1))
            await stream.send_audio(speechlike(1.0, 20), 0)
            await stream.send_audio(speechlike(1.0, 21), 1)
            await anext(stream.results())  # frames are flowing; now the client disappears without a word
            await gone.close()
            await asyncio.to_thread(wait_until, lambda: sum(ended.values()) == before + 1, "the closed client")
            doomed.kill()
            await asyncio.to_thread(wait_until, lambda: sum(ended.values()) == before + 2, "the killed client")
            assert server.server.metrics.active == 1  # only the healthy session is left
            assert not healthy.done()
            return await healthy

    try:
        result = asyncio.run(main())
    finally:
        doomed.kill()
        doomed.wait(timeout=10)
    _check_reference(untrained_bundle, result, a, b)
    wait_until(lambda: server.server.metrics.active == 0 and not server.server.sessions, "sessions to be released")


def test_slow_consumer_loses_only_its_own_oldest_frames(untrained_bundle: Path, tmp_path: Path) -> None:
    a, b = write_pair(tmp_path)
    x, y = speechlike(10.0, 30), speechlike(10.0, 31)
    no_window_growth = [("grpc.http2.bdp_probe", 0)]  # the client's receive window stays at 64 KiB

    async def main(port: int):
        async with AsyncClient(f"127.0.0.1:{port}", options=no_window_growth) as lazy, \
                AsyncClient(f"127.0.0.1:{port}") as fast:  # fmt: skip
            slow = await lazy.open(SessionOptions(seed=SEED))
            for i in range(0, len(x), SAMPLE_RATE):  # 10 s of audio (~0.7 MB of frames), nothing read
                await slow.send_audio(x[i : i + SAMPLE_RATE], 0)
                await slow.send_audio(y[i : i + SAMPLE_RATE], 1)
            await slow.end()
            healthy = await fast.replay_wavs(a, b, SessionOptions(seed=SEED), realtime=True)  # a live client
            return healthy, await slow.collect()

    with running(untrained_bundle, send_buffer=0.5) as srv:  # 15 frames may wait for a client
        healthy, slow = asyncio.run(main(srv.port))
    _check_reference(untrained_bundle, healthy, a, b)
    assert healthy.status.code == "success"

    drops = [e for e in slow.events if e.kind == "frames_dropped"]
    dropped = sum(e.count for e in drops)
    assert dropped > 0 and slow.n_frames + dropped == 300
    missing = set()
    for e in drops:  # "count frames were dropped before time"
        end = round(e.time * FPS)
        missing |= set(range(end - e.count, end))
    assert set(range(300)) - set(slow.frames.index.tolist()) == missing
    assert np.all(np.diff(slow.frames.index) > 0) and 299 in slow.frames.index  # the newest frames made it
    assert slow.status.code == "warning" and slow.status.frames == slow.n_frames
    assert f"{dropped} dropped" in slow.status.message
    settings = replace(session_settings(SessionOptions(seed=SEED), model_for(untrained_bundle).bundle.defaults, 0),
                       degrade=False)  # fmt: skip
    ref = reference(model_for(untrained_bundle), x, y, settings)
    assert max_diff(slow.frames, ref[np.isin(ref.index, slow.frames.index)]) < 1e-5


async def _session_peaks(model, executor, seconds: float, options: SessionOptions) -> tuple[dict[str, int], int]:
    """Run one Session in process (no network); the largest size each buffer reached, and the frames sent."""
    session = Session("bounded", model, executor, SessionLimits(send_buffer=1.0, degrade=False))
    peaks: dict[str, int] = {}
    x, y = speechlike(seconds, 40), speechlike(seconds, 41)

    def sample() -> None:
        for k, v in session.buffer_sizes().items():
            peaks[k] = max(peaks.get(k, 0), v)

    async def messages():
        yield pb.ClientMessage(config=options_to_proto(options))
        step = SAMPLE_RATE // 4
        for i in range(0, len(x), step):
            for speaker, track in ((pb.SPEAKER_A, x), (pb.SPEAKER_B, y)):
                yield audio(track[i : i + step].astype("<f4").tobytes(), speaker)
            await asyncio.sleep(0)
            sample()
        yield END

    await session.open(messages())
    frames = 0
    while (msg := await session.next()) is not None:
        frames += len(msg.frames.frames)
        sample()
    await session.close()
    return peaks, frames


def test_session_buffers_stay_bounded(untrained_bundle: Path) -> None:
    model = model_for(untrained_bundle)
    options = SessionOptions(seed=SEED, block=15)
    with ThreadPoolExecutor(1) as executor:
        short, n_short = asyncio.run(_session_peaks(model, executor, 8.0, options))
        long, n_long = asyncio.run(_session_peaks(model, executor, 32.0, options))
    assert (n_short, n_long) == (240, 960)
    d, block = model.bundle.defaults, 15
    # Sizes that depend on timing (how much audio a job takes) have bounds that do not depend on the stream length.
    bounds = {
        "history": d["context"],  # committed frames kept as the next window's context
        "root_history": d["context"],
        "mel_frames": d["context"] + 2 + 2 * (block + d["lookahead"]) + 30,  # + one job of audio (1 s)
        "arrivals": 2 * 8 + 2 * 8,  # a job's chunks + those waiting for a block
        "events": 8,
        "controls": 0,
        "inbox": SessionLimits().inbox,
        "outbox_frames": 30 + block + d["lookahead"],  # send buffer (1 s) + the largest batch
        "latencies": 10_000,  # a ring buffer (maxlen)
    }
    for peaks in (short, long):
        over = {k: (peaks[k], bound) for k, bound in bounds.items() if peaks[k] > bound}
        assert not over, over
    assert long["history"] == short["history"] and long["root_history"] == short["root_history"]


@pytest.mark.skipif(not os.environ.get("INTERACT_SOAK_MINUTES"), reason="set INTERACT_SOAK_MINUTES=12 to run")
def test_long_session_memory_soak(untrained_bundle: Path) -> None:
    """Minutes of audio through a real server and client in this process; RSS must level off (report the numbers)."""
    minutes = float(os.environ["INTERACT_SOAK_MINUTES"])
    rss: list[tuple[float, float]] = []  # (audio minutes, MB)

    def rss_mb() -> float:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024

    async def main(port: int):
        async with AsyncClient(f"127.0.0.1:{port}") as c:
            stream = await c.open(SessionOptions(seed=SEED))

            async def count() -> int:  # keep nothing: the client must not be what grows
                n = 0
                async for item in stream:
                    n += len(item) if isinstance(item, Frames) else 0
                return n

            reader = asyncio.create_task(count())
            chunk = speechlike(60.0, 50)
            for minute in range(int(minutes)):
                for i in range(0, len(chunk), 640):
                    await stream.send_audio(chunk[i : i + 640], 0)
                    await stream.send_audio(chunk[i : i + 640], 1)
                rss.append((minute + 1, rss_mb()))
                print(f"audio {minute + 1:3d} min  RSS {rss[-1][1]:7.1f} MB", flush=True)
            await stream.end()
            return await reader

    with running(untrained_bundle) as srv:
        result = asyncio.run(main(srv.port))
    assert result == int(minutes) * 60 * FPS
    growth = rss[-1][1] - rss[1][1]
    print(f"RSS growth from minute 2 to {int(minutes)}: {growth:.1f} MB; peak "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")  # fmt: skip
    assert growth < 50, rss


def test_outbox_drops_the_oldest_frames_and_keeps_everything_else() -> None:
    def batch(first: int, n: int = 6) -> pb.ServerMessage:
        return pb.ServerMessage(frames=pb.FrameBatch(frames=[pb.Frame(index=i) for i in range(first, first + n)]))

    async def main() -> list[pb.ServerMessage]:
        box = Outbox(max_frames=12)
        box.put(pb.ServerMessage(header=pb.StreamHeader(session_id="x")))
        for first in (0, 6):
            box.put(batch(first))
        box.put(pb.ServerMessage(event=pb.Event(type=pb.EVENT_TYPE_SPEECH_START, time=0.3)))
        for first in (12, 18, 24):  # each pushes the oldest batch out
            box.put(batch(first))
        box.put(batch(30, 40))  # larger than the whole buffer: kept alone
        box.put(pb.ServerMessage(status=pb.Status(code=pb.Status.WARNING)))
        box.close()
        out = []
        while (msg := await box.get()) is not None:
            out.append(msg)
        assert (box.frames_sent, box.frames_dropped) == (40, 30)
        return out

    kinds = []
    for msg in asyncio.run(main()):
        kind = msg.WhichOneof("kind")
        if kind == "frames":
            kinds.append(("frames", msg.frames.frames[0].index))
        elif kind == "event" and msg.event.type == pb.EVENT_TYPE_FRAMES_DROPPED:
            kinds.append(("dropped", msg.event.count, round(msg.event.time * FPS)))  # dropped before this frame
        else:
            kinds.append(kind)
    assert kinds == ["header", ("dropped", 12, 12), "event", ("dropped", 18, 30), ("frames", 30), "status"]
