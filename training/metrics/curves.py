"""Small statistics of 1-D curves sampled at ``fps`` (pure numpy/scipy), shared by ``training.metrics.liveliness``:
percentiles (None for no values), True runs of a mask, variance fractions per frequency band, turn counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import periodogram

BANDS_HZ = ((0.0, 0.5), (0.5, 2.0), (2.0, 5.0))  # plus 5 Hz-Nyquist


@dataclass(frozen=True)
class Bands:
    """Fractions of a curve's variance per frequency band (sum 1); None for a constant curve."""

    hz_0_0p5: float | None  # 0 <= f < 0.5 Hz: slow drift, held expressions
    hz_0p5_2: float | None  # 0.5 <= f < 2 Hz: gestures, nods
    hz_2_5: float | None  # 2 <= f < 5 Hz: quick accents
    hz_5_up: float | None  # 5 Hz up to Nyquist: jitter, tracker noise


def pct(values: np.ndarray | list[float], q: float) -> float | None:
    """q-th percentile (0..100) or None for no values."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.percentile(values, q)) if values.size else None


def spread(name: str, values: np.ndarray | list[float]) -> dict[str, float | None]:
    """``{name_median, name_p10, name_p90}``: percentiles 50, 10, 90 of ``values`` (None for no values)."""
    return {f"{name}_median": pct(values, 50), f"{name}_p10": pct(values, 10), f"{name}_p90": pct(values, 90)}


def check_fps(fps: float) -> float:
    """``fps`` as a float; ValueError unless it is finite and positive."""
    fps = float(fps)
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    return fps


def band_powers(x: np.ndarray, fps: float) -> Bands:
    """Fractions of the variance of ``x`` (F,) in 0-0.5, 0.5-2, 2-5 Hz and 5 Hz-Nyquist (Hann-windowed periodogram
    of the mean-removed curve); they sum to 1."""
    fps = check_fps(fps)
    x = np.asarray(x, dtype=np.float64)
    if x.size < 4 or np.ptp(x) < 1e-9:
        return Bands(None, None, None, None)
    freqs, power = periodogram(x, fs=fps, window="hann", detrend="constant", scaling="spectrum")
    total = float(power.sum())
    if total <= 0:
        return Bands(None, None, None, None)
    fractions = [float(power[(freqs >= lo) & (freqs < hi)].sum()) / total for lo, hi in BANDS_HZ]
    fractions.append(float(power[freqs >= BANDS_HZ[-1][1]].sum()) / total)
    return Bands(*fractions)


def count_turns(x: np.ndarray, min_swing: float) -> int:
    """Number of velocity zero-crossings (turns) of ``x`` (F,) whose swing is at least ``min_swing`` (units of x).

    Zig-zag with hysteresis: the direction is set once ``x`` has moved ``min_swing`` from its start; after that a
    turn is counted when ``x`` has come back ``min_swing`` from the running extreme. Noise smaller than
    ``min_swing`` never counts; a sine of peak-to-peak >= 2 * min_swing counts two turns per cycle.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size < 2:
        return 0
    direction, extreme, turns = 0, float(x[0]), 0
    for v in x[1:]:
        v = float(v)
        if direction == 0:
            if abs(v - extreme) >= min_swing:
                direction, extreme = (1 if v > extreme else -1), v
        elif direction * (v - extreme) > 0:
            extreme = v
        elif direction * (extreme - v) >= min_swing:
            direction, extreme, turns = -direction, v, turns + 1
    return turns


def true_runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (start, end) index pairs of the True runs of a bool array."""
    padded = np.concatenate([[False], flags, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(s), int(e) - 1) for s, e in zip(edges[::2], edges[1::2], strict=True)]
