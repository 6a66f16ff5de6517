"""Recorders: a session as files a user opens in Blender, Unreal or a text editor (DESIGN section 9).

``RecordingSink`` buffers the stream and, on ``close()``, writes one folder:

    A.bvh, B.bvh            body per person: the bundle's skeleton, each joint's own Euler channel order, 30 fps
    A_face.csv, B_face.csv  face per person: Live Link Face CSV (52 ARKit weights + head/eye rotations, radians)
    A.wav, B.wav            the input audio per person, 16 kHz mono PCM16 (frame i = sample i * 16000 / 30)
    session.json            settings, model, frame count, latency p50/p95/max, events, speech and action spans
    contact_sheet.png       both stick figures at 6 moments + jawOpen/mouthClose/mouthSmile/eyeBlink and speech

Choices where the formats leave room:
- BVH units are **centimetres** (``BVH_SCALE`` = 100 per metre), as mocap and the InterAct release are written:
  Unreal and MotionBuilder read them at size; Blender's importer wants Scale 0.01 (docs/engines.md). The root
  joint's position channels carry ``root_position`` (converted to the joint's local frame, so a static joint above
  the hips is allowed); every other joint's position channels hold its OFFSET. Rotations are the streamed local
  quaternions written in each joint's Euler order (``runtime.motion.kinematics.write_rotations``), 6 decimals of
  a degree.
- Live Link CSV timecodes start at 00:00:00:00, so CSV time = audio time = BVH time (frame i at i / 30 s).
- Every file of a session starts at frame 0 of the stream. A stream that started later than frame 0 (a client
  joining late) is written from its first frame; session.json says which.

Memory: the buffer holds ~1.1 KB per person-frame and 2 bytes per audio sample: about 0.5 GB per hour of session.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from runtime.constants import ACTIONS, SAMPLE_RATE, SPEAKERS
from runtime.engine.frames import Frames, PersonFrames, StreamInfo
from runtime.formats.bvh import write_bvh
from runtime.formats.livelink_csv import write_livelink_csv
from runtime.formats.wav import write_wav
from runtime.motion.clip import BvhClip
from runtime.motion.kinematics import forward_kinematics, positions_from_values, write_rotations
from runtime.motion.skeleton import POSITION_CHANNELS, Skeleton, root_joint

log = logging.getLogger(__name__)

BVH_SCALE = 100.0  # BVH units per metre: centimetres, like mocap
BVH_DECIMALS = 6  # degrees and cm: 1e-6 deg, 1e-8 m
PCM16_SCALE = 32768.0  # float [-1, 1) <-> int16, libsndfile's convention (so the WAV holds exactly these numbers)


def _position_columns(skeleton: Skeleton, j: int) -> list[int]:
    """Value columns of joint j's position channels, in X, Y, Z order (those it has)."""
    start = int(skeleton.channel_offsets()[j])
    return [start + skeleton.channels[j].index(c) for c in POSITION_CHANNELS if c in skeleton.channels[j]]


def person_to_bvh(skeleton: Skeleton, person: PersonFrames, fps: float, scale: float = BVH_SCALE) -> BvhClip:
    """One person's streamed frames as a BVH clip of ``skeleton`` (metres) in units of ``1 / scale`` m.

    Rotations: ``person.joint_rotations`` (N, J, 4) local (w, x, y, z), each joint in its own Euler order. Root:
    the position channels of ``root_joint`` (or of its nearest ancestor with position channels) are set so that
    forward kinematics puts the root joint at ``person.root_position`` (N, 3) metres.
    """
    q = np.asarray(person.joint_rotations, dtype=np.float64)
    n = len(q)
    if q.shape[1:] != (skeleton.n_joints, 4):
        raise ValueError(f"joint_rotations: expected (frames, {skeleton.n_joints}, 4) for this skeleton, got {q.shape}")
    r = root_joint(skeleton)
    carrier = r
    while carrier >= 0 and len(_position_columns(skeleton, carrier)) < 3:
        carrier = skeleton.parents[carrier]
    if carrier < 0:
        raise ValueError(f"no joint at or above the root {skeleton.names[r]!r} has X/Y/Z position channels")
    sk = skeleton.scaled(scale)
    values = np.zeros((n, sk.n_channels))
    starts = sk.channel_offsets()
    for j, chans in enumerate(sk.channels):  # position channels hold the OFFSET (the carrier's is set below)
        for k, ch in enumerate(chans):
            if ch in POSITION_CHANNELS:
                values[:, starts[j] + k] = sk.offsets[j][POSITION_CHANNELS.index(ch)]
    quats = q[..., [1, 2, 3, 0]]  # (N, J, 4) x, y, z, w
    norms = np.linalg.norm(quats, axis=-1, keepdims=True)
    if np.any(norms < 0.5) or not np.all(np.isfinite(quats)):
        raise ValueError("joint_rotations contain zero-length or non-finite quaternions")
    quats = quats / norms
    write_rotations(sk, values, quats)
    # World position of the root is affine in the carrier's translation t: world = world(t=0) + R_parent t.
    cols = _position_columns(sk, carrier)
    values[:, cols] = 0.0
    rot = Rotation.from_quat(quats.reshape(-1, 4))
    pose = forward_kinematics(sk, rot, positions_from_values(sk, values))
    parent = sk.parents[carrier]
    root = np.asarray(person.root_position, dtype=np.float64) * scale  # (N, 3) in BVH units
    delta = root - pose.positions[:, r]
    values[:, cols] = delta if parent < 0 else np.einsum("fba,fb->fa", pose.rotations[:, parent], delta)
    return BvhClip(sk, 1.0 / fps, values)


