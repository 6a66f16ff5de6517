"""Statistics of a living face, the way an animator judges one: blinks, gaze, brows, head sway, liveliness.

Pure functions: numpy arrays in ((F, 52) ARKit weights in Apple's order, 0..1; angles in degrees) sampled at ``fps``,
frozen dataclasses out (``asdict`` + ``training.reporting.json_safe``: strict JSON; an undefined figure is None); rules
in seconds, deg/s or weight units, so 30 and 60 fps takes are measured alike. CLI: ``python -m training.analyze``.

Detection rules in short (in full in each function's docstring; thresholds are the constants below, with reasons):
- blink: a peak of mean(eyeBlinkLeft, eyeBlinkRight) rising and falling by A = max(0.3 * (max - median), 0.2) above
  the take's median (height and prominence >= A), at most 1 s wide at half prominence.
- gaze shift: a run of eye speed >= 40 deg/s whose net move is >= 1.5 deg. Blink masking: frames with the blink curve
  >= median + 0.1 (+- 100 ms) are ignored (the tracker swings the eyes down while the lid closes).
- liveliness: the channels whose std is >= 0.02 (weight units); nods: head pitch turns of >= 2 deg swing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks, peak_widths

from runtime.formats.arkit import ARKIT_NAMES, INDEX
from training.metrics.curves import Bands, band_powers, check_fps, count_turns, spread, true_runs

# Blinks. In the real iPhone takes blinks peak at 0.3-0.96 (a calibrated open eye sits at 0-0.05). Among all local
# maxima, the clear blinks have prominences of 0.27 and up; squints, lid jitter and the tails of double blinks stay
# at or under 0.23 (most under 0.15). The 0.2 floor keeps the partial blinks (0.3) of a take whose full blinks only
# reach 0.5; 0.3 of the range rejects the 0.2-high jitter of a take whose blinks reach 0.9.
BLINK_REL = 0.3  # fraction of the take's range (max - baseline) a blink must rise and fall by
BLINK_MIN_AMP = 0.2  # weight units: the smallest rise that counts, whatever the range (a still face has none)
BLINK_MAX_MS = 1000.0  # ms at half prominence; real blinks are 50-170 ms, slow ones and long closures up to 460 ms
BLINK_HIST_EDGES_MS = (0.0, 75.0, 100.0, 125.0, 175.0, 250.0, 400.0, 1000.0)  # duration histogram bin edges, ms

# Gaze. Real saccades in these takes take 3-4 frames at 60 fps with per-frame speeds of 100-250 deg/s; fixational
# drift and tracker noise stay under ~25 deg/s; 40 deg/s sits between them and a 2 deg shift spread over two 30 fps
# frames still crosses it. 1.5 deg is about the tracker's jitter over a second of fixation, so smaller net moves are
# not counted.
GAZE_SPEED = 40.0  # deg/s, frame-to-frame speed threshold
GAZE_MIN_AMP = 1.5  # deg, smallest net displacement of a shift
GAZE_MERGE_S = 0.025  # s, runs of fast steps split by a shorter gap are one shift (one frame at 60 fps, none at 30)
GAZE_BLINK_LEVEL = 0.1  # weight units above the blink baseline that mark a frame as "lid closing"
GAZE_BLINK_PAD_S = 0.1  # s added on both sides of every such frame
# Fallback gains when a take has no eye rotation columns: Live Link eye yaw/pitch (deg) against the eyeLook weights,
# least-squares over the 10 real takes (yaw gain 36-60, median 39; pitch gain 26-30, median 29; r >= 0.95).
EYE_YAW_GAIN = 39.0  # deg per unit of (look-left minus look-right); Live Link yaw is positive to the subject's right
EYE_PITCH_GAIN = 29.0  # deg per unit of (look-up minus look-down); Live Link pitch is positive downwards

NOD_MIN_SWING = 2.0  # deg of pitch between turns: conversational nods are 3-15 deg, postural sway drifts < 1 deg
LIVELY_STD = 0.02  # weight units


# ------------------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class BlinkStats:
    """Blink events of a take (rule: ``blink_stats``)."""

    n: int
    per_min: float  # blinks per minute of take
    baseline: float  # weight units: median of the blink curve
    amplitude_gate: float  # weight units: A, the rise and prominence a blink needs
    peak_median: float | None  # weight units, absolute height of the blink curve at the peak
    peak_p10: float | None
    peak_p90: float | None
    duration_ms_median: float | None  # ms, width at half prominence
    duration_ms_p10: float | None
    duration_ms_p90: float | None
    duration_hist: tuple[int, ...]  # counts per bin of ``duration_hist_edges_ms``
    interval_s_median: float | None  # s between consecutive blink peaks
    interval_s_p10: float | None
    interval_s_p90: float | None
    interval_s_min: float | None
    times_s: tuple[float, ...]  # s from the first frame, per blink
    peaks: tuple[float, ...]  # weight units, per blink
    durations_ms: tuple[float, ...]  # ms, per blink
    duration_hist_edges_ms: tuple[float, ...] = BLINK_HIST_EDGES_MS


@dataclass(frozen=True)
class GazeStats:
    """Gaze shifts (saccades) and fixations of a take."""

    source: str  # "eye rotation columns" or "eyeLook weights"
    n: int
    per_min: float | None  # shifts per minute of open-eye time (None: no open-eye time)
    open_eye_s: float  # s of take not masked by blinks
    amplitude_deg_median: float | None  # deg, net displacement per shift
    amplitude_deg_p10: float | None
    amplitude_deg_p90: float | None
    fixation_s_median: float | None  # s between shifts
    fixation_s_p10: float | None
    fixation_s_p90: float | None
    mean_yaw_deg: float | None  # deg over open-eye frames: where the eyes rest (camera placement, calibration)
    mean_pitch_deg: float | None
    yaw_std_deg: float | None
    pitch_std_deg: float | None
    times_s: tuple[float, ...]  # s, the last still frame before each shift
    amplitudes_deg: tuple[float, ...]
    fixations_s: tuple[float, ...]


@dataclass(frozen=True)
class BrowStats:
    """Brow raise activity (weight units)."""

    inner_up_mean: float
    inner_up_std: float
    outer_up_mean: float  # mean of browOuterUpLeft/Right
    outer_up_std: float
    inner_up_bands: Bands
    outer_up_bands: Bands


@dataclass(frozen=True)
class HeadStats:
    """Head sway: angles in degrees, speeds in deg/s."""

    yaw_std_deg: float
    pitch_std_deg: float
    roll_std_deg: float
    speed_mean_deg_s: float
    speed_p95_deg_s: float
    nods: int  # pitch turns with a swing >= NOD_MIN_SWING
    nods_per_min: float
    yaw_bands: Bands
    pitch_bands: Bands
    roll_bands: Bands


@dataclass(frozen=True)
class Liveliness:
    """Which of the 52 channels move (std >= threshold)."""

    n_lively: int
    channels: tuple[str, ...]  # ARKit names, Apple's order
    threshold: float = LIVELY_STD


@dataclass(frozen=True)
class TakeStats:
    """Everything above for one take. ``head`` is None when the take has no head rotation (``head_note`` says)."""

    fps: float
    n_frames: int
    duration_s: float
    blinks: BlinkStats
    gaze: GazeStats
    brows: BrowStats
    head: HeadStats | None
    liveliness: Liveliness
    head_note: str = ""


# ------------------------------------------------------------------------------------------------------- blinks
def blink_curve(weights: np.ndarray) -> np.ndarray:
    """(F,) mean of eyeBlinkLeft/Right from (F, 52) weights; a (F,) array is taken as the blink curve itself."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 1:
        return w
    if w.ndim != 2 or w.shape[1] != len(ARKIT_NAMES):
        raise ValueError(f"expected (F,) blink curve or (F, {len(ARKIT_NAMES)}) weights, got {w.shape}")
    return 0.5 * (w[:, INDEX["eyeBlinkLeft"]] + w[:, INDEX["eyeBlinkRight"]])


