"""How evenly the UDP bridges deliver frames: inter-packet intervals at loopback receivers, per person and sink.

    python -m benchmarks.bridges [--seconds 10] [--bundle DIR]

Runs the real demo as a user would (``runtime.mic_demo --demo`` at real time, its Live Link Face and VMC sinks
aimed at receivers on loopback ports of this process), then prints per stream the interval between consecutive
frames' arrivals: p5 / p50 / p95 and the share under 2 ms (a burst). Receivers that show the latest sample update at
the rate of those arrivals. Live Link frames are single datagrams (decoded by frame number); a VMC frame is the
first bundle of a frame (the one carrying ``/VMC/Ext/OK``, decoded with python-osc).
"""

from __future__ import annotations

import argparse
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from benchmarks.common import REPO

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux: the kernel's receive time of each datagram


@dataclass
class Receiver:
    """A loopback UDP socket recording (arrival s, datagram) on a thread until closed. The arrival is the kernel's
    receive timestamp where the platform gives one (so a busy reader thread does not bunch arrivals up), else the
    reader's monotonic clock; only differences between arrivals are meaningful."""

    sock: socket.socket = field(default_factory=lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    arrivals: list[tuple[float, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.kernel_time = True
        except OSError:
            self.kernel_time = False
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, ancillary, _, _ = self.sock.recvmsg(65536, 64)
            except TimeoutError:
                continue
            at = time.monotonic()
            for level, kind, raw in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
                    sec, nsec = struct.unpack("qq", raw[:16])
                    at = sec + nsec * 1e-9
            self.arrivals.append((at, data))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def livelink_frames(arrivals: list[tuple[float, bytes]], subject: str) -> list[float]:
    """Arrival times of one subject's packets (the subject name follows the version and the 37-byte device id)."""
    name = subject.encode()
    return [t for t, d in arrivals if d[45 : 45 + len(name)] == name and len(d) > 45 + len(name)]


def vmc_frames(arrivals: list[tuple[float, bytes]]) -> list[float]:
    """Arrival times of the bundles that open a VMC frame (those carrying /VMC/Ext/OK)."""
    from pythonosc.osc_bundle import OscBundle

    return [t for t, d in arrivals if any(getattr(m, "address", "") == "/VMC/Ext/OK" for m in OscBundle(d))]


def interval_stats(times: list[float]) -> dict:
    gaps = np.diff(np.asarray(times)) * 1000.0
    if len(gaps) == 0:
        return {"frames": len(times)}
    p5, p50, p95 = np.percentile(gaps, [5, 50, 95])
    return {"frames": len(times), "p5_ms": float(p5), "p50_ms": float(p50), "p95_ms": float(p95),
            "burst_share": float(np.mean(gaps < 2.0))}  # fmt: skip


def run(seconds: float, bundle: str | None = None) -> dict[str, dict]:
    ll, vmc_a, vmc_b = Receiver(), Receiver(), Receiver()
    cmd = [sys.executable, "-m", "runtime.mic_demo", "--demo", "--view", "none", "--no-record",
           "--seconds", str(seconds), "--livelink", f"127.0.0.1:{ll.port}",
           "--vmc", f"127.0.0.1:{vmc_a.port},127.0.0.1:{vmc_b.port}"]  # fmt: skip
    if bundle:
        cmd += ["--bundle", bundle]
    try:
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True, timeout=seconds * 4 + 120)
        time.sleep(0.3)
    finally:
        for r in (ll, vmc_a, vmc_b):
            r.close()
    return {
        "Live Link A": interval_stats(livelink_frames(ll.arrivals, "InterAct_A")),
        "Live Link B": interval_stats(livelink_frames(ll.arrivals, "InterAct_B")),
        "VMC A": interval_stats(vmc_frames(vmc_a.arrivals)),
        "VMC B": interval_stats(vmc_frames(vmc_b.arrivals)),
    }


def table(results: dict[str, dict]) -> str:
    lines = ["| stream | frames | interval p5 | p50 | p95 | < 2 ms |", "|---|---|---|---|---|---|"]
    for name, s in results.items():
        if "p50_ms" not in s:
            lines.append(f"| {name} | {s['frames']} | - | - | - | - |")
            continue
        lines.append(f"| {name} | {s['frames']} | {s['p5_ms']:.1f} ms | {s['p50_ms']:.1f} ms | {s['p95_ms']:.1f} ms "
                     f"| {100 * s['burst_share']:.0f} % |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of the demo conversation (real time)")
    ap.add_argument("--bundle", help="model bundle (default: the shipped one)")
    args = ap.parse_args(argv)
    print(table(run(args.seconds, args.bundle)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
