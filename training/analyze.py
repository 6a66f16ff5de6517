"""Measure Live Link Face takes the way an animator judges a living face, and write the reference figures.

    python -m training.analyze ../shared/external/neurosync-player-faces ../shared/external/neurosync-trainer-lite \
        --json training/configs/face_reference.json

Reads Live Link Face CSV takes (files, or the ``*.csv`` of folders; byte-identical files are counted once), measures
each with ``training.metrics.liveliness`` (blinks, gaze, brows, head sway, liveliness: the rules are there), and
prints a per-take table, the across-takes summary (median and range), the per-event distributions pooled over takes
and plain-language notes. ``--json`` writes all of it (rules, sources, per-take statistics) as strict JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np

from runtime.formats.arkit import ARKIT_NAMES
from runtime.formats.livelink_csv import read_livelink_csv
from training.metrics.curves import pct
from training.metrics.liveliness import (
    BLINK_HIST_EDGES_MS,
    BLINK_MAX_MS,
    BLINK_MIN_AMP,
    BLINK_REL,
    GAZE_BLINK_LEVEL,
    GAZE_BLINK_PAD_S,
    GAZE_MERGE_S,
    GAZE_MIN_AMP,
    GAZE_SPEED,
    LIVELY_STD,
    NOD_MIN_SWING,
    TakeStats,
    analyze_take,
)
from training.reporting import json_safe


# ------------------------------------------------------------------------------------------------------- summary
def scalars(stats: TakeStats) -> dict[str, float]:
    """Flat ``{"blinks.per_min": 12.0, ...}`` of a take's numeric figures (per-event tuples and None left out)."""
    out: dict[str, float] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        elif isinstance(value, bool):
            return
        elif isinstance(value, int | float) and math.isfinite(value):
            out[prefix] = float(value)

    walk("", asdict(stats))
    for key in ("fps", "n_frames", "duration_s", "liveliness.threshold"):
        out.pop(key, None)
    return out


