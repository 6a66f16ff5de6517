"""Live Link Face CSV takes (Epic's iPhone app export): read, resample to 30 fps, write (DESIGN sections 3, 9).

Layout: ``Timecode,BlendShapeCount,<52 PascalCase blendshapes in Epic's order>,HeadYaw,...,RightEyeRoll`` and
sometimes more columns (e.g. emotions). Headers are matched by name, case-insensitively, after stripping spaces
(real files spell ``BlendshapeCount`` and ``BlendShapeCount``); columns are never picked by position or count.

Timecodes are ``HH:MM:SS:FF`` with an optional fraction ``.mmm``. Two conventions exist in real files:

- **subframe** (the iPhone app, and what Unreal's Live Link Face importer assumes): the fraction is a fraction of a
  frame, ``19:18:11:20.002`` = 20.002 frames after 19:18:11. Time = ``HH*3600 + MM*60 + SS + (FF + frac) / rate``.
- **milliseconds** (some generators, e.g. NeuroSync's ``00:00:10:09.150``): the fraction is the time inside the
  second and FF is only a rounded frame number. Time = ``HH*3600 + MM*60 + SS + frac``.

Rule: a file is in the milliseconds convention when every row has a fraction and ``|frac - FF / rate| <= 1.5 /
rate`` on every row (the fraction follows FF through the second); otherwise subframe. The two readings differ by
less than a frame wherever this test is ambiguous.

The timecode rate (``rate``) is ``max FF + 1`` rounded up to a standard rate (24, 25, 30, 50, 60) when the take
crosses a second boundary, otherwise the smaller of 30 / 60 that fits (as Unreal's importer infers it); pass
``fps=`` to override. ``FaceTake.fps`` is the data rate, from the median frame interval, snapped to a standard
rate within 3 %; a mismatch with the timecode rate is logged.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from runtime.constants import FPS
from runtime.formats.arkit import (
    ARKIT_NAMES,
    LIVELINK_NAMES,
    LIVELINK_ROTATIONS,
    N_BLENDSHAPES,
    N_ROTATIONS,
    pascal,
    select,
    to_livelink,
)

log = logging.getLogger(__name__)

STANDARD_RATES = (24, 25, 30, 50, 60)
TIMECODE_COLUMN = "Timecode"
COUNT_COLUMN = "BlendShapeCount"  # Unreal's importer spelling; the iPhone app also writes "BlendshapeCount"
DECIMALS = 10  # the app writes 10 decimals
_TIMECODE = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})[:;](\d{1,3})(\.\d+)?$")


class LiveLinkCsvError(ValueError):
    """A Live Link Face CSV that cannot be read or written; the message names the file, line or column."""


@dataclass(frozen=True)
class FaceTake:
    """One face take.

    weights: (F, 52) float32 ARKit weights in Apple's order (``runtime.formats.arkit.ARKIT_NAMES``), 0..1.
    rotations: (F, 9) float32 head and eye yaw/pitch/roll in radians (``LIVELINK_ROTATIONS``); zeros if absent.
    times: (F,) float64 seconds from the first frame.
    """

    weights: np.ndarray
    rotations: np.ndarray
    times: np.ndarray
    fps: float  # data frame rate (frames per second)
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # other value columns, name -> (F,) float64
    path: Path | None = None
    start: float = 0.0  # timecode of the first frame, seconds since 00:00:00:00

    @property
    def n_frames(self) -> int:
        return self.weights.shape[0]


# ------------------------------------------------------------------------------------------------------- reading
def _header(path: Path, line: str) -> list[str]:
    names = [name.strip() for name in line.split(",")]
    seen: dict[str, str] = {}
    for name in names:
        if name.lower() in seen:
            raise LiveLinkCsvError(f"{path}: header line 1 has column {name!r} twice (case-insensitive)")
        seen[name.lower()] = name
    return names


def _parse_values(path: Path, rows: list[list[str]], line_nos: list[int], names: list[str]) -> np.ndarray:
    """(F, V) float64 of the value columns; on failure name the first bad line and column."""
    try:
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(names)) + 0.0  # + 0.0: -0.0 -> 0.0
    except ValueError:
        pass
    for row, line_no in zip(rows, line_nos, strict=True):
        for text, name in zip(row, names, strict=True):
            try:
                float(text)
            except ValueError:
                raise LiveLinkCsvError(f"{path}: non-numeric value {text!r} at line {line_no} column {name}") from None
    raise LiveLinkCsvError(f"{path}: could not parse the value columns")  # unreachable: some field failed above


def _parse_timecodes(path: Path, texts: list[str], line_nos: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> ((F,) int seconds of day, (F,) int frame field, (F,) float fraction or NaN when absent)."""
    hms, ff, frac = np.empty(len(texts), np.int64), np.empty(len(texts), np.int64), np.empty(len(texts))
    for k, (text, line_no) in enumerate(zip(texts, line_nos, strict=True)):
        match = _TIMECODE.match(text)
        if not match or int(match[2]) > 59 or int(match[3]) > 59:
            raise LiveLinkCsvError(f"{path}: bad timecode {text!r} on line {line_no}, expected HH:MM:SS:FF[.mmm]")
        hms[k] = int(match[1]) * 3600 + int(match[2]) * 60 + int(match[3])
        ff[k] = int(match[4])
        frac[k] = float(match[5]) if match[5] else np.nan
    return hms, ff, frac


