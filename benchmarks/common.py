"""What every benchmark section shares: the settings grid, the audio, statistics, process readings, the machine.

Times are seconds inside the code and milliseconds in reports (keys end in ``_ms``). Memory is MiB (``_mb``).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from runtime.constants import FPS, SAMPLE_RATE
from runtime.engine.settings import SessionSettings
from runtime.formats.wav import read_audio
from training.reporting import cpu_model

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
REAL_SPEECH = REPO.parent / "shared" / "external" / "pyannote-dialogue"  # 30 s two-person mixes (pyannote tests)
DEMO_AUDIO = REPO / "runtime" / "assets" / "demo"  # 20 s per speaker, always shipped
CHUNK_MS = 40.0  # a microphone client's chunk (A2F sends ~35 ms; runtime.serving.client.replay_wavs uses 40 ms)
PACKAGES = ("numpy", "scipy", "onnxruntime", "onnxruntime-gpu", "tensorrt", "grpcio", "protobuf", "soxr", "torch",
            "matplotlib")  # fmt: skip


@dataclass(frozen=True)
class Setting:
    """One point of the streaming grid: K DDIM steps, block B, lookahead L, context C (frames at 30 fps)."""

    steps: int
    block: int
    lookahead: int
    context: int

    @property
    def label(self) -> str:
        return f"K{self.steps} B{self.block} L{self.lookahead}"

    @property
    def block_ms(self) -> float:
        return 1000.0 * self.block / FPS

    @property
    def lookahead_ms(self) -> float:
        return 1000.0 * self.lookahead / FPS

    @property
    def algorithmic_ms(self) -> float:
        """(B + L) / fps: how long a block's first frame waits for audio before its block can run."""
        return self.block_ms + self.lookahead_ms

    @property
    def latency_bound_ms(self) -> float:
        """The p95 chunk->frame target: lookahead + block period + 50 ms (compute, transport, chunking)."""
        return self.lookahead_ms + self.block_ms + 50.0

    def session(self, seed: int = 1) -> SessionSettings:
        """Engine settings; ``degrade`` off so a slow machine shows up as latency, never as a different K or B."""
        return SessionSettings(block=self.block, lookahead=self.lookahead, context=self.context, steps=self.steps,
                               seed=seed, degrade=False).validate()  # fmt: skip

    def to_dict(self) -> dict:
        return {"steps": self.steps, "block": self.block, "lookahead": self.lookahead, "context": self.context}


def grid(steps: list[int], blocks: list[int], lookaheads: list[int], context: int) -> list[Setting]:
    return [Setting(k, b, la, context) for k in steps for b in blocks for la in lookaheads]


def cross(default: Setting, steps: list[int], blocks: list[int], lookaheads: list[int]) -> list[Setting]:
    """The default, every K at the default B/L, then every B/L at the default K (each once): the paced settings."""
    out = [default] + [replace(default, steps=k) for k in steps]
    out += [replace(default, block=b, lookahead=la) for b in blocks for la in lookaheads]
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------------------------------- audio
def load_pair(seconds: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """Two speakers' (N,) float32 16 kHz tracks of ``seconds`` each (looped if the files are shorter).

    Real speech (``../shared/external/pyannote-dialogue``: dev00.wav as A, sample.wav as B) when present, else the
    shipped demo WAVs."""
    real = [REAL_SPEECH / "dev00.wav", REAL_SPEECH / "sample.wav"]
    paths = real if all(p.is_file() for p in real) else [DEMO_AUDIO / "a.wav", DEMO_AUDIO / "b.wav"]
    n = int(round(seconds * SAMPLE_RATE))
    tracks = []
    for p in paths:
        x = read_audio(p, SAMPLE_RATE).channels[0]
        tracks.append(np.resize(x, n).astype(np.float32))  # np.resize repeats the signal to fill n
    source = {"kind": "real speech" if paths == real else "demo", "a": str(paths[0]), "b": str(paths[1]),
              "seconds": seconds}  # fmt: skip
    return tracks[0], tracks[1], source


# ---------------------------------------------------------------------------------------------------- statistics
def stats_ms(seconds: list[float] | np.ndarray) -> dict[str, float | int]:
    """mean, p50, p95, p99, max in ms of a list of seconds, and n (all 0 for an empty list)."""
    x = np.asarray(seconds, np.float64) * 1000.0
    if x.size == 0:
        return {"n": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    p50, p95, p99 = np.percentile(x, [50, 95, 99])
    return {"n": int(x.size), "mean": float(x.mean()), "p50": float(p50), "p95": float(p95), "p99": float(p99),
            "max": float(x.max())}  # fmt: skip


# ---------------------------------------------------------------------------------------------------- process
def _status(pid: int | str, key: str) -> float:
    """A ``kB`` line of /proc/<pid>/status in MiB (VmRSS: resident now, VmHWM: peak resident)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    raise KeyError(f"/proc/{pid}/status has no {key}")


def rss_mb(pid: int | str = "self") -> float:
    return _status(pid, "VmRSS")


def peak_rss_mb(pid: int | str = "self") -> float:
    return _status(pid, "VmHWM")


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat fields 14 and 15, in clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # the command name may hold spaces; fields after it are fixed
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------------- machine
def machine(backends: list[str]) -> dict:
    """CPU model, cores, memory, GPU, library versions, ONNX Runtime providers, load average."""
    cpu = cpu_model()
    try:
        mem = _meminfo_gb()
    except (OSError, KeyError, ValueError):
        mem = None
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        import onnxruntime

        providers = list(onnxruntime.get_available_providers())
    except ImportError:
        providers = []
    return {"cpu": cpu, "cores": os.cpu_count(), "cores_usable": len(os.sched_getaffinity(0)), "memory_gb": mem,
            "gpu": gpu_names(), "python": platform.python_version(), "platform": platform.platform(),
            "libraries": versions, "ort_providers": providers, "backends": backends,
            "load_average": [round(x, 2) for x in os.getloadavg()], "nice": os.nice(0)}  # fmt: skip


def _meminfo_gb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    raise KeyError("MemTotal")


def gpu_names() -> list[str]:
    """``nvidia-smi -L`` lines, or [] without an NVIDIA driver."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]
