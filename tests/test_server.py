"""runtime/serving/server.py against real servers on port 0: end to end parity with the Engine, chunking, controls,
outputs, DescribeModel, health, drain, session limit, token auth, TLS, metrics, load."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
import pytest
from serving import (
    assert_valid,
    config,
    health,
    max_diff,
    model_for,
    reference,
    running,
    speechlike,
    wait_until,  # fmt: skip
    write_pair,
)

from runtime.constants import FPS, SAMPLE_RATE
from runtime.engine.settings import SessionSettings
from runtime.formats.wav import read_audio
from runtime.model.model import DEFAULT_BUNDLE
from runtime.serving.api import AudioFormat, ControlChange, SessionOptions
from runtime.serving.client import AsyncClient, Client
from runtime.serving.convert import session_settings
from runtime.serving.logs import JsonFormatter
from runtime.serving.server import ServerThread

SEED = 7
DEMO = DEFAULT_BUNDLE.parent / "demo"  # the shipped demo dialogue, a.wav and b.wav


@pytest.fixture(scope="module")
def server(untrained_bundle: Path):
    with running(untrained_bundle) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: ServerThread):
    with Client(f"127.0.0.1:{server.port}") as c:
        yield c


def settings_for(bundle: Path, options: SessionOptions) -> SessionSettings:
    """The engine settings the server derives from ``options`` (so the reference runs the same)."""
    return replace(session_settings(options, model_for(bundle).bundle.defaults, seed=0), degrade=False)


def load_pair(a: Path, b: Path) -> tuple[np.ndarray, np.ndarray]:
    x, y = read_audio(a).channels[0], read_audio(b).channels[0]
    n = max(len(x), len(y))
    return np.pad(x, (0, n - len(x))), np.pad(y, (0, n - len(y)))


# ---------------------------------------------------------------------------------------------- end to end
def _end_to_end(bundle: Path, a: Path, b: Path, port: int) -> None:
    options = SessionOptions(seed=SEED)
    with Client(f"127.0.0.1:{port}") as c:
        result = c.replay_wavs(a, b, options, realtime=False, chunk_ms=40)
    x, y = load_pair(a, b)
    n = math.ceil(len(x) / SAMPLE_RATE * FPS)
    assert_valid(result.frames, n)
    ref = reference(model_for(bundle), x, y, settings_for(bundle, options))
    assert max_diff(result.frames, ref) < 1e-5
    assert result.status.code == "success" and result.status.frames == n, result.status
    assert result.status.audio_seconds == pytest.approx(len(x) / SAMPLE_RATE)
    info, d = result.info, model_for(bundle).bundle.defaults
    assert info.blendshape_names[17] == "jawOpen" and len(info.rotation_names) == 9
    assert info.skeleton.names == model_for(bundle).poser.skeleton.names
    assert (info.block, info.lookahead, info.context, info.steps) == (d["block"], d["lookahead"], d["context"],
                                                                      d["steps"])  # fmt: skip
    assert info.algorithmic_latency == pytest.approx((d["block"] + d["lookahead"]) / FPS)


def test_two_wavs_end_to_end_equal_the_engine(server: ServerThread, untrained_bundle: Path, tmp_path: Path) -> None:
    a, b = write_pair(tmp_path)
    _end_to_end(untrained_bundle, a, b, server.port)


def test_real_dialogue_end_to_end(server: ServerThread, untrained_bundle: Path, external: Path) -> None:
    dialogue = external / "pyannote-dialogue"
    _end_to_end(untrained_bundle, dialogue / "dev00.wav", dialogue / "sample.wav", server.port)


def test_default_bundle_end_to_end_on_the_demo_voices() -> None:
    """The shipped bundle (committed; `make export` rebuilds it) on the shipped 20 s demo dialogue."""
    assert (DEFAULT_BUNDLE / "manifest.json").is_file(), f"{DEFAULT_BUNDLE}: the default bundle is missing"
    with running(DEFAULT_BUNDLE) as srv:
        _end_to_end(DEFAULT_BUNDLE, DEMO / "a.wav", DEMO / "b.wav", srv.port)


def test_output_does_not_depend_on_chunk_size(client: Client, tmp_path: Path) -> None:
    a, b = write_pair(tmp_path)
    runs = [client.replay_wavs(a, b, SessionOptions(seed=SEED), realtime=False, chunk_ms=ms) for ms in (10, 40, 1000)]
    for r in runs[1:]:
        assert max_diff(r.frames, runs[0].frames) == 0.0
    assert [e for e in runs[0].events] == [e for e in runs[2].events]


def test_stereo_pcm16_and_48k_input(client: Client, untrained_bundle: Path, tmp_path: Path) -> None:
    x, y = speechlike(3.0, 3), speechlike(3.0, 4)
    x16 = np.round(x * 32768).astype(np.int16).astype(np.float32) / 32768  # what PCM16 carries
    y16 = np.round(y * 32768).astype(np.int16).astype(np.float32) / 32768
    stereo = SessionOptions(audio=AudioFormat("s16", SAMPLE_RATE, "stereo"), seed=SEED)
    stream = client.open(stereo)
    for i in range(0, len(x), 800):
        stream.send_audio(np.stack([x[i : i + 800], y[i : i + 800]], axis=1))
    stream.end()
    got = stream.collect()
    ref = reference(model_for(untrained_bundle), x16, y16, settings_for(untrained_bundle, stereo))
    assert max_diff(got.frames, ref) < 1e-5

    import soxr  # the server resamples each speaker with soxr (StreamingResampler); the offline form is equal

    x48, y48 = (soxr.resample(s, SAMPLE_RATE, 48_000).astype(np.float32) for s in (x, y))
    hi = SessionOptions(audio=AudioFormat("f32", 48_000, "mono"), seed=SEED)
    stream = client.open(hi)
    for i in range(0, len(x48), 1920):  # 40 ms at 48 kHz
        stream.send_audio(x48[i : i + 1920], 0)
        stream.send_audio(y48[i : i + 1920], 1)
    stream.end()
    got = stream.collect()
    back = [soxr.resample(s, 48_000, SAMPLE_RATE).astype(np.float32) for s in (x48, y48)]
    assert_valid(got.frames, math.ceil(len(back[0]) / SAMPLE_RATE * FPS))
    ref = reference(model_for(untrained_bundle), *back, settings_for(untrained_bundle, hi))
    assert max_diff(got.frames, ref) < 1e-3  # streaming vs offline soxr differ at float32 rounding


def test_controls_apply_from_their_time(client: Client, untrained_bundle: Path) -> None:
    x, y = speechlike(4.0, 5), speechlike(4.0, 6)
    options = SessionOptions(seed=SEED, actions=("sit", "stand"), placement=(0.5, 2.0, 3.0), styles=("actor_001", ""))
    controls = (ControlChange(0, 2.0, action="walk"), ControlChange(1, 1.0, style="actor_002"))
    stream = client.open(options)
    for c in controls:
        stream.control(c.speaker, c.time, c.action, c.style)
    for i in range(0, len(x), 8000):  # both speakers in step (one alone would be "late" after 2 s)
        stream.send_audio(x[i : i + 8000], 0)
        stream.send_audio(y[i : i + 8000], 1)
    stream.end()
    got = stream.collect()
    a_actions = got.frames.people[0].action
    assert set(a_actions[:60]) == {0} and set(a_actions[60:]) == {1}  # sit until 2.0 s, then walk
    assert set(got.frames.people[1].action) == {2}
    applied = [(e.speaker, e.time) for e in got.events if e.kind == "control_applied"]
    assert sorted(applied) == [(0, 2.0), (1, 1.0)]
    ref = reference(model_for(untrained_bundle), x, y, settings_for(untrained_bundle, options), controls)
    assert max_diff(got.frames, ref) < 1e-5


def test_face_only_output(client: Client) -> None:
    stream = client.open(SessionOptions(seed=SEED, body=False))
    stream.send_audio(speechlike(1.0, 7), 0)
    stream.send_audio(speechlike(1.0, 8), 1)
    stream.end()
    frames = stream.collect().frames
    a = frames.people[0]
    assert a.blendshapes.shape == (30, 52) and a.rotations.shape == (30, 9)
    assert a.root_position.shape == (30, 0) and a.joint_rotations.shape == (30, 0, 4)


def test_describe_model(client: Client, untrained_bundle: Path) -> None:
    info = client.describe()
    bundle = model_for(untrained_bundle).bundle
    assert info.model == bundle.name and info.styles == tuple(bundle.styles) and info.backend == "ort-cpu"
    assert info.fps == FPS and info.sample_rate == SAMPLE_RATE and len(info.blendshape_names) == 52
    assert info.defaults == {k: bundle.defaults[k] for k in ("block", "lookahead", "context", "steps")}
    assert info.skeleton.names == bundle.skeleton.names and info.manifest == bundle.manifest
    np.testing.assert_allclose(info.skeleton.offsets, model_for(untrained_bundle).poser.skeleton.offsets, atol=1e-6)


# ---------------------------------------------------------------------------------------------- operations
def _short_session(c: Client, seconds: float = 1.0) -> int:
    stream = c.open(SessionOptions(seed=SEED))
    stream.send_audio(speechlike(seconds, 9), 0)
    stream.send_audio(speechlike(seconds, 10), 1)
    stream.end()
    result = stream.collect()
    assert result.status.code == "success"
    return result.n_frames


def test_health_is_not_serving_until_warm(untrained_bundle: Path) -> None:
    srv = ServerThread(config(untrained_bundle), load=False).start()
    c = Client(f"127.0.0.1:{srv.port}", connect_timeout=0.3)
    try:
        assert health(srv.port) == "NOT_SERVING" and health(srv.port, "") == "NOT_SERVING"
        with pytest.raises(ConnectionError, match="NOT_SERVING"):
            c.connect()
        with pytest.raises(grpc.RpcError) as e:
            c.open(SessionOptions())
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "loading" in e.value.details()
        srv.load()
        assert health(srv.port) == "SERVING" and health(srv.port, "") == "SERVING"
        c.connect()
        assert _short_session(c) == 30
    finally:
        c.close()
        srv.stop()


def test_drain_lets_running_sessions_finish(untrained_bundle: Path) -> None:
    x, y = speechlike(3.0, 11), speechlike(3.0, 12)

    async def main(srv: ServerThread) -> None:
        async with AsyncClient(f"127.0.0.1:{srv.port}") as c:
            stream = await c.open(SessionOptions(seed=SEED))
            await stream.send_audio(x[:16000], 0)
            await stream.send_audio(y[:16000], 1)
            drain = asyncio.create_task(asyncio.to_thread(srv.drain, 60.0))
            for _ in range(500):  # bounded wait for the drain to begin
                if await c.health() == "NOT_SERVING":
                    break
                await asyncio.sleep(0.01)
            assert await c.health("") == "NOT_SERVING"
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await c.open(SessionOptions())
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "shutting down" in e.value.details()
            assert not drain.done()  # the drain waits for the running session
            await stream.send_audio(x[16000:], 0)
            await stream.send_audio(y[16000:], 1)
            await stream.end()
            result = await stream.collect()
            await drain
        assert_valid(result.frames, 90)
        assert result.status.code == "success"
        assert srv.server.metrics.rejected["draining"] == 1

    with running(untrained_bundle) as srv:
        asyncio.run(main(srv))


def test_drain_ends_sessions_after_the_grace_period(untrained_bundle: Path) -> None:
    async def main(srv: ServerThread) -> None:
        async with AsyncClient(f"127.0.0.1:{srv.port}") as c:
            stream = await c.open(SessionOptions(seed=SEED))
            await stream.send_audio(speechlike(1.0, 13), 0)  # ... and never ends
            drain = asyncio.create_task(asyncio.to_thread(srv.drain, 0.3))
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stream.collect()
            await drain
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "grace period 0.3 s" in e.value.details()

    with running(untrained_bundle) as srv:
        asyncio.run(main(srv))


def test_session_limit(untrained_bundle: Path) -> None:
    with running(untrained_bundle, max_sessions=1) as srv, Client(f"127.0.0.1:{srv.port}") as c:
        first = c.open(SessionOptions(seed=SEED))
        with pytest.raises(grpc.RpcError) as e:
            c.open(SessionOptions())
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit of 1 concurrent" in e.value.details()
        first.send_audio(speechlike(1.0, 14), 0)
        first.send_audio(speechlike(1.0, 15), 1)
        first.end()
        assert first.collect().n_frames == 30
        wait_until(lambda: srv.server.metrics.active == 0, "the first session to be released")
        assert _short_session(c) == 30


def test_bearer_token(untrained_bundle: Path) -> None:
    with running(untrained_bundle, token="s3cret") as srv:
        target = f"127.0.0.1:{srv.port}"
        with Client(target) as anonymous:  # health stays open: connect() works without a token
            for call in (anonymous.describe, lambda: anonymous.open(SessionOptions())):
                with pytest.raises(grpc.RpcError) as e:
                    call()
                assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "authorization: Bearer" in e.value.details()
        with Client(target, token="wrong") as wrong, pytest.raises(grpc.RpcError) as e:
            wrong.describe()
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "valid bearer token" in e.value.details()
        with Client(target, token="s3cret") as good:
            assert good.describe().styles
            assert _short_session(good) == 30
        from runtime.serving.protos.interact.v1 import interact_pb2, interact_pb2_grpc

        with grpc.insecure_channel(target) as ch:  # the scheme is case-insensitive (RFC 7235), the token is not
            stub = interact_pb2_grpc.InteractStub(ch)
            for scheme in ("bearer", "BEARER"):
                stub.DescribeModel(interact_pb2.DescribeModelRequest(), timeout=5,
                                   metadata=(("authorization", f"{scheme} s3cret"),))  # fmt: skip
            with pytest.raises(grpc.RpcError) as e:
                stub.DescribeModel(interact_pb2.DescribeModelRequest(), timeout=5,
                                   metadata=(("authorization", "Bearer S3CRET"),))  # fmt: skip
        assert srv.server.metrics.rejected["unauthenticated"] == 4
        # issue 15: with two authorization headers the last one used to win
        with grpc.insecure_channel(target) as ch, pytest.raises(grpc.RpcError) as e:
            interact_pb2_grpc.InteractStub(ch).DescribeModel(
                interact_pb2.DescribeModelRequest(), timeout=5,
                metadata=(("authorization", "Bearer wrong"), ("authorization", "Bearer s3cret")))  # fmt: skip
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "2 'authorization' headers" in e.value.details()


def test_tls(untrained_bundle: Path, tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True)  # fmt: skip
    with running(untrained_bundle, tls_cert=cert, tls_key=key) as srv:
        target = f"127.0.0.1:{srv.port}"
        name = [("grpc.ssl_target_name_override", "localhost")]
        with Client(target, root_certificates=cert.read_bytes(), options=name) as c:
            assert _short_session(c) == 30
        plain = Client(target, connect_timeout=0.5)
        with pytest.raises(ConnectionError, match="UNAVAILABLE"):
            plain.connect()
        plain.close()


def test_metrics_endpoint(untrained_bundle: Path) -> None:
    with running(untrained_bundle, metrics_port=0) as srv, Client(f"127.0.0.1:{srv.port}") as c:
        url = f"http://127.0.0.1:{srv.server.metrics_port}"
        assert srv.server._endpoint._httpd.server_address[0] == "127.0.0.1"  # the gRPC host's interface, not all
        frames = _short_session(c)
        wait_until(lambda: srv.server.metrics.active == 0, "the session to be released")
        text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
        assert "interact_ready 1\n" in text and "interact_sessions_active 0\n" in text
        assert 'interact_sessions_ended_total{code="OK"} 1\n' in text
        assert f"interact_frames_sent_total {frames}\n" in text and "interact_frames_dropped_total 0\n" in text
        live = c.open(SessionOptions(seed=SEED))
        live.send_audio(speechlike(2.0, 16), 0)
        live.send_audio(speechlike(2.0, 17), 1)
        next(iter(live))  # the first frames are out: the engine has measured latencies
        text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
        sid = live.info.session_id
        assert f'interact_session_latency_seconds{{session="{sid}",quantile="0.95"}}' in text
        assert "interact_sessions_active 1\n" in text
        live.cancel()
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{url}/other", timeout=5)
        assert e.value.code == 404


def test_json_log_lines() -> None:
    record = logging.LogRecord("runtime.server", logging.INFO, __file__, 1, "summary: %d session(s)", (2,), None)
    record.fields = {"sessions": 2, "frames_sent": 900}
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "summary: 2 session(s)" and line["level"] == "INFO" and line["frames_sent"] == 900


# ---------------------------------------------------------------------------------------------- load
def test_concurrent_sessions_each_get_every_frame(server: ServerThread, untrained_bundle: Path,
                                                  tmp_path: Path) -> None:  # fmt: skip
    a, b = write_pair(tmp_path)
    seeds = (SEED, 2, 3, 4)

    async def main() -> list:
        async with AsyncClient(f"127.0.0.1:{server.port}") as c:
            return await asyncio.gather(*(c.replay_wavs(a, b, SessionOptions(seed=s), realtime=False)
                                          for s in seeds))  # fmt: skip

    results = asyncio.run(main())
    x, y = load_pair(a, b)
    n = math.ceil(len(x) / SAMPLE_RATE * FPS)
    for seed, r in zip(seeds, results, strict=True):
        assert_valid(r.frames, n)
        assert r.status.code == "success" and r.status.frames == n
        ref = reference(model_for(untrained_bundle), x, y, settings_for(untrained_bundle, SessionOptions(seed=seed)))
        assert max_diff(r.frames, ref) < 1e-5
