"""The streaming engine: one two-person session as an explicit state machine (DESIGN 5, STYLE 7).

    engine = Engine(Model.load(bundle), SessionSettings(...))
    engine.push_audio(0, pcm_a); engine.push_audio(1, pcm_b)   # float32 16 kHz mono, any chunk sizes
    while (frames := engine.step()) is not None: ...            # commits one block when its audio is known
    frames = engine.flush()                                     # end of audio: silence appended, the rest out

Invariants:
- Frames are emitted once, in order, with consecutive indices; frame i has time code i / fps (audio time), so
  output maps exactly onto the audio pushed. Nothing emitted is ever revised.
- A block of B frames is committed once both speakers' audio is known L frames past it. Each step runs a window
  [C context | B block | L lookahead]: body lower -> body upper -> both faces (the faces' "facing the partner"
  flag comes from the new body frames). Committed frames are the next window's known context.
- The face and lower-body noise is drawn once per session (seeded) and reused, so windows do not flicker (the faces'
  can instead be tied to frames: ``SessionSettings.face_noise``); the upper body's is drawn per window from (seed,
  first frame), and body seams are joined in value and velocity (``runtime.engine.seams``;
  ``SessionSettings.body_noise``).
- Memory is bounded: features, context and audio state are kept only as far back as the window needs.
- Output depends only on the audio and the settings, never on chunk sizes or timing, unless compute falls behind
  real time: then the engine degrades in a declared way (fewer steps, then larger blocks) and emits an event.
- If one speaker's audio stops arriving while the other's keeps coming, after ``speaker_timeout`` seconds of wall
  clock (from the arrival times live sources give ``push_audio``; without them there is no timeout) that speaker
  is filled with silence up to the other and kept level while the gap lasts (one INPUT_LATE event per gap). Their
  next audio continues from the present: chunks carry no time stamps, so nothing is back-filled. A client
  uploading faster than real time never triggers this, whatever order it sends the two speakers in.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import deque
from dataclasses import replace

import numpy as np
from scipy.ndimage import gaussian_filter1d

from runtime.constants import ACTIONS, FPS, SAMPLE_RATE
from runtime.engine.alive import AliveLayer, AliveParams
from runtime.engine.audio import SpeakerAudio
from runtime.engine.frames import Frames, PersonFrames, StreamInfo
from runtime.engine.seams import FrameNoise, join, window_noise
from runtime.engine.settings import Event, SessionSettings
from runtime.model.model import Model
from runtime.motion.posing import RootState, facing_flags, relative_placement

log = logging.getLogger(__name__)

DEGRADE_AFTER = 4  # consecutive blocks slower than real time before degrading
HOLD_AFTER = 45  # frames (1.5 s) after an action change before a sitting/standing root is held on its spot
MAX_PENDING_CONTROLS = 1000  # per session: controls whose frame the audio has not reached yet
SEAM_DECAY = 0.6  # per frame: a face block starts at the committed frame's value, the difference gone in ~4 frames


class TooManyControls(RuntimeError):
    """More than ``MAX_PENDING_CONTROLS`` controls wait for frames not yet reached (the server: RESOURCE_EXHAUSTED)."""


class Engine:
    def __init__(self, model: Model, settings: SessionSettings | None = None, session_id: str = "") -> None:
        self.model, self.poser = model, model.poser
        self.settings = (settings or SessionSettings.from_bundle(model.bundle.defaults)).validate()
        settings = self.settings
        self.session_id = session_id
        styles = model.bundle.styles
        self.style_ids = [self._style_id(s, styles) for s in settings.styles]
        self.action_ids = [ACTIONS.index(a) for a in settings.actions]
        self.pending_controls: list[
            tuple[int, int, int, str, int]
        ] = []  # heap of (frame, arrival, speaker, kind, value)
        self._control_seq = 0
        self.speakers = (SpeakerAudio(), SpeakerAudio())
        alive = AliveParams.from_dict(model.bundle.alive, f"{model.bundle.name}: alive")
        self.alive = (AliveLayer(alive, settings.seed, 0), AliveLayer(alive, settings.seed, 1))
        self.committed = 0  # frames emitted so far
        self.total: int | None = None  # frames to emit in all, known after flush
        self.events: list[Event] = []
        self.slow_blocks = 0
        rng = np.random.default_rng(settings.seed)
        w = settings.window
        self.noise = {
            "body_lower": rng.standard_normal((1, w, model.dims["lower"])).astype(np.float32),
            "body_upper": rng.standard_normal((1, w, model.dims["upper"])).astype(np.float32),
            "face": rng.standard_normal((2, w, model.dims["face"])).astype(np.float32),
        }
        self.face_noise = FrameNoise(settings.seed, "face", 2, model.dims["face"])
        # Committed model-space history (normalised), newest last, at most `context` frames.
        self.hist = {k: np.zeros((0, model.dims[k]), np.float32) for k in ("lower", "upper")}
        self.hist_face = np.zeros((2, 0, model.dims["face"]), np.float32)
        self.hist_actions = np.zeros((0, 2), np.int64)
        if settings.start_roots is not None:
            self.root = [RootState(*map(float, r)) for r in settings.start_roots]
        else:
            self.root = self.poser.initial_states(settings.placement)  # (RootState A, RootState B)
        self.initial_root = tuple(self.root)
        self.label_state = [(a, 0) for a in self.action_ids]  # (current action, frame it began) per person
        self.root_hist: list[deque] = [deque(maxlen=max(1, settings.context)) for _ in range(2)]  # (x, z, yaw)
        self.arrivals: deque[tuple[int, float]] = deque()  # (samples of the slower speaker, monotonic time)
        self.started: float | None = None  # monotonic s of the first audio
        self.latencies: deque[float] = deque(maxlen=10_000)

    # -- public surface ------------------------------------------------------------------------------------
    @property
    def info(self) -> StreamInfo:
        s = self.settings
        names = self.model.bundle.styles
        styles = tuple(names[i] if i < len(names) else "" for i in self.style_ids)
        return StreamInfo(self.session_id, self.poser.skeleton, FPS, algorithmic_latency=s.latency, block=s.block,
                          lookahead=s.lookahead, context=s.context, steps=s.steps, model=self.model.bundle.name,
                          styles=styles)  # fmt: skip

    def push_audio(self, speaker: int, pcm: np.ndarray, t: float | None = None) -> None:
        """Append 16 kHz mono float32 samples of ``speaker`` (0 = A, 1 = B); ``t`` = arrival (monotonic s), which
        live sources pass: it drives latency accounting and the speaker timeout."""
        if self.total is not None:
            raise RuntimeError("push_audio after flush")
        if speaker not in (0, 1):
            raise ValueError(f"speaker must be 0 (A) or 1 (B), got {speaker}")
        pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
        me, other = self.speakers[speaker], self.speakers[1 - speaker]
        me.push(pcm)
        if t is None:  # no arrival times (offline use): no wall clock, so no timeout either
            self.arrivals.append((min(s.samples for s in self.speakers), time.monotonic()))
            return
        now = t
        me.last_arrival, me.late = now, False
        if self.started is None:
            self.started = now
        silent_for = now - (other.last_arrival if other.last_arrival is not None else self.started)
        lag = me.samples - other.samples
        if lag > 0 and (other.late or silent_for > self.settings.speaker_timeout):
            if not other.late:
                self.events.append(
                    Event(
                        "input_late",
                        other.samples / SAMPLE_RATE,
                        1 - speaker,
                        f"no audio for {silent_for:.1f} s: treated as silence until it returns",
                    )
                )
            other.late = True
            other.push(np.zeros(lag, np.float32))  # level with the present
        self.arrivals.append((min(s.samples for s in self.speakers), now))

    def control(self, speaker: int, at_time: float, action: str | None = None, style: str | None = None) -> None:
        """Change a person's action label or style from ``at_time`` (s); applied at the first frame at or after it."""
        if not np.isfinite(at_time) or at_time < 0:
            raise ValueError(f"control time must be a finite number of seconds >= 0, got {at_time}")
        frame = max(int(np.ceil(at_time * FPS - 1e-9)), self.committed)
        if action is not None:
            if action not in ACTIONS:
                raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
            self._queue_control(frame, speaker, "action", ACTIONS.index(action))
        if style is not None:
            self._queue_control(frame, speaker, "style", self._style_id(style, self.model.bundle.styles))

    def _queue_control(self, frame: int, speaker: int, kind: str, value: int) -> None:
        if len(self.pending_controls) >= MAX_PENDING_CONTROLS:
            raise TooManyControls(f"{MAX_PENDING_CONTROLS} controls are already waiting for their frames; send them "
                                  "closer to their time")  # fmt: skip
        self._control_seq += 1  # arrival order decides among controls of the same frame
        heapq.heappush(self.pending_controls, (frame, self._control_seq, speaker, kind, value))

    def ready(self) -> bool:
        s = self.settings
        need = self.committed + s.block + s.lookahead
        available = min(sp.n_frames for sp in self.speakers)
        return self.committed < (self.total if self.total is not None else available - s.lookahead) and (
            self.total is not None or available >= need
        )

    def step(self) -> Frames | None:
        """Commit the next block if its audio (and lookahead) is known; None otherwise."""
        if not self.ready():
            return None
        t0 = time.perf_counter()
        s = self.settings
        block = s.block if self.total is None else min(s.block, self.total - self.committed)
        frames = self._run_block(block)
        self._account(time.perf_counter() - t0, block)
        return frames

    def flush(self) -> Frames | None:
        """End of audio: append silence so mouths close, commit every remaining frame (ceil(duration x fps))."""
        if self.total is None:
            for sp in self.speakers:
                sp.frames.extend(sp.mel.flush())
            longest = max(sp.samples for sp in self.speakers)
            self.total = int(np.ceil(longest * FPS / SAMPLE_RATE - 1e-9))
        out = []
        while (f := self.step()) is not None:
            out.append(f)
        return Frames.concat(out) if out else None

    def drain_events(self) -> list[Event]:
        events, self.events = self.events, []
        return events

    # -- one block -----------------------------------------------------------------------------------------
    def _style_id(self, name: str, styles: list[str]) -> int:
        if name == "":
            return len(styles)  # the "no style" embedding (trained by style dropout)
        if name not in styles:
            raise ValueError(f"unknown style {name!r}; the model has {', '.join(styles) or 'none'}")
        return styles.index(name)

    def _apply_controls(self, start: int, stop: int) -> np.ndarray:
        """Per-frame action ids (stop - start, 2) for new frames, applying pending controls in time order (arrival
        order within a frame)."""
        actions = np.empty((stop - start, 2), np.int64)
        pending = self.pending_controls
        for i in range(start, stop):
            while pending and pending[0][0] <= i:  # a heap: O(log n) per control, nothing scanned per frame
                _, _, who, kind, value = heapq.heappop(pending)
                if kind == "action":
                    self.action_ids[who] = value
                else:
                    self.style_ids[who] = value
                self.events.append(Event("control_applied", i / FPS, who, f"{kind} -> {value}"))
            actions[i - start] = self.action_ids
        return actions

    def _run_block(self, block: int) -> Frames:
        s, m = self.settings, self.model
        c0 = self.committed
        n_ctx = self.hist["lower"].shape[0]
        start = c0 - s.context  # window [start, start + W); frames before 0 are silent padding
        w = s.window
        known = slice(s.context - n_ctx, s.context)  # rows of the window holding committed frames
        new = slice(s.context, s.context + block)
        mel = [m.normalise("mel", sp.window(start, start + w))[None] for sp in self.speakers]
        future_actions = self._apply_controls(c0, start + w)
        past = self.hist_actions[-s.context :] if s.context else self.hist_actions[:0]
        actions = np.concatenate([np.zeros((s.context - len(past), 2), np.int64) + self.action_ids, past,
                                  future_actions])[None]  # fmt: skip
        mask = np.zeros((1, w, 1), np.float32)
        mask[0, known] = 1.0
        placement = relative_placement(*self._state_at(start))[None]  # as in training: at the window's first frame
        cond = {"mel_a": mel[0], "mel_b": mel[1], "actions": actions, "placement": placement, "context_mask": mask}

        def context(name: str) -> np.ndarray:
            ctx = np.zeros((1, w, m.dims[name]), np.float32)
            ctx[0, known] = self.hist[name]
            return ctx

        lower = self._body("lower", m.sample("body_lower", self._noise("body_lower", c0),
                                             dict(cond, context=context("lower")), s.steps))  # fmt: skip
        upper = self._body("upper", m.sample("body_upper", self._noise("body_upper", c0),
                                             dict(cond, context=context("upper"), lower=lower), s.steps))  # fmt: skip

        # Root trajectories over the window's new and lookahead frames, from the current committed state.
        body = self.poser.split(m.denormalise("lower", lower[0]), m.denormalise("upper", upper[0]))  # (W, Dp) x 2
        ahead = slice(s.context, w)
        hold = [self._hold(p, c0, future_actions[:, p]) if s.hold_root else None for p in (0, 1)]
        tracks = [self.poser.integrate(body[p][ahead], self.root[p], hold[p]) for p in (0, 1)]
        fa, fb = facing_flags(tracks[0][0], tracks[0][1], tracks[1][0], tracks[1][1])
        past = [np.asarray(self.root_hist[p], np.float64).reshape(-1, 3) for p in (0, 1)]
        pa, pb = (facing_flags(past[0][:, :2], past[0][:, 2], past[1][:, :2], past[1][:, 2]) if len(past[0])
                  else (np.zeros(0, bool), np.zeros(0, bool)))  # fmt: skip
        facing = np.ones((2, w, 1), np.float32)  # unknown past (stream start): assume facing
        facing[0, s.context - len(pa) : s.context, 0], facing[1, s.context - len(pb) : s.context, 0] = pa, pb
        facing[0, ahead, 0], facing[1, ahead, 0] = fa, fb

        face_ctx = np.zeros((2, w, m.dims["face"]), np.float32)
        face_ctx[:, known] = self.hist_face
        face_mask = np.repeat(mask, 2, axis=0)
        if 0 <= s.face_known < n_ctx:  # only the newest committed face frames are known; older ones: audio only
            face_mask[:, : s.context - s.face_known] = 0.0
            face_ctx *= face_mask
        noise = self.face_noise.window(start, w) if s.face_noise == "frame" else self.noise["face"]
        faces = m.sample("face", noise, {
            "mel_self": np.concatenate(mel), "mel_partner": np.concatenate(mel[::-1]),
            "style": np.array(self.style_ids, np.int64), "facing": facing, "context": face_ctx,
            "context_mask": face_mask}, s.steps)  # fmt: skip
        if n_ctx:  # seam: where the new window disagrees with the last committed frame, ease the difference out
            gap = self.hist_face[:, -1:] - faces[:, s.context - 1 : s.context]  # (2, 1, 52), 0 if it was known
            faces[:, new] += gap * SEAM_DECAY ** np.arange(1, block + 1)[None, :, None]

        # Commit the block.
        keep = s.context
        self.hist["lower"] = np.concatenate([self.hist["lower"], lower[0, new]])[-keep:] if keep else self.hist["lower"]
        self.hist["upper"] = np.concatenate([self.hist["upper"], upper[0, new]])[-keep:] if keep else self.hist["upper"]
        self.hist_face = np.concatenate([self.hist_face, faces[:, new]], axis=1)[:, -keep:] if keep else self.hist_face
        self.hist_actions = np.concatenate([self.hist_actions, future_actions[:block]])[-max(keep, 1) :]
        energy = [sp.window(c0, c0 + block).mean(axis=1) for sp in self.speakers]  # (block,) loudness per person
        speaking, voiced = zip(*(self._speaking(p, c0, energy[p]) for p in (0, 1)), strict=True)
        weights, heads = [], []
        for p in (0, 1):
            xz, yaw, states = tracks[p]
            self.root[p] = states[block - 1]
            for label, frame in zip(future_actions[:block, p], range(c0, c0 + block), strict=True):
                if label != self.label_state[p][0]:
                    self.label_state[p] = (int(label), frame)
            self.root_hist[p].extend(zip(xz[:block, 0], xz[:block, 1], yaw[:block], strict=True))
            w, head = np.clip(m.denormalise("face", faces[p, new]), 0.0, 1.0), np.zeros((block, 3))
            if s.alive:  # blinks, gaze, brows, nods, listener reactions (runtime.engine.alive)
                w, head = self.alive[p].step(c0, w, speaking[p], speaking[1 - p], energy[p])
            weights.append(w)
            heads.append(head)
        # Both people posed in one call (per-frame work: one pass over 2 x block frames costs about one person's).
        posed = self.poser.pose(np.concatenate([body[p][new] for p in (0, 1)]),
                                np.concatenate([tracks[p][0][:block] for p in (0, 1)]),
                                np.concatenate([tracks[p][1][:block] for p in (0, 1)]),
                                np.concatenate(weights), np.concatenate(heads))  # fmt: skip
        people = [PersonFrames(weights[p], *(x[p * block : (p + 1) * block] for x in (posed.rotations,
                               posed.root_position, posed.joint_rotations)), future_actions[:block, p].astype(np.int8),
                               voiced[p]) for p in (0, 1)]  # fmt: skip
        self.committed += block
        for sp in self.speakers:
            sp.drop_before(self.committed - s.context - 1)
        index = np.arange(c0, c0 + block, dtype=np.int64)
        return Frames(index, index / FPS, (people[0], people[1]), np.full(block, time.monotonic()))

    def _hold(self, p: int, start: int, labels: np.ndarray) -> np.ndarray:
        """(N,) bool: frames from ``start`` whose root is held (not walking, and settled: HOLD_AFTER frames past the
        last change of action, so sitting down or getting up can move the hips)."""
        prev, changed = self.label_state[p]
        frames = np.arange(start, start + len(labels))
        last = np.empty(len(labels), np.int64)
        for i, label in enumerate(labels):
            if label != prev:
                prev, changed = int(label), int(frames[i])
            last[i] = changed
        return (labels != ACTIONS.index("walk")) & (frames - last >= HOLD_AFTER)

    def _state_at(self, frame: int) -> tuple[RootState, RootState]:
        """Both people's root state at a committed ``frame`` (before the stream: the initial placement)."""
        if frame < 0 or not self.root_hist[0]:
            return self.initial_root[0], self.initial_root[1]
        back = self.committed - frame  # 1 = the newest committed frame
        states = []
        for p in (0, 1):
            x, z, yaw = self.root_hist[p][max(-len(self.root_hist[p]), -back)]
            states.append(RootState(x, z, yaw))
        return states[0], states[1]

    def _noise(self, name: str, frame: int) -> np.ndarray:
        """A body graph's noise: fresh per window (seeded by its first new frame), or the session's fixed draw."""
        mode = self.settings.body_noise
        if mode == "fixed" or (mode == "fresh-upper" and name == "body_lower"):
            return self.noise[name]
        return window_noise(self.settings.seed, name, frame, self.noise[name].shape)

    def _body(self, name: str, x: np.ndarray) -> np.ndarray:
        """Gaussian smoothing over the window's frames (it only ever sees frames the window already holds, so it adds
        no latency), then the seam with the committed frames (``runtime.engine.seams.join``)."""
        s = self.settings
        if s.body_smooth > 0:
            x = gaussian_filter1d(x, s.body_smooth, axis=1, mode="nearest", truncate=2.0)
        return join(self.hist[name], x, s.context, s.body_seam)

    def _speaking(self, p: int, start: int, energy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(detector, debounced) voice activity per frame (``SpeakerAudio.voice_activity``); the debounced state's
        changes become speech start/end events."""
        detector, voiced, changes = self.speakers[p].voice_activity(energy)
        for i, on in changes:
            self.events.append(Event("speech_start" if on else "speech_end", (start + i) / FPS, p))
        return detector, voiced

    # -- keeping up ----------------------------------------------------------------------------------------
    def _account(self, seconds: float, block: int) -> None:
        # Latency: from the arrival of the audio that completed this block's lookahead to now.
        need = int(np.ceil((self.committed + self.settings.lookahead) * SAMPLE_RATE / FPS))
        while len(self.arrivals) > 1 and self.arrivals[1][0] <= need:
            self.arrivals.popleft()
        if self.arrivals and self.total is None:
            self.latencies.append(time.monotonic() - self.arrivals[0][1])
        if not self.settings.degrade or self.total is not None:
            return
        self.slow_blocks = self.slow_blocks + 1 if seconds > 0.9 * block / FPS else 0
        if self.slow_blocks >= DEGRADE_AFTER:
            self.slow_blocks = 0
            s = self.settings
            if s.steps > 1:
                new = replace(s, steps=max(1, s.steps // 2))
            elif s.block < 30:
                new = replace(s, block=min(30, s.block * 2))
            else:
                return
            self._resize(new)
            self.events.append(Event("degraded", self.committed / FPS, None,
                                     f"compute slower than real time: steps {s.steps} -> {new.steps}, "
                                     f"block {s.block} -> {new.block}"))  # fmt: skip

    def _resize(self, new: SessionSettings) -> None:
        """Adopt new settings; the noise is extended deterministically if the window grew."""
        w_old, w_new = self.settings.window, new.window
        if w_new > w_old:
            rng = np.random.default_rng(self.settings.seed + 1)
            for k, v in self.noise.items():
                extra = rng.standard_normal((v.shape[0], w_new - w_old, v.shape[2])).astype(np.float32)
                self.noise[k] = np.concatenate([v, extra], axis=1)
        self.settings = new
