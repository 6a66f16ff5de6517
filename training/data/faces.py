"""ARKit face animation for one person of a synthetic :class:`Dialogue`: (F, 52) weights in [0, 1] at FPS.

What a face model trained on this must learn, and from which input:

- mouth and jaw: visemes of the person's own phonemes with coarticulation (``visemes.py``), bilabials sealed on
  time, jaw opening scaled by the voice's loudness -> own audio;
- listening reactions (smiles, brow raises, squints) timed to the partner's stressed vowels and turn ends, and an
  attentive look while the partner talks -> partner audio;
- brow raises on some of the person's own stressed syllables -> own audio;
- blinks (every 2-6 s, some on speech onsets), gaze saccades, and the emotion's baseline expression -> style and
  emotion, not audio.

Emotions are the 26 the InterAct actors were prompted with (paper appendix A.2, table 6) plus ``neutral``.
``tongueOut`` stays 0 (the InterAct release ships 51 columns; the missing one is taken to be tongueOut).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, uniform_filter1d

from runtime.constants import FPS
from runtime.formats.arkit import ARKIT_NAMES, INDEX, N_BLENDSHAPES
from training.data.dialogue import Dialogue, Phone, SpeechTrack
from training.data.visemes import BILABIALS, mouth

LIP_CHANNELS: tuple[str, ...] = tuple(n for n in ARKIT_NAMES if n.startswith(("jaw", "mouth")))
UPPER_FACE_CHANNELS: tuple[str, ...] = tuple(
    n for n in ARKIT_NAMES if n.startswith(("brow", "eye", "cheekSquint", "noseSneer"))
)
_MICRO_CHANNELS = ("browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekSquintLeft", "cheekSquintRight",
                   "eyeSquintLeft", "eyeSquintRight", "browDownLeft", "browDownRight")  # fmt: skip
LIP_CLOSED_GAP = 0.05  # lip gap (jawOpen - mouthClose) below which the lips count as closed
LIP_OPEN_GAP = 0.1  # lip gap above which they count as open (between the two: neither)

# emotion: (baseline expression, jaw gain, blink interval factor, listening reactivity). A name without
# Left/Right that has such a pair ("mouthSmile") means both sides.
_EMOTIONS: dict[str, tuple[dict[str, float], float, float, float]] = {
    "neutral": ({}, 1.0, 1.0, 1.0),
    "surprise": ({"eyeWide": 0.35, "browOuterUp": 0.35, "browInnerUp": 0.3}, 1.15, 1.1, 1.2),
    "awe": ({"eyeWide": 0.25, "browInnerUp": 0.3, "browOuterUp": 0.2}, 1.0, 1.3, 1.0),
    "confusion": ({"browDownLeft": 0.3, "browOuterUpRight": 0.25, "mouthPress": 0.1, "mouthLeft": 0.08},
                  0.95, 1.0, 1.0),
    "excitement": ({"mouthSmile": 0.3, "eyeWide": 0.2, "browOuterUp": 0.2, "browInnerUp": 0.1}, 1.2, 0.9, 1.4),
    "anxiety": ({"browInnerUp": 0.35, "mouthStretch": 0.12, "mouthPress": 0.12, "eyeWide": 0.1}, 0.9, 0.7, 0.8),
    "fear": ({"browInnerUp": 0.45, "eyeWide": 0.35, "browOuterUp": 0.15, "mouthStretch": 0.2}, 1.0, 0.8, 0.8),
    "horror": ({"browInnerUp": 0.5, "eyeWide": 0.45, "mouthStretch": 0.25, "noseSneer": 0.1}, 1.1, 0.9, 0.7),
    "disgust": ({"noseSneer": 0.4, "mouthUpperUp": 0.2, "browDown": 0.3, "eyeSquint": 0.2, "mouthFrown": 0.15},
                0.9, 1.0, 0.8),
    "admiration": ({"mouthSmile": 0.2, "browInnerUp": 0.15, "eyeWide": 0.1}, 1.0, 1.0, 1.2),
    "adoration": ({"mouthSmile": 0.3, "cheekSquint": 0.15, "browInnerUp": 0.15, "eyeSquint": 0.1}, 0.95, 1.1, 1.3),
    "romance": ({"mouthSmile": 0.25, "eyeSquint": 0.15, "cheekSquint": 0.1, "eyeLookDown": 0.1}, 0.9, 1.1, 1.2),
    "interest": ({"browOuterUp": 0.15, "browInnerUp": 0.1, "eyeWide": 0.1, "mouthSmile": 0.08}, 1.0, 1.1, 1.3),
    "awkwardness": ({"mouthPress": 0.2, "mouthSmileLeft": 0.12, "mouthRollLower": 0.08, "eyeLookDown": 0.12},
                    0.85, 0.8, 0.9),
    "boredom": ({"eyeBlink": 0.2, "eyeLookDown": 0.1, "mouthFrown": 0.08, "browDown": 0.05}, 0.8, 1.3, 0.5),
    "satisfaction": ({"mouthSmile": 0.25, "cheekSquint": 0.1, "mouthPress": 0.06}, 1.0, 1.0, 1.1),
    "relief": ({"mouthSmile": 0.2, "browInnerUp": 0.12}, 1.0, 1.0, 1.1),
    "craving": ({"eyeWide": 0.12, "mouthSmile": 0.1, "mouthRollLower": 0.06, "browInnerUp": 0.1}, 1.0, 1.0, 1.1),
    "nostalgia": ({"mouthSmile": 0.12, "browInnerUp": 0.22, "eyeLookUp": 0.08, "eyeSquint": 0.06}, 0.9, 1.1, 1.0),
    "entrancement": ({"eyeWide": 0.2, "browInnerUp": 0.15, "mouthSmile": 0.08}, 0.9, 1.4, 0.9),
    "calmness": ({"mouthSmile": 0.1, "eyeSquint": 0.06}, 0.9, 1.2, 1.0),
    "aesthetic appreciation": ({"mouthSmile": 0.18, "browInnerUp": 0.12, "eyeSquint": 0.1}, 0.95, 1.1, 1.1),
    "joy": ({"mouthSmile": 0.35, "cheekSquint": 0.2, "eyeSquint": 0.1}, 1.1, 1.0, 1.3),
    "amusement": ({"mouthSmile": 0.4, "cheekSquint": 0.25, "eyeSquint": 0.15, "mouthDimple": 0.1}, 1.1, 1.0, 1.4),
    "pain": ({"browDown": 0.3, "browInnerUp": 0.25, "eyeSquint": 0.35, "noseSneer": 0.15, "mouthStretch": 0.15},
             0.9, 0.8, 0.7),
    "anger": ({"browDown": 0.5, "noseSneer": 0.2, "eyeSquint": 0.15, "mouthPress": 0.15, "mouthFrown": 0.12},
              1.2, 1.1, 0.8),
    "sadness": ({"browInnerUp": 0.35, "mouthFrown": 0.3, "eyeLookDown": 0.12, "mouthShrugLower": 0.1}, 0.8, 1.1, 0.7),
}  # fmt: skip
EMOTIONS: tuple[str, ...] = tuple(_EMOTIONS)
_ALIASES = {
    "happy": "joy", "happiness": "joy", "sad": "sadness", "angry": "anger", "surprised": "surprise",
    "fearful": "fear", "scared": "fear", "disgusted": "disgust", "romantic": "romance", "bored": "boredom",
    "anxious": "anxiety", "confused": "confusion", "excited": "excitement", "calm": "calmness",
    "interested": "interest", "amused": "amusement", "relieved": "relief", "awkward": "awkwardness",
}  # fmt: skip


def emotion_name(emotion: str) -> str:
    """Canonical emotion name (lower case, aliases like "happy" -> "joy"); raises ValueError if unknown."""
    key = emotion.strip().lower().replace("_", " ")
    key = _ALIASES.get(key, key)
    if key not in _EMOTIONS:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {', '.join(EMOTIONS)} (or an alias)")
    return key


def _expand(pose: dict[str, float]) -> np.ndarray:
    """{"mouthSmile": 0.3, ...} -> (52,) with both sides of paired names filled."""
    out = np.zeros(N_BLENDSHAPES, np.float32)
    for name, value in pose.items():
        sides = [name] if name in INDEX else [name + "Left", name + "Right"]
        for side in sides:
            if side not in INDEX:
                raise KeyError(f"{name!r} is not an ARKit blendshape (nor a Left/Right pair)")
            out[INDEX[side]] = value
    return out


@dataclass(frozen=True)
class FaceStyle:
    """One actor's way of moving their face; keep it per actor across dialogues."""

    openness: float = 1.0  # jaw and lip-opening gain
    rounding: float = 1.0  # funnel/pucker gain
    smile_bias: float = 0.0  # resting smile, 0..~0.12
    asymmetry: float = 0.0  # Left channels * (1 + a), Right * (1 - a), |a| <= ~0.12
    speed: float = 1.0  # articulation crispness (dominance decay rate gain)
    blink_interval: float = 3.5  # s, mean time between spontaneous blinks
    expressiveness: float = 1.0  # brow raises while speaking
    reactivity: float = 1.0  # listening reactions

    @classmethod
    def sample(cls, rng: np.random.Generator) -> FaceStyle:
        return cls(
            openness=float(rng.uniform(0.8, 1.25)),
            rounding=float(rng.uniform(0.8, 1.2)),
            smile_bias=float(rng.uniform(0.0, 0.12)),
            asymmetry=float(rng.uniform(-0.12, 0.12)),
            speed=float(rng.uniform(0.85, 1.15)),
            blink_interval=float(rng.uniform(3.0, 4.5)),
            expressiveness=float(rng.uniform(0.6, 1.4)),
            reactivity=float(rng.uniform(0.7, 1.3)),
        )


