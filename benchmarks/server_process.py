"""The gRPC server under test, in its own process (``python -m runtime.server``) on loopback.

A separate process is how the server is deployed, keeps the benchmark's own clients off its interpreter lock, and
lets its CPU time and resident memory be read from /proc without the clients' share.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks.common import REPO, cpu_seconds, rss_mb

log = logging.getLogger(__name__)

SERVICE = "interact.v1.Interact"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``with ServerProcess(bundle, backend) as srv:`` -> ``srv.target``, ``srv.pid``, ``srv.cpu()``, ``srv.rss()``.

    The server runs with ``--no-degrade`` (a slow machine shows as latency, not as a different K or block) and a
    session limit high enough for the scaling section."""

    def __init__(self, bundle: Path, backend: str, threads: int = 1, max_sessions: int = 64,
                 ready_timeout: float = 300.0, extra_args: tuple[str, ...] = ()) -> None:  # fmt: skip
        """``extra_args``: more ``runtime.server`` flags, e.g. ("--batch-wait", "2")."""
        self.bundle, self.backend, self.threads, self.extra_args = Path(bundle), backend, threads, tuple(extra_args)
        self.max_sessions, self.ready_timeout = max_sessions, ready_timeout
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile("w+", prefix="bench-server-", suffix=".log", delete=False)
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> float:
        """CPU seconds the server process has used so far."""
        return cpu_seconds(self.pid)

    def rss(self) -> float:
        """Resident memory of the server process now (MiB)."""
        return rss_mb(self.pid)

    def start(self) -> ServerProcess:
        cmd = [sys.executable, "-m", "runtime.server", "--bundle", str(self.bundle), "--host", "127.0.0.1",
               "--port", str(self.port), "--backend", self.backend, "--threads", str(self.threads),
               "--max-sessions", str(self.max_sessions), "--no-degrade", "--grace", "1", "--log-interval", "3600",
               "--log-level", "WARNING", *self.extra_args]  # fmt: skip
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        with grpc.insecure_channel(self.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                if self.proc.poll() is not None:
                    tail = self.log_tail()
                    self.stop()
                    raise RuntimeError(f"the server exited with {self.proc.returncode}: {tail}")
                try:
                    reply = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                if time.monotonic() - t0 > self.ready_timeout:
                    tail = self.log_tail()
                    self.stop()
                    raise TimeoutError(f"server not SERVING after {self.ready_timeout:g} s: {tail}")
                time.sleep(0.2)
        log.info("server pid %d on %s ready in %.1f s (%s)", self.pid, self.target, time.monotonic() - t0,
                 self.backend)  # fmt: skip
        return self

    def log_tail(self, chars: int = 2000) -> str:
        self._log.flush()
        return Path(self._log.name).read_text()[-chars:]

    def stop(self) -> None:
        """SIGTERM (the server drains with a 1 s grace), then SIGKILL if it has not exited after 20 s."""
        if self._log.closed:
            return
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log.warning("server pid %d did not stop on SIGTERM; killing it", self.proc.pid)
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