def _timecode_rate(path: Path, hms: np.ndarray, ff: np.ndarray) -> float:
    """Detect the timecode frame rate from the frame field (see the module docstring)."""
    max_ff = int(ff.max())
    crosses_second = bool(np.any(np.diff(hms) != 0))
    candidates = STANDARD_RATES if crosses_second else (30, 60)
    fitting = [rate for rate in candidates if rate > max_ff]
    if not fitting:
        raise LiveLinkCsvError(f"{path}: timecode frame field reaches {max_ff}, above every standard rate; pass fps=")
    if not crosses_second:
        log.warning("%s: timecodes stay within one second; assuming %d fps (pass fps= if wrong)", path, fitting[0])
    return float(fitting[0])


def _times(path: Path, texts: list[str], line_nos: list[int], fps: float | None) -> tuple[np.ndarray, float]:
    """(F,) float64 absolute seconds of each row and the timecode rate."""
    hms, ff, frac = _parse_timecodes(path, texts, line_nos)
    rate = _timecode_rate(path, hms, ff) if fps is None else fps
    if fps is not None and np.any(ff >= fps):
        k = int(np.argmax(ff >= fps))
        raise LiveLinkCsvError(f"{path}: timecode frame field {ff[k]} on line {line_nos[k]} is >= fps={fps}")
    has_frac = not np.any(np.isnan(frac))
    if has_frac and np.all(np.abs(frac - ff / rate) <= 1.5 / rate):
        log.debug("%s: timecode fraction read as milliseconds in the second", path)
        seconds = hms + frac
    else:
        seconds = hms + (ff + np.nan_to_num(frac)) / rate
    seconds = seconds + 86400.0 * np.cumsum(np.r_[0, np.diff(seconds) < -43200])  # takes running past midnight
    bad = np.flatnonzero(np.diff(seconds) <= 0)
    if len(bad):
        k = int(bad[0]) + 1
        raise LiveLinkCsvError(
            f"{path}: timecode {texts[k]!r} on line {line_nos[k]} is not later than "
            f"{texts[k - 1]!r} on line {line_nos[k - 1]}"
        )
    return seconds, rate


def _data_fps(path: Path, times: np.ndarray, rate: float) -> float:
    """Frame rate from the median frame interval, snapped to a standard rate within 3 %."""
    if len(times) < 2:
        return float(rate)
    measured = 1.0 / float(np.median(np.diff(times)))
    nearest = min(STANDARD_RATES, key=lambda r: abs(r - measured))
    fps = float(nearest) if abs(nearest - measured) <= 0.03 * nearest else round(measured, 3)
    if fps != rate:
        log.warning("%s: data rate %.3f fps differs from the timecode rate %s fps", path, measured, rate)
    return fps


WEIGHT_SLACK = 0.05  # weights within this of [0, 1] are clamped with a warning (rounding in exports); beyond: an error