def generate_face(
    dialogue: Dialogue,
    speaker: int,
    emotion: str = "neutral",
    rng: np.random.Generator | None = None,
    style: FaceStyle | None = None,
) -> np.ndarray:
    """ARKit weights (F, 52) float32 in [0, 1], Apple order, at FPS, for ``dialogue.tracks[speaker]``."""
    if speaker not in (0, 1):
        raise ValueError(f"speaker must be 0 or 1, got {speaker}")
    rng = rng if rng is not None else np.random.default_rng()
    style = style if style is not None else FaceStyle.sample(rng)
    pose, jaw_gain, blink_factor, react = _EMOTIONS[emotion_name(emotion)]
    me, partner = dialogue.tracks[speaker], dialogue.tracks[1 - speaker]
    n = dialogue.n_frames
    w = np.zeros((n, N_BLENDSHAPES), np.float32)  # (F, 52)

    intensity = rng.uniform(0.6, 1.0) * (1.0 + 0.25 * _smooth_noise(rng, n, 1, 3.0)[:, 0])  # (F,) slow drift
    w += np.maximum(intensity[:, None], 0.0) * _expand(pose)[None, :]
    w[:, [INDEX["mouthSmileLeft"], INDEX["mouthSmileRight"]]] += style.smile_bias

    lips = mouth(me.phones, n, _jaw_gain(me, style.openness * jaw_gain), style.rounding, style.speed)
    for name, values in lips.items():
        w[:, INDEX[name]] += values
    onsets = np.array([u.start for u in me.utterances])
    blink = _blinks(rng, n, style.blink_interval * blink_factor, onsets)
    for side in ("Left", "Right"):
        w[:, INDEX["eyeBlink" + side]] = np.maximum(w[:, INDEX["eyeBlink" + side]], blink)
    _gaze(w, rng, me.activity)
    _brow_beats(w, rng, me.stresses, style.expressiveness)
    _listening(w, rng, me.activity, partner, style.reactivity * react)
    upper = [INDEX[c] for c in _MICRO_CHANNELS]
    w[:, upper] += 0.012 * (1.0 + _smooth_noise(rng, n, len(upper), 0.8))  # micro-movements, ~0..0.04

    for i, name in enumerate(ARKIT_NAMES):  # actor asymmetry on every Left/Right pair
        if name.endswith("Left"):
            w[:, i] *= 1.0 + style.asymmetry
        elif name.endswith("Right"):
            w[:, i] *= 1.0 - style.asymmetry
    np.clip(w, 0.0, 1.0, out=w)
    w[:, INDEX["jawOpen"]] = lips["jawOpen"]  # jaw and seal last: the lip gap is exactly what the visemes say
    w[:, INDEX["mouthClose"]] = np.minimum(lips["mouthClose"], lips["jawOpen"])
    w[:, INDEX["tongueOut"]] = 0.0
    return w


