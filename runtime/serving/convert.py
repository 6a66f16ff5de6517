"""Protos <-> domain objects, at the edge of the gRPC API (DESIGN 8, STYLE 8). Shared by the server and the client.

Everything that crosses the wire is converted here and nowhere else (audio chunks: ``runtime.serving.audio_codec``):

- client -> server: ``SessionOptions`` <-> ``SessionConfig``, ``ControlChange`` <-> ``Control``. The
  ``*_from_proto`` readers validate and raise ``InvalidArgument`` whose message names the field
  (``config.audio.sample_rate: ...``), which the server turns into an INVALID_ARGUMENT status.
- server -> client: ``StreamInfo`` <-> ``StreamHeader``, ``Frames`` <-> ``FrameBatch``, ``Event`` <-> ``Event``,
  ``SessionStatus`` <-> ``Status``.

Speakers are 0 (A) and 1 (B) inside the system and ``SPEAKER_A`` / ``SPEAKER_B`` on the wire; actions are the names
of ``runtime.constants.ACTIONS`` inside and ``ACTION_*`` on the wire.
"""

from __future__ import annotations

import json
import math

import numpy as np

from runtime.constants import ACTIONS, DEFAULT_ACTION, FPS, MAX_INPUT_RATE, MIN_INPUT_RATE, SAMPLE_RATE
from runtime.engine.frames import Frames, PersonFrames, StreamInfo
from runtime.engine.settings import Event, SessionSettings
from runtime.formats.arkit import ARKIT_NAMES, LIVELINK_ROTATIONS
from runtime.model.model import Model
from runtime.motion.skeleton import POSITION_CHANNELS, Skeleton
from runtime.serving.api import AudioFormat, ControlChange, ModelInfo, Resume, SessionOptions, SessionStatus
from runtime.serving.protos.interact.v1 import interact_pb2 as pb

UNITS = "metres, radians, right-handed Y-up, quaternion wxyz"
MAX_CONTROL_TIME = 86_400.0  # s: a control more than a day into the session is a client bug
MAX_RESUME_CONTEXT = 900  # frames (30 s) of re-sent audio a resumed session may compute before its first frame

SAMPLE_FORMATS = {"s16": pb.SAMPLE_FORMAT_PCM_S16LE, "f32": pb.SAMPLE_FORMAT_F32LE}
LAYOUTS = {"mono": pb.CHANNEL_LAYOUT_MONO_PER_SPEAKER, "stereo": pb.CHANNEL_LAYOUT_STEREO}
_SPEAKERS = (pb.SPEAKER_A, pb.SPEAKER_B)  # index = speaker 0 (A), 1 (B)
_EVENTS = {
    "speech_start": pb.EVENT_TYPE_SPEECH_START,
    "speech_end": pb.EVENT_TYPE_SPEECH_END,
    "input_late": pb.EVENT_TYPE_INPUT_LATE,
    "frames_dropped": pb.EVENT_TYPE_FRAMES_DROPPED,
    "degraded": pb.EVENT_TYPE_DEGRADED,
    "control_applied": pb.EVENT_TYPE_CONTROL_APPLIED,
    "draining": pb.EVENT_TYPE_DRAINING,
}
_EVENT_KINDS = {v: k for k, v in _EVENTS.items()}


class InvalidArgument(ValueError):
    """A client message that cannot be used; the message names the field, the value and what was expected."""


# ---------------------------------------------------------------------------------------------- small helpers
def enum_name(enum, value: int) -> str:
    try:
        return enum.Name(value)
    except ValueError:
        return f"unknown value {value}"


def speaker_to_proto(speaker: int | None) -> int:
    return pb.SPEAKER_UNSPECIFIED if speaker is None else _SPEAKERS[speaker]


def speaker_from_proto(value: int, where: str) -> int:
    if value not in _SPEAKERS:
        raise InvalidArgument(f"{where}: {enum_name(pb.Speaker, value)}; expected SPEAKER_A or SPEAKER_B")
    return _SPEAKERS.index(value)