def summarize(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Across takes: per figure its median, min, max and the number of takes that have it."""
    keys = list(dict.fromkeys(key for row in rows for key in row))  # first-seen order
    summary = {}
    for key in keys:
        values = np.array([row[key] for row in rows if key in row])
        summary[key] = {
            "median": float(np.median(values)),
            "min": float(values.min()),
            "max": float(values.max()),
            "n": int(values.size),
        }
    return summary


def pooled(takes: list[TakeStats]) -> dict[str, dict[str, float | int | None]]:
    """Per-event distributions pooled over takes: blink peaks, durations (ms), intervals (s); gaze amplitudes
    (deg), fixations (s). Each: n, median, p10, p90, min, max."""
    events = {
        "blink_peak": [p for t in takes for p in t.blinks.peaks],
        "blink_duration_ms": [d for t in takes for d in t.blinks.durations_ms],
        "blink_interval_s": [float(i) for t in takes for i in np.diff(t.blinks.times_s)],
        "gaze_amplitude_deg": [a for t in takes for a in t.gaze.amplitudes_deg],
        "fixation_s": [f for t in takes for f in t.gaze.fixations_s],
    }
    out: dict[str, dict[str, float | int | None]] = {}
    for name, values in events.items():
        v = np.asarray(values, dtype=np.float64)
        out[name] = {"n": int(v.size), "median": pct(v, 50), "p10": pct(v, 10), "p90": pct(v, 90),
                     "min": float(v.min()) if v.size else None, "max": float(v.max()) if v.size else None}  # fmt: skip
    hist = np.sum([t.blinks.duration_hist for t in takes], axis=0) if takes else np.zeros(len(BLINK_HIST_EDGES_MS) - 1)
    out["blink_duration_hist"] = {"edges_ms": list(BLINK_HIST_EDGES_MS), "counts": [int(c) for c in hist]}
    return out


def take_notes(name: str, stats: TakeStats, weights: np.ndarray | None = None) -> list[str]:
    """Plain-language oddities of a take: few or no blinks or gaze shifts, eyes resting away from 0, channels of
    (F, 52) ``weights`` (when given) that are exactly 0 throughout. (A missing head is noted by ``analyze_files``.)"""
    notes = []
    b, g = stats.blinks, stats.gaze
    if b.n == 0:
        notes.append(f"{name}: no blink detected")
    elif b.per_min < 6:
        notes.append(f"{name}: only {b.n} blink(s) in {stats.duration_s:.0f} s ({b.per_min:.1f}/min)")
    if b.baseline >= 0.02:
        notes.append(f"{name}: eyes rest at eyeBlink {b.baseline:.3f} (half-closed lids or a calibration offset)")
    if g.mean_pitch_deg is not None and abs(g.mean_pitch_deg) >= 3:
        where = "down" if g.mean_pitch_deg > 0 else "up"
        notes.append(f"{name}: eyes rest {abs(g.mean_pitch_deg):.1f} deg {where} on average")
    if g.n == 0:
        notes.append(f"{name}: no gaze shift detected (eye yaw std {_fmt(g.yaw_std_deg, '.1f')} deg)")
    if weights is not None and len(weights):
        dead = [n for n, column in zip(ARKIT_NAMES, np.asarray(weights).T, strict=True) if not np.any(column)]
        if dead:
            notes.append(f"{name}: {len(dead)} channels are exactly 0 throughout: {', '.join(dead)}")
    return notes


def rules() -> dict[str, float | list[float] | str]:
    """The detection thresholds, for the JSON report."""
    return {
        "blink": f"peak >= median + A and prominence >= A, A = max({BLINK_REL} * (max - median), {BLINK_MIN_AMP}); "
        f"duration = width at half prominence <= {BLINK_MAX_MS:g} ms; curve = mean of eyeBlinkLeft/Right",
        "gaze": f"runs of frame-to-frame speed >= {GAZE_SPEED:g} deg/s (gaps < {GAZE_MERGE_S * 1000:g} ms merged) "
        f"with net amplitude >= {GAZE_MIN_AMP:g} deg; frames with blink >= median + {GAZE_BLINK_LEVEL:g} "
        f"(+- {GAZE_BLINK_PAD_S * 1000:g} ms) ignored; per minute of open-eye time",
        "bands": "fractions of variance, Hann periodogram of the mean-removed curve: 0-0.5, 0.5-2, 2-5, 5-Nyquist Hz",
        "nods": f"pitch turns with a swing >= {NOD_MIN_SWING:g} deg (zig-zag with hysteresis); a down-up nod is 2",
        "liveliness": f"channels with std >= {LIVELY_STD:g}",
        "blink_duration_hist_edges_ms": list(BLINK_HIST_EDGES_MS),
    }


# ------------------------------------------------------------------------------------------------------- CLI
def find_takes(paths: list[Path]) -> list[Path]:
    """CSV files named, and the ``*.csv`` of folders named (sorted), in argument order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(path.glob("*.csv")))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return found