def blink_stats(
    weights: np.ndarray,
    fps: float,
    *,
    rel: float = BLINK_REL,
    min_amp: float = BLINK_MIN_AMP,
    max_duration_ms: float = BLINK_MAX_MS,
) -> BlinkStats:
    """Blink events of a take: (F, 52) weights or the (F,) blink curve ``b`` (``blink_curve``) at ``fps``.

    Baseline = the median of ``b`` (the open-eye level); gate ``A = max(rel * (max b - baseline), min_amp)``. A blink
    is a local maximum with ``peak >= baseline + A`` and prominence ``>= A`` (the lid must reopen by ``A`` before a
    second closure counts) whose width at half prominence (its duration) is at most ``max_duration_ms``."""
    fps = check_fps(fps)
    b = blink_curve(weights)
    baseline = float(np.median(b)) if b.size else 0.0
    span = float(b.max()) - baseline if b.size else 0.0
    gate = max(rel * span, min_amp)
    peaks = np.zeros(0, dtype=np.int64)
    durations_ms = np.zeros(0)
    if b.size >= 3:
        peaks, props = find_peaks(b, height=baseline + gate, prominence=gate)
        if peaks.size:
            prominence_data = (props["prominences"], props["left_bases"], props["right_bases"])
            widths = peak_widths(b, peaks, rel_height=0.5, prominence_data=prominence_data)[0]
            durations_ms = widths / fps * 1000.0
            keep = durations_ms <= max_duration_ms
            peaks, durations_ms = peaks[keep], durations_ms[keep]
    heights = b[peaks]
    times = peaks / fps
    intervals = np.diff(times)
    hist = np.histogram(durations_ms, bins=np.asarray(BLINK_HIST_EDGES_MS))[0]
    return BlinkStats(
        n=int(peaks.size),
        per_min=peaks.size / (b.size / fps / 60.0) if b.size else 0.0,
        baseline=baseline,
        amplitude_gate=gate,
        **spread("peak", heights),
        **spread("duration_ms", durations_ms),
        duration_hist=tuple(int(c) for c in hist),
        **spread("interval_s", intervals),
        interval_s_min=float(intervals.min()) if intervals.size else None,
        times_s=tuple(float(t) for t in times),
        peaks=tuple(float(h) for h in heights),
        durations_ms=tuple(float(d) for d in durations_ms),
    )