def action_to_proto(action: str) -> int:
    return pb.Action.Value(f"ACTION_{action.upper()}")


def action_from_proto(value: int, where: str, default: str | None) -> str | None:
    """An action name; ACTION_UNSPECIFIED gives ``default``."""
    if value == pb.ACTION_UNSPECIFIED:
        return default
    name = enum_name(pb.Action, value)
    action = name.removeprefix("ACTION_").lower()
    if action not in ACTIONS:
        raise InvalidArgument(f"{where}: {name}; expected one of {', '.join(action_to_proto_name(a) for a in ACTIONS)}")
    return action


def action_to_proto_name(action: str) -> str:
    return f"ACTION_{action.upper()}"


def _style(name: str, styles: list[str], where: str) -> str:
    if name and name not in styles:
        raise InvalidArgument(f"{where}: unknown style {name!r}; the model has {', '.join(styles) or 'none'}")
    return name


# ---------------------------------------------------------------------------------------------- session config
def options_to_proto(o: SessionOptions) -> pb.SessionConfig:
    cfg = pb.SessionConfig(
        audio=pb.AudioFormat(sample_format=SAMPLE_FORMATS[o.audio.sample_format], sample_rate=o.audio.sample_rate,
                             layout=LAYOUTS[o.audio.layout]),
        person_a=pb.PersonConfig(style=o.styles[0], action=action_to_proto(o.actions[0])),
        person_b=pb.PersonConfig(style=o.styles[1], action=action_to_proto(o.actions[1])),
        settings=pb.StreamSettings(block_frames=o.block, steps=o.steps, seed=o.seed),
        outputs=pb.Outputs(face=o.face, body=o.body),
    )  # fmt: skip
    if o.lookahead is not None:
        cfg.settings.lookahead_frames = o.lookahead
    if o.alive is not None:
        cfg.settings.alive = o.alive
    if o.placement is not None:
        cfg.placement.CopyFrom(pb.Placement(x=o.placement[0], z=o.placement[1], yaw=o.placement[2]))
    if o.resume is not None:
        r = o.resume
        cfg.resume.CopyFrom(pb.Resume(start_frame=r.start_frame, first_frame=r.first_frame,
                                      previous_session_id=r.previous_session_id))  # fmt: skip
        if r.roots is not None:
            for field, (x, z, yaw) in zip(("root_a", "root_b"), r.roots, strict=True):
                getattr(cfg.resume, field).CopyFrom(pb.Placement(x=x, z=z, yaw=yaw))
    return cfg


def _ground(p: pb.Placement, where: str) -> tuple[float, float, float]:
    """A placement's (x, z, yaw), checked: finite metres within 50, radians within one turn."""
    for name, value, limit in (("x", p.x, 50.0), ("z", p.z, 50.0), ("yaw", p.yaw, 2 * math.pi)):
        if not math.isfinite(value) or abs(value) > limit:
            unit = "radians" if name == "yaw" else "metres"
            raise InvalidArgument(f"{where}.{name}: {value}; expected finite {unit} within +-{limit:g}")
    return float(p.x), float(p.z), float(p.yaw)


def resume_from_proto(r: pb.Resume, sample_rate: int) -> Resume:
    if (r.start_frame * sample_rate) % round(FPS):
        raise InvalidArgument(f"config.resume.start_frame: {r.start_frame} frames is not a whole number of samples at "
                              f"{sample_rate} Hz; use a multiple of 3 frames")  # fmt: skip
    if not r.start_frame <= r.first_frame <= r.start_frame + MAX_RESUME_CONTEXT:
        raise InvalidArgument(f"config.resume.first_frame: {r.first_frame}; expected start_frame ({r.start_frame}) "
                              f"to start_frame + {MAX_RESUME_CONTEXT}")  # fmt: skip
    if r.HasField("root_a") != r.HasField("root_b"):
        raise InvalidArgument("config.resume: root_a and root_b go together (both or neither)")
    roots = None
    if r.HasField("root_a"):
        roots = (_ground(r.root_a, "config.resume.root_a"), _ground(r.root_b, "config.resume.root_b"))
    return Resume(int(r.start_frame), int(r.first_frame), roots, r.previous_session_id[:64])


