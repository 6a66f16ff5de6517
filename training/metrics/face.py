"""Face metrics on ARKit weights (paper 5.1, DESIGN 10): lip error, upper-face dynamics, bilabial closure, listening.

All functions take (F, 52) Apple-order ARKit weights in [0, 1] at 30 fps; ``pred`` is generated, ``gt`` the ground
truth of the same clip and person. The paper's LVE and FDD are mesh-vertex metrics (FaceFormer, CodeTalker,
SelfTalk, DiffSpeaker); here they become their blendshape analogues, in weight units (0..1), as defined below.
"""

from __future__ import annotations

import logging

import numpy as np

from runtime.constants import FPS
from runtime.formats.arkit import INDEX, N_BLENDSHAPES
from training.data.dialogue import Phone
from training.data.faces import (
    LIP_CHANNELS,
    LIP_CLOSED_GAP,
    LIP_OPEN_GAP,
    UPPER_FACE_CHANNELS,
    bilabial_closure_rate,
    bilabial_onsets,
    lip_gap,
)

log = logging.getLogger(__name__)

LIP_INDICES = np.array([INDEX[n] for n in LIP_CHANNELS])  # jaw* and mouth* (27 channels)
UPPER_INDICES = np.array([INDEX[n] for n in UPPER_FACE_CHANNELS])  # brow*, eye*, cheekSquint*, noseSneer*
# Listening reactions an attentive face shows while the partner talks: smiles, brow raises, squints (the synthetic
# corpus's reaction channels, training.data.faces._listening). Head nods live in the body's neck/head joints.
REACTION_CHANNELS = (
    "mouthSmileLeft", "mouthSmileRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekSquintLeft", "cheekSquintRight", "eyeSquintLeft", "eyeSquintRight",
)  # fmt: skip
REACTION_INDICES = np.array([INDEX[n] for n in REACTION_CHANNELS])


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.ndim != 2 or pred.shape[1] != N_BLENDSHAPES or pred.shape != gt.shape:
        raise ValueError(f"expected two (frames, {N_BLENDSHAPES}) weight arrays of equal shape, got "
                         f"{pred.shape} and {gt.shape}")  # fmt: skip
    if len(pred) == 0:
        raise ValueError("empty weight arrays")
    return pred, gt


def lip_frame_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(F,) per frame the largest absolute error over the lip and jaw blendshapes (weight units)."""
    pred, gt = _pair(pred, gt)
    return np.abs(pred[:, LIP_INDICES] - gt[:, LIP_INDICES]).max(axis=1)


def lip_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """Lip error: mean over frames of the maximum absolute error over the lip and jaw blendshapes.

    The blendshape analogue of LVE (FaceFormer, Fan et al. 2022: per frame the maximal L2 error over the lip
    vertices, averaged over frames); here the "vertices" are the 27 ``jaw*``/``mouth*`` weights (0..1 units).
    """
    return float(lip_frame_errors(pred, gt).mean())


def upper_face_std(weights: np.ndarray) -> np.ndarray:
    """(C,) standard deviation over time of each upper-face channel (brow, eye, cheekSquint, noseSneer)."""
    w = np.asarray(weights, np.float64)
    if w.ndim != 2 or w.shape[1] != N_BLENDSHAPES:
        raise ValueError(f"expected (frames, {N_BLENDSHAPES}) weights, got {w.shape}")
    return w[:, UPPER_INDICES].std(axis=0)


def fdd(pred: np.ndarray, gt: np.ndarray) -> float:
    """Upper-face dynamics deviation: mean over upper-face channels of |std_t(pred_c) - std_t(gt_c)|.

    FDD (SelfTalk, Xing et al. 2023; CodeTalker/DiffSpeaker evaluation code) compares the temporal standard
    deviation of the upper-face motion of generated and real sequences. On vertices the code takes, per sequence,
    mean_v std_t(|v_t - template|^2) and subtracts (gt - pred); on blendshapes the channel value is the motion, and
    the absolute difference per channel keeps over- and under-animated channels from cancelling out. Weight units.
    """
    pred, gt = _pair(pred, gt)
    return float(np.abs(upper_face_std(pred) - upper_face_std(gt)).mean())


def fdd_signed(pred: np.ndarray, gt: np.ndarray) -> float:
    """CodeTalker's sign convention on blendshapes: mean_c std_t(gt_c) - mean_c std_t(pred_c) (> 0: too still)."""
    pred, gt = _pair(pred, gt)
    return float(upper_face_std(gt).mean() - upper_face_std(pred).mean())


def closure_counts(weights: np.ndarray, phones: list[Phone], tolerance_frames: int = 1) -> tuple[int, int]:
    """(closed, total) bilabial onsets (p, b, m) with lips closed within +-``tolerance_frames``.

    ``training.data.faces.bilabial_closure_rate`` decides closure (lip gap jawOpen - mouthClose < 0.05); counts are
    returned so clips can be pooled: the closure rate of a set is sum(closed) / sum(total).
    """
    total = len(bilabial_onsets(phones, len(weights)))
    if total == 0:
        return 0, 0
    rate = bilabial_closure_rate(weights, phones, tolerance_frames)
    return int(round(rate * total)), total