def _jaw_gain(track: SpeechTrack, base: float) -> np.ndarray:
    """(F,) jaw gain: louder speech opens the jaw a little more (0.75..1.3 around the speaker's median level)."""
    loud = uniform_filter1d(track.loudness.astype(np.float32), size=3)  # ~100 ms
    speaking = loud[track.activity]
    ref = float(np.median(speaking)) if speaking.size else 1.0
    ref = ref if ref > 1e-6 else 1.0
    return base * np.clip(0.8 + 0.2 * loud / ref, 0.75, 1.3).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, n: int, channels: int, seconds: float) -> np.ndarray:
    """(n, channels) float32 noise of unit standard deviation, correlated over ``seconds``."""
    white = rng.standard_normal((n + 64, channels))
    smooth = gaussian_filter1d(white, sigma=max(seconds * FPS / 2, 0.5), axis=0, mode="wrap")[32 : 32 + n]
    return (smooth / (smooth.std(axis=0, keepdims=True) + 1e-9)).astype(np.float32)


def _bumps(n: int, times: np.ndarray, amps: np.ndarray, rise: float, decay: float) -> np.ndarray:
    """(n,) sum of pulses peaking at ``times`` (s): smoothstep rise over ``rise`` s, exponential decay (``decay`` s)."""
    out = np.zeros(n, np.float32)
    t = np.arange(n) / FPS
    for t0, a in zip(times, amps, strict=True):
        lo, hi = max(int((t0 - rise) * FPS), 0), min(int((t0 + 5 * decay) * FPS) + 1, n)
        if lo >= hi:
            continue
        tt = t[lo:hi]
        x = np.clip((tt - (t0 - rise)) / rise, 0.0, 1.0)
        out[lo:hi] += a * np.where(tt < t0, x * x * (3 - 2 * x), np.exp(-(tt - t0) / decay))
    return out


