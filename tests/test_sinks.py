"""Sinks: recorder round trips through the foundation readers, Live Link Face UDP and VMC over loopback sockets."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import SESSION_SECONDS as SECONDS
from scipy.spatial.transform import Rotation

from runtime.engine.frames import Frames, PersonFrames
from runtime.formats.arkit import ARKIT_NAMES, INDEX
from runtime.formats.bvh import read_bvh
from runtime.formats.livelink_csv import read_livelink_csv
from runtime.formats.wav import read_audio
from runtime.motion.kinematics import clip_pose, quat_wxyz
from runtime.motion.skeleton import Skeleton
from runtime.sinks.files import RecordingSink, latency_summary, person_to_bvh, segments
from runtime.sinks.livelink import LiveLinkSink
from runtime.sinks.vmc import VmcSink


@pytest.fixture(scope="module")
def session(engine_session):
    return engine_session


def unit_wxyz(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def same_rotations(a: np.ndarray, b: np.ndarray) -> float:
    """Largest component difference of two (..., 4) quaternion arrays after aligning signs."""
    a, b = unit_wxyz(a), unit_wxyz(b)
    return float(np.abs(a * np.sign(np.sum(a * b, axis=-1, keepdims=True)) - b).max())


# ------------------------------------------------------------------------------------------------ recorder
@pytest.fixture(scope="module")
def recording(session, tmp_path_factory) -> Path:
    info, frames, audio = session
    sink = RecordingSink(tmp_path_factory.mktemp("rec") / "session", meta={"input": "test"})
    sink.open(info)
    for p in (0, 1):
        sink.add_audio(p, audio[p])
    for start in range(0, len(frames), 7):  # several writes, as a stream delivers them
        sink.write(frames[start : start + 7])
    sink.add_latencies([0.1, 0.2, 0.3])
    return sink.close()


def test_recording_folder_has_every_file(recording: Path, session) -> None:
    names = sorted(p.name for p in recording.iterdir())
    assert names == ["A.bvh", "A.wav", "A_face.csv", "B.bvh", "B.wav", "B_face.csv", "contact_sheet.png",
                     "session.json"]  # fmt: skip
    assert (recording / "contact_sheet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bvh_reads_back_with_the_streamed_numbers(recording: Path, session) -> None:
    info, frames, _ = session
    for p, name in enumerate("AB"):
        clip = read_bvh(recording / f"{name}.bvh")
        person = frames.people[p]
        assert clip.n_frames == len(frames) == int(np.ceil(SECONDS * 30))
        assert clip.frame_time == pytest.approx(1 / 30)
        assert clip.units == "cm"
        assert clip.skeleton.names == info.skeleton.names
        assert clip.skeleton.channels == info.skeleton.channels  # each joint keeps its own Euler order
        np.testing.assert_allclose(clip.skeleton.offsets / 100.0, info.skeleton.offsets, atol=1e-12)
        assert same_rotations(quat_wxyz(clip), person.joint_rotations) < 1e-6
        hips = clip_pose(clip.to_metres()).positions[:, info.skeleton.index("Hips")]
        np.testing.assert_allclose(hips, person.root_position, atol=1e-6)  # metres
    # B was placed 1.4 m in front of A and turned: the files must not collapse both onto the origin
    assert np.linalg.norm(frames.people[1].root_position[0, [0, 2]] - [0.3, 1.4]) < 0.2


def _chain_skeleton(root_channels: tuple[str, ...], hips_channels: tuple[str, ...]) -> Skeleton:
    """joint_Root -> Hips -> Spine, with Euler orders that differ per joint."""
    return Skeleton(("joint_Root", "Hips", "Spine"), (-1, 0, 1), np.array([[0.0, 0, 0], [0.1, 0.9, 0.0],
                    [0.0, 0.2, 0.0]]), (root_channels, hips_channels, ("Yrotation", "Xrotation", "Zrotation")),
                    {2: np.array([0.0, 0.3, 0.0])})  # fmt: skip


@pytest.mark.parametrize("hips_positions", [True, False], ids=["hips-carries-root", "root-joint-carries-it"])
def test_bvh_root_under_a_rotated_parent(tmp_path: Path, hips_positions: bool) -> None:
    pos = ("Xposition", "Yposition", "Zposition")
    sk = _chain_skeleton(pos + ("Zrotation", "Xrotation", "Yrotation"),
                         (pos if hips_positions else ()) + ("Xrotation", "Zrotation", "Yrotation"))  # fmt: skip
    n = 5
    q = Rotation.random(n * 3, random_state=3).as_quat().reshape(n, 3, 4)[..., [3, 0, 1, 2]]  # (N, J, 4) wxyz
    root = np.random.default_rng(3).uniform(-1, 1, (n, 3))  # world Hips position, metres
    person = PersonFrames(np.zeros((n, 52), np.float32), np.zeros((n, 9), np.float32), root, q,
                          np.zeros(n, np.int8), np.zeros(n, bool))  # fmt: skip
    from runtime.formats.bvh import write_bvh

    write_bvh(tmp_path / "x.bvh", person_to_bvh(sk, person, 30))
    clip = read_bvh(tmp_path / "x.bvh")
    assert same_rotations(quat_wxyz(clip), q) < 1e-6
    np.testing.assert_allclose(clip_pose(clip.to_metres()).positions[:, 1], root, atol=1e-6)


def test_livelink_csv_reads_back_with_the_streamed_numbers(recording: Path, session) -> None:
    _, frames, _ = session
    for p, name in enumerate("AB"):
        take = read_livelink_csv(recording / f"{name}_face.csv")
        person = frames.people[p]
        assert take.n_frames == len(frames)
        assert take.fps == 30
        np.testing.assert_allclose(take.times, np.arange(len(frames)) / 30, atol=1e-9)  # CSV time = audio time
        np.testing.assert_allclose(take.weights, person.blendshapes, atol=1e-7)
        np.testing.assert_allclose(take.rotations, person.rotations, atol=1e-7)


def test_wavs_and_session_json(recording: Path, session) -> None:
    info, frames, audio = session
    for p, name in enumerate("AB"):
        clip = read_audio(recording / f"{name}.wav")
        assert clip.source_rate == 16000 and clip.source_format == "PCM_16"
        np.testing.assert_allclose(clip.channels[0], np.clip(audio[p], -1, 1), atol=0.5 / 32768 + 1e-9)
    s = json.loads((recording / "session.json").read_text())
    assert s["frames"] == len(frames) and s["first_frame"] == 0 and s["fps"] == 30
    assert s["session_id"] == "test-session" and s["model"] == info.model
    assert s["settings"]["block"] == info.block and s["settings"]["steps"] == info.steps
    assert s["latency"] == {"count": 3, "p50_ms": 200.0, "p95_ms": 290.0, "max_ms": 300.0}
    assert s["people"]["A"]["bvh"] == "A.bvh" and s["people"]["B"]["livelink_csv"] == "B_face.csv"
    assert s["people"]["A"]["audio_s"] == SECONDS
    speech = [[a * 30, b * 30] for a, b in s["people"]["A"]["speech_s"]]
    expected = [[x["start"], x["stop"]] for x in segments(frames.people[0].speaking) if x["value"]]
    np.testing.assert_allclose(speech, expected, atol=0.01)
    assert s["meta"] == {"input": "test"}
    assert "session.json" in s["files"] and "contact_sheet.png" in s["files"]


def test_recording_holds_the_last_frame_over_a_gap_and_refuses_disorder(session, tmp_path: Path) -> None:
    info, frames, _ = session
    sink = RecordingSink(tmp_path / "gap", contact_sheet=False)
    sink.open(info)
    sink.write(frames[:5])
    sink.write(frames[7:9])  # frames 5 and 6 were dropped on the way (a slow gRPC reader)
    with pytest.raises(ValueError, match="frame 3 after frame 8"):
        sink.write(frames[3:4])
    folder = sink.close()
    clip = read_bvh(folder / "A.bvh")
    assert clip.n_frames == 9
    np.testing.assert_array_equal(clip.values[5], clip.values[4])
    np.testing.assert_array_equal(clip.values[6], clip.values[4])
    assert same_rotations(quat_wxyz(clip)[7:9], frames.people[0].joint_rotations[7:9]) < 1e-6
    assert json.loads((folder / "session.json").read_text())["frames_filled"] == 2
    assert latency_summary([]) == {"count": 0, "p50_ms": None, "p95_ms": None, "max_ms": None}


# ------------------------------------------------------------------------------------------- Live Link UDP
# The order Unreal decodes a Live Link Face packet by, written out here on purpose (not imported) from Unreal's
# EARFaceBlendShape enum (AugmentedReality/Public/ARTrackable.h: ... JawForward, JawLeft, JawRight, JawOpen,
# MouthClose, MouthFunnel, MouthPucker, MouthLeft, MouthRight, ...), then head and eye rotations. Issue 16: the packet
# used the CSV's order (JawRight JawLeft ... MouthRight MouthLeft), so a MetaHuman's jaw and mouth moved mirrored.
UNREAL_ORDER = (
    "EyeBlinkLeft EyeLookDownLeft EyeLookInLeft EyeLookOutLeft EyeLookUpLeft EyeSquintLeft EyeWideLeft "
    "EyeBlinkRight EyeLookDownRight EyeLookInRight EyeLookOutRight EyeLookUpRight EyeSquintRight EyeWideRight "
    "JawForward JawLeft JawRight JawOpen MouthClose MouthFunnel MouthPucker MouthLeft MouthRight MouthSmileLeft "
    "MouthSmileRight MouthFrownLeft MouthFrownRight MouthDimpleLeft MouthDimpleRight MouthStretchLeft "
    "MouthStretchRight MouthRollLower MouthRollUpper MouthShrugLower MouthShrugUpper MouthPressLeft MouthPressRight "
    "MouthLowerDownLeft MouthLowerDownRight MouthUpperUpLeft MouthUpperUpRight BrowDownLeft BrowDownRight "
    "BrowInnerUp BrowOuterUpLeft BrowOuterUpRight CheekPuff CheekSquintLeft CheekSquintRight NoseSneerLeft "
    "NoseSneerRight TongueOut HeadYaw HeadPitch HeadRoll LeftEyeYaw LeftEyePitch LeftEyeRoll RightEyeYaw "
    "RightEyePitch RightEyeRoll"
).split()


def decode_livelink(packet: bytes) -> dict:
    """The documented Live Link Face datagram, decoded independently of runtime.sinks.livelink."""
    (version,) = struct.unpack_from("<I", packet, 0)
    device = packet[4:41].decode("ascii")
    (name_len,) = struct.unpack_from(">i", packet, 41)
    subject = packet[45 : 45 + name_len].decode("utf-8")
    at = 45 + name_len
    frame, sub, num, den, count = struct.unpack_from(">ifiiB", packet, at)
    values = struct.unpack_from(f">{count}f", packet, at + 17)
    assert len(packet) == at + 17 + 4 * count, "trailing bytes after the values"
    return {"version": version, "device": device, "subject": subject, "frame": frame, "subframe": sub,
            "fps": (num, den), "values": dict(zip(UNREAL_ORDER, values, strict=True))}  # fmt: skip


def distinct_faces(frames: Frames) -> Frames:
    """The session with every blendshape and rotation channel given its own value, so any mix-up shows."""
    people = []
    for p, person in enumerate(frames.people):
        n = len(frames)
        weights = (np.arange(52)[None] + 1) / 100 + np.arange(n)[:, None] / 1e4 + 0.3 * p
        rotations = -(np.arange(9)[None] + 1) / 10 - np.arange(n)[:, None] / 1e4
        people.append(PersonFrames(weights.astype(np.float32), rotations.astype(np.float32), person.root_position,
                                   person.joint_rotations, person.action, person.speaking))  # fmt: skip
    return Frames(frames.index, frames.time, (people[0], people[1]))


def test_livelink_udp_session_on_loopback(session) -> None:
    info, frames, _ = session
    frames = distinct_faces(frames)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2.0)
    sink = LiveLinkSink(f"127.0.0.1:{rx.getsockname()[1]}", pace=False)  # content here; pacing: test_bridges
    sink.open(info)
    for start in range(0, len(frames), 6):
        sink.write(frames[start : start + 6])
    sink.close()
    packets = [decode_livelink(rx.recv(2048)) for _ in range(2 * len(frames))]
    rx.close()
    by_subject: dict[str, list[dict]] = {}
    for d in packets:
        by_subject.setdefault(d["subject"], []).append(d)
    assert sorted(by_subject) == ["InterAct_A", "InterAct_B"]
    devices = {by_subject[s][0]["device"] for s in by_subject}
    assert len(devices) == 2 and all(d.startswith("$") and len(d) == 37 for d in devices)
    for p, subject in enumerate(("InterAct_A", "InterAct_B")):
        got = by_subject[subject]
        assert [d["frame"] for d in got] == list(range(len(frames)))
        assert all(d["version"] == 6 and d["fps"] == (30, 1) and d["subframe"] == 0.0 for d in got)
        person = frames.people[p]
        for d in got:
            i = d["frame"]
            for k, name in enumerate(ARKIT_NAMES):
                assert d["values"][name[0].upper() + name[1:]] == person.blendshapes[i, k]  # exact float32
            assert [d["values"][n] for n in UNREAL_ORDER[52:]] == list(person.rotations[i])


# ------------------------------------------------------------------------------------------------ VMC / OSC
def _servers(handler) -> tuple[list, int]:
    """Two OSC servers on consecutive loopback ports (A on port, B on port + 1)."""
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import BlockingOSCUDPServer

    for _ in range(20):
        first = BlockingOSCUDPServer(("127.0.0.1", 0), Dispatcher())
        port = first.server_address[1]
        try:
            second = BlockingOSCUDPServer(("127.0.0.1", port + 1), Dispatcher())
        except OSError:
            first.server_close()
            continue
        servers = [first, second]
        for p, server in enumerate(servers):
            server.dispatcher.set_default_handler(lambda address, *args, p=p: handler(p, address, args))
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return servers, port
    pytest.skip("no two consecutive free UDP ports on loopback")


def test_vmc_frame_on_loopback(session) -> None:
    info, frames, _ = session
    frames = distinct_faces(frames)[10:11]  # one whole frame, mid-session
    received: list[list[tuple[str, tuple]]] = [[], []]
    lock = threading.Lock()

    def handler(p: int, address: str, args: tuple) -> None:
        with lock:
            received[p].append((address, args))

    servers, port = _servers(handler)
    try:
        sink = VmcSink(f"127.0.0.1:{port},127.0.0.1:{port + 1}", pace=False)
        sink.open(info)
        sink.write(frames)
        sink.close()
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and not all(any(a == "/VMC/Ext/Blend/Apply" for a, _ in r) for r in received):
            time.sleep(0.01)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    mirror = np.diag([-1.0, 1.0, 1.0])  # right-handed -> Unity's left-handed frame: X mirrored
    sk = info.skeleton
    for p in (0, 1):
        person, msgs = frames.people[p], received[p]
        addresses = [a for a, _ in msgs]
        assert addresses[-1] == "/VMC/Ext/Blend/Apply" and addresses.count("/VMC/Ext/Root/Pos") == 1
        assert [args for a, args in msgs if a == "/VMC/Ext/T"] == [(pytest.approx(float(frames.time[0])),)]
        root = next(args for a, args in msgs if a == "/VMC/Ext/Root/Pos")
        x, y, z = person.root_position[0]
        assert root[0] == "root" and np.allclose(root[1:4], [-x, 0.0, z], atol=1e-6)  # on the floor under the hips
        hips = Rotation.from_quat(unit_wxyz(person.joint_rotations[0, 0])[[1, 2, 3, 0]]).as_matrix()
        root_rot = mirror @ Rotation.from_quat(root[4:8]).as_matrix() @ mirror  # back to our frame
        fwd = root_rot @ [0.0, 0.0, 1.0]
        assert abs(fwd[1]) < 1e-6  # a pure heading (yaw)
        bones = {args[0]: args[1:] for a, args in msgs if a == "/VMC/Ext/Bone/Pos"}
        hips_rel = mirror @ Rotation.from_quat(bones["Hips"][3:]).as_matrix() @ mirror
        np.testing.assert_allclose(root_rot @ hips_rel, hips, atol=1e-6)  # root then hips = the hips' world rotation
        hips_world = root_rot @ (np.array(bones["Hips"][:3]) * [-1, 1, 1]) + [x, 0.0, z]
        np.testing.assert_allclose(hips_world, [x, y, z], atol=1e-6)
        assert len(bones) == sk.n_joints + 3  # every joint has a Unity humanoid bone, plus Jaw and the eyes
        for joint, bone in (("LeftArm", "LeftUpperArm"), ("RightUpLeg", "RightUpperLeg"), ("Spine1", "Chest"),
                            ("LeftHandPinky3", "LeftLittleDistal"), ("Head", "Head")):  # fmt: skip
            j = sk.index(joint)
            ox, oy, oz = sk.offsets[j]
            np.testing.assert_allclose(bones[bone][:3], [-ox, oy, oz], atol=1e-6)  # local offset, X mirrored
            local = Rotation.from_quat(unit_wxyz(person.joint_rotations[0, j])[[1, 2, 3, 0]]).as_matrix()
            np.testing.assert_allclose(Rotation.from_quat(bones[bone][3:]).as_matrix(), mirror @ local @ mirror,
                                       atol=1e-6)  # fmt: skip
        blends = {args[0]: args[1] for a, args in msgs if a == "/VMC/Ext/Blend/Val"}
        assert len(blends) == 52
        for name in ("jawOpen", "jawLeft", "mouthRight", "eyeBlinkLeft", "tongueOut"):
            assert blends[name[0].upper() + name[1:]] == pytest.approx(float(person.blendshapes[0, INDEX[name]]))


def test_recording_without_matplotlib_still_writes_the_rest(session, tmp_path: Path, monkeypatch, caplog) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)  # as if matplotlib were missing
    info, frames, audio = session
    sink = RecordingSink(tmp_path / "plain")
    sink.open(info)
    sink.write(frames[:10])
    folder = sink.close()
    assert sorted(p.name for p in folder.iterdir()) == ["A.bvh", "A_face.csv", "B.bvh", "B_face.csv", "session.json"]
    assert "no contact sheet" in caplog.text and "interact-runtime[view]" in caplog.text