def read_livelink_csv(path: str | Path, fps: float | None = None) -> FaceTake:
    """Read a Live Link Face CSV take; columns by name, any order, extra columns kept in ``FaceTake.extra``.

    fps: the timecode frame rate when known; None detects it (module docstring). Raises ``LiveLinkCsvError``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise LiveLinkCsvError(f"{path}: cannot read as a UTF-8 text file: {e}") from e
    lines = [(no, line) for no, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines or lines[0][0] != 1:
        raise LiveLinkCsvError(f"{path}: expected a header line starting with {TIMECODE_COLUMN} on line 1")
    names = _header(path, lines[0][1])
    lookup = {name.lower(): i for i, name in enumerate(names)}
    if TIMECODE_COLUMN.lower() not in lookup:
        raise LiveLinkCsvError(f"{path}: no {TIMECODE_COLUMN} column in the header (found {names[:3]}...)")
    missing = [pascal(n) for n in ARKIT_NAMES if n.lower() not in lookup]
    if missing:
        raise LiveLinkCsvError(f"{path}: missing ARKit blendshape columns: {', '.join(missing)}")
    if len(lines) < 2:
        raise LiveLinkCsvError(f"{path}: header only, no frames")

    tc_col = lookup[TIMECODE_COLUMN.lower()]
    value_cols = [i for i in range(len(names)) if i != tc_col]
    value_names = [names[i] for i in value_cols]
    line_nos, timecodes, rows = [], [], []
    for no, line in lines[1:]:
        fields = line.split(",")
        if len(fields) != len(names):
            raise LiveLinkCsvError(f"{path}: line {no} has {len(fields)} fields, the header has {len(names)}")
        line_nos.append(no)
        timecodes.append(fields[tc_col].strip())
        rows.append([fields[i] for i in value_cols])
    values = _parse_values(path, rows, line_nos, value_names)  # (F, V) float64

    value_index = {name.lower(): k for k, name in enumerate(value_names)}
    wanted = [value_index[n.lower()] for n in ARKIT_NAMES] + [
        value_index[n.lower()] for n in LIVELINK_ROTATIONS if n.lower() in value_index
    ]
    not_finite = ~np.isfinite(values[:, wanted])
    if np.any(not_finite):
        f, c = np.argwhere(not_finite)[0]
        raise LiveLinkCsvError(f"{path}: non-finite value at line {line_nos[f]} column {value_names[wanted[c]]}")

    weights = select(values, value_names)  # (F, 52) Apple order, by name
    outside = (weights < -WEIGHT_SLACK) | (weights > 1 + WEIGHT_SLACK)
    if np.any(outside):
        f, c = np.argwhere(outside)[0]
        raise LiveLinkCsvError(f"{path}: blendshape weight {weights[f, c]:g} at line {line_nos[f]} column "
                               f"{ARKIT_NAMES[c]} is outside [0, 1]")  # fmt: skip
    if np.any((weights < 0) | (weights > 1)):
        log.warning("%s: %d weight(s) slightly outside [0, 1] (within %g) clamped", path,
                    int(np.sum((weights < 0) | (weights > 1))), WEIGHT_SLACK)  # fmt: skip
        weights = np.clip(weights, 0.0, 1.0)
    rotations = np.zeros((len(rows), N_ROTATIONS), dtype=np.float32)  # (F, 9) radians
    absent = [n for n in LIVELINK_ROTATIONS if n.lower() not in value_index]
    if 0 < len(absent) < N_ROTATIONS:
        log.warning("%s: rotation columns absent, filled with zeros: %s", path, ", ".join(absent))
    for j, name in enumerate(LIVELINK_ROTATIONS):
        if name.lower() in value_index:
            rotations[:, j] = values[:, value_index[name.lower()]]
    known = {n.lower() for n in ARKIT_NAMES} | {n.lower() for n in LIVELINK_ROTATIONS} | {COUNT_COLUMN.lower()}
    extra = {name: values[:, k].copy() for k, name in enumerate(value_names) if name.lower() not in known}

    seconds, rate = _times(path, timecodes, line_nos, fps)
    times = seconds - seconds[0]
    take = FaceTake(weights, rotations, times, _data_fps(path, times, rate), extra, path, float(seconds[0]))
    log.debug("read %s: %d frames at %s fps, extra columns %s", path, take.n_frames, take.fps, list(extra))
    return take


# ------------------------------------------------------------------------------------------------------- resampling
def resample_take(take: FaceTake, fps: float = FPS) -> FaceTake:
    """Resample a take to ``fps`` (default the 30 fps output clock).

    When ``take.fps / fps`` is an integer n and the frame intervals are regular (each within a quarter frame of
    1 / take.fps), every n-th frame is kept with its own time (60 -> 30: frames 0, 2, 4, ...). Otherwise every
    column is linearly interpolated at times ``0, 1/fps, ...`` up to the last frame.
    """
    if fps <= 0:
        raise ValueError(f"resample_take: fps must be > 0, got {fps}")
    ratio = take.fps / fps
    step = round(ratio)
    dt = np.diff(take.times)
    regular = bool(np.all(np.abs(dt * take.fps - 1.0) <= 0.25))
    if step >= 1 and abs(ratio - step) < 1e-9 and regular:
        keep = slice(None, None, step)
        return replace(
            take,
            weights=take.weights[keep].copy(),
            rotations=take.rotations[keep].copy(),
            times=take.times[keep].copy(),
            fps=float(fps),
            extra={k: v[keep].copy() for k, v in take.extra.items()},
        )
    n_out = int(np.floor(take.times[-1] * fps + 1e-9)) + 1
    new_times = np.arange(n_out) / fps  # (F',) seconds

    def interp(columns: np.ndarray) -> np.ndarray:  # (F, K) -> (F', K)
        return np.stack([np.interp(new_times, take.times, c) for c in columns.T], axis=1)

    return replace(
        take,
        weights=interp(take.weights).astype(np.float32),
        rotations=interp(take.rotations).astype(np.float32),
        times=new_times,
        fps=float(fps),
        extra={k: np.interp(new_times, take.times, v) for k, v in take.extra.items()},
    )


# ------------------------------------------------------------------------------------------------------- writing
def format_timecode(seconds: float, fps: int) -> str:
    """Absolute time -> ``HH:MM:SS:FF.mmm`` with the app's subframe fraction (thousandths of a frame)."""
    milli_frames = round(seconds * fps * 1000)  # position in thousandths of a frame
    frames, sub = divmod(milli_frames, 1000)
    whole_seconds, ff = divmod(frames, fps)
    hours, rest = divmod(whole_seconds, 3600)
    return f"{hours % 24:02d}:{rest // 60:02d}:{rest % 60:02d}:{ff:02d}.{sub:03d}"


