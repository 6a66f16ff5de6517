"""FACEGOOD Audio2Face Mandarin pairs: 16 kHz speech with 30 fps mouth curves, mapped onto the 52 ARKit channels.

The data (``../shared/external/facegood-mandarin``, see its README): 7 takes of one female speaker reading Mandarin,
each a WAV (16 kHz mono) and the artist-made curves of the FACEGOOD rig's 116 blendshapes (F, 116) in [0, 1] at 30 fps,
aligned from sample 0. Only the mouth was animated. The authors' ``map.xlsx`` names one rig shape (or the max of a
few) per ARKit target and marks which targets it considers valid.

The mapping below is decided from the data, not from the names file alone (``python -m training.data.facegood
--report`` prints the evidence). The names file is off by one: **column j carries the shape named on line j of
``bsname.txt`` when its count line "116" is counted as line 0**, i.e. ``shirley_1119_bs_name.npy[j - 1]``. Read as is
(column j = ``names[j]``), every pair of identical columns lands on unrelated names (``mouth_funnel_dr`` ==
``mouth_funnel_ul``, ``mouth_press_r`` == ``mouth_pucker_l``, ``mouth_lowerLipDepress_r`` == ``brow_raise_r``), a brow
(``brow_raise_c``) moves in a mouth-only animation, the column that tracks loudness is ``mouth_suck_dl`` and jawOpen's
``mouth_stretch_c`` is constant 0. Shifted by one, all mirrored _l/_r names fall on identical or near-identical columns
(r >= 0.997) and the loudness column is ``mouth_stretch_c``, the table's jawOpen. Column 0 is then unnamed (it is
constant 0) and the last name (``cheek_suck_l``) has no column.

A channel is valid when the table marks it valid AND the data uses it: one of its columns exceeds ``USED_WEIGHT`` on at
least ``USED_FRAMES`` frames of the 7 takes. The unused mapped columns peak at 0.048 (``jaw_sideways_l``) or below;
the least used valid one (``mouth_chinRaise_u``) exceeds 0.05 on 23 frames. Weights of invalid channels are 0.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from runtime.formats.arkit import ARKIT_NAMES
from training.data.speech import frame_rms

DATA_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "external" / "facegood-mandarin"
FPS = 30  # frames per second of the curves
SAMPLE_RATE = 16_000  # Hz, mono PCM16 WAVs
N_RIG = 116  # columns of a curves file
NAME_OFFSET = 1  # column j is named shirley_1119_bs_name.npy[j - NAME_OFFSET] (see module docstring)

PAIR_IDS: tuple[str, ...] = ("2_01", "2_02", "2_03", "2_04", "2_05", "3_15", "3_16")
# Held out: one full take (2_05: 112.8 s, 3384 frames, 17 % of the 655.9 s). It shares no 1 s stretch of jaw curve
# with any other take, its jawOpen-loudness r (0.77 at lag +1) lies inside the others' range (0.62-0.79), and four
# takes of its batch stay in training; the two short 3_xx takes (~48 s each) stay in training so both batches are seen.
EVAL_IDS: tuple[str, ...] = ("2_05",)
TRAIN_IDS: tuple[str, ...] = tuple(i for i in PAIR_IDS if i not in EVAL_IDS)

ACTIVE_WEIGHT = 0.01  # a column is active on a frame above this weight (the README's threshold)
USED_WEIGHT = 0.05  # a column is used if it exceeds this weight ...
USED_FRAMES = 10  # ... on at least this many frames (1/3 s) of all 7 takes
MAX_LAG = 3  # frames, +-: lag tolerance of the loudness correlation
SPEECH_DB = 30.0  # dB: frames within this of the 95th percentile frame RMS count as speech

# ARKit target: (rig columns, combined by max as in map.xlsx; valid). Only the table's 27 "valid" targets are listed;
# its 25 "Invalid" ones (eyes, brows, cheeks, nose, tongueOut) stay 0: every column they name is constant 0 here.
# Evidence over the 7 takes: std, active = fraction of frames > 0.01, r = correlation with frame RMS at the best lag
# in +-3 frames (+1: the curve trails the audio by one frame), n = frames > 0.05.
MAPPING: dict[str, tuple[tuple[int, ...], bool]] = {
    "jawForward": ((35,), False),  # jaw_thrust_c: constant 0
    "jawLeft": ((33,), False),  # jaw_sideways_l: max 0.048, n 0: idle noise
    "jawRight": ((34,), False),  # jaw_sideways_r: constant 0
    "jawOpen": ((74,), True),  # mouth_stretch_c: std 0.136, active 0.52, r +0.73 @+1, the best loudness column
    "mouthClose": ((36,), False),  # mouth_chew_c: constant 0 (no closing shape is animated)
    "mouthFunnel": ((42, 43, 44, 45), True),  # mouth_funnel_dl/dr/ul/ur: std 0.104/0.098, active 0.23, r +0.29 @-2
    "mouthPucker": ((68, 69), True),  # mouth_pucker_l/r: std 0.089, active 0.079, r +0.20 @-1
    "mouthLeft": ((71,), False),  # mouth_sideways_l: constant 0
    "mouthRight": ((73,), False),  # mouth_sideways_r: constant 0
    "mouthSmileLeft": ((53,), True),  # mouth_lipCornerPull_l: std 0.028, active 0.067, r +0.12 @+3
    "mouthSmileRight": ((54,), True),  # mouth_lipCornerPull_r: identical to _l
    "mouthFrownLeft": ((46, 48), False),  # mouth_lipCornerDepressFix_l, mouth_lipCornerDepress_l: constant 0
    "mouthFrownRight": ((47, 49), False),  # mouth_lipCornerDepressFix_r, mouth_lipCornerDepress_r: constant 0
    "mouthDimpleLeft": ((40,), False),  # mouth_dimple_l: max 0.011, n 0
    "mouthDimpleRight": ((41,), False),  # mouth_dimple_r: max 0.011, n 0
    "mouthStretchLeft": ((57,), True),  # mouth_lipStretch_l: std 0.008, active 0.004, max 0.32, n 50; r +0.03
    "mouthStretchRight": ((58,), True),  # mouth_lipStretch_r: identical to _l
    "mouthRollLower": ((75, 76), True),  # mouth_suck_dl/dr: std 0.031, active 0.037, r +0.15 @-3 (leads the audio)
    "mouthRollUpper": ((77, 78), True),  # mouth_suck_ul/ur: std 0.026, active 0.030, r +0.15 @-3 (leads the audio)
    "mouthShrugLower": ((37,), False),  # mouth_chinRaise_d: max 0.0002
    "mouthShrugUpper": ((38,), True),  # mouth_chinRaise_u: rare, max 0.48, n 23; r +0.02
    "mouthPressLeft": ((66,), True),  # mouth_press_l: std 0.022, active 0.011, r +0.07 @-3 (closure before vowels)
    "mouthPressRight": ((67,), True),  # mouth_press_r: identical to _l
    "mouthLowerDownLeft": ((59,), True),  # mouth_lowerLipDepress_l: std 0.060, active 0.196, r +0.24 @-1
    "mouthLowerDownRight": ((60,), True),  # mouth_lowerLipDepress_r: r 0.9999 with _l
    "mouthUpperUpLeft": ((79,), True),  # mouth_upperLipRaise_l: std 0.029, active 0.101, r +0.16 @-2
    "mouthUpperUpRight": ((80,), True),  # mouth_upperLipRaise_r: r 0.997 with _l
}
# Active but unmapped by the table (ARKit has no such shape): 63 mouth_oh_c (std 0.155, the most variable column),
# 64 mouth_oo_c (std 0.047), 15 tooth_d_d (std 0.029); their motion is lost in the 52 channels.

_INDEX = {name: i for i, name in enumerate(ARKIT_NAMES)}
VALID_MASK = np.zeros(len(ARKIT_NAMES), dtype=bool)  # (52,) channels a loss may supervise
VALID_MASK[[_INDEX[name] for name, (_, valid) in MAPPING.items() if valid]] = True
VALID_MASK.flags.writeable = False


@dataclass(frozen=True)
class Pair:
    """One take: audio and its curves, raw and mapped to ARKit."""

    pair_id: str
    audio: np.ndarray  # (S,) float32 in [-1, 1], SAMPLE_RATE Hz mono
    rig: np.ndarray  # (F, 116) float64 rig weights in [0, 1] at FPS, columns in the file's order
    weights: np.ndarray  # (F, 52) float32 ARKit weights in [0, 1] at FPS, ARKIT_NAMES order; invalid channels 0
    mask: np.ndarray  # (52,) bool: channels valid by the table and used by the data (VALID_MASK)

    @property
    def seconds(self) -> float:
        """Audio duration in seconds."""
        return len(self.audio) / SAMPLE_RATE


def load_rig(path: Path) -> np.ndarray:
    """(F, 116) float64 rig weights in [0, 1] from a ``bs_value_*.npy`` (a Python 2 pickle-era file)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "created on Python 2" header notice
        rig = np.asarray(np.load(path, allow_pickle=True), dtype=np.float64)
    if rig.ndim != 2 or rig.shape[1] != N_RIG:
        raise ValueError(f"{path}: expected (frames, {N_RIG}) curves, got {rig.shape}")
    return np.clip(rig, 0.0, 1.0)  # the idle eye columns hold -0.0


