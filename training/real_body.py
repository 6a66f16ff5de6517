"""Bodies on real speech: the "real speech" table of ``python -m training.evaluate --model body --real-speech``.

- ``beat-speech/`` (BEAT, CC BY-NC: evaluation only): each spontaneous monologue streamed through the engine as
  person A, a quiet room as person B, at the given settings. A is the speaker, B the listener; the animator's
  figures of ``training.metrics.motion`` for each (A also split into frames the engine marks as speech and pauses).
- ``bandai-namco-motion/`` (CC BY-NC: statistics only, never training data): the same figures measured on real
  motion capture of gesturing people, the reference the synthetic generator was calibrated toward.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from runtime.engine.settings import SessionSettings
from runtime.formats.bvh import read_bvh
from runtime.motion.kinematics import clip_pose
from training.metrics import body as bm
from training.metrics import motion as mo
from training.real_speech import EXTERNAL, mono, stream

log = logging.getLogger(__name__)

COLUMNS = {"wrists_speed": "wrist speed (h/s)", "wrists_speaking": "while speaking", "wrists_listening": "in pauses",
           "elbows_speed": "elbows", "head_speed": "head", "hips_speed": "hips",
           "strokes_per_min": "strokes/min"}  # fmt: skip
HIP_NAMES = (("LeftUpLeg", "RightUpLeg"), ("UpperLeg_L", "UpperLeg_R"), ("left_hip", "right_hip"))


def heading_frame(world: np.ndarray, names: tuple[str, ...], root: int = 0) -> np.ndarray:
    """(F, J, 3) world positions (Y up) of any skeleton -> the body's own frame: the root's ground point at the origin,
    the heading (hips' left-to-right axis x up, as LDA's reference frame) turned to +Z."""
    for left, right in HIP_NAMES:
        if left in names and right in names:
            side = world[:, names.index(left)] - world[:, names.index(right)]
            break
    else:
        raise ValueError(f"no left/right hip joints among {names}")
    forward = np.cross(side, [0.0, 1.0, 0.0])
    yaw = np.arctan2(forward[:, 0], forward[:, 2])
    ground = world[:, root].copy()
    ground[:, 1] = 0.0
    rel = world - ground[:, None]
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    return np.stack([c * rel[..., 0] - s * rel[..., 2], rel[..., 1], s * rel[..., 0] + c * rel[..., 2]], axis=-1)


def bvh_row(paths: list[Path]) -> dict:
    """The figures of real motion capture (all files pooled)."""
    stats = None
    for path in paths:
        clip = read_bvh(path).to_metres()
        sk = clip.skeleton
        if stats is None:
            stats = mo.MotionStats(fps=clip.fps)
        local = heading_frame(clip_pose(clip).positions, tuple(sk.names))
        stats.add(local, mo.group_joints(sk.names), mo.body_height(sk))
    return {"name": f"real capture: {paths[0].parent.name} ({len(paths)} takes, {stats.frames / stats.fps:.0f} s)",
            **stats.result()}  # fmt: skip


def beat_rows(model, settings: SessionSettings, max_seconds: float | None, files: list[Path] | None = None) -> list:
    """Speaker (A, BEAT voice) and listener (B, quiet room) figures, pooled over the files."""
    files = files if files is not None else sorted((EXTERNAL / "beat-speech").glob("*.wav"))
    sk = model.poser.skeleton
    groups, height = mo.group_joints(sk.names), mo.body_height(sk)
    people = [mo.MotionStats(), mo.MotionStats()]
    for path in files:
        frames = stream(model, settings, mono(path, max_seconds))
        pair = bm.pair_from_posed(model.poser, [(p.joint_rotations, p.root_position) for p in frames.people])
        for p in (0, 1):
            people[p].add(pair[p].local, groups, height, frames.people[p].speaking)
        log.info("%s: %d frames streamed", path.name, len(frames))
    seconds = people[0].frames / people[0].fps
    rows = [{"name": f"speaker (A), {len(files)} BEAT files, {seconds / 60:.1f} min", **people[0].result()},
            {"name": "listener (B), quiet room", **people[1].result()}]  # fmt: skip
    rows[0]["speaker_listener_ratio"] = rows[0]["wrists_speed"] / rows[1]["wrists_speed"]
    return rows


def real_body_report(model, settings: SessionSettings, max_seconds: float | None = 60.0) -> dict:
    rows = []
    if (EXTERNAL / "beat-speech").is_dir():
        rows += beat_rows(model, settings, max_seconds)
    else:
        log.warning("%s absent: no real-speech body rows", EXTERNAL / "beat-speech")
    captures = sorted((EXTERNAL / "bandai-namco-motion").glob("*.bvh"))
    if captures:
        rows.append(bvh_row(captures))
    return {"rows": rows}


def markdown(report: dict) -> str:
    def fmt(v) -> str:
        return "–" if v is None or not np.isfinite(v) else f"{v:.3g}"

    lines = ["| row | " + " | ".join(COLUMNS.values()) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    lines += [f"| {r['name']} | " + " | ".join(fmt(r.get(k)) for k in COLUMNS) + " |" for r in report["rows"]]
    ratio = next((r["speaker_listener_ratio"] for r in report["rows"] if "speaker_listener_ratio" in r), None)
    if ratio is not None:
        lines += ["", f"Speaker / listener wrist speed: {ratio:.2f}"]
    return "\n".join(lines)
