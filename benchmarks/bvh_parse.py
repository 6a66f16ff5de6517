"""Time ``runtime.formats.bvh.read_bvh`` on a synthetic 10-minute 120 fps take (the brief: well under a second).

The take: a 63-joint humanoid (hips with 6 channels, the rest 3, ZXY; 192 values per frame), 72,000 frames of
smooth random motion written "%.6f" by ``write_bvh``: 142 MB of text, 13.8 M numbers. Prints the best of 3 reads.

    .venv/bin/python benchmarks/bvh_parse.py [--minutes 10] [--fps 120] [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from runtime.formats.bvh import read_bvh, write_bvh
from runtime.motion.clip import BvhClip
from runtime.motion.skeleton import Skeleton

log = logging.getLogger("bvh_parse")

ROT = ("Zrotation", "Xrotation", "Yrotation")
POS = ("Xposition", "Yposition", "Zposition")


def humanoid() -> Skeleton:
    """63 joints in depth-first order: hips, 2 x 4 leg joints, 6 spine/neck/head joints, 2 x (4 arm joints and
    5 fingers x 4 joints)."""
    names, parents, offsets = ["Hips"], [-1], [[0.0, 95.0, 0.0]]

    def chain(parent: str, joints: list[tuple[str, list[float]]]) -> None:
        for name, offset in joints:
            names.append(name)
            parents.append(names.index(parent))
            offsets.append(offset)
            parent = name

    for side, s in (("Left", 1.0), ("Right", -1.0)):
        leg = [("UpLeg", [s * 9.0, -5.0, 0.0]), ("Leg", [0.0, -42.0, 0.0]), ("Foot", [0.0, -40.0, 0.0])]
        chain("Hips", [(side + n, o) for n, o in leg + [("ToeBase", [0.0, -5.0, 12.0])]])
    chain("Hips", [(n, [0.0, 10.0, 0.0]) for n in ("Spine", "Spine1", "Spine2", "Neck", "Neck1", "Head")])
    for side, s in (("Left", 1.0), ("Right", -1.0)):
        arm = [("Shoulder", [s * 4.0, 10.0, 0.0]), ("Arm", [s * 12.0, 0.0, 0.0]), ("ForeArm", [s * 26.0, 0, 0])]
        chain("Spine2", [(side + n, o) for n, o in arm + [("Hand", [s * 24.0, 0.0, 0.0])]])
        for finger in ("Thumb", "Index", "Middle", "Ring", "Pinky"):
            chain(f"{side}Hand", [(f"{side}Hand{finger}{k}", [s * 3.0, 0.0, 0.0]) for k in (1, 2, 3, 4)])
    channels = tuple(POS + ROT if p < 0 else ROT for p in parents)
    return Skeleton(tuple(names), tuple(parents), np.array(offsets), channels)


def synthetic_take(minutes: float, fps: float, seed: int = 0) -> BvhClip:
    sk = humanoid()
    n = int(round(minutes * 60 * fps))
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None] / fps  # (F, 1) seconds
    freq = rng.uniform(0.1, 2.0, sk.n_channels)[None]  # (1, C) Hz
    amp = rng.uniform(5.0, 90.0, sk.n_channels)[None]  # degrees (cm on the hips' positions)
    values = amp * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.3, sk.n_channels)[None])
    values[:, 1] += 95.0  # hips height, cm
    return BvhClip(sk, 1.0 / fps, values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=120.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    clip = synthetic_take(args.minutes, args.fps)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "take.bvh"
        t0 = time.perf_counter()
        write_bvh(path, clip)
        log.info(
            "wrote %s: %d joints, %d channels, %d frames at %g fps, %.1f MB in %.1f s",
            path.name, clip.skeleton.n_joints, clip.skeleton.n_channels, clip.n_frames, args.fps,
            path.stat().st_size / 1e6, time.perf_counter() - t0,
        )  # fmt: skip
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            back = read_bvh(path)
            times.append(time.perf_counter() - t0)
        err = np.abs(back.values - clip.values).max()
        log.info("read_bvh: best %.3f s of %s (max |error| %.1e, %d CPU cores)", min(times),
                 ", ".join(f"{t:.3f}" for t in times), err, os.cpu_count())  # fmt: skip


if __name__ == "__main__":
    main()
