"""Upper body of the synthetic bodies: spine, head, arms and hands driven by who speaks (paper 4.2 conditions).

Speaking: gesture phrases raise one or both hands into the space in front of the torso and hold a hand shape;
every stressed syllable (``SpeechTrack.stresses``) gets a beat, a 0.3-0.6 s stroke whose extreme lands on the
syllable, with an amplitude that follows the speaker's loudness; the spine and shoulders join in. Listening: the
hands rest, the head nods (1-3 cycles) near the partner's stresses and utterance ends and on one's own
backchannels, and tilts. Always: breathing, idle sway, the head turned towards the partner except for short glances
away, and walking arm swing in counter-phase with the legs.

Angles are authored in the T-pose frames of ``training.data.skeleton_def`` (X: pitch, positive leans the top of a
bone forward; Y: yaw, positive turns left; Z: roll) for the **left** side, and mirrored for the right side
(a rotation vector (x, y, z) becomes (x, -y, -z)). Internal units are radians; tables are in degrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation
from scipy.special import expit

from runtime.constants import FPS
from training.data.body_plan import PersonPlan
from training.data.curves import box, smooth_noise
from training.data.dialogue import SpeechTrack
from training.data.skeleton_def import FINGERS

# Arm poses, left side, degrees: shoulder flexion (forward), abduction (from hanging), humeral twist (internal),
# elbow flexion, forearm pronation, wrist flexion.
ARM_KEYS = ("flex", "abd", "twist", "elbow", "pron", "wrist")
REST_STAND = {
    "sides": np.array([4.0, 9.0, 5.0, 12.0, 10.0, 5.0]),  # arms hanging, elbows soft
    "front": np.array([14.0, 6.0, 35.0, 62.0, 55.0, 10.0]),  # hands loosely together in front of the belly
    "back": np.array([-8.0, 10.0, 20.0, 40.0, 30.0, 0.0]),  # hands behind the back
}
REST_SIT = np.array([32.0, 10.0, 25.0, 55.0, 70.0, 10.0])  # hands resting on the thighs
GESTURE_LOW = np.array([5.0, 8.0, 10.0, 55.0, -40.0, -12.0])  # gesture space: hand in front of the torso
GESTURE_HIGH = np.array([25.0, 22.0, 35.0, 90.0, 30.0, 12.0])
# A beat's stroke at amplitude 1: the hand drops and flicks. Generator v2 doubled v1's (-6, 2, 0, -14, 0, 14): v1
# speakers' wrists moved 0.11 body heights/s standing, real gesturing capture (Bandai Namco) 0.16-0.36 (issue 13).
BEAT = np.array([-12.0, 4.0, 0.0, -26.0, 0.0, 24.0])
STROKE_MOVE = 0.35  # each stroke also moves the hand to a new spot: up to this fraction of the gesture space
IDLE_ARM_DEG = (1.2, 2.5)  # arm drift listening, speaking (v1: 2.0 for both)

HAND_SHAPES = {  # finger curl 0 (straight) .. 1 (fully bent): thumb, index, middle, ring, pinky; then spread 0..1
    "relaxed": (0.25, 0.2, 0.3, 0.38, 0.45, 0.1),
    "open": (0.05, 0.05, 0.08, 0.1, 0.12, 0.6),
    "point": (0.6, 0.02, 0.85, 0.9, 0.9, 0.1),
    "fist": (0.6, 0.85, 0.9, 0.9, 0.9, 0.0),
    "pinch": (0.45, 0.5, 0.35, 0.4, 0.45, 0.2),
    "cupped": (0.3, 0.35, 0.4, 0.45, 0.5, 0.3),
}
SHAPE_P = {"open": 0.35, "relaxed": 0.2, "point": 0.15, "pinch": 0.15, "cupped": 0.1, "fist": 0.05}
FINGER_MAX_DEG = {"Thumb": (40.0, 45.0, 60.0), "other": (80.0, 100.0, 70.0)}  # curl 1 at joints 1, 2, 3
SPREAD_DEG = {"Index": 8.0, "Middle": 0.0, "Ring": -6.0, "Pinky": -12.0}  # fan at spread 1
_THUMB_AXIS = np.array([0.78, 0.0, -0.62]) / math.hypot(0.78, 0.62)  # bends the (left) thumb towards the palm

MAX_LOOK_DEG = 80.0  # beyond this the head stops following the partner (spine + neck + head yaw range)
PHRASE_GAP_S = 1.2  # stresses further apart than this start a new gesture phrase
GESTURE_PROB = 0.9  # a speaking phrase gets arm gestures (halved while walking); v1 0.85


def _mirror(rotvec: np.ndarray) -> np.ndarray:
    """(..., 3) rotation vectors of the left side -> the right side (mirror across the sagittal plane)."""
    return rotvec * np.array([1.0, -1.0, -1.0])


def _about(axis: str, angle: np.ndarray) -> Rotation:
    """(F,) rotations by ``angle`` (F,) rad about one T-pose axis, ``"X"``, ``"Y"`` or ``"Z"``."""
    return Rotation.from_euler(axis, np.asarray(angle, dtype=np.float64)[:, None])


def _ypr(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> Rotation:
    """Intrinsic yaw (Y), then pitch (X), then roll (Z), each (F,) radians."""
    return Rotation.from_euler("YXZ", np.stack([yaw, pitch, roll], axis=-1))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) frame runs where ``mask`` is true."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True))


def _loudness01(track: SpeechTrack) -> np.ndarray:
    """(F,) loudness scaled so a loud frame of this speaker is 1 (95th percentile of speaking frames)."""
    loud = np.asarray(track.loudness, dtype=np.float64)
    active = loud[np.asarray(track.activity, dtype=bool)]
    ref = np.percentile(active, 95) if active.size else 0.0
    return np.clip(loud / ref, 0.0, 1.0) if ref > 1e-9 else np.zeros_like(loud)


def _phrases(track: SpeechTrack, n: int) -> list[tuple[float, float, np.ndarray, bool]]:
    """Speaking stretches as (start s, end s, stress times inside, backchannel)."""
    active = np.zeros(n, dtype=bool)
    active[: len(track.activity)] = np.asarray(track.activity, dtype=bool)[:n]
    active = gaussian_filter1d(active.astype(float), 0.15 * FPS) > 0.2  # bridge pauses shorter than ~0.3 s
    stresses = np.sort(np.asarray(track.stresses, dtype=np.float64))
    out = []
    for a, b in _runs(active):
        t0, t1 = a / FPS, b / FPS
        inside = stresses[(stresses >= t0) & (stresses <= t1)]
        back = any(u.backchannel and u.start < t1 and u.end > t0 for u in track.utterances) and t1 - t0 < 1.5
        cuts = np.flatnonzero(np.diff(inside) > PHRASE_GAP_S) + 1
        groups = np.split(inside, cuts) if inside.size else [inside]
        edges = [t0] + [0.5 * (g[0] + p[-1]) for p, g in zip(groups[:-1], groups[1:], strict=True)] + [t1]
        out += [(edges[i], edges[i + 1], g, back) for i, g in enumerate(groups)]
    return out


def upper_body(
    rng: np.random.Generator,
    own: SpeechTrack,
    partner: SpeechTrack,
    plan: PersonPlan,
    look_yaw: np.ndarray,
    look_pitch: np.ndarray,
) -> dict[str, Rotation]:
    """Local rotations (F,) of the spine, neck, head, shoulders, arms, hands and fingers of one person.

    ``own`` / ``partner``: the two speech tracks (F frames each). ``look_yaw`` (F,) rad: where the head should
    point, relative to the pelvis heading; ``look_pitch`` (F,) rad, positive = down.
    """
    n = len(plan.yaw)
    t = np.arange(n) / FPS
    speaking = np.asarray(own.activity, dtype=bool)
    gestures = _gestures(rng, own, plan.walk)
    arms = _arms(rng, t, plan, gestures, gaussian_filter1d(speaking.astype(float), 0.3 * FPS))
    hands = _hands(rng, plan.sit, gestures)
    torso = _torso_and_head(rng, t, own, partner, speaking, plan, gestures.body_beats, look_yaw, look_pitch)
    return {**torso, **arms, **hands}


@dataclass
class _Gestures:
    env: np.ndarray  # (2, F) left / right hand raised into gesture space, 0..1
    target: np.ndarray  # (2, F, 6) arm pose (ARM_KEYS, degrees) in gesture space
    shape: np.ndarray  # (2, F, 6) hand shape (HAND_SHAPES layout) while gesturing
    beats: np.ndarray  # (2, F) beat strokes of each raised hand, ~0..1 at a stressed syllable
    body_beats: np.ndarray  # (F,) every stressed syllable of the speaker: spine and head join in


def _gestures(rng: np.random.Generator, own: SpeechTrack, walk: np.ndarray) -> _Gestures:
    """Gesture phrases and beats of one speaker: which hands, where, which hand shape, and when they beat."""
    n = len(walk)
    t = np.arange(n) / FPS
    loud = _loudness01(own)
    env = np.zeros((2, n))
    target = np.zeros((2, n, 6))
    weight = np.zeros((2, n))
    shape = np.zeros((2, n, 6))
    speech_beats = np.zeros(n)  # stresses of real turns (not backchannels)
    body_beats = np.zeros(n)
    for t0, t1, stress, back in _phrases(own, n):
        for s in stress:
            amp = (0.35 + 0.65 * loud[min(int(round(s * FPS)), n - 1)]) * rng.uniform(0.6, 1.0)
            width = rng.uniform(0.07, 0.12)  # s: Gaussian std; the stroke spans ~ 4 std = 0.3-0.5 s
            i0, i1 = max(int((s - 4 * width) * FPS), 0), min(int((s + 4 * width) * FPS) + 2, n)
            k = amp * np.exp(-0.5 * ((t[i0:i1] - s) / width) ** 2)
            body_beats[i0:i1] += k
            if not back:
                speech_beats[i0:i1] += k
        f0, f1 = int(t0 * FPS), max(int(t1 * FPS), int(t0 * FPS) + 1)
        p = (0.15 if back else GESTURE_PROB) * (1.0 - 0.5 * float(np.mean(walk[f0:f1])))
        if rng.random() > p:
            continue
        sides = [[1], [0], [0, 1]][rng.choice(3, p=[0.4, 0.25, 0.35])]  # right, left, both
        g0 = (stress[0] if stress.size else t0 + 0.3) - rng.uniform(0.3, 0.5)  # preparation before the stroke
        g1 = (stress[-1] if stress.size else t1) + rng.uniform(0.3, 0.7)  # hold after the last stroke
        level = 0.3 if back else 0.6 + 0.4 * float(np.mean(loud[f0:f1] > 0.5))  # louder phrases: bigger
        name = rng.choice(list(SHAPE_P), p=list(SHAPE_P.values()))
        for side in sides:
            e = level * box(t, g0, g1, rng.uniform(0.4, 0.6), rng.uniform(0.5, 0.8))
            env[side] = np.maximum(env[side], e)
            spot = GESTURE_LOW + rng.random(6) * (GESTURE_HIGH - GESTURE_LOW)
            moves = np.zeros((n, 6))  # the hand travels to a new spot on each stroke and holds there
            for at in [] if back else stress:
                step = STROKE_MOVE * rng.uniform(-1.0, 1.0, 6) * (GESTURE_HIGH - GESTURE_LOW)
                moves += step * expit((t[:, None] - at + 0.1) / 0.06)
            target[side] += e[:, None] * np.clip(spot + moves, GESTURE_LOW, GESTURE_HIGH)
            weight[side] += e
            shape[side] += e[:, None] * np.asarray(HAND_SHAPES[name])
    target /= np.maximum(weight, 1e-6)[..., None]
    shape /= np.maximum(weight, 1e-6)[..., None]
    beats = speech_beats[None, :] * np.minimum(env / 0.3, 1.0)  # only raised hands beat
    return _Gestures(env, target, shape, beats, body_beats)


def _arms(rng: np.random.Generator, t: np.ndarray, plan: PersonPlan, g: _Gestures, talk: np.ndarray
          ) -> dict[str, Rotation]:  # fmt: skip
    """Shoulders, arms, forearms and wrists: a resting pose (standing variants, hands on thighs when seated,
    swinging when walking), blended into gesture space by the envelope, plus beats and idle drift (``talk`` (F,)
    0..1: speaking, smoothed; listeners drift less)."""
    n = len(t)
    sit, walk, stride = plan.sit, plan.walk, plan.stride
    out: dict[str, Rotation] = {}
    # the resting arm pose changes now and then (every 12-40 s, ~2 s blends)
    names = list(REST_STAND)
    change = np.cumsum(rng.uniform(12.0, 40.0, size=int(t[-1] / 12.0) + 2))
    pick = rng.choice(len(names), size=change.size + 1, p=[0.6, 0.3, 0.1])
    rest_stand = gaussian_filter1d(
        np.stack([REST_STAND[names[i]] for i in pick])[np.searchsorted(change, t)], 0.5 * FPS, axis=0
    )
    for side, name in ((0, "Left"), (1, "Right")):
        rest = (1.0 - sit)[:, None] * rest_stand + sit[:, None] * REST_SIT
        swing = 22.0 * (np.cos(stride) if side == 0 else -np.cos(stride))  # arm forward with the opposite leg
        rest = rest.copy()
        rest[:, 0] += walk * (-swing - rest[:, 0] + 3.0)  # walking: arms hang and swing
        rest[:, 1] += walk * (8.0 - rest[:, 1])
        rest[:, 3] += walk * (18.0 + 8.0 * np.maximum(-swing / 22.0, 0.0) - rest[:, 3])
        pose = rest + g.env[side][:, None] * (g.target[side] - rest)
        idle = IDLE_ARM_DEG[0] + (IDLE_ARM_DEG[1] - IDLE_ARM_DEG[0]) * talk
        pose += g.beats[side][:, None] * BEAT + idle[:, None] * smooth_noise(rng, n, 1.2 * FPS, 6)  # beats, drift
        a = np.radians(pose)  # (F, 6)
        shoulder = _about("Z", np.radians(3.0 * g.env[side] + 2.0 * g.beats[side]))  # raised with the hand
        arm = _about("X", -a[:, 0]) * _about("Z", -(np.pi / 2 - a[:, 1])) * _about("X", a[:, 2])
        forearm = _about("Y", -a[:, 3]) * _about("X", a[:, 4])
        hand = _about("Z", -a[:, 5])
        for joint, rot in (("Shoulder", shoulder), ("Arm", arm), ("ForeArm", forearm), ("Hand", hand)):
            rv = rot.as_rotvec()
            out[f"{name}{joint}"] = Rotation.from_rotvec(rv if side == 0 else _mirror(rv))
    return out


def _hands(rng: np.random.Generator, sit: np.ndarray, g: _Gestures) -> dict[str, Rotation]:
    """Finger curls and spread: relaxed at rest, the phrase's hand shape while gesturing, a little tighter on beats."""
    n = len(sit)
    out: dict[str, Rotation] = {}
    relaxed = np.asarray(HAND_SHAPES["relaxed"])
    for side, name in ((0, "Left"), (1, "Right")):
        e = np.minimum(g.env[side] / 0.6, 1.0)[:, None]
        curl = (1.0 - e) * (relaxed + 0.1 * sit[:, None]) + e * g.shape[side]  # (F, 6)
        curl[:, :5] += 0.08 * g.beats[side][:, None] + 0.04 * smooth_noise(rng, n, 0.8 * FPS, 5)
        curl = np.clip(curl, 0.0, 1.0)
        for f, finger in enumerate(FINGERS):
            limits = FINGER_MAX_DEG["Thumb" if finger == "Thumb" else "other"]
            for k in range(3):
                angle = np.radians(limits[k]) * curl[:, f]
                if finger == "Thumb":
                    rv = angle[:, None] * _THUMB_AXIS
                else:
                    rv = angle[:, None] * np.array([0.0, 0.0, -1.0])  # fingers along +X curl towards -Y (palm)
                    if k == 0:  # fan out at the knuckles
                        spread = _about("Y", np.radians(SPREAD_DEG[finger]) * curl[:, 5])
                        rv = (Rotation.from_rotvec(rv) * spread).as_rotvec()
                out[f"{name}Hand{finger}{k + 1}"] = Rotation.from_rotvec(rv if side == 0 else _mirror(rv))
    return out


