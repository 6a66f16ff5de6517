"""The engine's output as domain objects: what sinks, the gRPC servicer and the client all exchange.

``Frames`` holds a run of consecutive frames for both people, as arrays (fast to slice, pack and write).
``StreamInfo`` is what a consumer must know once, before any frame (the stream header).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from runtime.constants import FPS
from runtime.formats.arkit import ARKIT_NAMES, LIVELINK_ROTATIONS
from runtime.motion.skeleton import Skeleton


@dataclass(frozen=True)
class StreamInfo:
    session_id: str
    skeleton: Skeleton  # metres
    fps: float = FPS
    blendshape_names: tuple[str, ...] = ARKIT_NAMES
    rotation_names: tuple[str, ...] = LIVELINK_ROTATIONS
    algorithmic_latency: float = 0.0  # s of audio needed past a frame before it can be emitted
    block: int = 0
    lookahead: int = 0
    context: int = 0
    steps: int = 0
    model: str = ""
    styles: tuple[str, str] = ("", "")
    first_frame: int = 0  # index of the stream's first frame (a resumed session's Resume.first_frame)


@dataclass
class PersonFrames:
    blendshapes: np.ndarray  # (N, 52) float32, 0..1, ARKit Apple order
    rotations: np.ndarray  # (N, 9) float32 radians: head yaw/pitch/roll, left eye, right eye (Live Link order)
    root_position: np.ndarray  # (N, 3) float32 metres, world, right-handed Y-up
    joint_rotations: np.ndarray  # (N, J, 4) float32 local quaternions (w, x, y, z), skeleton order
    action: np.ndarray  # (N,) int8 index into runtime.constants.ACTIONS
    speaking: np.ndarray  # (N,) bool voice activity

    def __getitem__(self, s: slice) -> PersonFrames:
        return PersonFrames(*(getattr(self, f)[s] for f in _PERSON_FIELDS))


_PERSON_FIELDS = ("blendshapes", "rotations", "root_position", "joint_rotations", "action", "speaking")


@dataclass
class Frames:
    index: np.ndarray  # (N,) int64, consecutive
    time: np.ndarray  # (N,) float64 seconds = index / fps
    people: tuple[PersonFrames, PersonFrames]  # A, B
    emitted_at: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (N,) monotonic s (latency accounting)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, s: slice) -> Frames:
        at = self.emitted_at[s] if len(self.emitted_at) else self.emitted_at
        return Frames(self.index[s], self.time[s], (self.people[0][s], self.people[1][s]), at)

    def shifted(self, frames: int) -> Frames:
        """The same frames ``frames`` later in the session (a resumed stream's engine counts from its first audio)."""
        return Frames(self.index + frames, self.time + frames / FPS, self.people, self.emitted_at)

    @staticmethod
    def concat(parts: list[Frames]) -> Frames:
        def cat(p: int, f: str) -> np.ndarray:
            return np.concatenate([getattr(x.people[p], f) for x in parts])

        people = tuple(PersonFrames(*(cat(p, f) for f in _PERSON_FIELDS)) for p in (0, 1))
        emitted = [x.emitted_at for x in parts]
        at = np.concatenate(emitted) if all(len(e) for e in emitted) else np.zeros(0)
        return Frames(np.concatenate([x.index for x in parts]), np.concatenate([x.time for x in parts]), people, at)