def write_livelink_csv(
    path: str | Path,
    weights: np.ndarray,
    rotations: np.ndarray | None = None,
    fps: int = FPS,
    start_timecode: float = 0.0,
) -> None:
    """Write a take in the Live Link Face app's layout, importable by Unreal's Live Link Face importer.

    weights: (F, 52) Apple-order ARKit weights; rotations: (F, 9) radians or None (zeros). Frame i gets timecode
    ``start_timecode + i / fps`` (seconds since 00:00:00:00) as ``HH:MM:SS:FF.mmm``; values with 10 decimals.
    """
    path = Path(path)
    if float(fps) != int(fps) or int(fps) <= 0:
        raise LiveLinkCsvError(f"{path}: fps must be a positive whole number for HH:MM:SS:FF timecodes, got {fps}")
    if start_timecode < 0:
        raise LiveLinkCsvError(f"{path}: start_timecode must be >= 0 seconds, got {start_timecode}")
    fps = int(fps)
    weights = np.asarray(weights, dtype=np.float32)
    if weights.ndim != 2 or weights.shape[1] != N_BLENDSHAPES:
        raise LiveLinkCsvError(f"{path}: weights must be (F, {N_BLENDSHAPES}) in Apple order, got {weights.shape}")
    try:
        values = to_livelink(weights, rotations)  # (F, 61) Live Link order
    except ValueError as e:
        raise LiveLinkCsvError(f"{path}: {e}") from e
    if not np.all(np.isfinite(values)):
        raise LiveLinkCsvError(f"{path}: weights or rotations contain NaN or infinity")
    values = np.round(values.astype(np.float64), DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0
    row_format = ",".join([f"%.{DECIMALS}f"] * len(LIVELINK_NAMES))
    lines = [",".join((TIMECODE_COLUMN, COUNT_COLUMN) + LIVELINK_NAMES)]
    for i, row in enumerate(values):
        timecode = format_timecode(start_timecode + i / fps, fps)
        lines.append(f"{timecode},{len(LIVELINK_NAMES)},{row_format % tuple(row)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