def segments(values: np.ndarray) -> list[dict]:
    """Runs of equal values of a (N,) array -> [{"start": frame, "stop": frame (exclusive), "value": v}]."""
    values = np.asarray(values)
    if not len(values):
        return []
    edges = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts, stops = np.r_[0, edges], np.r_[edges, len(values)]
    return [{"start": int(a), "stop": int(b), "value": values[a].item()} for a, b in zip(starts, stops, strict=True)]


def latency_summary(latencies: Iterable[float]) -> dict:
    """Seconds -> {"count", "p50_ms", "p95_ms", "max_ms"} (None when there are none, e.g. a replay with --fast)."""
    x = np.asarray(list(latencies), dtype=np.float64) * 1000.0  # ms
    if not len(x):
        return {"count": 0, "p50_ms": None, "p95_ms": None, "max_ms": None}
    return {"count": int(len(x)), "p50_ms": round(float(np.percentile(x, 50)), 2),
            "p95_ms": round(float(np.percentile(x, 95)), 2), "max_ms": round(float(x.max()), 2)}  # fmt: skip


class RecordingSink:
    """Buffers a session and writes it as a folder on ``close()`` (module docstring lists the files).

    Besides the ``Sink`` protocol: ``add_audio(speaker, pcm)`` for the input (16 kHz mono float32),
    ``add_events(events)``, ``add_latencies(seconds)`` and ``meta`` (a dict copied into session.json).
    """

    def __init__(self, folder: str | Path, contact_sheet: bool = True, meta: dict | None = None) -> None:
        self.folder = Path(folder)
        self.contact_sheet = contact_sheet
        self.meta: dict = dict(meta or {})
        self.info: StreamInfo | None = None
        self.parts: list[Frames] = []
        self.audio: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])  # int16 chunks per speaker
        self.events: list = []
        self.latencies: list[float] = []
        self.paths: dict[str, Path] = {}
        self.filled = 0  # frames added by holding the previous one over a gap
        self.closed = False

    # -- the Sink protocol ---------------------------------------------------------------------------------
    def open(self, info: StreamInfo) -> None:
        self.info = info

    def write(self, frames: Frames) -> None:
        """Frames in order. A gap (frames the server dropped for a slow reader) is filled by holding the last
        frame, so every file keeps one row per 1/30 s; session.json counts the filled frames."""
        if self.info is None:
            raise RuntimeError("RecordingSink.write before open")
        if not len(frames):
            return
        if self.parts:
            expected = int(self.parts[-1].index[-1]) + 1
            first = int(frames.index[0])
            if first < expected:
                raise ValueError(f"RecordingSink: frame {first} after frame {expected - 1}; frames must come in order")
            if first > expected:
                log.warning("recording: frames %d-%d missing, holding frame %d", expected, first - 1, expected - 1)
                self.filled += first - expected
                self.parts.append(_hold(self.parts[-1], first - expected, self.info.fps))
        self.parts.append(frames)

    def close(self) -> Path:
        """Write the folder (once); returns it."""
        if self.closed:
            return self.folder
        self.closed = True
        if self.info is None:
            raise RuntimeError("RecordingSink.close before open: nothing to record")
        self.folder.mkdir(parents=True, exist_ok=True)
        frames = Frames.concat(self.parts) if self.parts else None
        for p, name in enumerate(SPEAKERS):
            if frames is not None:
                person = frames.people[p]
                self.paths[f"{name}.bvh"] = self.folder / f"{name}.bvh"
                write_bvh(self.paths[f"{name}.bvh"], person_to_bvh(self.info.skeleton, person, self.info.fps),
                          precision=BVH_DECIMALS)  # fmt: skip
                self.paths[f"{name}_face.csv"] = self.folder / f"{name}_face.csv"
                write_livelink_csv(self.paths[f"{name}_face.csv"], person.blendshapes, person.rotations,
                                   fps=int(round(self.info.fps)))  # fmt: skip
            if self.audio[p]:
                self.paths[f"{name}.wav"] = self.folder / f"{name}.wav"
                pcm = np.concatenate(self.audio[p]).astype(np.float32) / PCM16_SCALE  # exact in PCM16
                write_wav(self.paths[f"{name}.wav"], pcm, SAMPLE_RATE, subtype="PCM_16")
        if frames is not None and self.contact_sheet:
            from runtime.sinks.contact_sheet import write_contact_sheet

            try:
                write_contact_sheet(self.folder / "contact_sheet.png", self.info, frames)
                self.paths["contact_sheet.png"] = self.folder / "contact_sheet.png"
            except RuntimeError as e:  # matplotlib missing: every other file is still worth having
                log.warning("no contact sheet: %s", e)
        self.paths["session.json"] = self.folder / "session.json"
        self.paths["session.json"].write_text(_dumps(self._session(frames)) + "\n", encoding="utf-8")
        log.info("recording written to %s (%s)", self.folder, ", ".join(sorted(self.paths)))
        return self.folder

    # -- extra inputs --------------------------------------------------------------------------------------
    def add_audio(self, speaker: int, pcm: np.ndarray) -> None:
        """Input audio of ``speaker`` (0 = A, 1 = B): 16 kHz mono float samples in [-1, 1], in order."""
        if speaker not in (0, 1):
            raise ValueError(f"speaker must be 0 (A) or 1 (B), got {speaker}")
        x = np.asarray(pcm, dtype=np.float32).reshape(-1) * PCM16_SCALE
        self.audio[speaker].append(np.clip(np.round(x), -32768, 32767).astype(np.int16))

    def add_events(self, events: Iterable) -> None:
        self.events.extend(events)

    def add_latencies(self, seconds: Iterable[float]) -> None:
        self.latencies.extend(float(s) for s in seconds)

    # -- session.json --------------------------------------------------------------------------------------
    def _session(self, frames: Frames | None) -> dict:
        info = self.info
        assert info is not None
        n = len(frames) if frames is not None else 0
        people = {}
        for p, name in enumerate(SPEAKERS):
            people[name] = {
                "style": info.styles[p],
                "bvh": f"{name}.bvh" if n else None,
                "livelink_csv": f"{name}_face.csv" if n else None,
                "wav": f"{name}.wav" if self.audio[p] else None,
                "audio_s": round(sum(len(c) for c in self.audio[p]) / SAMPLE_RATE, 4),
                **(_activity(frames, p, info.fps) if frames is not None else {"speech_s": [], "actions": []}),
            }
        return {
            "session_id": info.session_id,
            "written": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "model": info.model,
            "fps": info.fps,
            "frames": n,
            "first_frame": int(frames.index[0]) if n else None,
            "frames_filled": self.filled,
            "duration_s": round(n / info.fps, 4),
            "units": {"bvh": "centimetres", "root_position": "metres, right-handed, Y up",
                      "rotations": "radians (Live Link CSV), degrees (BVH)", "time": "seconds of session audio"},
            "settings": {"block": info.block, "lookahead": info.lookahead, "context": info.context,
                         "steps": info.steps, "styles": list(info.styles),
                         "algorithmic_latency_ms": round(info.algorithmic_latency * 1000.0, 2)},
            "latency": latency_summary(self.latencies),
            "people": people,
            "events": [_event_dict(e) for e in self.events],
            "skeleton": {"joints": len(info.skeleton.names), "root": info.skeleton.names[root_joint(info.skeleton)]},
            "files": sorted(p.name for p in self.paths.values()),
            **({"meta": self.meta} if self.meta else {}),
        }  # fmt: skip