def _nods(rng: np.random.Generator, t: np.ndarray, onsets: list[float], scale: float) -> np.ndarray:
    """(F,) rad pitch of head nods (positive = down first), 1-3 cycles at 1.8-3 Hz from each onset."""
    out = np.zeros_like(t)
    for t0 in onsets:
        cycles, freq = int(rng.integers(1, 4)), rng.uniform(1.8, 3.0)
        dur = cycles / freq
        amp = math.radians(rng.uniform(4.0, 9.0)) * scale
        i0, i1 = int(np.ceil(t0 * FPS)), int(np.floor((t0 + dur) * FPS)) + 1
        tau = t[i0:i1] - t0
        out[i0:i1] += amp * np.sin(2 * np.pi * freq * tau) * np.sqrt(np.clip(1 - tau / dur, 0, 1))
    return out


def _torso_and_head(
    rng: np.random.Generator,
    t: np.ndarray,
    own: SpeechTrack,
    partner: SpeechTrack,
    speaking: np.ndarray,
    plan: PersonPlan,
    body_beats: np.ndarray,
    look_yaw: np.ndarray,
    look_pitch: np.ndarray,
) -> dict[str, Rotation]:
    """Spine (breathing, lean, sway, walking counter-rotation, beats), neck and head (looking at the partner,
    glances away, nods, tilts). The neck and head take whatever yaw and pitch the spine leaves to reach the look."""
    n = len(t)
    sit, walk, stride = plan.sit, plan.walk, plan.stride
    end = t[-1]
    # nods: listening, near the partner's utterance ends and some of their stresses; on one's own backchannels
    onsets = [u.end + rng.uniform(-0.2, 0.3) for u in partner.utterances if not u.backchannel and rng.random() < 0.7]
    last = -10.0
    for s in np.sort(np.asarray(partner.stresses, dtype=np.float64)):
        if s - last > 1.5 and rng.random() < 0.12:
            onsets.append(s + rng.uniform(0.0, 0.2))
            last = s
    onsets += [u.start + rng.uniform(0.0, 0.15) for u in own.utterances if u.backchannel and rng.random() < 0.9]
    nod = _nods(rng, t, [o for o in onsets if 0 <= o < end], 1.0)
    emphasis = [s for s in np.asarray(own.stresses, dtype=np.float64) if 0 <= s < end and rng.random() < 0.08]
    nod += _nods(rng, t, emphasis, 0.5)

    # glances away from the partner: every ~8 s for 0.5-2.5 s, more often while speaking (thinking)
    away_yaw, away_pitch = np.zeros(n), np.zeros(n)
    g = rng.uniform(0.0, 6.0)
    while g < end:
        d = rng.uniform(0.5, 2.5)
        i = int(g * FPS)
        talk = bool(speaking[min(i, n - 1)])
        w = box(t, g, g + d, 0.3, 0.3)
        away_yaw += w * math.radians(rng.choice([-1, 1]) * rng.uniform(20.0, 40.0))
        away_pitch += w * math.radians(rng.uniform(-3.0, 10.0))
        g += d + rng.exponential(4.0 if talk else 8.0)

    talk = gaussian_filter1d(speaking.astype(float), 0.3 * FPS)
    idle = smooth_noise(rng, n, 0.8 * FPS, 6) * (1.0 + 1.0 * talk)[:, None]
    breath_f = 0.25 * (1.0 + 0.15 * smooth_noise(rng, n, 3.0 * FPS)[:, 0])  # Hz
    breath = np.sin(2 * np.pi * np.cumsum(breath_f) / FPS + rng.uniform(0, 2 * np.pi))

    counter = math.radians(4.0) * np.cos(stride) * walk  # torso turns against the pelvis while walking
    lean = math.radians(11.0) * sit + math.radians(3.0) * talk + math.radians(1.5) * body_beats  # forward
    spine_yaw = counter / 3 + math.radians(0.8) * idle[:, 0]
    spine_pitch = lean / 3 + math.radians(0.6) * breath + math.radians(0.8) * idle[:, 1]
    spine_roll = math.radians(0.8) * idle[:, 2]
    yaw_target = np.clip(look_yaw + away_yaw, -math.radians(MAX_LOOK_DEG), math.radians(MAX_LOOK_DEG))
    yaw_target = gaussian_filter1d(yaw_target, 0.12 * FPS)  # the head lags the gaze target by ~0.1 s
    chest_share = 0.1 * yaw_target  # Spine1 and Spine2 each take 10% of a look
    neck_head_yaw = yaw_target - 2 * chest_share - 3 * spine_yaw
    pitch = (
        look_pitch
        + away_pitch
        + nod
        + math.radians(1.5) * body_beats
        + math.radians(1.5) * idle[:, 3]
        - np.sum([spine_pitch] * 3, axis=0)
        + math.radians(2.0)  # a slight chin-down rest
    )
    roll = math.radians(3.0) * idle[:, 4] + math.radians(2.5) * smooth_noise(rng, n, 2.0 * FPS)[:, 0] * (1 - talk)
    return {
        "Spine": _ypr(spine_yaw, spine_pitch, spine_roll),
        "Spine1": _ypr(spine_yaw + chest_share, spine_pitch, spine_roll),
        "Spine2": _ypr(spine_yaw + chest_share, spine_pitch + math.radians(0.4) * breath, spine_roll),
        "Neck": _ypr(0.4 * neck_head_yaw, 0.4 * pitch, 0.4 * roll),
        "Head": _ypr(0.6 * neck_head_yaw, 0.6 * pitch, 0.6 * roll),
    }
