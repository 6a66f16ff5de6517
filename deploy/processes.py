"""Child processes of the local cluster (``deploy.cluster``): a replica of ``runtime.server``, nginx, health checks.

Nothing here imports ``runtime``: a replica is a ``python -m runtime.server`` process spoken to over the standard
gRPC health protocol and its Prometheus text endpoint.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[1]


def free_port(host: str = "127.0.0.1", avoid: set[int] = frozenset()) -> int:
    """A port nothing listens on now (the OS's choice; another process could still take it before we bind)."""
    while True:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port


def health(target: str, service: str = "", timeout: float = 2.0, root_certificates: bytes | None = None,
           server_name: str | None = None) -> str:  # fmt: skip
    """grpc.health.v1 Check: "SERVING", "NOT_SERVING", ... or the gRPC error code's name ("UNAVAILABLE")."""
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    if root_certificates is not None:
        creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
        channel = grpc.secure_channel(target, creds, options=options)
    else:
        channel = grpc.insecure_channel(target)
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                              timeout=timeout)  # fmt: skip
        except grpc.RpcError as e:
            return e.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc; nginx's workers)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


def _orphan_guard() -> list[str]:
    """``setpriv --pdeathsig TERM``: the child gets SIGTERM if this thread dies (only from the main thread, which
    lives as long as the launcher; a worker thread's exit would otherwise stop the children)."""
    if threading.current_thread() is threading.main_thread() and shutil.which("setpriv"):
        return ["setpriv", "--pdeathsig", "TERM", "--"]
    return []


class Process:
    """A child process with its log file; ``kill(sig)`` and ``wait`` are no-ops once it has exited."""

    name = "process"

    def __init__(self, log: Path) -> None:
        self.log = log
        self.popen: subprocess.Popen | None = None

    def _spawn(self, command: list[str], **kw) -> None:
        with open(self.log, "ab") as out:  # the child keeps its own descriptor
            self.popen = subprocess.Popen([*_orphan_guard(), *command], stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True, **kw)  # fmt: skip

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def kill(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` (SIGTERM: drain; SIGKILL: crash) if the process is still running."""
        if self.alive:
            os.kill(self.popen.pid, sig)

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the exit (reaps it); returns the exit code, None if still running after ``timeout`` s."""
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


class Replica(Process):
    """One ``python -m runtime.server`` on a loopback port, with its own metrics port."""

    def __init__(self, index: int, host: str, port: int, metrics_port: int, log: Path, args: list[str]) -> None:
        super().__init__(log)
        self.index, self.host, self.port, self.metrics_port, self.args = index, host, port, metrics_port, args
        self.name = f"replica {index} ({self.address})"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, python: str) -> None:
        command = [python, "-m", "runtime.server", "--host", self.host, "--port", str(self.port),
                   "--metrics-port", str(self.metrics_port), *self.args]  # fmt: skip
        self._spawn(command, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def health(self, service: str = "", timeout: float = 2.0) -> str:
        return health(self.address, service, timeout)

    def metrics(self, timeout: float = 2.0) -> str:
        """The Prometheus text of ``/metrics``."""
        with urllib.request.urlopen(f"http://{self.host}:{self.metrics_port}/metrics", timeout=timeout) as r:
            return r.read().decode()

    def metric(self, name: str) -> float:
        """One unlabelled sample of ``/metrics``, e.g. ``metric("interact_sessions_active")``."""
        for line in self.metrics().splitlines():
            if line.split(" ")[0] == name:
                return float(line.split()[1])
        raise KeyError(f"{self.name}: no metric {name!r}")

    def __repr__(self) -> str:
        return f"Replica({self.index}, {self.address}, pid={self.pid}, metrics_port={self.metrics_port})"
