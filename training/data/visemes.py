"""Phonemes -> mouth and jaw blendshapes with coarticulation (Cohen & Massaro 1993 dominance functions).

Every espeak-ng phoneme belongs to a viseme class with a target pose on the lip/jaw channels and a dominance: how
strongly it holds those channels against its neighbours. Each segment's dominance is ``alpha`` on its core and
decays exponentially outside it, faster after the segment (carry-over) than before it (anticipation, ~50-100 ms),
and every channel is the dominance-weighted mean of the segment targets. Rounding (funnel, pucker) has its own,
low, dominance on consonants, so lips round early before a rounded vowel ("soon") as people do.

Bilabials (p, b, m) must seal the lips on time, whatever their neighbours: after the blend, a closure envelope
(1 over the closure, see :func:`seal_span`; ramps of 50 ms / 40 ms) sets ``mouthClose = jawOpen`` so the lip gap
``jawOpen - mouthClose`` is exactly 0 there, and pulls the jaw towards its bilabial height. espeak-ng reports a
p/b at its release (the closure silence comes just before the event), so p/b are articulated over
[event - 45 ms, event + 10 ms]; an m over its own nasal murmur.
"""

from __future__ import annotations

import numpy as np

from runtime.constants import FPS
from runtime.formats.arkit import INDEX
from training.data.dialogue import Phone

# Articulation parameters (columns of a target) and the ARKit channels each one drives (both sides for pairs).
PARAMS = ("jaw", "funnel", "pucker", "roll_lower", "roll_upper", "upper_up", "lower_down", "stretch", "smile",
          "press", "shrug_lower")  # fmt: skip
PARAM_CHANNELS: dict[str, tuple[str, ...]] = {
    "jaw": ("jawOpen",),
    "funnel": ("mouthFunnel",),
    "pucker": ("mouthPucker",),
    "roll_lower": ("mouthRollLower",),
    "roll_upper": ("mouthRollUpper",),
    "upper_up": ("mouthUpperUpLeft", "mouthUpperUpRight"),
    "lower_down": ("mouthLowerDownLeft", "mouthLowerDownRight"),
    "stretch": ("mouthStretchLeft", "mouthStretchRight"),
    "smile": ("mouthSmileLeft", "mouthSmileRight"),
    "press": ("mouthPressLeft", "mouthPressRight"),
    "shrug_lower": ("mouthShrugLower",),
}
_ROUNDING = (PARAMS.index("funnel"), PARAMS.index("pucker"))

