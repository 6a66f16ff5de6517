"""Helpers shared by the gRPC tests (test_server, test_client, test_faults): audio, the in-process reference, checks."""

from __future__ import annotations

import hashlib
import time
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from runtime.constants import FPS, SAMPLE_RATE
from runtime.engine.frames import Frames
from runtime.engine.settings import SessionSettings
from runtime.engine.stream import Engine
from runtime.formats.wav import write_wav
from runtime.model.model import Model
from runtime.serving.api import ControlChange
from runtime.serving.server import ServerConfig, ServerThread

_MODELS: dict[Path, Model] = {}
_REFERENCES: dict[tuple, Frames] = {}


def model_for(bundle: Path) -> Model:
    """One in-process Model per bundle (the reference side of the parity tests)."""
    if bundle not in _MODELS:
        _MODELS[bundle] = Model.load(bundle, backend="ort-cpu")
    return _MODELS[bundle]


def config(bundle: Path, **kw) -> ServerConfig:
    """A test server: loopback, port 0, ORT on the CPU, no degrading (output must depend on audio only)."""
    return ServerConfig(**{"bundle": bundle, "host": "127.0.0.1", "port": 0, "backend": "ort-cpu", "degrade": False,
                           "log_interval": 3600.0, **kw})  # fmt: skip


@contextmanager
def running(bundle: Path, **kw):
    with ServerThread(config(bundle, **kw)) as srv:
        yield srv


def speechlike(seconds: float, seed: int) -> np.ndarray:
    """(N,) float32 at 16 kHz: voiced bursts (harmonics of a gliding pitch, syllable envelopes) and pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.3 * t + seed)  # Hz
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None)  # 4 Hz syllable rate
    turns = (np.sin(2 * np.pi * t / 3.0 + seed * np.pi) > -0.2).astype(float)  # talk ~60 % of the time
    x = 0.2 * voice * syllables * turns + 0.003 * rng.standard_normal(n)
    return x.astype(np.float32)


def write_pair(folder: Path, seconds: float = 4.0) -> tuple[Path, Path]:
    a, b = folder / "a.wav", folder / "b.wav"
    write_wav(a, speechlike(seconds, 1), SAMPLE_RATE)
    write_wav(b, speechlike(seconds + 0.37, 2), SAMPLE_RATE)  # B a little longer: the tail is padded
    return a, b


def reference(model: Model, a: np.ndarray, b: np.ndarray, settings: SessionSettings,
              controls: tuple[ControlChange, ...] = ()) -> Frames:  # fmt: skip
    """The in-process Engine on the same 16 kHz audio: controls first, then both speakers in 1 s steps, flush.

    Cached per (model, audio, settings, controls): several tests compare against the same run."""
    key = (id(model), hashlib.sha1(a.tobytes() + b"|" + b.tobytes()).hexdigest(), settings, controls)
    if key not in _REFERENCES:
        _REFERENCES[key] = _run_engine(model, a, b, settings, controls)
    return _REFERENCES[key]


def _run_engine(model: Model, a: np.ndarray, b: np.ndarray, settings: SessionSettings,
                controls: tuple[ControlChange, ...]) -> Frames:  # fmt: skip
    engine = Engine(model, settings)
    for c in controls:
        engine.control(c.speaker, c.time, action=c.action, style=c.style)
    out = []
    step = SAMPLE_RATE
    for i in range(0, max(len(a), len(b)), step):
        engine.push_audio(0, a[i : i + step])
        engine.push_audio(1, b[i : i + step])
        while (f := engine.step()) is not None:
            out.append(f)
    if (f := engine.flush()) is not None:
        out.append(f)
    return Frames.concat(out)


def assert_valid(frames: Frames, n: int) -> None:
    """n frames, consecutive indices from 0, time codes index / 30, ARKit weights in [0, 1], unit quaternions."""
    assert len(frames) == n
    np.testing.assert_array_equal(frames.index, np.arange(n))
    np.testing.assert_array_equal(frames.time, np.arange(n) / FPS)
    assert np.all(np.diff(frames.time) > 0)
    for p in frames.people:
        assert p.blendshapes.shape == (n, 52) and p.blendshapes.dtype == np.float32
        assert p.blendshapes.min() >= 0.0 and p.blendshapes.max() <= 1.0
        assert np.all(np.isfinite(p.rotations)) and np.all(np.isfinite(p.root_position))
        norms = np.linalg.norm(p.joint_rotations, axis=-1)
        np.testing.assert_allclose(norms, 1.0, atol=1e-4)


def max_diff(x: Frames, y: Frames) -> float:
    """Largest absolute difference over every array of both people (shapes and indices must agree)."""
    np.testing.assert_array_equal(x.index, y.index)
    worst = 0.0
    for p, q in zip(x.people, y.people, strict=True):
        for f in ("blendshapes", "rotations", "root_position", "joint_rotations"):
            u, v = getattr(p, f), getattr(q, f)
            assert u.shape == v.shape, f
            worst = max(worst, float(np.abs(u - v).max()) if u.size else 0.0)
        np.testing.assert_array_equal(p.action, q.action)
        np.testing.assert_array_equal(p.speaking, q.speaking)
    return worst


def health(port: int, service: str = "interact.v1.Interact") -> str:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def wait_until(condition, what: str, tries: int = 500) -> None:
    """Poll ``condition`` (bounded: ``tries`` x 20 ms) for something the server does asynchronously."""
    for _ in range(tries):
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}")