def options_from_proto(cfg: pb.SessionConfig, styles: list[str]) -> SessionOptions:
    """Validate a ``SessionConfig`` against the protocol and the model's ``styles``."""
    if not cfg.HasField("audio"):
        raise InvalidArgument("config.audio: missing; the audio format is required")
    a = cfg.audio
    formats = {v: k for k, v in SAMPLE_FORMATS.items()}
    layouts = {v: k for k, v in LAYOUTS.items()}
    if a.sample_format not in formats:
        raise InvalidArgument(f"config.audio.sample_format: {enum_name(pb.SampleFormat, a.sample_format)}; "
                              "expected SAMPLE_FORMAT_PCM_S16LE or SAMPLE_FORMAT_F32LE")  # fmt: skip
    if a.layout not in layouts:
        raise InvalidArgument(f"config.audio.layout: {enum_name(pb.ChannelLayout, a.layout)}; "
                              "expected CHANNEL_LAYOUT_MONO_PER_SPEAKER or CHANNEL_LAYOUT_STEREO")  # fmt: skip
    if not MIN_INPUT_RATE <= a.sample_rate <= MAX_INPUT_RATE:
        raise InvalidArgument(f"config.audio.sample_rate: {a.sample_rate} Hz; expected {MIN_INPUT_RATE}-"
                              f"{MAX_INPUT_RATE} Hz")  # fmt: skip
    people = (cfg.person_a, cfg.person_b)
    where = ("config.person_a", "config.person_b")
    placement = _ground(cfg.placement, "config.placement") if cfg.HasField("placement") else None
    s = cfg.settings
    return SessionOptions(
        audio=AudioFormat(formats[a.sample_format], int(a.sample_rate), layouts[a.layout]),
        styles=tuple(_style(p.style, styles, f"{w}.style") for p, w in zip(people, where, strict=True)),
        actions=tuple(action_from_proto(p.action, f"{w}.action", DEFAULT_ACTION) for p, w in zip(people, where,
                                                                                                   strict=True)),
        placement=placement, block=s.block_frames, steps=s.steps, seed=s.seed,
        lookahead=s.lookahead_frames if s.HasField("lookahead_frames") else None,
        alive=s.alive if s.HasField("alive") else None,
        face=cfg.outputs.face or not cfg.outputs.body, body=cfg.outputs.body or not cfg.outputs.face,
        resume=resume_from_proto(cfg.resume, a.sample_rate) if cfg.HasField("resume") else None,
    )  # fmt: skip


def session_settings(o: SessionOptions, defaults: dict, seed: int) -> SessionSettings:
    """Engine settings for options ``o``: zeros take the model's ``defaults``; ``seed`` replaces a zero seed."""
    settings = SessionSettings.from_bundle(
        defaults,
        block=o.block or None,
        lookahead=o.lookahead,
        steps=o.steps or None,
        seed=o.seed or seed,
        styles=o.styles,
        actions=o.actions,
        placement=o.placement,
        alive=o.alive,
        start_roots=o.resume.roots if o.resume is not None else None,
    )
    try:
        return settings.validate()
    except ValueError as e:
        raise InvalidArgument(f"config.settings: {e}") from e


# ---------------------------------------------------------------------------------------------- controls
def control_to_proto(c: ControlChange) -> pb.Control:
    msg = pb.Control(time=c.time, speaker=speaker_to_proto(c.speaker))
    if (c.action is None) == (c.style is None):
        raise ValueError("a control changes exactly one of action or style")
    if c.action is not None:
        msg.action = action_to_proto(c.action)
    else:
        msg.style = c.style
    return msg


