"""Write a bundle's ``manifest.json`` (DESIGN 6): everything the runtime needs, every file's sha256, provenance."""

from __future__ import annotations

import datetime as dt
import json
import logging
import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np

from runtime import __version__
from runtime.constants import FPS, SAMPLE_RATE
from runtime.engine.alive import AliveParams
from runtime.formats.arkit import ARKIT_NAMES, LIVELINK_ROTATIONS
from runtime.model.bundle import FORMAT, FORMAT_VERSION, MANIFEST, feature_settings, load_bundle, sha256_file
from runtime.model.sampling import Schedule

log = logging.getLogger(__name__)

# Streaming defaults chosen from the measured quality/latency curve (benchmarks/README and the main README): B 3,
# L 3 (100 ms lookahead, mic -> frame p95 under 200 ms), K 1 (the face's distilled one-step student where the bundle
# has one; the body's teacher in one step), within 5 % of K 4 at B 6 on four-seed means (2026-12-05 report).
DEFAULTS = {"block": 3, "lookahead": 3, "context": 24, "steps": 1, "face_known": 0}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _stats(meta: dict, name: str) -> dict:
    s = meta["stats"][name]
    return {"mean": np.asarray(s["mean"], dtype=np.float64).round(7).tolist(),
            "std": np.asarray(s["std"], dtype=np.float64).round(7).tolist()}  # fmt: skip


def write_bundle(
    out: Path,
    name: str,
    graphs: dict[str, dict],
    ckpts: dict[str, dict],
    schedule: Schedule,
    evaluation: list[Path] = (),
    card: Path | None = None,
    defaults: dict | None = None,
    alive: AliveParams | None = None,
) -> dict:
    """Write ``out/manifest.json`` for the graphs already in ``out``; returns the manifest. Validates by loading."""
    face, body = ckpts["face"]["meta"], ckpts["body"]["meta"]
    if face["stats"]["mel"] != body["stats"]["mel"]:
        raise ValueError("face and body checkpoints were trained with different mel statistics (different corpora?)")
    if card is not None:
        shutil.copyfile(card, out / "README.md")
    files = sorted(p.name for p in out.iterdir() if p.is_file() and p.suffix in (".onnx", ".weights", ".md"))
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": dt.date.today().strftime("%Y.%m.%d"),
        "clock": {"fps": FPS, "sample_rate": SAMPLE_RATE},
        "features": feature_settings(),
        "blendshapes": list(ARKIT_NAMES),
        "rotations": list(LIVELINK_ROTATIONS),
        "skeleton": dict(body["skeleton"], units="m"),
        "layout": body["layout"],
        "normalisation": {
            "mel": _stats(face, "mel"),
            "face": _stats(face, "face"),
            "lower": _stats(body, "lower"),
            "upper": _stats(body, "upper"),
        },  # fmt: skip
        "styles": list(face["styles"]),
        "defaults": dict(defaults or DEFAULTS),
        "alive": (alive or AliveParams()).to_dict(),  # the living-face layer's parameters (runtime.engine.alive)
        "schedule": {
            "kind": "cosine",
            "n_train_steps": schedule.n_steps,
            "offset": schedule.offset,
            "parameterisation": "x0",
            "sampler": "ddim",
            "eta": 0.0,
        },  # fmt: skip
        "graphs": {
            g: {
                "file": f"{g}.onnx",
                "model": e["model"],
                "kind": e["kind"],
                "precision": e.get("precision", "fp32"),
                **({"steps": e["steps"]} if "steps" in e else {}),
                "weights": e.get("weights", f"{e['model']}.weights"),
                **({"checkpoint": e["checkpoint"]} if "checkpoint" in e else {}),
                "parity_max_abs_error": e["parity"],
                "inputs": [s.to_dict() for s in e["sig"].inputs],
                "outputs": [s.to_dict() for s in e["sig"].outputs],
            }
            for g, e in graphs.items()
        },  # fmt: skip
        "files": {f: sha256_file(out / f) for f in files},
        "provenance": {
            "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "runtime_version": __version__,
            "git_commit": _git_commit(),
            "machine": platform.platform(),
            "checkpoints": {
                k: {
                    "path": c["path"],
                    "sha256": c["sha256"],
                    "kind": c["kind"],
                    "model_config": c["model_config"],
                    "train": c["meta"].get("train", {}),
                    "data": c["meta"].get("data", {}),
                }
                for k, c in ckpts.items()
            },  # fmt: skip
            "evaluation": {p.stem: json.loads(p.read_text()) for p in evaluation} or None,
        },
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    load_bundle(out)  # refuse to leave behind a bundle the runtime would refuse
    log.info("wrote %s (%d graphs, %d files)", out / MANIFEST, len(graphs), len(files))
    return manifest
