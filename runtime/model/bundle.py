"""Model bundle: the hand-off from ``export`` to ``runtime`` (DESIGN 6).

A folder with ``manifest.json`` and the files it lists (ONNX graphs, their external weights, a model card).
The manifest describes everything the runtime needs: clock and feature settings, blendshape names, skeleton,
motion layout, normalisation statistics, the schedule, default streaming settings, every graph's I/O signature,
a sha256 for every file, and provenance (data, checkpoints, evaluation at export time).

``load_bundle`` refuses a bundle whose format, hashes, shapes or settings do not match, with a message that names
the file and the reason. Graphs are loaded on first use by the chosen backend.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runtime import constants
from runtime.formats.arkit import ARKIT_NAMES
from runtime.model.backends import Backend, Graph, Signature, TensorSpec, create_backend
from runtime.model.sampling import Schedule
from runtime.motion.skeleton import Skeleton

log = logging.getLogger(__name__)

FORMAT = "interact-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REQUIRED = (
    "format", "format_version", "name", "clock", "features", "blendshapes", "skeleton", "layout",
    "normalisation", "styles", "defaults", "schedule", "graphs", "files", "provenance",
)  # fmt: skip
# The feature settings a bundle was trained with must be the ones this runtime computes (runtime/constants.py).
NORM_LIMIT = 1e6  # |mean| and std of any normalised feature: far beyond every real table (mel ~10, angles ~3)
FEATURE_KEYS = ("n_mels", "win_length", "hop_length", "n_fft", "fmin", "fmax", "log_floor")


class BundleError(ValueError):
    """The bundle cannot be used; the message names the file and the reason."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def feature_settings() -> dict:
    """This runtime's feature settings, as a manifest records them."""
    return {
        "kind": "log-mel",
        "n_mels": constants.N_MELS,
        "win_length": constants.WIN_LENGTH,
        "hop_length": constants.HOP_LENGTH,
        "n_fft": constants.N_FFT,
        "fmin": constants.FMIN,
        "fmax": constants.FMAX,
        "log_floor": constants.LOG_FLOOR,
        "frame_rule": "mean of the mel frames whose start sample lies in the output frame",
    }


@dataclass
class Bundle:
    path: Path
    manifest: dict
    backend: Backend
    _graphs: dict[str, Graph] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.manifest['name']}-{self.manifest.get('version', '0')}"

    @property
    def skeleton(self) -> Skeleton:
        return Skeleton.from_dict(self.manifest["skeleton"])

    @property
    def styles(self) -> list[str]:
        return list(self.manifest["styles"])

    @property
    def defaults(self) -> dict:
        return dict(self.manifest["defaults"])

    @property
    def alive(self) -> dict:
        """Parameters of the living-face layer (``runtime.engine.alive.AliveParams``); {} = its defaults."""
        return dict(self.manifest.get("alive", {}))

    @property
    def schedule(self) -> Schedule:
        s = self.manifest["schedule"]
        return Schedule(n_steps=int(s["n_train_steps"]), offset=float(s["offset"]))

    def norm(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) float32 arrays of a normalised quantity: "mel", "face", "lower", "upper"."""
        stats = self.manifest["normalisation"][name]
        return np.asarray(stats["mean"], np.float32), np.asarray(stats["std"], np.float32)

    def graph_names(self) -> list[str]:
        return list(self.manifest["graphs"])

    def signature(self, name: str) -> Signature:
        g = self.manifest["graphs"][name]
        return Signature(
            tuple(TensorSpec.from_dict(s) for s in g["inputs"]), tuple(TensorSpec.from_dict(s) for s in g["outputs"])
        )

    def graph(self, name: str) -> Graph:
        """The graph called ``name``, loaded by this bundle's backend on first use."""
        if name not in self.manifest["graphs"]:
            raise BundleError(f"{self.path / MANIFEST}: no graph named {name!r} (have {', '.join(self.graph_names())})")
        if name not in self._graphs:
            file = self.path / self.manifest["graphs"][name]["file"]
            self._graphs[name] = self.backend.load(file, self.signature(name))
        return self._graphs[name]

    def unrolled(self, model: str, steps: int, precision: str = "fp32") -> str | None:
        """Name of the K-step unrolled graph of ``model`` for ``steps`` at ``precision`` ("fp32", "fp16" or "int8"),
        or None if there is none (then the step graph is looped)."""
        return self._find(model, "unrolled", precision, steps)

    def step_graph(self, model: str, precision: str = "fp32") -> str | None:
        """Name of the one-step graph of ``model`` at ``precision``, or None."""
        return self._find(model, "step", precision)

    def _find(self, model: str, kind: str, precision: str, steps: int = 0) -> str | None:
        want = (model, kind, steps, precision)
        for name, g in self.manifest["graphs"].items():
            if (g.get("model"), g.get("kind"), int(g.get("steps", 0)), g.get("precision", "fp32")) == want:
                return name
        return None


