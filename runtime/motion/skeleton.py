"""Skeleton: a BVH hierarchy as arrays (DESIGN section 4). Read from data, stored in the bundle, sent in headers.

Offsets are in the units of the source (BVH has none: ``runtime.motion.clip`` guesses cm or m); ``scale`` converts them.
Each joint keeps its own BVH channel list, so its Euler order and whether it carries positions survive a round trip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")
ROOT_NAMES = re.compile(r"(^|[^a-z])(hips|pelvis)$", re.I)  # "Hips", "mixamorig:Hips", "Bip01 Pelvis"


@dataclass(frozen=True, eq=False)
class Skeleton:
    names: tuple[str, ...]  # joint names, parents before children (BVH file order)
    parents: tuple[int, ...]  # index of each joint's parent, -1 for the root
    offsets: np.ndarray  # (J, 3) rest offset of each joint from its parent, source units
    channels: tuple[tuple[str, ...], ...]  # per joint its BVH channels, e.g. ("Zrotation", "Xrotation", "Yrotation")
    end_sites: dict[int, np.ndarray] = field(default_factory=dict)  # joint index -> (3,) End Site offset

    def __post_init__(self) -> None:
        j = len(self.names)
        if len(self.parents) != j or len(self.channels) != j or np.shape(self.offsets) != (j, 3):
            raise ValueError(
                f"skeleton arrays disagree: {j} names, {len(self.parents)} parents, "
                f"{len(self.channels)} channel lists, offsets {np.shape(self.offsets)}"
            )
        for i, p in enumerate(self.parents):
            if not -1 <= p < i:
                raise ValueError(f"joint {self.names[i]!r}: parent index {p} must come before it (or be -1)")
        if len(set(self.names)) != j:
            raise ValueError("joint names must be unique")

    @property
    def n_joints(self) -> int:
        return len(self.names)

    @property
    def n_channels(self) -> int:
        return sum(len(c) for c in self.channels)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no joint named {name!r} in skeleton") from None

    def rotation_order(self, j: int) -> str:
        """Euler order of joint ``j`` as its channels list it, e.g. ``"ZXY"`` (intrinsic, scipy upper case)."""
        return "".join(c[0] for c in self.channels[j] if c in ROTATION_CHANNELS)

    def has_position(self, j: int) -> bool:
        return any(c in POSITION_CHANNELS for c in self.channels[j])

    def channel_offsets(self) -> np.ndarray:
        """(J + 1,) start of each joint's channels in a BVH frame row; the last entry is the row length."""
        return np.concatenate([[0], np.cumsum([len(c) for c in self.channels])]).astype(int)

    def children(self, j: int) -> list[int]:
        return [i for i, p in enumerate(self.parents) if p == j]

    def scaled(self, factor: float) -> Skeleton:
        """The same hierarchy with offsets (and End Sites) multiplied by ``factor`` (e.g. 0.01 for cm -> m)."""
        return Skeleton(
            self.names,
            self.parents,
            np.asarray(self.offsets, dtype=np.float64) * factor,
            self.channels,
            {j: np.asarray(o, dtype=np.float64) * factor for j, o in self.end_sites.items()},
        )

    def to_dict(self) -> dict:
        """JSON-ready description (bundle manifest, stream header)."""
        return {
            "names": list(self.names),
            "parents": list(self.parents),
            "offsets": np.asarray(self.offsets, dtype=np.float64).round(9).tolist(),
            "channels": [list(c) for c in self.channels],
            "end_sites": {str(j): np.asarray(o, dtype=np.float64).round(9).tolist() for j, o in self.end_sites.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> Skeleton:
        return cls(
            tuple(d["names"]),
            tuple(int(p) for p in d["parents"]),
            np.asarray(d["offsets"], dtype=np.float64).reshape(-1, 3),
            tuple(tuple(c) for c in d["channels"]),
            {int(j): np.asarray(o, dtype=np.float64) for j, o in d.get("end_sites", {}).items()},
        )


def root_joint(skeleton: Skeleton) -> int:
    """The joint that carries the body's root motion: named hips/pelvis, else the first with positions."""
    for j, name in enumerate(skeleton.names):
        if ROOT_NAMES.search(name):
            return j
    return next((j for j in range(skeleton.n_joints) if skeleton.has_position(j)), 0)
