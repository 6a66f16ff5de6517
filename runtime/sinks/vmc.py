"""VMC protocol bridge (OSC over UDP): Unity (EVMC4U), VSeeFace, VMC-capable Unreal plugins.

Per frame and person, in order: ``/VMC/Ext/OK 1 3 0 1`` (avatar loaded, calibrated, normal mode, tracking),
``/VMC/Ext/T`` (the frame's stream time, s), ``/VMC/Ext/Root/Pos`` (the avatar on the ground: under the hips, turned
to their heading), one ``/VMC/Ext/Bone/Pos`` per mapped humanoid bone (local position + local rotation; the Hips
relative to the root) plus ``Jaw`` (opened by jawOpen) and ``LeftEye`` / ``RightEye`` (the gaze), ``/VMC/Ext/Blend/Val``
per ARKit blendshape (PascalCase names, the "perfect sync" convention of VRM avatars), then ``/VMC/Ext/Blend/Apply``.
The messages are packed into OSC bundles of at most ``MAX_DATAGRAM`` bytes (a frame is ~7 kB: one datagram would be
fragmented by IP on a real network, and a lost fragment loses the whole frame), paced at 30 Hz.

Person A goes to ``HOST:PORT`` (default 39539, the receivers' "Marionette" port); person B to the second address of
``"HOST:PORT,HOST:PORT"``, by default A's host on port 39549, which no VMC application we know of uses (39540 is
the performers' own port, where VirtualMotionCapture listens).

Bone positions are the local offsets of the model's skeleton (the protocol requires them). A receiver that applies
them to another avatar stretches it: in EVMC4U untick ``BonePositionSynchronize`` for any avatar but this skeleton.

Coordinates: VMC uses Unity's left-handed Y-up frame; ours is right-handed Y-up, so X is mirrored:
position (x, y, z) -> (-x, y, z) and quaternion (w, x, y, z) -> (w, x, -y, -z), sent as (x, y, z, w).
Rotations are the skeleton's local rotations relative to its rest pose (a T-pose for the default bundle); an avatar
with a different rest pose needs the usual humanoid retargeting on the receiver.
"""

from __future__ import annotations

import re
import socket
import struct

import numpy as np
from scipy.spatial.transform import Rotation

from runtime.engine.frames import Frames, StreamInfo
from runtime.formats.arkit import ARKIT_NAMES, INDEX, pascal
from runtime.motion.skeleton import Skeleton
from runtime.sinks import parse_address
from runtime.sinks.pacer import PacedSink

DEFAULT_PORT = 39539  # the VMC "Marionette" (receiver) port
DEFAULT_PORT_B = 39549  # B's receiver when only A's address is given: a port no known VMC application uses
MAX_DATAGRAM = 1400  # bytes per OSC bundle: under Ethernet's 1472-byte UDP payload, with room for tunnels
JAW_OPEN_RAD = 0.35  # jaw bone rotation at jawOpen = 1 (20 degrees)
# Face bones our skeleton does not have: Unity humanoid name -> nominal offset from the Head joint (m, our frame:
# +X the person's left, +Y up, +Z forward).
FACE_BONES = {"Jaw": (0.0, 0.01, 0.03), "LeftEye": (0.032, 0.085, 0.08), "RightEye": (-0.032, 0.085, 0.08)}

# Our (Mixamo-like) and other common names -> Unity HumanBodyBones names (without the side prefix for limbs).
_BODY = {
    "hips": "Hips", "pelvis": "Hips", "spine": "Spine", "spine1": "Chest", "chest": "Chest", "spine2": "UpperChest",
    "upperchest": "UpperChest", "neck": "Neck", "head": "Head",
}  # fmt: skip
_LIMB = {
    "shoulder": "Shoulder", "arm": "UpperArm", "upperarm": "UpperArm", "forearm": "LowerArm", "lowerarm": "LowerArm",
    "hand": "Hand", "upleg": "UpperLeg", "upperleg": "UpperLeg", "thigh": "UpperLeg", "leg": "LowerLeg",
    "lowerleg": "LowerLeg", "shin": "LowerLeg", "foot": "Foot", "toebase": "Toes", "toes": "Toes", "toe": "Toes",
}  # fmt: skip
_FINGERS = {"thumb": "Thumb", "index": "Index", "middle": "Middle", "ring": "Ring", "pinky": "Little"}
_PHALANX = {"1": "Proximal", "2": "Intermediate", "3": "Distal"}