# ------------------------------------------------------------------------------------------------------- gaze
def gaze_angles(weights: np.ndarray, eye_deg: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """(F, 2) conjugate gaze (yaw, pitch) in degrees and where it came from.

    eye_deg: (F, 6) Live Link eye rotations in degrees (LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw,
    RightEyePitch, RightEyeRoll) or (F, 2) (yaw, pitch) already; used when given and not all zero (the mean of both
    eyes). Otherwise the eyeLook weights of (F, 52) ``weights`` through ``EYE_YAW_GAIN`` / ``EYE_PITCH_GAIN``, in
    the same convention (yaw positive to the subject's right, pitch positive downwards).
    """
    if eye_deg is not None:
        eye = np.asarray(eye_deg, dtype=np.float64)
        if eye.ndim != 2 or eye.shape[1] not in (2, 6):
            raise ValueError(f"eye_deg must be (F, 6) Live Link eye rotations or (F, 2) yaw/pitch, got {eye.shape}")
        if np.any(eye != 0):
            if eye.shape[1] == 6:  # mean of the two eyes
                eye = np.stack([0.5 * (eye[:, 0] + eye[:, 3]), 0.5 * (eye[:, 1] + eye[:, 4])], axis=1)
            return eye.copy(), "eye rotation columns"
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != len(ARKIT_NAMES):
        raise ValueError(f"weights must be (F, {len(ARKIT_NAMES)}), got {w.shape}")

    def col(name: str) -> np.ndarray:
        return w[:, INDEX[name]]

    left = 0.5 * ((col("eyeLookOutLeft") - col("eyeLookInLeft")) + (col("eyeLookInRight") - col("eyeLookOutRight")))
    up = 0.5 * ((col("eyeLookUpLeft") - col("eyeLookDownLeft")) + (col("eyeLookUpRight") - col("eyeLookDownRight")))
    return np.stack([-EYE_YAW_GAIN * left, -EYE_PITCH_GAIN * up], axis=1), "eyeLook weights"


def blink_mask(
    blink: np.ndarray, fps: float, level: float = GAZE_BLINK_LEVEL, pad_s: float = GAZE_BLINK_PAD_S
) -> np.ndarray:
    """(F,) bool: frames whose blink curve (or (F, 52) weights) is ``level`` (weight units) above its median,
    widened by ``pad_s`` seconds each side."""
    b = blink_curve(blink)
    if b.size == 0:
        return np.zeros(0, dtype=bool)
    closing = (b - np.median(b)) >= level
    pad = int(round(pad_s * check_fps(fps)))
    if pad > 0 and closing.any():
        closing = np.convolve(closing.astype(np.int64), np.ones(2 * pad + 1, dtype=np.int64), mode="same") > 0
    return closing


def gaze_stats(
    gaze_deg: np.ndarray,
    fps: float,
    blink: np.ndarray | None = None,
    *,
    source: str = "eye rotation columns",
    speed_threshold: float = GAZE_SPEED,
    min_amp: float = GAZE_MIN_AMP,
) -> GazeStats:
    """Gaze shifts of (F, 2) gaze (yaw, pitch) in degrees at ``fps``.

    A shift is a run of steps ``|g[k+1] - g[k]| * fps >= speed_threshold`` (deg/s; runs split by gaps shorter than
    ``GAZE_MERGE_S`` merged) whose net displacement is at least ``min_amp`` deg. Fixations: from one shift's end to
    the next one's start (the partial ones at the ends left out). blink: the (F,) blink curve or (F, 52) weights;
    the frames of its ``blink_mask`` (the tracker swings the eyes down 5-15 deg while the lid closes) are ignored,
    shifts are per minute of the rest (None: none masked). source: recorded (``gaze_angles`` returns it)."""
    fps = check_fps(fps)
    g = np.asarray(gaze_deg, dtype=np.float64)
    if g.ndim != 2 or g.shape[1] != 2:
        raise ValueError(f"gaze_deg must be (F, 2) yaw/pitch in degrees, got {g.shape}")
    n = g.shape[0]
    masked = np.zeros(n, dtype=bool) if blink is None else blink_mask(blink, fps)
    if masked.shape != (n,):
        raise ValueError(f"blink has {masked.shape[0]} frames, gaze has {n}")
    open_frames = ~masked
    speed = np.hypot(*np.diff(g, axis=0).T) * fps  # (F-1,) deg/s: step k goes from frame k to k+1
    step_open = open_frames[:-1] & open_frames[1:]
    fast = (speed >= speed_threshold) & step_open
    merge = int(math.floor(GAZE_MERGE_S * fps + 1e-9))
    runs: list[tuple[int, int]] = []
    for start, end in true_runs(fast):
        if runs and start - runs[-1][1] - 1 <= merge and step_open[runs[-1][1] + 1 : start].all():
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    shifts = []  # (last frame before the move, first frame after it, amplitude)
    for start, end in runs:
        amplitude = float(np.hypot(*(g[end + 1] - g[start])))
        if amplitude >= min_amp:
            shifts.append((start, end + 1, amplitude))
    # a fixation: the frames from the first still frame after a shift to the last still frame before the next
    fixations = np.array([(nxt[0] - prev[1] + 1) / fps for prev, nxt in zip(shifts[:-1], shifts[1:], strict=True)])
    amplitudes = np.array([a for _, _, a in shifts])
    open_s = float(open_frames.sum()) / fps
    rest = g[open_frames]
    return GazeStats(
        source=source,
        n=len(shifts),
        per_min=len(shifts) / open_s * 60.0 if open_s > 0 else None,
        open_eye_s=open_s,
        **spread("amplitude_deg", amplitudes),
        **spread("fixation_s", fixations),
        mean_yaw_deg=float(rest[:, 0].mean()) if rest.size else None,
        mean_pitch_deg=float(rest[:, 1].mean()) if rest.size else None,
        yaw_std_deg=float(rest[:, 0].std()) if rest.size else None,
        pitch_std_deg=float(rest[:, 1].std()) if rest.size else None,
        times_s=tuple(s / fps for s, _, _ in shifts),
        amplitudes_deg=tuple(float(a) for a in amplitudes),
        fixations_s=tuple(float(f) for f in fixations),
    )


# ------------------------------------------------------------------------------------------------------- brows, head
def brow_stats(weights: np.ndarray, fps: float) -> BrowStats:
    """browInnerUp and browOuterUp (mean of left/right) of (F, 52) weights at ``fps``: mean, std, band powers."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != len(ARKIT_NAMES):
        raise ValueError(f"weights must be (F, {len(ARKIT_NAMES)}), got {w.shape}")
    inner = w[:, INDEX["browInnerUp"]]
    outer = 0.5 * (w[:, INDEX["browOuterUpLeft"]] + w[:, INDEX["browOuterUpRight"]])
    return BrowStats(
        inner_up_mean=float(inner.mean()) if inner.size else 0.0,
        inner_up_std=float(inner.std()) if inner.size else 0.0,
        outer_up_mean=float(outer.mean()) if outer.size else 0.0,
        outer_up_std=float(outer.std()) if outer.size else 0.0,
        inner_up_bands=band_powers(inner, fps),
        outer_up_bands=band_powers(outer, fps),
    )


def head_stats(head_deg: np.ndarray, fps: float, *, nod_swing: float = NOD_MIN_SWING) -> HeadStats:
    """Head sway of (F, 3) (yaw, pitch, roll) in degrees at ``fps``: std and band powers per axis; angular speed =
    the norm of the Euler-angle rates (central differences: a small-angle approximation of the angular velocity),
    mean and p95; nods = pitch turns (``count_turns``) of at least ``nod_swing``, per minute (down and up = 2)."""
    fps = check_fps(fps)
    h = np.asarray(head_deg, dtype=np.float64)
    if h.ndim != 2 or h.shape[1] != 3 or h.shape[0] < 2:
        raise ValueError(f"head_deg must be (F >= 2, 3) yaw/pitch/roll in degrees, got {h.shape}")
    rates = np.gradient(h, axis=0) * fps  # deg/s
    speed = np.linalg.norm(rates, axis=1)
    nods = count_turns(h[:, 1], nod_swing)
    return HeadStats(
        yaw_std_deg=float(h[:, 0].std()),
        pitch_std_deg=float(h[:, 1].std()),
        roll_std_deg=float(h[:, 2].std()),
        speed_mean_deg_s=float(speed.mean()),
        speed_p95_deg_s=float(np.percentile(speed, 95)),
        nods=nods,
        nods_per_min=nods / (h.shape[0] / fps / 60.0),
        yaw_bands=band_powers(h[:, 0], fps),
        pitch_bands=band_powers(h[:, 1], fps),
        roll_bands=band_powers(h[:, 2], fps),
    )


def liveliness(weights: np.ndarray, threshold: float = LIVELY_STD) -> Liveliness:
    """The channels of (F, 52) weights whose std (weight units) is at least ``threshold``."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != len(ARKIT_NAMES):
        raise ValueError(f"weights must be (F, {len(ARKIT_NAMES)}), got {w.shape}")
    std = w.std(axis=0) if w.shape[0] else np.zeros(w.shape[1])
    names = tuple(name for name, s in zip(ARKIT_NAMES, std, strict=True) if s >= threshold)
    return Liveliness(n_lively=len(names), channels=names, threshold=threshold)


def analyze_take(
    weights: np.ndarray, fps: float, head_deg: np.ndarray | None = None, eye_deg: np.ndarray | None = None
) -> TakeStats:
    """All statistics of one take: (F, 52) weights, optional (F, 3) head and (F, 6) or (F, 2) eye angles (deg).

    The head is analysed only when given and not all zero (Live Link writes zeros when head rotation is off).
    """
    fps = check_fps(fps)
    w = np.asarray(weights, dtype=np.float64)
    gaze, source = gaze_angles(w, eye_deg)
    head, note = None, "no head rotation given"
    if head_deg is not None:
        h = np.asarray(head_deg, dtype=np.float64)
        if np.any(h != 0):
            head, note = head_stats(h, fps), ""
        else:
            note = "head rotation columns are all zero (not recorded)"
    return TakeStats(
        fps=fps,
        n_frames=int(w.shape[0]),
        duration_s=w.shape[0] / fps,
        blinks=blink_stats(w, fps),
        gaze=gaze_stats(gaze, fps, blink_curve(w), source=source),
        brows=brow_stats(w, fps),
        head=head,
        liveliness=liveliness(w),
        head_note=note,
    )