def control_from_proto(c: pb.Control, styles: list[str]) -> ControlChange:
    if not math.isfinite(c.time) or not 0.0 <= c.time <= MAX_CONTROL_TIME:
        raise InvalidArgument(f"control.time: {c.time}; expected finite seconds in 0..{MAX_CONTROL_TIME:g}")
    speaker = speaker_from_proto(c.speaker, "control.speaker")
    kind = c.WhichOneof("change")
    if kind == "action":
        action = action_from_proto(c.action, "control.action", None)
        if action is None:
            raise InvalidArgument("control.action: ACTION_UNSPECIFIED; expected ACTION_SIT, ACTION_WALK or "
                                  "ACTION_STAND")  # fmt: skip
        return ControlChange(speaker, float(c.time), action=action)
    if kind == "style":
        return ControlChange(speaker, float(c.time), style=_style(c.style, styles, "control.style"))
    raise InvalidArgument("control.change: neither action nor style is set")


# ---------------------------------------------------------------------------------------------- header
def joints_to_proto(skeleton: Skeleton) -> list[pb.Joint]:
    offsets = np.asarray(skeleton.offsets, dtype=np.float64)
    ends = {j: np.asarray(o, dtype=np.float64).tolist() for j, o in skeleton.end_sites.items()}
    return [pb.Joint(name=n, parent=p, offset=offsets[j].tolist(), rotation_order=skeleton.rotation_order(j),
                     end_site=ends.get(j, []))
            for j, (n, p) in enumerate(zip(skeleton.names, skeleton.parents, strict=True))]  # fmt: skip


def skeleton_from_proto(joints) -> Skeleton:
    """The header's skeleton. Channels are rebuilt from each joint's rotation order; the root also gets positions."""
    channels = tuple(((POSITION_CHANNELS if j.parent < 0 else ()) + tuple(f"{a}rotation" for a in j.rotation_order))
                     for j in joints)  # fmt: skip
    offsets = np.array([list(j.offset) for j in joints], dtype=np.float64).reshape(-1, 3)
    ends = {i: np.array(j.end_site, dtype=np.float64) for i, j in enumerate(joints) if len(j.end_site) == 3}
    return Skeleton(tuple(j.name for j in joints), tuple(j.parent for j in joints), offsets, channels, ends)


def header_to_proto(info: StreamInfo) -> pb.StreamHeader:
    return pb.StreamHeader(
        session_id=info.session_id, fps=info.fps, blendshape_names=info.blendshape_names,
        rotation_names=info.rotation_names, joints=joints_to_proto(info.skeleton), units=UNITS,
        algorithmic_latency=info.algorithmic_latency, block_frames=info.block, lookahead_frames=info.lookahead,
        context_frames=info.context, steps=info.steps, model=info.model, styles=info.styles,
        first_frame=info.first_frame,
    )  # fmt: skip