def read_take(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A Live Link Face CSV -> ((F, 52) weights, (F, 3) head deg, (F, 6) eye deg, fps)."""
    take = read_livelink_csv(path)
    rotations = np.degrees(take.rotations.astype(np.float64))  # (F, 9): head, left eye, right eye; yaw/pitch/roll
    return take.weights.astype(np.float64), rotations[:, :3], rotations[:, 3:], take.fps


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


TABLE = (  # header, width, getter
    ("take", 4, lambda n, s: n),
    ("fps", 4, lambda n, s: f"{s.fps:g}"),
    ("dur s", 5, lambda n, s: f"{s.duration_s:.1f}"),
    ("blinks", 6, lambda n, s: str(s.blinks.n)),
    ("/min", 5, lambda n, s: f"{s.blinks.per_min:.1f}"),
    ("peak p10-p50-p90", 16, lambda n, s: "-" if s.blinks.n == 0 else
     f"{s.blinks.peak_p10:.2f}-{s.blinks.peak_median:.2f}-{s.blinks.peak_p90:.2f}"),
    ("dur ms", 6, lambda n, s: _fmt(s.blinks.duration_ms_median, ".0f")),
    ("IBI s", 5, lambda n, s: _fmt(s.blinks.interval_s_median, ".1f")),
    ("gaze/min", 8, lambda n, s: _fmt(s.gaze.per_min, ".1f")),
    ("amp deg", 7, lambda n, s: _fmt(s.gaze.amplitude_deg_median, ".1f")),
    ("fix s", 5, lambda n, s: _fmt(s.gaze.fixation_s_median, ".2f")),
    ("eyePit", 6, lambda n, s: _fmt(s.gaze.mean_pitch_deg, ".1f")),
    ("browIn", 6, lambda n, s: f"{s.brows.inner_up_std:.3f}"),
    ("browOut", 7, lambda n, s: f"{s.brows.outer_up_std:.3f}"),
    ("head", 5, lambda n, s: "none" if s.head is None else f"{s.head.pitch_std_deg:.1f}"),
    ("lively", 6, lambda n, s: str(s.liveliness.n_lively)),
)  # fmt: skip

SUMMARY_ROWS = (  # figure, label
    ("blinks.per_min", "blinks per minute"),
    ("blinks.peak_median", "blink peak, median (weight)"),
    ("blinks.duration_ms_median", "blink duration at half prominence, median (ms)"),
    ("blinks.interval_s_median", "inter-blink interval, median (s)"),
    ("gaze.per_min", "gaze shifts per open-eye minute"),
    ("gaze.amplitude_deg_median", "gaze shift amplitude, median (deg)"),
    ("gaze.fixation_s_median", "fixation duration, median (s)"),
    ("gaze.yaw_std_deg", "eye yaw std (deg)"),
    ("gaze.pitch_std_deg", "eye pitch std (deg)"),
    ("gaze.mean_pitch_deg", "eye pitch mean (deg, + = down)"),
    ("brows.inner_up_std", "browInnerUp std"),
    ("brows.outer_up_std", "browOuterUp std"),
    ("brows.inner_up_bands.hz_0_0p5", "browInnerUp power 0-0.5 Hz"),
    ("brows.inner_up_bands.hz_0p5_2", "browInnerUp power 0.5-2 Hz"),
    ("brows.inner_up_bands.hz_2_5", "browInnerUp power 2-5 Hz"),
    ("brows.outer_up_bands.hz_0_0p5", "browOuterUp power 0-0.5 Hz"),
    ("brows.outer_up_bands.hz_0p5_2", "browOuterUp power 0.5-2 Hz"),
    ("brows.outer_up_bands.hz_2_5", "browOuterUp power 2-5 Hz"),
    ("head.yaw_std_deg", "head yaw std (deg)"),
    ("head.pitch_std_deg", "head pitch std (deg)"),
    ("head.roll_std_deg", "head roll std (deg)"),
    ("head.speed_mean_deg_s", "head angular speed mean (deg/s)"),
    ("head.speed_p95_deg_s", "head angular speed p95 (deg/s)"),
    ("head.nods_per_min", "nods (pitch turns >= swing) per minute"),
    ("liveliness.n_lively", "lively channels (std >= 0.02)"),
)


def format_report(report: dict, takes: list[tuple[str, TakeStats]]) -> str:
    """The per-take table, the across-takes summary and the notes, as text."""
    short = [Path(name).name for name, _ in takes]
    if len(set(short)) < len(short):  # the same file name in two folders: keep the folder
        short = [name for name, _ in takes]
    widths = [max([w] + [len(n) for n in short]) if i == 0 else w for i, (_, w, _) in enumerate(TABLE)]
    header = [(h, w) for (h, _, _), w in zip(TABLE, widths, strict=True)]
    lines = [" ".join(f"{h:>{w}}" if i else f"{h:<{w}}" for i, (h, w) in enumerate(header))]
    for name, (_, stats) in zip(short, takes, strict=True):
        cells = [(get(name, stats), width) for (_, _, get), width in zip(TABLE, widths, strict=True)]
        lines.append(" ".join(f"{c:>{w}}" if i else f"{c:<{w}}" for i, (c, w) in enumerate(cells)))
    lines += ["", f"across {len(takes)} takes: {'figure':<44} {'median':>8} {'min':>8} {'max':>8}"]
    for key, label in SUMMARY_ROWS:
        row = report["summary"].get(key)
        if row is None:
            lines.append(f"{'':<19}{label:<44} {'n/a (no take has it)':>26}")
        else:
            lines.append(f"{'':<19}{label:<44} {row['median']:8.3g} {row['min']:8.3g} {row['max']:8.3g}")
    pool = report["pooled"]
    lines += ["", "pooled events:"]
    for key, row in pool.items():
        if "edges_ms" in row:
            edges, counts = row["edges_ms"], row["counts"]
            bins = [f"{edges[i]:g}-{edges[i + 1]:g}:{c}" for i, c in enumerate(counts)]
            lines.append(f"  {key}: " + "  ".join(bins))
        else:
            lines.append(
                f"  {key}: n {row['n']}  median {_fmt(row['median'], '.3g')}  p10 {_fmt(row['p10'], '.3g')}"
                f"  p90 {_fmt(row['p90'], '.3g')}  range {_fmt(row['min'], '.3g')}-{_fmt(row['max'], '.3g')}"
            )
    if report["notes"]:
        lines += ["", "notes:"] + [f"  - {note}" for note in report["notes"]]
    return "\n".join(lines)


def analyze_files(paths: list[Path]) -> tuple[dict, list[tuple[str, TakeStats]]]:
    """Read and analyse every take (byte-identical files once) -> (JSON-ready report, [(name, stats)])."""
    sources, takes, notes = [], [], []
    seen: dict[str, str] = {}
    for path in find_takes(paths):
        name = f"{path.parent.name}/{path.name}"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            sources.append({"file": name, "sha256": digest, "duplicate_of": seen[digest]})
            notes.append(f"{name} is byte-identical to {seen[digest]}: counted once")
            continue
        seen[digest] = name
        weights, head, eyes, fps = read_take(path)
        stats = analyze_take(weights, fps, head, eyes)
        sources.append({"file": name, "sha256": digest, "frames": stats.n_frames, "fps": stats.fps})
        takes.append((name, stats))
        notes.extend(take_notes(name, stats, weights))
    headless = [name for name, stats in takes if stats.head is None]
    if headless and len(headless) == len(takes):
        notes.append("no take records head rotation (HeadYaw/Pitch/Roll all zero): head figures unavailable")
    else:
        notes.extend(f"{name}: {stats.head_note}; head figures omitted" for name, stats in takes if stats.head is None)
    summary = summarize([scalars(stats) for _, stats in takes])
    report = {
        "rules": rules(),
        "sources": sources,
        "takes": [{"file": name, "stats": asdict(stats)} for name, stats in takes],
        "summary": summary,
        "unavailable": [key for key, _ in SUMMARY_ROWS if key not in summary],
        "pooled": pooled([stats for _, stats in takes]),
        "notes": notes,
    }
    return json_safe(report), takes


_FLAT_LIST = re.compile(
    r"\[\s*((?:-?[0-9][0-9.eE+-]*|null|\"\w+\")(?:\s*,\s*(?:-?[0-9][0-9.eE+-]*|null|\"\w+\"))*)\s*\]"
)


def _rounded(value: object, digits: int = 6) -> object:
    """Floats to ``digits`` significant digits, recursively (the figures carry no more)."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v, digits) for v in value]
    return value


def dumps(report: dict) -> str:
    """Indented JSON, floats to 6 significant digits, every list of numbers or names on one line."""
    text = json.dumps(_rounded(report), indent=1)
    return _FLAT_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m[1].split(",")) + "]", text)


def main(argv: list[str] | None = None) -> dict:
    """The CLI (module docstring); returns the report it printed (and wrote with ``--json``)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", type=Path, help="Live Link Face CSV files or folders of them")
    ap.add_argument("--json", type=Path, help="write the report (rules, sources, per-take rows, summary) here")
    args = ap.parse_args(argv)
    try:
        report, takes = analyze_files(args.paths)
    except (OSError, ValueError) as e:
        ap.error(str(e))
    if not takes:
        ap.error("no takes found")
    print(format_report(report, takes))
    if args.json:
        report = {"command": "python -m training.analyze " + " ".join(str(p) for p in args.paths), **report}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(dumps(report) + "\n")
        print(f"\nwrote {args.json}")
    return report


if __name__ == "__main__":
    main()
