"""Run N ``runtime.server`` replicas behind nginx on this machine (a gRPC load balancer on one front port).

    python -m deploy.cluster --replicas 3 [--port 50050] [--bundle DIR] [--max-sessions 4] [--grace 10]
        [--tls-cert front.crt --tls-key front.key [--tls-ca ca.pem] [--tls-server-name NAME]] [--run-dir DIR]

prints ``front 127.0.0.1:50050 -> 3 replicas (127.0.0.1:PORT, ...)`` once every replica and the front answer
health SERVING, and on Ctrl-C / SIGTERM stops everything it started: SIGTERM to the replicas (they drain: running
sessions may finish within ``--grace`` s), then nginx's graceful quit. Each replica listens on a free loopback port
with its own ``/metrics`` port; logs, the nginx conf and nginx's access log are in the run dir (a temp folder,
removed after a clean stop unless ``--run-dir`` names one).

As a library (the scale tests)::

    with Cluster(replicas=3, port=0) as cluster:          # start() ... stop(), also on errors
        cluster.front                                      # "127.0.0.1:PORT": point clients here
        r = cluster.replicas[0]                            # .pid .port .metrics_port .log .health() .metrics()
        r.kill(signal.SIGKILL)                             # or SIGTERM: drain that one replica

With ``--tls-cert`` nginx holds a Stream's response headers in its TLS buffer until the first message: clients
must send their config without waiting for them (deploy/k8s/README.md).

Imports nothing of ours (DESIGN: deploy/ is outside runtime/): it starts ``python -m runtime.server`` processes and
speaks the standard gRPC health protocol to them. When started from the main thread, every child gets a parent-death
signal (``setpriv --pdeathsig``), so even a killed launcher leaves no replica or nginx behind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from deploy.nginx import (
    check_nginx_conf,
    find_nginx,
    nginx_command,
    nginx_version,
    render_nginx_conf,
    write_nginx_conf,
)
from deploy.processes import REPO, Process, Replica, children, free_port, health, tail

__all__ = ["Cluster", "ClusterError", "Replica", "health", "main"]

DEFAULT_BUNDLE = REPO / "runtime" / "assets" / "default"


class ClusterError(RuntimeError):
    """A replica or nginx did not start (the message names it and its log file)."""


class Cluster:
    """N replicas + nginx; ``start()`` returns once all of them and the front answer health SERVING."""

    def __init__(self, replicas: int = 2, port: int = 50050, *, host: str = "127.0.0.1",
                 bundle: str | Path | None = None, max_sessions: int = 4, grace: float = 10.0,
                 server_args: tuple[str, ...] = (), tls_cert: str | Path | None = None,
                 tls_key: str | Path | None = None, tls_ca: str | Path | None = None,
                 tls_server_name: str | None = None, run_dir: str | Path | None = None, nginx: str | None = None,
                 python: str = sys.executable, start_timeout: float = 120.0,
                 fail_timeout: float = 5.0) -> None:  # fmt: skip
        """``port`` 0 picks a free front port. ``server_args``: more ``runtime.server`` flags for every replica.
        ``tls_ca`` (default: the certificate itself, fine when self-signed) verifies the front in start()."""
        if replicas < 1:
            raise ValueError("replicas must be >= 1")
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("TLS needs both tls_cert and tls_key")
        self.n, self.host, self.port, self.grace = replicas, host, port, grace
        self.bundle = Path(bundle) if bundle is not None else DEFAULT_BUNDLE
        self.max_sessions, self.server_args = max_sessions, tuple(server_args)
        self.tls_cert, self.tls_key, self.tls_server_name = tls_cert, tls_key, tls_server_name
        self.tls_ca = tls_ca if tls_ca is not None else tls_cert
        self.python, self.start_timeout, self.fail_timeout = python, start_timeout, fail_timeout
        self.nginx_binary = nginx or find_nginx()
        self._own_run_dir = run_dir is None
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.replicas: list[Replica] = []
        self.nginx: Process | None = None
        self._started = False

    # -- addresses ----------------------------------------------------------------------------------------
    @property
    def front(self) -> str:
        return f"{self.host}:{self.port}"

    def describe(self) -> str:
        listing = ", ".join(r.address for r in self.replicas)
        tls = " (TLS)" if self.tls_cert else ""
        n = len(self.replicas)
        return f"front {self.front}{tls} -> {n} replica{'s' * (n != 1)} ({listing})"

    @property
    def pids(self) -> list[int]:
        """Every process this cluster runs now: replicas, nginx's master and its workers."""
        out = [p.pid for p in self.replicas if p.alive]
        if self.nginx is not None and self.nginx.alive:
            out += [self.nginx.pid, *children(self.nginx.pid)]
        return out

    def front_health(self, service: str = "", timeout: float = 2.0) -> str:
        roots = Path(self.tls_ca).read_bytes() if self.tls_cert else None
        return health(self.front, service, timeout, roots, self.tls_server_name)

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> Cluster:
        if self._started:
            raise RuntimeError("the cluster was already started")
        self._started = True
        if self.nginx_binary is None:
            raise ClusterError("nginx is not installed (Debian/Ubuntu: apt-get install nginx; or pass nginx=PATH)")
        if not (self.bundle / "manifest.json").is_file():
            raise ClusterError(f"{self.bundle}: not a model bundle (no manifest.json)")
        if self.run_dir is None:
            self.run_dir = Path(tempfile.mkdtemp(prefix="interact-cluster-"))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_replicas()
            self._start_nginx()
        except BaseException:
            self.stop(remove_run_dir=False)  # keep the logs the error names
            raise
        return self

    def _start_replicas(self) -> None:
        taken = {self.port}
        if self.port == 0:
            self.port = free_port(self.host)
            taken.add(self.port)
        args = ["--bundle", str(Path(self.bundle).resolve()), "--max-sessions", str(self.max_sessions),
                "--grace", f"{self.grace:g}", *self.server_args]  # fmt: skip
        for i in range(self.n):
            port = free_port(self.host, taken)
            metrics = free_port(self.host, taken | {port})
            taken |= {port, metrics}
            replica = Replica(i, self.host, port, metrics, self.run_dir / f"replica-{i}.log", args)
            self.replicas.append(replica)
            replica.start(self.python)
        deadline = time.monotonic() + self.start_timeout
        waiting = list(self.replicas)
        while waiting:
            for r in list(waiting):
                if not r.alive:
                    raise ClusterError(f"{r.name} exited with code {r.returncode} before serving; "
                                       f"log {r.log}:\n{tail(r.log)}")  # fmt: skip
                if r.health(timeout=1.0) == "SERVING":
                    waiting.remove(r)
            if waiting and time.monotonic() > deadline:
                r = waiting[0]
                raise ClusterError(f"{r.name} (pid {r.pid}) not SERVING after {self.start_timeout:g} s; "
                                   f"log {r.log}:\n{tail(r.log)}")  # fmt: skip
            if waiting:
                time.sleep(0.1)

    def _start_nginx(self) -> None:
        conf = render_nginx_conf(self.run_dir, (self.host, self.port), [(r.host, r.port) for r in self.replicas],
                                 tls_cert=self.tls_cert, tls_key=self.tls_key, fail_timeout=self.fail_timeout,
                                 modern_http2=nginx_version(self.nginx_binary) >= (1, 25, 1))  # fmt: skip
        write_nginx_conf(self.run_dir, conf)
        self.run_dir.chmod(0o755)  # nginx's workers may run as another user (nobody) when started by root
        check = check_nginx_conf(self.nginx_binary, self.run_dir)
        if check.returncode != 0:
            raise ClusterError(f"nginx -t rejected {self.run_dir / 'nginx.conf'}:\n{check.stderr.strip()}")
        self.nginx = Process(self.run_dir / "nginx.log")
        self.nginx.name = "nginx"
        self.nginx._spawn(nginx_command(self.nginx_binary, self.run_dir))
        deadline = time.monotonic() + 15.0
        while (status := self.front_health(timeout=1.0)) != "SERVING":
            if not self.nginx.alive:
                raise ClusterError(f"nginx exited with code {self.nginx.returncode}; logs {self.nginx.log}, "
                                   f"{self.run_dir / 'error.log'}:\n{tail(self.run_dir / 'error.log')}"
                                   f"{tail(self.nginx.log)}")  # fmt: skip
            if time.monotonic() > deadline:
                log = self.run_dir / "error.log"
                raise ClusterError(f"the front {self.front} answers {status}, not SERVING, after 15 s; "
                                   f"log {log}:\n{tail(log)}")  # fmt: skip
            time.sleep(0.1)

    def stop(self, remove_run_dir: bool = True) -> None:
        """SIGTERM every replica (they drain for up to ``grace`` s), then nginx's graceful quit; SIGKILL whatever
        is still running after that. Idempotent. Removes the run dir if this cluster made it."""
        for r in self.replicas:
            r.kill(signal.SIGTERM)
        deadline = time.monotonic() + self.grace + 10.0
        for r in self.replicas:
            if r.wait(max(0.0, deadline - time.monotonic())) is None:
                r.kill(signal.SIGKILL)
                r.wait(5.0)
        if self.nginx is not None and self.nginx.alive:
            workers = children(self.nginx.pid)
            for sig, wait in ((signal.SIGQUIT, 10.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                self.nginx.kill(sig)
                if self.nginx.wait(wait) is not None:
                    break
            for pid in workers:  # normally gone with their master; not after a SIGKILL
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if remove_run_dir and self._own_run_dir and self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", type=int, required=True, help="how many runtime.server processes")
    ap.add_argument("--port", type=int, default=50050, help="the front (nginx) port; 0 = any free one")
    ap.add_argument("--host", default="127.0.0.1", help="interface of the front and the replicas")
    ap.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="model bundle (default: %(default)s)")
    ap.add_argument("--max-sessions", type=int, default=4, help="per replica (default: %(default)s)")
    ap.add_argument("--grace", type=float, default=10.0, help="s a replica's sessions may take on stop")
    ap.add_argument("--tls-cert", type=Path, help="PEM certificate chain: the front speaks TLS")
    ap.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    ap.add_argument("--tls-ca", type=Path, help="CA to verify the front with (default: --tls-cert)")
    ap.add_argument("--tls-server-name", help="name to verify the front's certificate against")
    ap.add_argument("--run-dir", type=Path, help="logs and nginx files here (kept); default: a temp folder")
    ap.add_argument("--nginx", help="the nginx binary (default: from PATH or /usr/sbin)")
    ap.add_argument("--start-timeout", type=float, default=120.0, help="s for a replica to report SERVING")
    ap.add_argument("server_args", nargs="*", help="more runtime.server flags after --, e.g. -- --workers 2")
    a = ap.parse_args(argv)
    cluster = Cluster(a.replicas, a.port, host=a.host, bundle=a.bundle, max_sessions=a.max_sessions, grace=a.grace,
                      server_args=tuple(a.server_args), tls_cert=a.tls_cert, tls_key=a.tls_key, tls_ca=a.tls_ca,
                      tls_server_name=a.tls_server_name, run_dir=a.run_dir, nginx=a.nginx,
                      start_timeout=a.start_timeout)  # fmt: skip
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, and SIGTERM alike (also when started with SIGINT ignored)
        signal.signal(sig, _raise_interrupt)
    code = 0
    try:
        cluster.start()
        print(cluster.describe(), flush=True)
        print(f"logs in {cluster.run_dir}; Ctrl-C stops everything", file=sys.stderr, flush=True)
        reported: set[int] = set()
        while True:
            if not cluster.nginx.alive:
                print(f"cluster: nginx exited with code {cluster.nginx.returncode}", file=sys.stderr)
                code = 1
                break
            for r in cluster.replicas:
                if not r.alive and r.index not in reported:
                    reported.add(r.index)
                    print(f"cluster: {r.name} pid {r.pid} exited with code {r.returncode} (log {r.log}); "
                          "nginx routes around it", file=sys.stderr, flush=True)  # fmt: skip
            if len(reported) == len(cluster.replicas):
                print("cluster: every replica has exited", file=sys.stderr)
                code = 1
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except ClusterError as e:
        print(f"cluster: {e}", file=sys.stderr)
        code = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # stop() waits at most grace + 25 s: let it finish
            signal.signal(sig, signal.SIG_IGN)
        print(f"cluster: stopping {len(cluster.replicas)} replicas (drain up to {a.grace:g} s) and nginx",
              file=sys.stderr, flush=True)  # fmt: skip
        cluster.stop(remove_run_dir=code == 0 and a.run_dir is None)
    return code


if __name__ == "__main__":
    sys.exit(main())