def load_audio(path: Path) -> np.ndarray:
    """(S,) float32 samples in [-1, 1] of a 16 kHz mono WAV."""
    audio, sr = sf.read(path, dtype="float32", always_2d=False)
    if sr != SAMPLE_RATE or audio.ndim != 1:
        raise ValueError(f"{path}: expected {SAMPLE_RATE} Hz mono, got {sr} Hz, shape {audio.shape}")
    return audio


def rig_names(root: Path = DATA_ROOT) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(names as the file gives them per column, names by evidence per column: shifted by NAME_OFFSET, "" if none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "created on Python 2" header notice
        names = tuple(str(n) for n in np.load(root / "shirley_1119_bs_name.npy", allow_pickle=True))
    shifted = tuple(names[j - NAME_OFFSET] if 0 <= j - NAME_OFFSET < len(names) else "" for j in range(N_RIG))
    return names, shifted


def to_arkit(rig: np.ndarray) -> np.ndarray:
    """(F, 116) rig weights -> (F, 52) float32 ARKit weights via MAPPING (max over a target's columns)."""
    out = np.zeros((rig.shape[0], len(ARKIT_NAMES)), dtype=np.float32)
    for name, (columns, valid) in MAPPING.items():
        if valid:
            out[:, _INDEX[name]] = rig[:, list(columns)].max(axis=1)
    return out


def load_pair(pair_id: str, root: Path = DATA_ROOT) -> Pair:
    """Load take ``pair_id`` (e.g. "2_05"): audio, raw curves, ARKit weights and the valid mask."""
    if pair_id not in PAIR_IDS:
        raise ValueError(f"unknown pair {pair_id!r}; expected one of {PAIR_IDS}")
    rig = load_rig(root / f"bs_value_1114_{pair_id}.npy")
    return Pair(pair_id, load_audio(root / f"1114_{pair_id}.wav"), rig, to_arkit(rig), VALID_MASK.copy())


def _corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(C,) Pearson r of each column of (N, C) ``x`` with (N,) ``y``; 0 for a constant column."""
    xc, yc = x - x.mean(axis=0), y - y.mean()
    denom = np.sqrt((xc**2).sum(axis=0) * (yc**2).sum())
    return np.divide(xc.T @ yc, denom, out=np.zeros(x.shape[1]), where=denom > 0)


def lagged_corr(curves: Sequence[np.ndarray], energy: Sequence[np.ndarray], max_lag: int = MAX_LAG) -> np.ndarray:
    """(2 max_lag + 1, C) r of each curve column with the energy, per lag -max_lag..max_lag, pooled over takes.

    Lag L pairs curve frame t + L with energy frame t: L > 0 means the curve trails the audio by L frames.
    """
    rows = []
    for lag in range(-max_lag, max_lag + 1):
        xs = [c[lag:] if lag >= 0 else c[:lag] for c in curves]
        es = [e[: len(e) - lag] if lag >= 0 else e[-lag:] for e in energy]
        rows.append(_corr(np.concatenate(xs), np.concatenate(es)))
    return np.stack(rows)


@dataclass(frozen=True)
class ColumnEvidence:
    """How one rig column behaves over the takes (weights in [0, 1], r is Pearson's r with frame RMS)."""

    column: int
    file_name: str  # name the names file gives this column
    name: str  # name by evidence (NAME_OFFSET)
    arkit: str  # ARKit target it feeds ("" if none; "(x)" suffix if the target is not valid)
    std: float
    active: float  # fraction of frames > ACTIVE_WEIGHT
    used_frames: int  # frames > USED_WEIGHT
    r0: float  # r at lag 0
    r_best: float  # r at the lag of largest |r|
    lag: int  # frames, that lag (> 0: curve trails audio)
    r_speech: float  # r at lag 0 over speech frames only


def evidence(pair_ids: Sequence[str] = PAIR_IDS, root: Path = DATA_ROOT) -> list[ColumnEvidence]:
    """Per-column evidence over the given takes (all 116 columns)."""
    rigs, energy = [], []
    for pid in pair_ids:
        rig = load_rig(root / f"bs_value_1114_{pid}.npy")
        rigs.append(rig)
        energy.append(frame_rms(load_audio(root / f"1114_{pid}.wav"), len(rig)))
    rig_all, rms_all = np.concatenate(rigs), np.concatenate(energy)
    by_lag = lagged_corr(rigs, energy)
    best = np.where(np.abs(by_lag).max(axis=0) > 0, np.abs(by_lag).argmax(axis=0), MAX_LAG)  # lag 0 if constant
    db = 20 * np.log10(rms_all + 1e-9)
    speech = db > np.percentile(db, 95) - SPEECH_DB
    r_speech = _corr(rig_all[speech], rms_all[speech])
    feeds = {c: name + ("" if valid else " (x)") for name, (cols, valid) in MAPPING.items() for c in cols}
    file_names, names = rig_names(root)
    return [
        ColumnEvidence(
            j,
            file_names[j],
            names[j],
            feeds.get(j, ""),
            float(rig_all[:, j].std()),
            float((rig_all[:, j] > ACTIVE_WEIGHT).mean()),
            int((rig_all[:, j] > USED_WEIGHT).sum()),
            float(by_lag[MAX_LAG, j]),
            float(by_lag[best[j], j]),
            int(best[j]) - MAX_LAG,
            float(r_speech[j]),
        )  # fmt: skip
        for j in range(N_RIG)
    ]


def _mirror(name: str) -> str | None:
    """The other side's name of an _l/_r (_dl/_dr, _ul/_ur) rig shape, or None."""
    if name.endswith(("_l", "_r", "_dl", "_dr", "_ul", "_ur")):
        return name[:-1] + ("r" if name[-1] == "l" else "l")
    return None


def offset_check(rows: Sequence[ColumnEvidence], rig: np.ndarray, offsets: range = range(-2, 3)) -> list[str]:
    """Lines scoring candidate names-file offsets (column j named ``names[j - offset]``) on the (F, 116) curves.

    Right names put mirrored _l/_r shapes on near-identical columns (min r near 1, no pair with one side idle), leave
    brows and eyes idle in this mouth-only animation, and name the best loudness column mouth_stretch_c (jawOpen).
    """
    file_names = [r.file_name for r in rows]
    active = [r.std > 1e-3 for r in rows]
    loud = max(rows, key=lambda r: r.r_best).column
    lines = ["offset  L/R pairs active  min r(L, R)  one side idle  active brow/eye  loudest column's name"]
    for off in offsets:
        name_at = {j: file_names[j - off] for j in range(N_RIG) if 0 <= j - off < len(file_names)}
        col_of = {n: j for j, n in name_at.items()}
        rs, lopsided = [], 0
        for j, n in name_at.items():
            k = col_of.get(_mirror(n) or "")
            if k is None or k < j:
                continue
            if active[j] and active[k]:
                rs.append(float(np.corrcoef(rig[:, j], rig[:, k])[0, 1]))
            lopsided += active[j] != active[k]
        upper = sum(active[j] for j, n in name_at.items() if n.startswith(("brow", "eye")))
        min_r = f"{min(rs):+.3f}" if rs else "-"
        lines.append(f"{off:+6d}  {len(rs):16d}  {min_r:>11s}  {lopsided:13d}  {upper:15d}  "
                     f"{name_at.get(loud, '')} (column {loud})")  # fmt: skip
    return lines


def report(root: Path = DATA_ROOT) -> str:
    """The evidence table (active or mapped columns) and the names-offset check, as text."""
    rows = evidence(PAIR_IDS, root)
    rig = np.concatenate([load_rig(root / f"bs_value_1114_{pid}.npy") for pid in PAIR_IDS])
    head = (f"{'col':>3}  {'name in file':<27} {'name by evidence':<24} {'ARKit':<20} {'std':>6} {'active':>6} "
            f"{'n>0.05':>6} {'r@0':>6} {'r best':>6} {'lag':>3} {'r sp':>6}")  # fmt: skip
    lines = [f"FACEGOOD {len(PAIR_IDS)} takes, {len(rig)} frames ({len(rig) / FPS:.1f} s); r = Pearson r with frame "
             f"RMS, best |r| over lags +-{MAX_LAG} (lag > 0: curve trails audio), r sp = lag 0 in speech frames; "
             "(x) = target not valid", head]  # fmt: skip
    shown = [r for r in rows if r.std > 0 or r.arkit]
    for r in sorted(shown, key=lambda r: -r.std):
        lines.append(f"{r.column:3d}  {r.file_name:<27} {r.name:<24} {r.arkit:<20} {r.std:6.4f} {r.active:6.4f} "
                     f"{r.used_frames:6d} {r.r0:+6.3f} {r.r_best:+6.3f} {r.lag:+3d} {r.r_speech:+6.3f}")  # fmt: skip
    idle = [r.column for r in rows if r.std == 0 and not r.arkit]
    lines.append(f"{len(idle)} other columns are constant 0 in every take.")
    lines += ["", "Names-file offset (column j named names[j - offset]):", *offset_check(rows, rig)]
    lines.append(f"Chosen offset {NAME_OFFSET}; valid ARKit channels ({int(VALID_MASK.sum())}): "
                 + ", ".join(n for n, v in zip(ARKIT_NAMES, VALID_MASK, strict=True) if v))  # fmt: skip
    lines.append(f"Split: eval {', '.join(EVAL_IDS)}; train {', '.join(TRAIN_IDS)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="FACEGOOD Mandarin pairs mapped to ARKit (see the module docstring).")
    ap.add_argument("--report", action="store_true", help="print the per-column evidence behind the mapping")
    ap.add_argument("--root", type=Path, default=DATA_ROOT, help="folder of the FACEGOOD files")
    args = ap.parse_args(argv)
    if not args.report:
        ap.print_help()
        return
    print(report(args.root))


if __name__ == "__main__":
    main()