def _activity(frames: Frames, p: int, fps: float) -> dict:
    """Person ``p``'s speech spans [start, stop) and action spans, in seconds of session audio."""
    person = frames.people[p]
    first = int(frames.index[0])

    def span(s: dict) -> list[float]:
        return [round((first + s["start"]) / fps, 4), round((first + s["stop"]) / fps, 4)]

    return {
        "speech_s": [span(s) for s in segments(person.speaking) if s["value"]],
        "actions": [{"action": ACTIONS[s["value"]], "span_s": span(s)} for s in segments(person.action)],
    }


_NUMBER_LIST = re.compile(r"\[\s+([-+0-9.eE,\s]+?)\s+\]")


def _dumps(d: dict) -> str:
    """Indented JSON with short number lists on one line (``[0.5, 1.2]``), so session.json reads easily."""
    text = json.dumps(d, indent=2)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)


def _hold(last: Frames, count: int, fps: float) -> Frames:
    """``count`` frames after ``last`` repeating its final frame (new indices and time codes)."""
    one = last[len(last) - 1 :]
    index = np.arange(int(one.index[0]) + 1, int(one.index[0]) + 1 + count, dtype=np.int64)
    fields = [f.name for f in dataclasses.fields(PersonFrames)]
    people = tuple(PersonFrames(*(np.repeat(getattr(p, f), count, axis=0) for f in fields)) for p in one.people)
    return Frames(index, index / fps, people)


def _event_dict(event: object) -> dict:
    d = dataclasses.asdict(event) if dataclasses.is_dataclass(event) else dict(vars(event))
    if d.get("speaker") in (0, 1):
        d["speaker"] = SPEAKERS[d["speaker"]]
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def default_folder(root: str | Path = "recordings") -> Path:
    """``recordings/<YYYYmmdd-HHMMSS>`` (a suffix -2, -3, ... if it exists already)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = Path(root) / stamp
    k = 2
    while folder.exists():
        folder = Path(root) / f"{stamp}-{k}"
        k += 1
    return folder
