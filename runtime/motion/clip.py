"""A motion clip: a skeleton and its raw per-frame channel values, as BVH stores them (DESIGN section 4).

It lives below the file formats: ``runtime.formats.bvh`` reads and writes it, ``runtime.motion`` poses it.
Units: BVH has none. ``BvhClip.units`` guesses from the rest pose (every rotation zero, offsets only): the
diagonal of the bounding box of all joints and End Sites. A person is 1-2 m tall, so that is about 100-250 in
cm and 1-2.5 in m; above 10 reads as "cm", otherwise "m" (inches are not told apart: they read as "cm").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.motion.skeleton import POSITION_CHANNELS, Skeleton

CM_THRESHOLD = 10.0  # rest-pose bounding-box diagonal above this reads as centimetres (see module docstring)


@dataclass(frozen=True, eq=False)
class BvhClip:
    skeleton: Skeleton
    frame_time: float  # seconds per frame
    values: np.ndarray  # (F, C) float64 raw channel values in file order (degrees, source units)

    def __post_init__(self) -> None:
        c = self.skeleton.n_channels
        if self.values.ndim != 2 or self.values.shape[1] != c:
            raise ValueError(f"BvhClip.values: expected (frames, {c}) for this skeleton, got {self.values.shape}")
        if not self.frame_time > 0:
            raise ValueError(f"BvhClip.frame_time must be > 0 seconds, got {self.frame_time}")

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def n_frames(self) -> int:
        return self.values.shape[0]

    @property
    def duration(self) -> float:
        """Seconds covered by the frames: ``n_frames * frame_time``."""
        return self.n_frames * self.frame_time

    @property
    def units(self) -> str:
        """ "cm" or "m", guessed from the rest pose's size (rule in the module docstring)."""
        sk = self.skeleton
        rest = np.zeros((sk.n_joints, 3))
        for j, p in enumerate(sk.parents):
            rest[j] = sk.offsets[j] + (rest[p] if p >= 0 else 0.0)
        points = [rest] + [rest[j] + np.asarray(o)[None] for j, o in sk.end_sites.items()]
        points = np.concatenate(points)
        return "cm" if np.linalg.norm(np.ptp(points, axis=0)) > CM_THRESHOLD else "m"

    def to_metres(self) -> BvhClip:
        """This clip in metres: offsets, End Sites and position channels scaled by 0.01 if it is in cm."""
        if self.units == "m":
            return self
        values = self.values.copy()
        names = [c for chans in self.skeleton.channels for c in chans]  # (C,) channel name per column
        values[:, [i for i, c in enumerate(names) if c in POSITION_CHANNELS]] *= 0.01
        return BvhClip(self.skeleton.scaled(0.01), self.frame_time, values)
