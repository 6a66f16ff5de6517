"""A living face after the model: blinks, gaze shifts, brow raises, head nods and listener reactions (DESIGN 3).

Why a layer and not the network: the face model learns the mouth from audio, but blinks, saccades and nods are
rare, randomly timed events; a few-step diffusion sampler with one noise pattern per session averages them away
(measured on real speech with the 2026-11 bundle: eyeBlink never above 0.012, browInnerUp std 0.003-0.014, the
listener a constant smile). So they are added here, after the model, by a seeded process whose parameters travel in
the bundle (manifest ``"alive"``, ``AliveParams``) and which a session can switch off (``SessionSettings.alive``).

What drives what (per person, per frame, 30 fps):
- blinks: a hazard of ``blinks_per_min_*`` (more while speaking), plus a blink at the end of one's own phrase and
  on large gaze shifts; an asymmetric lid curve (fast close, slower open) peaking at 0.68-0.92.
- gaze: speakers look away and back (``gaze_away_deg``), listeners hold the partner with micro-saccades; a
  saccade takes ``saccade_frames``. Gaze is written to the eyeLook weights, so the eye rotations follow.
- accents (a fast rise of the speaker's loudness): brow raise and/or a head nod, each with a probability.
- listener backchannel: when the partner ends a stretch of speech and this person is quiet, a double nod and
  sometimes a smile.
- slow drifts (< 0.5 Hz, as in real takes: 94 % of browInnerUp power): brows and head sway.

Reference figures the defaults were set against are measured on 10 real iPhone takes
(``python -m training.analyze``, ``training/configs/face_reference.json``): 22 blinks/min (6-41), blink width at
half height ~100 ms, gaze shifts 25/min of ~5 deg (p90 12 deg), browInnerUp std 0.07; speaking raises the blink
rate over rest (26 vs 17 per minute, Bentivoglio et al. 1997, Movement Disorders 12(6)).

Determinism: every random draw is a hash of (seed, person, stream, frame), and the state (events in flight, speech
trackers) advances one frame at a time, so a frame depends only on the seed and the inputs up to it: the same
audio gives the same faces whatever the chunking or block size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from runtime.constants import FPS
from runtime.formats.arkit import INDEX
from runtime.motion.posing import EYE_PITCH_RAD, EYE_YAW_RAD

_M64 = (1 << 64) - 1
_BLINK, _BLINK_END, _GAZE, _BROW, _NOD, _BACK, _DRIFT = range(7)  # random streams


@dataclass(frozen=True)
class AliveParams:
    blinks_per_min_speaking: float = 14.0  # the hazard alone; phrase ends and gaze shifts add the rest
    blinks_per_min_listening: float = 17.0  # at rest (Bentivoglio et al. 1997)
    blink_peak: float = 0.8  # mean peak weight; each blink draws within +-blink_peak_spread
    blink_peak_spread: float = 0.12
    blink_close_frames: int = 2  # 67 ms closing, then one frame shut, then opening
    blink_open_frames: int = 4  # 133 ms: width at half height ~100 ms, as in the real takes
    blink_refractory: float = 0.5  # s between blink starts
    blink_at_phrase_end: float = 0.35  # probability of a blink when one's own phrase (>= 0.6 s) ends
    blink_on_gaze_shift: float = 0.25  # probability of a blink with a gaze shift larger than 8 deg
    gaze_shifts_per_min_speaking: float = 24.0
    gaze_shifts_per_min_listening: float = 14.0
    gaze_away_deg: float = 9.0  # a speaker's typical look-away (the real takes: median 5, p90 12 deg)
    gaze_micro_deg: float = 2.0  # a listener's micro-saccades around the partner
    gaze_return: float = 0.6  # probability that a speaker's next shift returns to the partner
    saccade_frames: int = 2
    accent_rise: float = 1.2  # log-power units over 3 frames that make a loudness rise an accent
    accent_refractory: float = 0.6  # s: at most ~1.7 accents a second (stressed syllables come 2-4 a second)
    brow_on_accent: float = 0.45  # probability of a brow raise on an accent
    brow_raise: float = 0.22  # browInnerUp peak of a raise (browOuterUp gets 0.6 of it)
    brow_drift: float = 0.03  # std of the slow brow drift
    nod_on_accent: float = 0.2  # probability of a head nod on an accent (0.5 nodded ~55 times a minute on BEAT)
    nod_deg: float = 4.0  # pitch of a nod
    sway_deg: float = 1.5  # std of the slow head sway (each of yaw, pitch, roll)
    backchannel: float = 0.4  # probability of a listener's nod when the partner pauses after >= 1 s of speech
    backchannel_smile: float = 0.5  # probability that the nod comes with a smile
    smile: float = 0.25  # smile weight of a backchannel

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "alive") -> AliveParams:
        """Parameters from a manifest; missing keys take the defaults, unknown or non-finite ones are errors."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"{where}: unknown parameters {unknown}")
        out = {}
        for k, v in d.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v) or v < 0:
                raise ValueError(f"{where}.{k}: expected a finite number >= 0, got {v!r}")
            out[k] = int(v) if known[k].type == "int" else float(v)
        p = cls(**out)
        for k in ("blink_at_phrase_end", "blink_on_gaze_shift", "gaze_return", "brow_on_accent", "nod_on_accent",
                  "backchannel", "backchannel_smile", "blink_peak", "smile", "brow_raise"):  # fmt: skip
            if getattr(p, k) > 1:
                raise ValueError(f"{where}.{k}: expected 0..1, got {getattr(p, k)}")
        if p.blink_close_frames < 1 or p.blink_open_frames < 1 or p.saccade_frames < 1:
            raise ValueError(f"{where}: blink_close_frames, blink_open_frames and saccade_frames must be >= 1")
        return p


