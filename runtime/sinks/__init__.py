"""Where frames go besides the gRPC stream: files (BVH + Live Link CSV + WAV), Live Link Face UDP, VMC over OSC.

Every sink has the same small surface: ``open(info)`` once with the stream header, ``write(frames)`` for each run
of frames in order, ``close()`` at the end.
"""

from __future__ import annotations

from typing import Protocol

from runtime.engine.frames import Frames, StreamInfo


class Sink(Protocol):
    def open(self, info: StreamInfo) -> None: ...

    def write(self, frames: Frames) -> None: ...

    def close(self) -> None: ...


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    """``"HOST:PORT"`` or ``"HOST"`` -> (host, port), with a message naming the bad part."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad address {text!r}: port must be 1..65535")
    return host or "127.0.0.1", int(port)