# class: (targets by PARAMS, dominance on jaw / on other lip shapes / on rounding, anticipation and carry-over
# decay rates in 1/s). Consonants hold the jaw weakly (vowels set it), bilabials and labiodentals hold the lips.
_CLASSES: dict[str, tuple[tuple[float, ...], tuple[float, float, float], float, float]] = {
    #               jaw  funl puck rolL rolU upUp loDn strt smil pres shrL    jaw  lips round
    "rest":        ((0.00, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 30.0, 30.0),
    "bilabial":    ((0.06, 0.0, 0.0, 0.12, 0.10, 0.0, 0.0, 0.0, 0.0, 0.40, 0.12), (2.0, 6.0, 0.3), 18.0, 28.0),
    "labiodental": ((0.08, 0.0, 0.0, 0.50, 0.0, 0.32, 0.0, 0.05, 0.0, 0.0, 0.05), (1.5, 4.0, 0.3), 18.0, 28.0),
    "dental":      ((0.14, 0.0, 0.0, 0.0, 0.0, 0.15, 0.15, 0.10, 0.0, 0.0, 0.0), (0.8, 1.5, 0.3), 20.0, 28.0),
    "alveolar":    ((0.12, 0.0, 0.0, 0.0, 0.0, 0.05, 0.10, 0.12, 0.05, 0.0, 0.0), (0.7, 1.0, 0.2), 20.0, 28.0),
    "postalveolar": ((0.12, 0.35, 0.25, 0.0, 0.0, 0.15, 0.05, 0.0, 0.0, 0.0, 0.0), (0.7, 1.5, 1.2), 20.0, 28.0),
    "velar":       ((0.20, 0.0, 0.0, 0.0, 0.0, 0.0, 0.10, 0.05, 0.0, 0.0, 0.0), (0.5, 0.6, 0.2), 20.0, 28.0),
    "glottal":     ((0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.05, 0.0, 0.0, 0.0, 0.0), (0.1, 0.1, 0.1), 20.0, 28.0),
    "w":           ((0.08, 0.35, 0.65, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0), (1.0, 2.0, 3.0), 16.0, 25.0),
    "r":           ((0.12, 0.22, 0.18, 0.0, 0.0, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0), (0.6, 1.0, 1.0), 20.0, 28.0),
    "j":           ((0.10, 0.0, 0.0, 0.0, 0.0, 0.0, 0.05, 0.22, 0.10, 0.0, 0.0), (0.6, 1.0, 0.5), 20.0, 28.0),
    "open":        ((0.58, 0.0, 0.0, 0.0, 0.0, 0.10, 0.35, 0.05, 0.0, 0.0, 0.0), (1.5, 1.0, 1.0), 20.0, 25.0),
    "mid_open":    ((0.42, 0.0, 0.0, 0.0, 0.0, 0.05, 0.25, 0.05, 0.0, 0.0, 0.0), (1.5, 1.0, 1.0), 20.0, 25.0),
    "open_round":  ((0.42, 0.45, 0.15, 0.0, 0.0, 0.0, 0.15, 0.0, 0.0, 0.0, 0.0), (1.5, 1.0, 1.5), 20.0, 25.0),
    "mid_round":   ((0.30, 0.50, 0.30, 0.0, 0.0, 0.0, 0.05, 0.0, 0.0, 0.0, 0.0), (1.5, 1.0, 1.5), 20.0, 25.0),
    "close_round": ((0.14, 0.35, 0.58, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0), (1.5, 1.0, 1.8), 18.0, 25.0),
    "mid_spread":  ((0.30, 0.0, 0.0, 0.0, 0.0, 0.05, 0.20, 0.25, 0.08, 0.0, 0.0), (1.5, 1.0, 1.0), 20.0, 25.0),
    "spread":      ((0.14, 0.0, 0.0, 0.0, 0.0, 0.05, 0.10, 0.35, 0.15, 0.0, 0.0), (1.5, 1.0, 1.0), 20.0, 25.0),
    "central":     ((0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.10, 0.0, 0.0, 0.0, 0.0), (1.0, 0.7, 0.4), 20.0, 25.0),
}  # fmt: skip
CLASS_NAMES = tuple(_CLASSES)
_JAW = (PARAMS.index("jaw"), PARAMS.index("lower_down"))
_TARGETS = np.array([c[0] for c in _CLASSES.values()], np.float32)  # (classes, params)
_ALPHA = np.array([[c[1][1]] * len(PARAMS) for c in _CLASSES.values()], np.float32)  # (classes, params)
_ALPHA[:, _JAW] = np.array([[c[1][0]] for c in _CLASSES.values()], np.float32)
_ALPHA[:, _ROUNDING] = np.array([[c[1][2]] for c in _CLASSES.values()], np.float32)
_THETA = np.array([(c[2], c[3]) for c in _CLASSES.values()], np.float32)  # (classes, 2) 1/s before, after

BILABIALS = frozenset({"p", "b", "m"})
STOPS = frozenset({"p", "b"})  # bilabial stops: espeak's event is at the release, the closure precedes it
STOP_CLOSURE = 0.045  # s of closure before a p/b event (measured on espeak-ng's audio: silence or voice bar)
STOP_RELEASE = 0.01  # s after the event until the lips part (burst)
# espeak-ng English mnemonics -> class (a diphthong is two classes, each on half of the segment).
_SYMBOLS: dict[str, tuple[str, ...]] = {
    **{s: ("bilabial",) for s in BILABIALS},
    **{s: ("labiodental",) for s in ("f", "v")},
    **{s: ("dental",) for s in ("T", "D")},
    **{s: ("alveolar",) for s in ("t", "d", "n", "l", "s", "z", "t#", "d#", "n-", "l#", "*", "t2", "d2")},
    **{s: ("postalveolar",) for s in ("S", "Z", "tS", "dZ")},
    **{s: ("velar",) for s in ("k", "g", "N", "x")},
    **{s: ("glottal",) for s in ("h", "?")},
    **{s: ("w",) for s in ("w", "W")},
    **{s: ("r",) for s in ("r", "r-", "R", "3:", "3")},
    **{s: ("j",) for s in ("j", ";")},
    **{s: ("open",) for s in ("a", "aa", "A:", "A", "A@", "a2")},
    **{s: ("mid_open",) for s in ("V", "a#")},
    **{s: ("open_round",) for s in ("0", "O", "O:", "O@", "o@", "O2")},
    **{s: ("mid_round",) for s in ("o", "o:")},
    **{s: ("close_round",) for s in ("u:", "u", "U", "U@")},
    **{s: ("mid_spread",) for s in ("e", "E", "E2", "e@", "E@")},
    **{s: ("spread",) for s in ("i", "i:", "I", "I2", "i@", "i@3")},
    **{s: ("central",) for s in ("@", "@2", "@5", "@L", "I#", "@-", "3#")},
    "aI": ("open", "spread"),
    "aU": ("open", "close_round"),
    "eI": ("mid_spread", "spread"),
    "oU": ("mid_round", "close_round"),
    "OI": ("open_round", "spread"),
    "aI@": ("open", "central"),
    "aU@": ("open", "central"),
}


def phone_classes(symbol: str) -> tuple[str, ...]:
    """Viseme class(es) of an espeak-ng mnemonic; unknown symbols fall back on their first letter, then 'central'."""
    if symbol in _SYMBOLS:
        return _SYMBOLS[symbol]
    stripped = symbol.rstrip("#;-/2345:!")
    if stripped in _SYMBOLS:
        return _SYMBOLS[stripped]
    return _SYMBOLS.get(symbol[:1], ("central",))


def is_bilabial(symbol: str) -> bool:
    return symbol in BILABIALS


def _segments(phones: list[Phone], duration: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phones (plus rest in silences) -> (start, end, class index) arrays; diphthongs split in two halves."""
    starts, ends, classes = [], [], []
    rest = CLASS_NAMES.index("rest")
    cursor = 0.0
    for i, p in enumerate(phones):
        if p.start - cursor > 0.08:  # silence: the mouth goes back to rest, settling 50 ms after the last phone
            starts.append(cursor + 0.05)
            ends.append(p.start - 0.03)
            classes.append(rest)
        parts = phone_classes(p.symbol)
        lo, hi = seal_span(phones, i) if p.symbol in STOPS else (p.start, p.end)
        step = (hi - lo) / len(parts)
        for k, name in enumerate(parts):
            starts.append(lo + k * step)
            ends.append(lo + (k + 1) * step)
            classes.append(CLASS_NAMES.index(name))
        cursor = max(cursor, p.end)
    if duration - cursor > 0.0:
        starts.append(cursor + 0.05)
        ends.append(max(duration, cursor + 0.05))
        classes.append(rest)
    return np.array(starts), np.array(ends), np.array(classes, dtype=np.int64)


def articulation(phones: list[Phone], n_frames: int, speed: float = 1.0) -> np.ndarray:
    """Dominance-blended articulation parameters at frame times i/FPS -> (F, len(PARAMS)) float32.

    ``speed`` scales the decay rates (>1: crisper, less coarticulation). A silent speaker gets all zeros (rest).
    """
    duration = n_frames / FPS
    start, end, cls = _segments(phones, duration)
    length = end - start
    margin = np.minimum(0.2 * length, 0.04)  # (S,) s: a segment holds its target inside these margins
    core_lo, core_hi = start + margin, end - margin
    reach = 0.35  # s: beyond this a segment's dominance is negligible (exp(-16 * 0.35) < 0.004)
    first = np.floor((start - reach) * FPS).astype(np.int64).clip(0, n_frames)
    last = np.ceil((end + reach) * FPS).astype(np.int64).clip(0, n_frames)
    counts = last - first  # (S,) frames each segment touches
    seg = np.repeat(np.arange(len(start)), counts)  # (E,) segment of each (segment, frame) entry
    frame = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + first[seg]  # (E,)
    t = frame / FPS
    before = np.maximum(core_lo[seg] - t, 0.0)  # s ahead of the core (anticipation side)
    after = np.maximum(t - core_hi[seg], 0.0)  # s past the core (carry-over side)
    theta = _THETA[cls[seg]] * speed  # (E, 2)
    decay = np.exp(-(theta[:, 0] * before + theta[:, 1] * after))  # (E,)
    dominance = _ALPHA[cls[seg]] * decay[:, None]  # (E, P)
    num = np.zeros((n_frames, len(PARAMS)), np.float64)
    den = np.full((n_frames, len(PARAMS)), 1e-6, np.float64)  # tiny pull to zero where nothing is near
    np.add.at(num, frame, dominance * _TARGETS[cls[seg]])
    np.add.at(den, frame, dominance)
    return (num / den).astype(np.float32)


def seal_span(phones: list[Phone], i: int) -> tuple[float, float]:
    """When the lips are sealed for bilabial ``phones[i]`` (s): espeak's p/b event marks the release, the silent
    (p) or murmured (b) closure is the ~45 ms before it; an m is sealed through its nasal murmur."""
    p = phones[i]
    if p.symbol in STOPS:
        lo = p.start - STOP_CLOSURE
        if i > 0 and phones[i - 1].end >= p.start - 1e-3:  # never swallow more than half of the previous phone
            lo = max(lo, 0.5 * (phones[i - 1].start + p.start))
        return lo, p.start + STOP_RELEASE
    return p.start - 0.01, max(p.end - 0.01, p.start + 0.03)


def closure(phones: list[Phone], n_frames: int) -> np.ndarray:
    """(F,) float32 in [0, 1]: how sealed the lips must be for bilabials; 1 across every bilabial closure."""
    t = np.arange(n_frames) / FPS
    out = np.zeros(n_frames, np.float32)
    ramp_in, ramp_out = 0.05, 0.04  # s: lips close over 50 ms and part over 40 ms
    for i, p in enumerate(phones):
        if not is_bilabial(p.symbol):
            continue
        lo, hi = seal_span(phones, i)
        near = slice(max(int((lo - ramp_in) * FPS), 0), min(int((hi + ramp_out) * FPS) + 2, n_frames))
        tt = t[near]
        rise = np.clip((tt - (lo - ramp_in)) / ramp_in, 0.0, 1.0)
        fall = np.clip(((hi + ramp_out) - tt) / ramp_out, 0.0, 1.0)
        env = np.minimum(rise, fall)
        env = env * env * (3 - 2 * env)  # smoothstep
        out[near] = np.maximum(out[near], env)
    return out


def mouth(
    phones: list[Phone],
    n_frames: int,
    jaw_gain: np.ndarray | float = 1.0,
    rounding: float = 1.0,
    speed: float = 1.0,
) -> dict[str, np.ndarray]:
    """Lip and jaw ARKit channels (name -> (F,) float32) for a phone timeline, bilabial closure enforced.

    ``jaw_gain`` (scalar or (F,)) scales the jaw and lip-opening channels (loudness, actor style); ``rounding``
    scales funnel and pucker. ``mouthClose`` equals ``closure * jawOpen`` so sealed lips have a lip gap of 0.
    """
    params = articulation(phones, n_frames, speed)  # (F, P)
    gain = np.broadcast_to(np.asarray(jaw_gain, np.float32), (n_frames,))
    params[:, PARAMS.index("jaw")] *= gain
    for name in ("lower_down", "upper_up"):
        params[:, PARAMS.index(name)] *= np.sqrt(gain)
    params[:, list(_ROUNDING)] *= rounding
    params = np.clip(params, 0.0, 1.0)
    seal = closure(phones, n_frames)
    jaw = params[:, PARAMS.index("jaw")]
    bilabial_jaw = _TARGETS[CLASS_NAMES.index("bilabial"), 0] * gain
    jaw = np.minimum(jaw, jaw * (1 - 0.7 * seal) + 0.7 * seal * bilabial_jaw)  # jaw rises towards the seal
    params[:, PARAMS.index("jaw")] = jaw
    for name in ("lower_down", "upper_up", "funnel", "stretch"):
        params[:, PARAMS.index(name)] *= 1 - 0.8 * seal  # sealed lips cannot also be parted or funnelled
    out = {}
    for k, name in enumerate(PARAMS):
        for channel in PARAM_CHANNELS[name]:
            out[channel] = params[:, k].copy()
    out["mouthClose"] = (seal * jaw).astype(np.float32)
    return out


MOUTH_CHANNELS = tuple(sorted({c for cs in PARAM_CHANNELS.values() for c in cs} | {"mouthClose"}, key=INDEX.get))