def _mix(x: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of x."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _ease(t: np.ndarray | float) -> np.ndarray | float:
    """Smoothstep on [0, 1]."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass
class _Event:
    kind: str  # "blink", "brow", "nod", "smile"
    start: int  # frame
    size: float  # peak (weight) or amplitude (radians)
    length: int  # frames
    cycles: int = 1  # nods: 1 (an accent) or 2 (a backchannel)

    def value(self, i: int) -> float:
        a = i - self.start
        if self.kind == "blink":  # fast close, one frame shut, slower open
            close, opening = self.length
            if a < close:
                return self.size * float(_ease((a + 1) / close))
            return self.size * float(_ease(1.0 - (a - close) / (opening + 1)))
        if self.kind == "nod":  # pitch down and back, `cycles` times
            return self.size * 0.5 * (1.0 - np.cos(2.0 * np.pi * self.cycles * a / self.length))
        rise, fall = max(1, self.length // 4), max(1, self.length // 2)  # brow, smile: rise, hold, fall
        return self.size * float(min(_ease((a + 1) / rise), _ease((self.length - a) / fall)))

    def done(self, i: int) -> bool:
        n = sum(self.length) + 1 if self.kind == "blink" else self.length
        return i - self.start >= n


class AliveLayer:
    """One person's living-face process. ``step`` must be given consecutive frames, from frame 0."""

    def __init__(self, params: AliveParams, seed: int, person: int) -> None:
        self.p, self.seed, self.person = params, int(seed) & _M64, person
        self.next = 0  # the next frame expected
        self.events: list[_Event] = []
        self.last_blink = -(10**9)
        self.last_accent = -(10**9)
        self.speaking = self.partner_speaking = False
        self.speech_run = self.partner_run = 0  # frames this person / the partner has been speaking
        self.loud = [0.0, 0.0, 0.0]  # the last three frames' loudness
        self.gaze = np.zeros(2)  # current target (yaw, pitch) in degrees; (0, 0) = at the partner
        self.gaze_from, self.gaze_at = np.zeros(2), -(10**9)  # previous target and when the saccade began
        drift = np.array([self._u(_DRIFT, k) for k in range(24)]).reshape(4, 3, 2)  # 4 curves x 3 sinusoids
        self.drift_freq = 0.05 + 0.35 * drift[..., 0]  # Hz, below 0.4
        self.drift_phase = 2.0 * np.pi * drift[..., 1]

    def _u(self, stream: int, frame: int, k: int = 0) -> float:
        """A uniform in [0, 1) that depends only on (seed, person, stream, frame, k)."""
        x = _mix(_mix(_mix(_mix(self.seed) ^ self.person) ^ (stream * 64 + k)) ^ (frame & _M64))
        return x / 2.0**64

    def _drift(self, frames: np.ndarray) -> np.ndarray:
        """(N, 4) slow unit-variance curves: brow, head yaw, pitch, roll; a function of the frame index only."""
        t = frames[:, None, None] / FPS
        return np.sin(2.0 * np.pi * self.drift_freq[None] * t + self.drift_phase[None]).sum(axis=2) * np.sqrt(2 / 3)

    def step(
        self, start: int, weights: np.ndarray, speaking: np.ndarray, partner: np.ndarray, loudness: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Frames ``start ..`` of one person: weights (N, 52), own and partner voice activity (N,) bool, own
        loudness (N,) (mean raw log-mel) -> weights (N, 52) with the layer applied, head offsets (N, 3) radians
        (yaw, pitch, roll as ``Posed.rotations``: pitch > 0 looks down)."""
        if start != self.next:
            raise ValueError(f"AliveLayer: frames must be consecutive, expected {self.next}, got {start}")
        n = len(weights)
        out = np.array(weights, np.float32, copy=True)
        head = np.zeros((n, 3))
        drift = self._drift(np.arange(start, start + n))
        for k in range(n):
            i = start + k
            self._advance(i, bool(speaking[k]), bool(partner[k]), float(loudness[k]))
            self._render(i, out[k], head[k])
        p = self.p
        brow = p.brow_drift * (1.0 + drift[:, 0])
        out[:, INDEX["browInnerUp"]] += brow
        for name in ("browOuterUpLeft", "browOuterUpRight"):
            out[:, INDEX[name]] += 0.6 * brow
        head += np.radians(p.sway_deg) * drift[:, 1:]
        self.next = start + n
        return np.clip(out, 0.0, 1.0), head

    # -- one frame -----------------------------------------------------------------------------------------
    def _advance(self, i: int, speaking: bool, partner: bool, loud: float) -> None:
        p = self.p
        phrase_end = self.speaking and not speaking and self.speech_run >= 0.6 * FPS
        self.speech_run = self.speech_run + 1 if speaking else 0
        partner_pause = self.partner_speaking and not partner and self.partner_run >= FPS
        self.partner_run = self.partner_run + 1 if partner else 0
        self.speaking, self.partner_speaking = speaking, partner
        accent = (speaking and loud - self.loud[0] > p.accent_rise
                  and i - self.last_accent >= p.accent_refractory * FPS)  # fmt: skip
        self.loud = [*self.loud[1:], loud]

        shift = self._gaze_shift(i, speaking)
        rate = p.blinks_per_min_speaking if speaking else p.blinks_per_min_listening
        may_blink = i - self.last_blink >= p.blink_refractory * FPS
        if may_blink and (
            self._u(_BLINK, i) < rate / 60.0 / FPS
            or (phrase_end and self._u(_BLINK_END, i) < p.blink_at_phrase_end)
            or (shift > 8.0 and self._u(_BLINK_END, i, 1) < p.blink_on_gaze_shift)
        ):
            size = np.clip(p.blink_peak + p.blink_peak_spread * (2 * self._u(_BLINK, i, 1) - 1), 0.0, 1.0)
            self.events.append(_Event("blink", i, float(size), (p.blink_close_frames, p.blink_open_frames)))
            self.last_blink = i
        if accent:
            self.last_accent = i
            if self._u(_BROW, i) < p.brow_on_accent:
                size = p.brow_raise * (0.6 + 0.8 * self._u(_BROW, i, 1))
                self.events.append(_Event("brow", i, size, int(FPS * (0.5 + 0.4 * self._u(_BROW, i, 2)))))
            if self._u(_NOD, i) < p.nod_on_accent:
                size = np.radians(p.nod_deg) * (0.5 + self._u(_NOD, i, 1))
                self.events.append(_Event("nod", i, float(size), int(FPS * (0.3 + 0.15 * self._u(_NOD, i, 2)))))
        if partner_pause and not speaking and self._u(_BACK, i) < p.backchannel:
            size = np.radians(p.nod_deg) * (1.0 + 0.5 * self._u(_BACK, i, 1))
            self.events.append(_Event("nod", i, float(size), int(FPS * 0.8), cycles=2))
            if self._u(_BACK, i, 2) < p.backchannel_smile:
                self.events.append(_Event("smile", i, p.smile * (0.6 + 0.8 * self._u(_BACK, i, 3)), int(FPS * 1.5)))

    def _gaze_shift(self, i: int, speaking: bool) -> float:
        """Maybe start a saccade at frame i; returns its size in degrees (0 = none)."""
        p = self.p
        rate = p.gaze_shifts_per_min_speaking if speaking else p.gaze_shifts_per_min_listening
        if i - self.gaze_at < 6 or self._u(_GAZE, i) >= rate / 60.0 / FPS:  # fixations last >= 200 ms
            return 0.0
        away = np.any(np.abs(self.gaze) > 1.5 * p.gaze_micro_deg)
        if speaking and not (away and self._u(_GAZE, i, 1) < p.gaze_return):  # look away: sideways, a bit down
            side = 1.0 if self._u(_GAZE, i, 2) < 0.5 else -1.0
            amp = p.gaze_away_deg * (0.4 + 1.2 * self._u(_GAZE, i, 3))
            target = np.array([side * amp, -0.4 * amp * self._u(_GAZE, i, 4)])
        else:  # back at the partner, with a micro-saccade's offset
            target = p.gaze_micro_deg * (2.0 * np.array([self._u(_GAZE, i, 5), self._u(_GAZE, i, 6)]) - 1.0)
        self.gaze_from, self.gaze_at = self._gaze_now(i), i
        size = float(np.hypot(*(target - self.gaze)))
        self.gaze = target
        return size

    def _gaze_now(self, i: int) -> np.ndarray:
        t = _ease((i - self.gaze_at + 1) / self.p.saccade_frames)
        return self.gaze_from + (self.gaze - self.gaze_from) * t

    def _render(self, i: int, w: np.ndarray, head: np.ndarray) -> None:
        """Add frame i's events and gaze to one frame's weights (52,) and head offsets (3,), in place."""
        blink = brow = smile = 0.0
        for e in self.events:
            v = e.value(i)
            if e.kind == "blink":
                blink = max(blink, v)
            elif e.kind == "brow":
                brow += v
            elif e.kind == "nod":
                head[1] += v
            else:
                smile += v
        self.events = [e for e in self.events if not e.done(i + 1)]
        for name in ("eyeBlinkLeft", "eyeBlinkRight"):
            w[INDEX[name]] = max(w[INDEX[name]], blink)
        w[INDEX["browInnerUp"]] += brow
        w[INDEX["browOuterUpLeft"]] += 0.6 * brow
        w[INDEX["browOuterUpRight"]] += 0.6 * brow
        w[INDEX["mouthSmileLeft"]] += smile
        w[INDEX["mouthSmileRight"]] += smile
        yaw, pitch = np.radians(self._gaze_now(i))  # + yaw = to the person's left, + pitch = up
        side = ("eyeLookOutLeft", "eyeLookInRight") if yaw > 0 else ("eyeLookInLeft", "eyeLookOutRight")
        for name in side:
            w[INDEX[name]] += abs(yaw) / EYE_YAW_RAD
        for name in ("eyeLookUpLeft", "eyeLookUpRight") if pitch > 0 else ("eyeLookDownLeft", "eyeLookDownRight"):
            w[INDEX[name]] += abs(pitch) / EYE_PITCH_RAD