def humanoid_name(joint: str) -> str | None:
    """Unity humanoid bone for a joint name (Mixamo-like or ``UpperArm_L`` style), or None if unmapped."""
    rest = joint.replace("mixamorig:", "")
    side = ""
    for pattern in (r"(Left|Right)(.+)", r"([LR])_(.+)", r"(.+)_([LR])"):
        m = re.fullmatch(pattern, rest)
        if m:
            a, b = m.groups()
            side_token, rest = (b, a) if pattern.endswith("([LR])") else (a, b)
            side = {"L": "Left", "R": "Right"}.get(side_token, side_token)
            break
    key = rest.lower()
    if not side:
        return _BODY.get(key)
    finger = re.fullmatch(r"(?:hand)?(thumb|index|middle|ring|pinky)(\d)", key)
    if finger:
        return f"{side}{_FINGERS[finger[1]]}{_PHALANX.get(finger[2], 'Distal')}"
    limb = _LIMB.get(key)
    return f"{side}{limb}" if limb else None


def to_unity(position: np.ndarray, quat_wxyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Right-handed Y-up -> Unity left-handed Y-up (mirror X). Returns positions (..., 3), quaternions (..., 4) xyzw."""
    p = np.asarray(position, dtype=np.float32) * np.array([-1.0, 1.0, 1.0], np.float32)
    q = np.asarray(quat_wxyz, dtype=np.float32)
    xyzw = np.stack([q[..., 1], -q[..., 2], -q[..., 3], q[..., 0]], axis=-1)
    return p, xyzw


def split_root(hips_position: np.ndarray, hips_wxyz: np.ndarray) -> tuple[np.ndarray, ...]:
    """VMC's root is the avatar on the ground: hips (N, 3) world + (N, 4) wxyz -> root on the floor under the hips
    turned to their heading (yaw of the rest pose's +Z), and the hips relative to it (position, rotation), so a
    receiver applying both does not apply the hips' transform twice. Returns (root pos, root wxyz, hips pos, hips wxyz).
    """
    hips = Rotation.from_quat(np.asarray(hips_wxyz, np.float64)[:, [1, 2, 3, 0]])
    forward = hips.apply([0.0, 0.0, 1.0])
    heading = Rotation.from_rotvec(np.outer(np.arctan2(forward[:, 0], forward[:, 2]), [0.0, 1.0, 0.0]))
    root_pos = np.asarray(hips_position, np.float64) * np.array([1.0, 0.0, 1.0])
    hips_pos = heading.inv().apply(np.asarray(hips_position, np.float64) - root_pos)
    wxyz = lambda r: r.as_quat()[:, [3, 0, 1, 2]]  # noqa: E731
    return root_pos, wxyz(heading), hips_pos, wxyz(heading.inv() * hips)


def osc_message(address: str, *args: str | float | int) -> bytes:
    """One OSC 1.0 message: padded address, type tags, big-endian arguments (strings, float32, int32)."""

    def padded(text: str) -> bytes:
        raw = text.encode("utf-8") + b"\0"
        return raw + b"\0" * (-len(raw) % 4)

    tags, data = ",", []
    for a in args:
        if isinstance(a, str):
            tags += "s"
            data.append(padded(a))
        elif isinstance(a, int | np.integer):
            tags += "i"
            data.append(struct.pack(">i", int(a)))
        else:
            tags += "f"
            data.append(struct.pack(">f", float(a)))
    return padded(address) + padded(tags) + b"".join(data)


def osc_bundles(messages: list[bytes], limit: int = MAX_DATAGRAM) -> list[bytes]:
    """Messages in order, packed greedily into OSC bundles ("immediately" time tag) of at most ``limit`` bytes."""
    header = b"#bundle\0" + struct.pack(">Q", 1)
    bundles, current = [], [header]
    size = len(header)
    for m in messages:
        element = struct.pack(">i", len(m)) + m
        if size + len(element) > limit and len(current) > 1:
            bundles.append(b"".join(current))
            current, size = [header], len(header)
        current.append(element)
        size += len(element)
    bundles.append(b"".join(current))
    return bundles


def face_bones(blendshapes: np.ndarray, rotations: np.ndarray) -> dict[str, np.ndarray]:
    """(N, 52) weights and (N, 9) Live Link rotations -> Jaw / LeftEye / RightEye local rotations (N, 4) wxyz, our
    frame: the jaw about +X (opening moves the chin down), the eyes yaw about +Y (> 0 to the left), pitch > 0 up."""
    wxyz = lambda r: r.as_quat()[:, [3, 0, 1, 2]]  # noqa: E731
    jaw = Rotation.from_rotvec(np.outer(JAW_OPEN_RAD * blendshapes[:, INDEX["jawOpen"]], [1.0, 0.0, 0.0]))
    eye = lambda k: Rotation.from_euler("YX", np.stack([rotations[:, k], -rotations[:, k + 1]], 1))  # noqa: E731
    return {"Jaw": wxyz(jaw), "LeftEye": wxyz(eye(3)), "RightEye": wxyz(eye(6))}


class VmcSink(PacedSink):
    def __init__(self, address: str, pace: bool = True) -> None:
        a, _, b = address.partition(",")
        self.addresses = [parse_address(a, DEFAULT_PORT)]
        self.addresses.append(parse_address(b, DEFAULT_PORT_B) if b else (self.addresses[0][0], DEFAULT_PORT_B))
        if self.addresses[0] == self.addresses[1]:
            raise ValueError(f"bad address {address!r}: A and B need different receivers (HOST:PORT,HOST:PORT)")
        self.pace = pace
        self.sock: socket.socket | None = None
        self.bones: list[tuple[int, str]] = []
        self.offsets: np.ndarray | None = None
        self.face_offsets: dict[str, np.ndarray] = {}
        self.sent = 0  # frames (per person)
        self.datagrams = 0

    def open(self, info: StreamInfo) -> None:
        family = socket.AF_INET6 if ":" in self.addresses[0][0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        sk: Skeleton = info.skeleton
        self.bones = [(j, h) for j, n in enumerate(sk.names) if (h := humanoid_name(n)) is not None]
        self.offsets = np.asarray(sk.offsets, dtype=np.float32)
        if any(h == "Head" for _, h in self.bones):
            self.face_offsets = {k: to_unity(np.array(v), np.array([1.0, 0, 0, 0]))[0] for k, v in FACE_BONES.items()}
        self._start_pacer(info.block, info.fps)

    def write(self, frames: Frames) -> None:
        if self.sock is None:
            raise RuntimeError("VmcSink.write before open")
        names = [pascal(n) for n in ARKIT_NAMES]
        per_person = []
        for person in frames.people:
            root_pos, root_q, hips_pos, hips_q = split_root(person.root_position, person.joint_rotations[:, 0])
            root_p, root_q = to_unity(root_pos, root_q)
            hips_p, hips_q = to_unity(hips_pos, hips_q)
            local_p, local_q = to_unity(self.offsets, person.joint_rotations)
            face = {k: to_unity(np.zeros(3), q)[1] for k, q in face_bones(person.blendshapes, person.rotations).items()}
            frames_out = []
            for i in range(len(frames)):
                msgs = [osc_message("/VMC/Ext/OK", 1, 3, 0, 1), osc_message("/VMC/Ext/T", float(frames.time[i])),
                        osc_message("/VMC/Ext/Root/Pos", "root", *root_p[i], *root_q[i])]  # fmt: skip
                for j, bone in self.bones:
                    pos, rot = (hips_p[i], hips_q[i]) if j == 0 else (local_p[j], local_q[i, j])
                    msgs.append(osc_message("/VMC/Ext/Bone/Pos", bone, *pos, *rot))
                for bone, offset in self.face_offsets.items():
                    msgs.append(osc_message("/VMC/Ext/Bone/Pos", bone, *offset, *face[bone][i]))
                weights = zip(names, person.blendshapes[i], strict=True)
                msgs += [osc_message("/VMC/Ext/Blend/Val", n, v) for n, v in weights]
                msgs.append(osc_message("/VMC/Ext/Blend/Apply"))
                frames_out.append(osc_bundles(msgs))
            per_person.append(frames_out)
        for i in range(len(frames)):
            self._emit(float(frames.time[i]), (per_person[0][i], per_person[1][i]))

    def send_now(self, payload: tuple[list[bytes], list[bytes]]) -> None:
        for address, bundles in zip(self.addresses, payload, strict=True):
            for bundle in bundles:
                self.sock.sendto(bundle, address)
                self.datagrams += 1
            self.sent += 1

    def close(self) -> None:
        self._stop_pacer()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
