"""The backend contract: tensor specs, a graph's signature, the Graph and Backend protocols (DESIGN 7)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


class BackendUnavailable(RuntimeError):
    """This backend cannot run on this machine; the message says why and what to install."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]  # ints for fixed axes, names ("batch", "frames") for dynamic ones
    dtype: str  # numpy dtype name, e.g. "float32", "int64"

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: Mapping) -> TensorSpec:
        return cls(str(d["name"]), tuple(d["shape"]), str(d["dtype"]))


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def check_feed(self, feed: Mapping[str, np.ndarray], graph: str) -> None:
        """Names, ranks, fixed axes and dtypes of a feed; raises ValueError naming the graph and the tensor."""
        missing = [s.name for s in self.inputs if s.name not in feed]
        extra = [n for n in feed if n not in {s.name for s in self.inputs}]
        if missing or extra:
            raise ValueError(f"{graph}: inputs missing {missing}, unexpected {extra}")
        for spec in self.inputs:
            a = feed[spec.name]
            if a.dtype != np.dtype(spec.dtype) or a.ndim != len(spec.shape):
                want = f"{spec.dtype} {spec.shape}"
                raise ValueError(f"{graph}: input {spec.name} must be {want}, got {a.dtype} {a.shape}")
            for size, want in zip(a.shape, spec.shape, strict=True):
                if isinstance(want, int) and size != want:
                    raise ValueError(f"{graph}: input {spec.name} must have shape {spec.shape}, got {a.shape}")


class Graph(Protocol):
    name: str
    signature: Signature

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class Backend(Protocol):
    name: str

    def load(self, path: Path, signature: Signature) -> Graph: ...