def _blinks(rng: np.random.Generator, n: int, interval: float, speech_onsets: np.ndarray) -> np.ndarray:
    """(n,) eyeBlink: ~150 ms blinks every 2-6 s (scaled by ``interval`` / 3.5 s), some on speech onsets."""
    duration = n / FPS
    times, t = [], rng.uniform(0.3, 3.0)
    while t < duration:
        times.append(t)
        t += rng.uniform(2.0, 6.0) * interval / 3.5
    for onset in speech_onsets:
        if rng.random() < 0.3 and all(abs(onset - b) > 1.0 for b in times):
            times.append(onset + rng.uniform(0.0, 0.15))
    out = np.zeros(n, np.float32)
    t_frames = np.arange(n) / FPS
    for tb in times:
        tb = round(tb * FPS) / FPS  # peak on a frame: the eye is seen fully shut
        dt = t_frames - tb
        width = np.where(dt < 0, 0.035, 0.06)  # s: closes in ~50 ms, opens in ~100 ms
        out = np.maximum(out, rng.uniform(0.85, 1.0) * np.exp(-((dt / width) ** 2)))
    return out


def _gaze(w: np.ndarray, rng: np.random.Generator, speaking: np.ndarray) -> None:
    """Saccades every 0.3-3 s; a listener looks at the partner (centre), a speaker glances away more."""
    n = len(w)
    yaw = np.zeros(n, np.float32)  # + = towards the person's left
    pitch = np.zeros(n, np.float32)  # + = up
    i = 0
    while i < n:
        hold = int(rng.uniform(0.3, 3.0) * FPS) + 1
        spread = 0.18 if speaking[i] else 0.07
        yaw[i : i + hold] = rng.normal(0.0, spread)
        pitch[i : i + hold] = rng.normal(-0.02, spread * 0.6)
        i += hold
    yaw = uniform_filter1d(yaw, size=2)  # a saccade takes ~1-2 frames
    pitch = uniform_filter1d(pitch, size=2)
    left, right = np.maximum(yaw, 0.0), np.maximum(-yaw, 0.0)
    for name, value in (("eyeLookOutLeft", left), ("eyeLookInRight", left), ("eyeLookInLeft", right),
                        ("eyeLookOutRight", right), ("eyeLookUpLeft", np.maximum(pitch, 0)),
                        ("eyeLookUpRight", np.maximum(pitch, 0)), ("eyeLookDownLeft", np.maximum(-pitch, 0)),
                        ("eyeLookDownRight", np.maximum(-pitch, 0))):  # fmt: skip
        w[:, INDEX[name]] += np.clip(value, 0.0, 0.5)


def _brow_beats(w: np.ndarray, rng: np.random.Generator, stresses: np.ndarray, gain: float) -> None:
    """Brow raises on about a third of the speaker's own stressed syllables."""
    chosen = stresses[rng.random(len(stresses)) < min(0.3 * gain, 0.9)]
    amps = rng.uniform(0.15, 0.35, len(chosen)) * gain
    raise_ = _bumps(len(w), chosen + 0.03, amps, rise=0.1, decay=0.25)
    w[:, INDEX["browInnerUp"]] += 0.8 * raise_
    w[:, INDEX["browOuterUpLeft"]] += raise_
    w[:, INDEX["browOuterUpRight"]] += raise_