def shut_while_open(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """(shut, open): frames whose true lips are open (gap above LIP_OPEN_GAP) and how many of them the generated lips
    close (gap below LIP_CLOSED_GAP). The other side of bilabial closure: a face that always closes its lips scores
    every closure and shuts every open frame."""
    pred, gt = _pair(pred, gt)
    is_open = lip_gap(gt) > LIP_OPEN_GAP
    return int((lip_gap(pred)[is_open] < LIP_CLOSED_GAP).sum()), int(is_open.sum())


def speech_activity(utterances: list[tuple[float, float]], n_frames: int, fps: float = FPS) -> np.ndarray:
    """(F,) bool: frame i is active when its time i / fps lies inside an utterance [start, end) (seconds)."""
    t = np.arange(n_frames) / fps
    active = np.zeros(n_frames, bool)
    for start, end in utterances:
        active |= (t >= start) & (t < end)
    return active


def energy_activity(mel: np.ndarray, margin: float = 3.0) -> np.ndarray:
    """(F,) bool voice activity from raw log-mel (F, 80): mean log power above the clip's 10th percentile + margin.

    A fallback for corpora without utterance timings (the real release); ``margin`` is in natural-log power units
    (3.0 = 13 dB), above the level a partner's bleed into the microphone usually reaches.
    """
    energy = np.asarray(mel, np.float64).mean(axis=1)
    return energy > np.percentile(energy, 10) + margin


def reaction_signal(weights: np.ndarray) -> np.ndarray:
    """(F,) mean of the listening-reaction channels (smiles, brow raises, squints)."""
    return np.asarray(weights, np.float64)[:, REACTION_INDICES].mean(axis=1)


def listener_reaction(weights: np.ndarray, own_active: np.ndarray, partner_active: np.ndarray) -> tuple[float, int]:
    """Pearson correlation, over the frames where this person is silent, of their reaction signal (mean of smile,
    brow-raise and squint weights) with the partner's speech activity (0/1); returns (r, number of frames used).

    r > 0: the face reacts (smiles, raises brows) while the partner speaks and relaxes when nobody talks. A constant
    signal (e.g. a mean face) has no covariance with anything and scores 0; fewer than 2 frames, or a partner who
    never (or always) speaks during the listener's silence, gives NaN (undefined).
    """
    own, partner = np.asarray(own_active, bool), np.asarray(partner_active, bool)
    if not (len(weights) == len(own) == len(partner)):
        raise ValueError(f"lengths differ: weights {len(weights)}, own {len(own)}, partner {len(partner)} frames")
    quiet = ~own
    n = int(quiet.sum())
    a = partner[quiet].astype(np.float64)
    if n < 2 or a.std() == 0:
        return float("nan"), n
    r = reaction_signal(weights)[quiet]
    if r.std() < 1e-9:
        return 0.0, n
    return float(np.corrcoef(r, a)[0, 1]), n


def pooled_scores(items: list[tuple[np.ndarray, np.ndarray, list[Phone] | None, np.ndarray, np.ndarray]]
                  ) -> dict[str, float]:  # fmt: skip
    """Scores of a set of (pred, gt, phones or None, own activity, partner activity), one item per clip and person:
    lip error frame-weighted, FDD averaged over items (as CodeTalker averages sequences), bilabial closure pooled
    over onsets, listener reaction frame-weighted over the items' correlations."""
    lip, frames, dev, signed, closed, onsets, react, shut, opened = 0.0, 0, [], [], 0, 0, [], 0, 0
    for pred, gt, phones, own, partner in items:
        errors = lip_frame_errors(pred, gt)
        lip, frames = lip + float(errors.sum()), frames + len(errors)
        dev.append(fdd(pred, gt))
        s, o = shut_while_open(pred, gt)
        shut, opened = shut + s, opened + o
        signed.append(fdd_signed(pred, gt))
        if phones is not None:
            c, t = closure_counts(pred, phones)
            closed, onsets = closed + c, onsets + t
        r, n = listener_reaction(pred, own, partner)
        if np.isfinite(r):
            react.append((r, n))
    reaction = sum(r * n for r, n in react) / max(1, sum(n for _, n in react)) if react else float("nan")
    return {"lip_error": lip / max(1, frames), "fdd": float(np.mean(dev)), "fdd_signed": float(np.mean(signed)),
            "bilabial_closure": closed / onsets if onsets else float("nan"), "bilabial_onsets": onsets,
            "shut_while_open": shut / opened if opened else float("nan"),
            "listener_reaction": float(reaction)}  # fmt: skip


DEFINITIONS = {
    "lip_error": "mean over frames of the max |error| over the 27 jaw*/mouth* blendshapes (weight units; LVE analogue)",
    "fdd": "mean over upper-face channels (brow, eye, cheekSquint, noseSneer) of |std_t(gen) - std_t(gt)|, averaged "
           "over (clip, person); fdd_signed = mean std gt - mean std gen (CodeTalker's sign: > 0 too still)",
    "bilabial_closure": "fraction of p/b/m onsets with lip gap (jawOpen - mouthClose) < 0.05 within +-1 frame",
    "shut_while_open": "fraction of the frames with open true lips (gap > 0.1) where the generated gap is < 0.05",
    "listener_reaction": "Pearson r over the listener's silent frames of mean(smile, brow-raise, squint weights) "
                         "with the partner's speech activity; frame-weighted over (clip, person); constant face = 0",
    "rtf": "compute seconds / audio seconds of the row on this machine (torch, CPU)",
}  # fmt: skip
