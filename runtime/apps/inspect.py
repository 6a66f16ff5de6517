"""``python -m runtime.inspect FILE...``: a one-paragraph summary of any file the system reads.

BVH (joints, frames, fps, duration, channel orders, units), Live Link Face CSV (frames, fps, value columns),
audio (format, rate, channels, duration), a model bundle folder (graphs, names, provenance) and a checkpoint's
manifest-like facts. Exits non-zero with the reason on a file it cannot read: the first thing to reach for when a
take "looks wrong".
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

from runtime.formats.arkit import INDEX
from runtime.model.bundle import MANIFEST, BundleError, load_bundle


def describe_bvh(path: Path) -> str:
    from runtime.formats.bvh import read_bvh

    clip = read_bvh(path)
    sk = clip.skeleton
    orders = Counter(sk.rotation_order(j) or "none" for j in range(sk.n_joints))
    with_pos = sum(sk.has_position(j) for j in range(sk.n_joints))
    return (
        f"{path}: BVH, {sk.n_joints} joints ({sk.names[0]} -> ...), {len(sk.end_sites)} End Sites, "
        f"{clip.n_frames} frames at {clip.fps:.3g} fps ({clip.duration:.2f} s), {sk.n_channels} channels; "
        f"rotation orders {dict(orders)}; {with_pos} joint(s) with position channels; units look like {clip.units}."
    )


def describe_csv(path: Path) -> str:
    from runtime.formats.livelink_csv import read_livelink_csv

    take = read_livelink_csv(path)
    w = take.weights
    jaw = w[:, INDEX["jawOpen"]].mean()
    extra = f", extra columns {sorted(take.extra)}" if take.extra else ""
    return (
        f"{path}: Live Link Face CSV, {take.n_frames} frames at {take.fps:.3g} fps "
        f"({take.times[-1] - take.times[0] if take.n_frames else 0:.2f} s), 52 ARKit weights in "
        f"[{w.min():.3f}, {w.max():.3f}] (jawOpen mean {jaw:.3f}), 9 head/eye rotations{extra}."
    )


def describe_audio(path: Path) -> str:
    from runtime.formats.wav import read_audio

    clip = read_audio(path)  # what the system makes of it (fails with the reason if it cannot)
    info = sf.info(str(path))  # and the file as stored
    peak = float(np.abs(clip.channels).max()) if clip.channels.size else 0.0
    return (
        f"{path}: {info.format} {info.subtype}, {info.samplerate} Hz, {info.channels} channel(s), "
        f"{info.duration:.2f} s; read as {clip.n_channels} x 16 kHz mono (A = left, B = right), peak {peak:.3f}."
    )


def describe_bundle(path: Path) -> str:
    bundle = load_bundle(path, backend="ort-cpu")
    m = bundle.manifest
    graphs = ", ".join(
        f"{g} ({e['kind']}{' K=' + str(e['steps']) if 'steps' in e else ''})" for g, e in m["graphs"].items()
    )
    prov = m["provenance"]
    ckpts = ", ".join(f"{k} {v['sha256'][:12]} ({v.get('train', {}).get('steps', '?')} steps)"
                      for k, v in prov.get("checkpoints", {}).items())  # fmt: skip
    d = m["defaults"]
    return (
        f"{path}: model bundle {bundle.name} (format {m['format_version']}), {m['clock']['fps']} fps, "
        f"{len(m['blendshapes'])} blendshapes, {len(m['skeleton']['names'])} joints, styles {m['styles']}; "
        f"defaults block {d['block']} / lookahead {d['lookahead']} / context {d['context']} / K {d['steps']}; "
        f"living-face layer: {_alive(m.get('alive', {}))}; graphs: {graphs}; checkpoints: {ckpts or 'none'}; "
        f"exported {prov.get('exported_at')}; "
        f"all {len(m['files'])} file hashes verified."
    )


def _alive(params: dict) -> str:
    if not params:
        return "its defaults"
    keys = ("blinks_per_min_speaking", "blinks_per_min_listening")
    return ", ".join(f"{k} {params[k]:g}" for k in keys if k in params) + f" (+{len(params) - 2} more)"


def describe(path: str | Path) -> str:
    path = Path(path)
    if path.is_dir():
        if (path / MANIFEST).is_file():
            return describe_bundle(path)
        raise ValueError(f"{path}: a folder, but not a model bundle (no {MANIFEST})")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".bvh":
        return describe_bvh(path)
    if suffix == ".csv":
        return describe_csv(path)
    if suffix in (".wav", ".flac", ".ogg", ".mp3"):
        return describe_audio(path)
    if path.name == MANIFEST:
        return describe_bundle(path.parent)
    if suffix == ".json":
        return f"{path}: JSON with keys {sorted(json.loads(path.read_text()))[:12]}"
    raise ValueError(f"{path}: unknown kind of file (expected .bvh, .csv, .wav/.flac/.ogg, or a bundle folder)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="BVH, Live Link CSV, audio files or bundle folders")
    args = ap.parse_args(argv)
    status = 0
    for f in args.files:
        try:
            print(describe(f))
        except (OSError, ValueError, BundleError, RuntimeError) as e:
            print(f"error: {e}", file=sys.stderr)
            status = 1
    return status