def load_bundle(path: str | Path, backend: Backend | str = "ort-cpu", verify: bool = True, threads: int = 1) -> Bundle:
    """Read and validate ``path/manifest.json`` and the files it lists (sha256), then bind a backend."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{manifest_path}: missing (is {path} a model bundle?)")
    try:
        manifest = json.loads(manifest_path.read_bytes().decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise BundleError(f"{manifest_path}: not valid JSON ({e})") from e
    except ValueError as e:  # NaN / Infinity literals, which strict JSON does not have
        raise BundleError(f"{manifest_path}: {e}") from e
    try:
        validate_manifest(manifest, manifest_path)
    except BundleError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:  # a field of the wrong kind or shape
        raise BundleError(f"{manifest_path}: malformed manifest ({type(e).__name__}: {e})") from e
    if verify:
        for rel, digest in manifest["files"].items():
            f = path / rel
            if not f.is_file():
                raise BundleError(f"{f}: listed in the manifest but missing")
            if sha256_file(f) != digest:
                raise BundleError(f"{f}: sha256 does not match the manifest (file changed or corrupt)")
    if isinstance(backend, str):
        backend = create_backend(backend, threads=threads, cache_dir=None)
    return Bundle(path, manifest, backend)


def _no_constant(name: str):
    raise ValueError(f"non-finite number {name} (strict JSON has none)")


def _non_finite(value, at: str = "") -> str | None:
    """Path of the first number in a parsed JSON value that is not finite (1e999 parses to inf), or None."""
    if isinstance(value, float):
        return at if not np.isfinite(value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        found = _non_finite(v, f"{at}.{k}" if isinstance(k, str) else f"{at}[{k}]")
        if found is not None:
            return found
    return None


def validate_manifest(m: dict, where: Path) -> None:
    if not isinstance(m, dict):
        raise BundleError(f"{where}: the manifest must be a JSON object, got {type(m).__name__}")
    bad = _non_finite(m)
    if bad is not None:
        raise BundleError(f"{where}: {bad.lstrip('.')} is not a finite number")
    missing = [k for k in REQUIRED if k not in m]
    if missing:
        raise BundleError(f"{where}: missing keys {missing}")
    if m["format"] != FORMAT:
        raise BundleError(f"{where}: format is {m['format']!r}, expected {FORMAT!r}")
    if m["format_version"] != FORMAT_VERSION:
        raise BundleError(f"{where}: format_version {m['format_version']}, this runtime reads {FORMAT_VERSION}")
    clock = m["clock"]
    if clock.get("fps") != constants.FPS or clock.get("sample_rate") != constants.SAMPLE_RATE:
        raise BundleError(f"{where}: clock {clock} differs from this runtime's {constants.FPS} fps / 16 kHz")
    ours = feature_settings()
    for k in FEATURE_KEYS:
        if m["features"].get(k) != ours[k]:
            raise BundleError(f"{where}: feature setting {k}={m['features'].get(k)!r}, this runtime uses {ours[k]!r}")
    if list(m["blendshapes"]) != list(ARKIT_NAMES):
        raise BundleError(f"{where}: blendshape names are not the 52 ARKit names in Apple order")
    try:
        Skeleton.from_dict(m["skeleton"])
    except (KeyError, ValueError) as e:
        raise BundleError(f"{where}: skeleton: {e}") from e
    for name, g in m["graphs"].items():
        for key in ("file", "model", "kind", "inputs", "outputs"):
            if key not in g:
                raise BundleError(f"{where}: graph {name!r} lacks {key!r}")
        if g["file"] not in m["files"]:
            raise BundleError(f"{where}: graph {name!r} file {g['file']!r} has no sha256 in 'files'")
    for key in ("block", "lookahead", "context", "steps"):
        if not isinstance(m["defaults"].get(key), int) or m["defaults"][key] < (0 if key == "lookahead" else 1):
            raise BundleError(f"{where}: defaults.{key} must be a positive integer, got {m['defaults'].get(key)!r}")
    alive = m.get("alive", {})
    if not isinstance(alive, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) and v >= 0 for v in alive.values()
    ):
        raise BundleError(f"{where}: alive must map parameter names to finite numbers >= 0, got {alive!r}")
    for name, stats in m["normalisation"].items():
        mean, std = np.asarray(stats.get("mean", []), np.float64), np.asarray(stats.get("std", []), np.float64)
        if mean.shape != std.shape or mean.ndim != 1 or not np.all(std > 0):
            raise BundleError(f"{where}: normalisation.{name} needs equal-length mean and positive std")
        if not (np.all(np.abs(mean) < NORM_LIMIT) and np.all(std < NORM_LIMIT)):
            raise BundleError(f"{where}: normalisation.{name} has a mean or std beyond {NORM_LIMIT:g} (float32 "
                              f"features would overflow)")  # fmt: skip
