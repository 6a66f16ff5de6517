"""What a session asks of the engine (``SessionSettings``) and what the engine reports back (``Event``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.constants import ACTIONS, DEFAULT_ACTION, FPS

MAX_STEPS = 8  # DDIM steps K a session may ask for
BODY_NOISE = ("fresh-upper", "fresh", "fixed")
FACE_NOISE = ("session", "frame")
BUNDLE_DEFAULTS = ("block", "lookahead", "context", "steps", "face_known", "alive")  # settings a bundle's manifest sets


@dataclass(frozen=True)
class SessionSettings:
    block: int = 6  # frames committed per step (200 ms)
    lookahead: int = 3  # frames of future audio needed before committing (100 ms)
    context: int = 24  # committed frames each window conditions on (0.8 s)
    steps: int = 4  # DDIM steps K
    seed: int = 0
    styles: tuple[str, str] = ("", "")  # "" = the bundle's default style
    actions: tuple[str, str] = (DEFAULT_ACTION, DEFAULT_ACTION)
    placement: tuple[float, float, float] = (0.0, 1.4, np.pi)  # B in A's frame: x, z (m), yaw (rad)
    speaker_timeout: float = 2.0  # s (wall clock) without a speaker's audio while the other's arrives -> silence
    degrade: bool = True  # allow fewer steps / larger blocks when compute falls behind real time
    # Committed face frames the face model is given as known context (the newest ones; -1 = all `context`). The
    # older context frames still bring their audio. Fewer known frames = less drift on its own output.
    face_known: int = 0
    hold_root: bool = True  # keep a sitting or standing person's root on their spot (see Poser.integrate)
    body_smooth: float = 2.0  # frames: std of the Gaussian smoothing of body features over each window (0 = off)
    # Body noise: "fresh-upper" draws the upper body's noise anew per window (seeded by its first frame) and keeps the
    # session's draw for the lower body (feet stay planted); "fresh": both per window; "fixed": both per session.
    body_noise: str = "fresh-upper"
    # Face noise: "session" draws once per session and reuses the draw at every window row; "frame" gives each frame its
    # own draw, the same in every window that holds it (measured and not the default: README "Lip closures").
    face_noise: str = "session"
    body_seam: float = 0.4  # per frame: how fast a new window's body mismatch with committed frames dies out; 0 = off
    alive: bool = True  # the living-face layer after the model: blinks, gaze, brows, nods (runtime.engine.alive)
    # Where A and B start, (x, z, yaw) each in the world (a resumed session); None = A at the origin, B at placement.
    start_roots: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None

    @classmethod
    def from_bundle(cls, defaults: dict, **overrides) -> SessionSettings:
        """The bundle's served ``defaults`` (block, lookahead, context, steps, face_known, alive), then ``overrides``;
        an override of None keeps the bundle's value. Not validated: call ``validate``."""
        picked = {k: type(getattr(cls, k))(defaults[k]) for k in BUNDLE_DEFAULTS if k in defaults}
        picked.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**picked)

    @property
    def window(self) -> int:
        return self.context + self.block + self.lookahead

    @property
    def latency(self) -> float:
        """Algorithmic latency in seconds: a frame waits for the rest of its block plus the lookahead."""
        return (self.block + self.lookahead) / FPS

    def validate(self) -> SessionSettings:
        checks = [
            (1 <= self.block <= 90, f"block must be 1..90 frames, got {self.block}"),
            (0 <= self.lookahead <= 90, f"lookahead must be 0..90 frames, got {self.lookahead}"),
            (0 <= self.context <= 300, f"context must be 0..300 frames, got {self.context}"),
            (1 <= self.steps <= MAX_STEPS, f"steps must be 1..{MAX_STEPS}, got {self.steps}"),
            (all(a in ACTIONS for a in self.actions), f"actions must be among {ACTIONS}, got {self.actions}"),
            (all(np.isfinite(self.placement)) and abs(self.placement[0]) < 50 and abs(self.placement[1]) < 50,
             f"placement must be finite metres within 50 m, got {self.placement}"),
            (-1 <= self.face_known <= 300, f"face_known must be -1 (all) or 0..300 frames, got {self.face_known}"),
            (self.body_noise in BODY_NOISE, f"body_noise must be one of {BODY_NOISE}, got {self.body_noise!r}"),
            (self.face_noise in FACE_NOISE, f"face_noise must be one of {FACE_NOISE}, got {self.face_noise!r}"),
            (0 <= self.body_seam <= 5 and 0 <= self.body_smooth <= 10,
             f"body_seam must be 0..5 and body_smooth 0..10, got {self.body_seam}, {self.body_smooth}"),
            (0.1 <= self.speaker_timeout <= 60, f"speaker_timeout must be 0.1..60 s, got {self.speaker_timeout}"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        return self


@dataclass(frozen=True)
class Event:
    kind: str  # "speech_start", "speech_end", "input_late", "degraded", "control_applied", "draining"
    time: float  # s of session audio
    speaker: int | None = None  # 0 = A, 1 = B
    message: str = ""
    count: int = 0
