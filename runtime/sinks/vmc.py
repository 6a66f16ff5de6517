"""VMC protocol bridge (OSC over UDP): Unity (EVMC4U), VSeeFace, VMC-capable Unreal plugins.

Per frame and person: ``/VMC/Ext/Root/Pos`` (the avatar on the ground: under the hips, turned to their heading),
one ``/VMC/Ext/Bone/Pos`` per mapped humanoid bone (local position + local rotation; the Hips relative to the root),
``/VMC/Ext/Blend/Val`` per ARKit blendshape (PascalCase names, the "perfect sync" convention of VRM avatars) then
``/VMC/Ext/Blend/Apply``, all in one OSC bundle, plus ``/VMC/Ext/T`` (time). Person A goes to ``HOST:PORT``,
person B to ``HOST:PORT+1`` (one performer per receiver).

Coordinates: VMC uses Unity's left-handed Y-up frame; ours is right-handed Y-up, so X is mirrored:
position (x, y, z) -> (-x, y, z) and quaternion (w, x, y, z) -> (w, x, -y, -z), sent as (x, y, z, w).
Rotations are the skeleton's local rotations relative to its rest pose (a T-pose for the default bundle); an avatar
with a different rest pose needs the usual humanoid retargeting on the receiver.
"""

from __future__ import annotations

import re

import numpy as np
from scipy.spatial.transform import Rotation

from runtime.engine.frames import Frames, StreamInfo
from runtime.formats.arkit import ARKIT_NAMES, pascal
from runtime.motion.skeleton import Skeleton
from runtime.sinks import parse_address

DEFAULT_PORT = 39539  # the VMC "Marionette" (receiver) port

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


class VmcSink:
    def __init__(self, address: str) -> None:
        self.host, self.port = parse_address(address, DEFAULT_PORT)
        self.clients: list = []
        self.bones: list[tuple[int, str]] = []
        self.offsets: np.ndarray | None = None
        self.sent = 0

    def open(self, info: StreamInfo) -> None:
        try:
            from pythonosc.udp_client import SimpleUDPClient
        except ImportError as e:  # pragma: no cover - python-osc is a runtime dependency
            raise RuntimeError("the VMC bridge needs python-osc: pip install python-osc") from e
        self.clients = [SimpleUDPClient(self.host, self.port + p) for p in (0, 1)]
        sk: Skeleton = info.skeleton
        self.bones = [(j, h) for j, n in enumerate(sk.names) if (h := humanoid_name(n)) is not None]
        self.offsets = np.asarray(sk.offsets, dtype=np.float32)

    def write(self, frames: Frames) -> None:
        from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
        from pythonosc.osc_message_builder import OscMessageBuilder

        def msg(address: str, *args) -> object:
            b = OscMessageBuilder(address=address)
            for a in args:
                b.add_arg(a)
            return b.build()

        names = [pascal(n) for n in ARKIT_NAMES]
        for p, person in enumerate(frames.people):
            root_pos, root_q, hips_pos, hips_q = split_root(person.root_position, person.joint_rotations[:, 0])
            root_p, root_q = to_unity(root_pos, root_q)
            hips_p, hips_q = to_unity(hips_pos, hips_q)
            local_p, local_q = to_unity(self.offsets, person.joint_rotations)
            for i in range(len(frames)):
                bundle = OscBundleBuilder(IMMEDIATELY)
                bundle.add_content(msg("/VMC/Ext/T", float(frames.time[i])))
                bundle.add_content(msg("/VMC/Ext/Root/Pos", "root", *map(float, root_p[i]), *map(float, root_q[i])))
                for j, bone in self.bones:
                    pos, rot = (hips_p[i], hips_q[i]) if j == 0 else (local_p[j], local_q[i, j])
                    bundle.add_content(msg("/VMC/Ext/Bone/Pos", bone, *map(float, pos), *map(float, rot)))
                for name, value in zip(names, person.blendshapes[i], strict=True):
                    bundle.add_content(msg("/VMC/Ext/Blend/Val", name, float(value)))
                bundle.add_content(msg("/VMC/Ext/Blend/Apply"))
                self.clients[p].send(bundle.build())
                self.sent += 1

    def close(self) -> None:
        self.clients = []
