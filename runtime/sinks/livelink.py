"""Live Link Face UDP bridge: Unreal's built-in Live Link Face source animates a MetaHuman face, no plugin.

One subject per person (``<prefix>_A`` / ``<prefix>_B``), one UDP datagram per frame, in the layout of Epic's
Live Link Face iPhone app (as the open PyLiveLinkFace / NeuroSync senders write it; all integers big-endian except
the version):

    uint32 LE   version (6)
    bytes       device id: "$" + 36-character UUID (37 bytes, no length prefix)
    int32       subject name length, then the UTF-8 name
    int32       frame number   (FFrameTime.FrameNumber at the stream's rate)
    float32     sub-frame      (FFrameTime.SubFrame, 0.0)
    int32       fps numerator  (30)
    int32       fps denominator (1)
    uint8       value count (61)
    61 float32  52 blendshapes in Unreal's EARFaceBlendShape order (= Apple's; not the CSV's, which swaps the jaw
                and mouth Left/Right pairs), then head yaw/pitch/roll and left/right eye yaw/pitch/roll

Unreal listens on UDP 11111 by default (Live Link > Source > Live Link Face, or the app's target address).
"""

from __future__ import annotations

import socket
import struct
import uuid

import numpy as np

from runtime.engine.frames import Frames, StreamInfo
from runtime.formats.arkit import to_livelink_packet
from runtime.sinks import parse_address
from runtime.sinks.pacer import PacedSink

DEFAULT_PORT = 11111
VERSION = 6
N_VALUES = 61


def encode_packet(device_id: str, subject: str, frame: int, fps: int, values: np.ndarray) -> bytes:
    """One Live Link Face datagram. ``values``: (61,) in packet order (``runtime.formats.arkit.to_livelink_packet``)."""
    values = np.asarray(values, dtype=">f4")
    if values.shape != (N_VALUES,):
        raise ValueError(f"Live Link Face packets carry {N_VALUES} values, got shape {values.shape}")
    if not device_id.startswith("$") or len(device_id) != 37:
        raise ValueError(f"device id must be '$' + a 36-character UUID, got {device_id!r}")
    name = subject.encode("utf-8")
    return b"".join([
        struct.pack("<I", VERSION),
        device_id.encode("ascii"),
        struct.pack(">i", len(name)),
        name,
        struct.pack(">ifiiB", frame, 0.0, fps, 1, N_VALUES),
        values.tobytes(),
    ])  # fmt: skip


class LiveLinkSink(PacedSink):
    """Both people's packets for a frame leave together, paced at the stream's rate (``runtime.sinks.pacer``)."""

    def __init__(self, address: str, subject_prefix: str = "InterAct", pace: bool = True) -> None:
        self.host, self.port = parse_address(address, DEFAULT_PORT)
        self.subjects = (f"{subject_prefix}_A", f"{subject_prefix}_B")
        self.device_ids = tuple(f"${uuid.uuid5(uuid.NAMESPACE_URL, s)}" for s in self.subjects)
        self.pace = pace
        self.sock: socket.socket | None = None
        self.fps = 30
        self.sent = 0

    def open(self, info: StreamInfo) -> None:
        self.fps = int(round(info.fps))
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self._start_pacer(info.block, info.fps)

    def write(self, frames: Frames) -> None:
        if self.sock is None:
            raise RuntimeError("LiveLinkSink.write before open")
        values = [to_livelink_packet(p.blendshapes, p.rotations) for p in frames.people]  # (N, 61) each
        for i, index in enumerate(frames.index):
            packets = [encode_packet(self.device_ids[p], self.subjects[p], int(index), self.fps, values[p][i])
                       for p in (0, 1)]  # fmt: skip
            self._emit(float(frames.time[i]), packets)

    def send_now(self, packets: list[bytes]) -> None:
        for packet in packets:
            self.sock.sendto(packet, (self.host, self.port))
            self.sent += 1

    def close(self) -> None:
        self._stop_pacer()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