def _listening(
    w: np.ndarray, rng: np.random.Generator, speaking: np.ndarray, partner: SpeechTrack, gain: float
) -> None:
    """Reactions to the partner: attentive look while they talk, responses to their stresses and turn ends."""
    n = len(w)
    frame_of = np.clip(np.round(np.asarray(partner.stresses) * FPS).astype(int), 0, n - 1)
    quiet = ~speaking[frame_of] if len(frame_of) else np.zeros(0, bool)
    stresses = np.asarray(partner.stresses)[quiet & (rng.random(len(frame_of)) < min(0.25 * gain, 0.9))]
    kinds = rng.integers(3, size=len(stresses))  # 0 brow raise, 1 squint-smile, 2 small smile
    lag = rng.uniform(0.1, 0.3, len(stresses))
    amp = rng.uniform(0.12, 0.3, len(stresses)) * gain
    brow = _bumps(n, stresses[kinds == 0] + lag[kinds == 0], amp[kinds == 0], 0.12, 0.35)
    squint = _bumps(n, stresses[kinds == 1] + lag[kinds == 1], amp[kinds == 1], 0.12, 0.4)
    smile = _bumps(n, stresses[kinds == 2] + lag[kinds == 2], amp[kinds == 2], 0.15, 0.45)

    ends = np.array([u.end for u in partner.utterances if not u.backchannel and u.end - u.start > 1.0])
    ends = ends[rng.random(len(ends)) < min(0.6 * gain, 0.95)]
    smile += _bumps(n, ends - rng.uniform(0.2, 0.5, len(ends)), rng.uniform(0.2, 0.4, len(ends)) * gain, 0.3, 0.6)

    attentive = gaussian_filter1d((partner.activity & ~speaking).astype(np.float32), sigma=0.15 * FPS) * gain
    w[:, INDEX["browInnerUp"]] += 0.6 * brow + 0.06 * attentive
    for side in ("Left", "Right"):
        w[:, INDEX["browOuterUp" + side]] += brow + 0.04 * attentive
        w[:, INDEX["eyeSquint" + side]] += 0.6 * squint + 0.3 * smile
        w[:, INDEX["cheekSquint" + side]] += 0.5 * squint + 0.5 * smile
        w[:, INDEX["mouthSmile" + side]] += 0.6 * squint + smile + 0.04 * attentive
        w[:, INDEX["eyeWide" + side]] += 0.05 * attentive


# ---- helpers for evaluation (work on generated or predicted weights alike) ----


def lip_gap(weights: np.ndarray) -> np.ndarray:
    """(F, 52) ARKit weights -> (F,) lip opening jawOpen - mouthClose, clipped at 0."""
    weights = _check(weights)
    return np.maximum(weights[:, INDEX["jawOpen"]] - weights[:, INDEX["mouthClose"]], 0.0)


def lips_closed(weights: np.ndarray, threshold: float = LIP_CLOSED_GAP) -> np.ndarray:
    """(F, 52) -> (F,) bool, lip gap below ``threshold``."""
    return lip_gap(weights) < threshold


def bilabial_onsets(phones: list[Phone], n_frames: int | None = None) -> np.ndarray:
    """Frame indices (nearest frame, int64) of every p/b/m onset, within [0, n_frames) when given."""
    frames = np.array([round(p.start * FPS) for p in phones if p.symbol in BILABIALS], dtype=np.int64)
    return frames if n_frames is None else frames[(frames >= 0) & (frames < n_frames)]


def bilabial_closure_rate(weights: np.ndarray, phones: list[Phone], tolerance_frames: int = 1) -> float:
    """Fraction of bilabial onsets with closed lips within +-``tolerance_frames``; NaN if there are none."""
    closed = lips_closed(weights)
    onsets = bilabial_onsets(phones, len(closed))
    if onsets.size == 0:
        return float("nan")
    offsets = np.arange(-tolerance_frames, tolerance_frames + 1)
    near = np.clip(onsets[:, None] + offsets[None, :], 0, len(closed) - 1)  # (B, 2 * tolerance + 1)
    return float(closed[near].any(axis=1).mean())


def _check(weights: np.ndarray) -> np.ndarray:
    weights = np.asarray(weights, dtype=np.float32)
    if weights.ndim != 2 or weights.shape[1] != N_BLENDSHAPES:
        raise ValueError(f"expected ARKit weights of shape (frames, {N_BLENDSHAPES}), got {weights.shape}")
    return weights
