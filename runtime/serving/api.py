"""Domain objects of the gRPC API besides frames and events: what a client asks of a session and what it gets back
(``runtime.engine.frames`` holds the frames and the stream header, ``runtime.engine.stream.Event`` the events).

``runtime.serving.convert`` turns these into protos and back; servers, clients, demos and benchmarks use only these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from runtime.constants import DEFAULT_ACTION, SAMPLE_RATE
from runtime.motion.skeleton import Skeleton

MAX_CHUNK_SECONDS = 1.0  # longest audio chunk accepted (proto AudioChunk.data)
_DTYPES = {"s16": np.dtype("<i2"), "f32": np.dtype("<f4")}


@dataclass(frozen=True)
class AudioFormat:
    sample_format: str = "f32"  # "s16" (PCM 16-bit LE) or "f32" (float32 LE in [-1, 1])
    sample_rate: int = SAMPLE_RATE  # Hz, 8000..48000 (resampled to 16000 by the server)
    layout: str = "mono"  # "mono" (chunks tagged A or B) or "stereo" (interleaved, A left, B right)

    @property
    def channels(self) -> int:
        return 2 if self.layout == "stereo" else 1

    @property
    def dtype(self) -> np.dtype:
        return _DTYPES[self.sample_format]

    @property
    def max_chunk_samples(self) -> int:
        """Samples per channel in the longest chunk accepted (1 s)."""
        return int(self.sample_rate * MAX_CHUNK_SECONDS)


@dataclass(frozen=True)
class Resume:
    """Continue a session another server was running (proto ``Resume``): this stream's audio starts at session frame
    ``start_frame``; frames are sent from ``first_frame`` on, with the session's indices and time codes."""

    start_frame: int
    first_frame: int
    roots: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None  # (x, z, yaw) of A and B
    previous_session_id: str = ""


@dataclass(frozen=True)
class SessionOptions:
    """What a client asks of a session (proto ``SessionConfig``); zeros mean the model's defaults."""

    audio: AudioFormat = field(default_factory=AudioFormat)
    styles: tuple[str, str] = ("", "")  # "" = the model's default style
    actions: tuple[str, str] = (DEFAULT_ACTION, DEFAULT_ACTION)  # initial labels, names from ACTIONS
    placement: tuple[float, float, float] | None = None  # B in A's frame: x, z (m), yaw (rad); None = default
    block: int = 0  # frames per step; 0 = model default
    lookahead: int | None = None  # frames; None = model default (0 is a valid lookahead)
    steps: int = 0  # DDIM steps; 0 = model default
    seed: int = 0  # 0 = a random seed per session
    alive: bool | None = None  # the living-face layer; None = the model's default (on)
    face: bool = True  # send blendshapes and head/eye rotations
    body: bool = True  # send root positions and joint rotations
    resume: Resume | None = None  # continue a lost session (None = a new one)


@dataclass(frozen=True)
class ControlChange:
    speaker: int  # 0 = A, 1 = B
    time: float  # s from the session start
    action: str | None = None  # a name from ACTIONS
    style: str | None = None  # a style of the model


@dataclass(frozen=True)
class SessionStatus:
    """The final status of a session (proto ``Status``)."""

    code: str  # "success" or "warning"
    message: str
    frames: int  # frames sent
    audio_seconds: float  # audio received per speaker, s
    latency_p50: float = 0.0  # s, audio completing a frame's lookahead -> frame emitted
    latency_p95: float = 0.0  # s


@dataclass(frozen=True)
class ModelInfo:
    """What a server's model produces and accepts (proto ``ModelDescription``)."""

    model: str  # bundle name and version
    fps: float
    sample_rate: int  # Hz, internal
    blendshape_names: tuple[str, ...]
    rotation_names: tuple[str, ...]
    skeleton: Skeleton  # metres
    styles: tuple[str, ...]
    defaults: dict  # block, lookahead, context, steps
    backend: str
    manifest: dict