def header_from_proto(h: pb.StreamHeader) -> StreamInfo:
    return StreamInfo(
        h.session_id, skeleton_from_proto(h.joints), fps=h.fps, blendshape_names=tuple(h.blendshape_names),
        rotation_names=tuple(h.rotation_names), algorithmic_latency=h.algorithmic_latency, block=h.block_frames,
        lookahead=h.lookahead_frames, context=h.context_frames, steps=h.steps, model=h.model,
        styles=(tuple(h.styles) + ("", ""))[:2], first_frame=h.first_frame,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- frames
def frames_to_proto(frames: Frames, face: bool = True, body: bool = True) -> pb.FrameBatch:
    """One ``FrameBatch``: per frame and person the packed float arrays (only the ones asked for)."""
    cols = []
    for p in frames.people:
        cols.append((
            p.blendshapes.tolist() if face else None, p.rotations.tolist() if face else None,
            p.root_position.tolist() if body else None,
            p.joint_rotations.reshape(len(p.joint_rotations), -1).tolist() if body else None,
            (p.action.astype(np.int64) + 1).tolist(), p.speaking.tolist(),
        ))  # fmt: skip
    batch = pb.FrameBatch()
    for i, (index, time) in enumerate(zip(frames.index.tolist(), frames.time.tolist(), strict=True)):
        f = batch.frames.add(index=index, time_code=time)
        for target, (bs, rot, root, joints, action, speaking) in zip((f.a, f.b), cols, strict=True):
            if face:
                target.blendshapes.extend(bs[i])
                target.rotations.extend(rot[i])
            if body:
                target.root_position.extend(root[i])
                target.joint_rotations.extend(joints[i])
            target.action = action[i]
            target.speaking = speaking[i]
    return batch


def frames_from_proto(batch: pb.FrameBatch, received_at: float = 0.0) -> Frames:
    """``Frames`` of a batch; arrays the server did not send have width 0. ``emitted_at`` = ``received_at``."""

    def person(which: str) -> PersonFrames:
        ps = [getattr(f, which) for f in batch.frames]
        n = len(ps)

        def floats(name: str, width: int | None = None) -> np.ndarray:
            rows = [list(getattr(p, name)) for p in ps]
            w = len(rows[0]) if rows else 0
            return np.array(rows, dtype=np.float32).reshape(n, w if width is None else width)

        joints = floats("joint_rotations")
        return PersonFrames(
            floats("blendshapes"), floats("rotations"), floats("root_position"),
            joints.reshape(n, joints.shape[1] // 4, 4), np.array([p.action - 1 for p in ps], np.int8).reshape(n),
            np.array([p.speaking for p in ps], bool).reshape(n),
        )  # fmt: skip

    index = np.array([f.index for f in batch.frames], dtype=np.int64)
    time = np.array([f.time_code for f in batch.frames], dtype=np.float64)
    return Frames(index, time, (person("a"), person("b")), np.full(len(index), received_at))


# ---------------------------------------------------------------------------------------------- events, status
def event_to_proto(e: Event) -> pb.Event:
    return pb.Event(type=_EVENTS[e.kind], speaker=speaker_to_proto(e.speaker), time=e.time, count=e.count,
                    message=e.message)  # fmt: skip


def event_from_proto(e: pb.Event) -> Event:
    speaker = _SPEAKERS.index(e.speaker) if e.speaker in _SPEAKERS else None
    return Event(_EVENT_KINDS.get(e.type, f"unknown_{e.type}"), e.time, speaker, e.message, e.count)


def status_to_proto(s: SessionStatus) -> pb.Status:
    code = pb.Status.SUCCESS if s.code == "success" else pb.Status.WARNING
    return pb.Status(code=code, message=s.message, frames=s.frames, audio_seconds=s.audio_seconds,
                     latency_p50=s.latency_p50, latency_p95=s.latency_p95)  # fmt: skip


def status_from_proto(s: pb.Status) -> SessionStatus:
    code = {pb.Status.SUCCESS: "success", pb.Status.WARNING: "warning"}.get(s.code, "unspecified")
    return SessionStatus(code, s.message, s.frames, s.audio_seconds, s.latency_p50, s.latency_p95)


# ---------------------------------------------------------------------------------------------- DescribeModel
def model_to_proto(model: Model) -> pb.ModelDescription:
    """``ModelDescription`` of a loaded model."""
    b, d = model.bundle, model.bundle.defaults
    return pb.ModelDescription(
        model=b.name, fps=FPS, sample_rate=SAMPLE_RATE, blendshape_names=ARKIT_NAMES, rotation_names=LIVELINK_ROTATIONS,
        joints=joints_to_proto(model.poser.skeleton), styles=b.styles,
        defaults=pb.StreamSettings(block_frames=d["block"], lookahead_frames=d["lookahead"], steps=d["steps"]),
        context_frames=d["context"], backend=getattr(b.backend, "name", ""), manifest_json=json.dumps(b.manifest),
    )  # fmt: skip


def model_from_proto(m: pb.ModelDescription) -> ModelInfo:
    d = m.defaults
    defaults = {"block": d.block_frames, "lookahead": d.lookahead_frames, "context": m.context_frames,
                "steps": d.steps}  # fmt: skip
    return ModelInfo(m.model, m.fps, m.sample_rate, tuple(m.blendshape_names), tuple(m.rotation_names),
                     skeleton_from_proto(m.joints), tuple(m.styles), defaults, m.backend,
                     json.loads(m.manifest_json) if m.manifest_json else {})  # fmt: skip
