"""The gRPC server (DESIGN 8): a bidirectional ``Stream`` per two-person session, ``DescribeModel``, health, reflection.

    python -m runtime.server --bundle runtime/assets/default --port 50051 [--backend auto] [--max-sessions 8]
        [--token SECRET] [--tls-cert server.crt --tls-key server.key] [--grace 10] [--metrics-port 9100] [--log-json]

- One ``grpc.aio`` event loop does all I/O; inference runs on a dedicated executor (``--workers`` threads, default
  one, shared by every session), so the loop is never blocked. Per session: reader -> bounded inbox -> inference
  -> bounded outbox (drops the oldest frames for a slow client) -> writer (``runtime.serving.session``).
  ``--batch-wait MS``: sessions' graph calls run batched (``runtime.model.batching``), one thread per session.
- Health (``grpc.health.v1``, "" and ``interact.v1.Interact``): NOT_SERVING until the model is warm, and while draining.
- SIGTERM/SIGINT drain: NOT_SERVING, running sessions get a DRAINING event (their clients may resume elsewhere) and
  may finish within ``--grace`` s, the rest end with UNAVAILABLE; new sessions get UNAVAILABLE. Beyond
  ``--max-sessions`` concurrent sessions: RESOURCE_EXHAUSTED. Reflection (v1 and v1alpha) lists the services.
- ``--token``: ``Stream`` and ``DescribeModel`` need metadata ``authorization: Bearer <token>`` (UNAUTHENTICATED
  otherwise); health and reflection stay open for load balancers. ``--tls-cert/--tls-key`` serve TLS.
- Keepalive: the server pings idle connections every 60 s and permits client pings every >= 30 s.
- ``--metrics-port``: Prometheus text at ``/metrics`` on the ``--host`` interface (``--metrics-host`` to change it); a
  summary line is logged every ``--log-interval`` s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from runtime.model.backends import BACKENDS, BackendUnavailable
from runtime.model.model import DEFAULT_BUNDLE, PRECISIONS, Model
from runtime.serving.auth import BearerTokenInterceptor
from runtime.serving.convert import model_to_proto
from runtime.serving.logs import configure_logging
from runtime.serving.metrics import Metrics, MetricsEndpoint, ipv4_interface
from runtime.serving.outbox import SessionError
from runtime.serving.protos.interact.v1 import interact_pb2 as pb
from runtime.serving.protos.interact.v1 import interact_pb2_grpc as pb_grpc
from runtime.serving.reflection import serve_reflection
from runtime.serving.session import Session, SessionLimits

log = logging.getLogger(__name__)

SERVICE = pb.DESCRIPTOR.services_by_name["Interact"].full_name  # "interact.v1.Interact"
MAX_MESSAGE_BYTES = 4 << 20  # gRPC's default, stated: a 1 s chunk at 48 kHz stereo float32 is 384 kB
SERVER_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 60_000),  # ping an idle client every 60 s to find dead connections
    ("grpc.keepalive_timeout_ms", 20_000),  # ... and drop it after 20 s without an answer
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 30_000),  # clients may ping every >= 30 s (default 5 min)
    ("grpc.http2.max_pings_without_data", 0),  # no limit on pings between data frames
)


@dataclass(frozen=True)
class ServerConfig:
    bundle: Path = DEFAULT_BUNDLE
    host: str = "[::]"
    port: int = 50051  # 0 = any free port
    backend: str = "auto"
    threads: int = 1  # intra-op threads per graph (2-core CPU: 1)
    precision: str = "auto"  # "auto": the bundle's int8 graphs on ort-cpu; "fp32": never
    workers: int = 1  # inference threads shared by all sessions
    max_sessions: int = 8  # concurrent sessions; more get RESOURCE_EXHAUSTED
    token: str | None = None  # bearer token required on Stream and DescribeModel
    tls_cert: Path | None = None  # PEM certificate chain
    tls_key: Path | None = None  # PEM private key
    grace: float = 10.0  # s running sessions may take to finish on shutdown
    metrics_port: int | None = None  # Prometheus /metrics; None = off, 0 = any free port
    metrics_host: str | None = None  # interface of /metrics; None = the gRPC host's (loopback stays loopback)
    log_interval: float = 30.0  # s between summary log lines
    send_buffer: float = 5.0  # s of unread frames held per session before the oldest are dropped
    degrade: bool = True  # engines may use fewer steps / larger blocks when compute falls behind
    batch_wait: float | None = None  # s a graph call may wait for other sessions' (cross-session batching); None = off
    batch_threads: int = 1  # threads running batched graph calls


class InteractServicer(pb_grpc.InteractServicer):
    """Thin: admission, then the session's messages are written as they come (``runtime.serving.session``)."""

    def __init__(self, server: InteractServer) -> None:
        self.server = server

    async def Stream(self, request_iterator, context: grpc.aio.ServicerContext) -> None:  # noqa: N802 (gRPC name)
        srv = self.server
        refusal = srv.admission()
        if refusal is not None:
            code, message, reason = refusal
            srv.metrics.reject(reason)
            await context.abort(code, message)
        session = srv.add_session()
        code, done = "OK", False
        try:
            # Admitted: headers now, so a client can wait for them before writing (a refusal arrives instead).
            await context.send_initial_metadata((("interact-session-id", session.id),))
            await session.open(request_iterator)
            while (msg := await session.next()) is not None:
                await context.write(msg)
                done = msg.WhichOneof("kind") == "status"  # a client that leaves after the status ended OK
        except SessionError as e:
            code = e.code.name
            log.warning("session %s: %s: %s", session.id, code, e.message)
            await context.abort(e.code, e.message)
        except asyncio.CancelledError:
            if not done:
                code = "CANCELLED"
                log.info("session %s: cancelled: the client went away, or gRPC ended the call (e.g. a message over "
                         "the %d MiB limit, which the client sees as RESOURCE_EXHAUSTED)", session.id,
                         MAX_MESSAGE_BYTES >> 20)  # fmt: skip
            raise
        finally:
            await srv.remove_session(session, code)

    async def DescribeModel(self, request: pb.DescribeModelRequest, context) -> pb.ModelDescription:  # noqa: N802
        if self.server.description is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the model is still loading; wait for health SERVING")
        return self.server.description


class InteractServer:
    """The server's lifecycle: ``start`` (bind, NOT_SERVING) -> ``load`` (model warm, SERVING) -> ``drain``."""

    def __init__(self, config: ServerConfig) -> None:
        if (config.tls_cert is None) != (config.tls_key is None):
            raise ValueError("TLS needs both a certificate (--tls-cert) and a key (--tls-key)")
        if config.max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {config.max_sessions}")
        self.config = config
        self.model: Model | None = None
        self.description: pb.ModelDescription | None = None
        self.sessions: dict[str, Session] = {}
        self.metrics = Metrics()
        self.limits = SessionLimits(send_buffer=config.send_buffer, degrade=config.degrade)
        # Batching needs every session able to be inside a step at once (they wait in the batcher, not on the CPU).
        workers = config.workers if config.batch_wait is None else max(config.workers, config.max_sessions)
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inference")
        self.health = health.aio.HealthServicer()
        self.draining = False
        self.port: int | None = None
        self._server: grpc.aio.Server | None = None
        self._endpoint: MetricsEndpoint | None = None
        self._idle = asyncio.Event()
        self._stopped = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # -- sessions ------------------------------------------------------------------------------------------
    def admission(self) -> tuple[grpc.StatusCode, str, str] | None:
        """Why a new session is refused now (code, message, metric reason), or None."""
        if self.draining:
            return grpc.StatusCode.UNAVAILABLE, "the server is shutting down; connect to another instance", "draining"
        if self.model is None:
            return grpc.StatusCode.UNAVAILABLE, "the model is still loading; wait for health SERVING", "loading"
        if len(self.sessions) >= self.config.max_sessions:
            limit = f"the server is at its limit of {self.config.max_sessions} concurrent sessions"
            return grpc.StatusCode.RESOURCE_EXHAUSTED, limit, "max_sessions"
        return None

    def add_session(self) -> Session:
        session = Session(uuid.uuid4().hex[:8], self.model, self.executor, self.limits)
        self.sessions[session.id] = session
        self.metrics.started(session)
        self._idle.clear()
        return session

    async def remove_session(self, session: Session, code: str) -> None:
        """Close and account for the session even if the call is cancelled meanwhile (a client leaving right after
        the status cancels the handler while it closes; the session must not leak)."""
        try:
            await asyncio.shield(session.close())
        finally:
            self.sessions.pop(session.id, None)
            self.metrics.ended(session, code)
            log.info("session %s ended %s: %d frames sent, %d dropped, %.1f s audio, latency p50 %.3f s p95 %.3f s",
                     session.id, code, session.frames_sent, session.frames_dropped, session.audio_seconds,
                     *session.latency)  # fmt: skip
            if not self.sessions:
                self._idle.set()

    # -- lifecycle -----------------------------------------------------------------------------------------
    async def start(self) -> int:
        """Bind and serve health (NOT_SERVING), reflection and the API; returns the bound port."""
        c = self.config
        interceptors = [BearerTokenInterceptor(c.token, self.metrics, SERVICE)] if c.token else []
        server = grpc.aio.server(interceptors=interceptors, options=SERVER_OPTIONS)
        pb_grpc.add_InteractServicer_to_server(InteractServicer(self), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        serve_reflection(server, (SERVICE, health.SERVICE_NAME))
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        address = f"{c.host}:{c.port}"
        if c.tls_cert is not None:
            creds = grpc.ssl_server_credentials([(Path(c.tls_key).read_bytes(), Path(c.tls_cert).read_bytes())])
            port = server.add_secure_port(address, creds)
        else:
            port = server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"cannot bind {address}")
        await server.start()
        self._server, self.port = server, port
        self._idle.set()
        if c.metrics_port is not None:
            self._endpoint = MetricsEndpoint(self.metrics, c.metrics_port, c.metrics_host or ipv4_interface(c.host))
            self._endpoint.start()
        self._tasks.append(asyncio.create_task(self._log_periodically(), name="metrics-log"))
        log.info("listening on %s (port %d, %s)", address, port, "TLS" if c.tls_cert else "insecure")
        return port

    @property
    def metrics_port(self) -> int | None:
        return None if self._endpoint is None else self._endpoint.port

    async def load(self) -> None:
        """Load the bundle and warm every graph up on the inference thread, then report SERVING."""
        c = self.config
        t0 = time.perf_counter()
        model = await asyncio.get_running_loop().run_in_executor(self.executor, _load_and_warm, c)
        self.model, self.description = model, model_to_proto(model)
        self.metrics.ready = True
        if not self.draining:
            await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("model %s on %s ready in %.1f s", model.bundle.name, self.description.backend,
                 time.perf_counter() - t0)  # fmt: skip

    async def drain(self, grace: float | None = None) -> None:
        """Stop accepting sessions, let running ones finish within ``grace`` s, end the rest, stop the server."""
        if self.draining:
            await self._stopped.wait()
            return
        grace = self.config.grace if grace is None else grace
        self.draining = self.metrics.draining = True
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        log.info("draining: %d session(s) running, grace %g s", len(self.sessions), grace)
        for s in self.sessions.values():
            s.draining(grace)
        try:
            if self.sessions:
                await asyncio.wait_for(self._idle.wait(), timeout=grace)
        except TimeoutError:
            for s in list(self.sessions.values()):
                s.fail(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the server shut down before the session finished (grace period {grace:g} s)",
                )
            log.warning("grace period over: ended %d session(s)", len(self.sessions))
        if self._server is not None:
            await self._server.stop(grace=1.0)  # lets the UNAVAILABLE statuses reach their clients
        for t in self._tasks:
            t.cancel()
        if self._endpoint is not None:
            self._endpoint.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self._stopped.set()
        log.info("stopped")

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def _set_health(self, status: int) -> None:
        for service in ("", SERVICE):
            await self.health.set(service, status)

    async def _log_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.config.log_interval)
            s = self.metrics.snapshot()
            log.info("summary: %d session(s), %d frames sent, %d dropped", s["sessions"], s["frames_sent"],
                     s["frames_dropped"], extra={"fields": s})  # fmt: skip


def _load_and_warm(c: ServerConfig) -> Model:
    model = Model.load(c.bundle, backend=c.backend, threads=c.threads, precision=c.precision)
    d = model.bundle.defaults
    model.warm_up(frames=d["context"] + d["block"] + d["lookahead"], steps=d["steps"])
    if c.batch_wait is not None:
        model.batch_across_sessions(c.batch_wait, max_batch=max(2, 2 * c.max_sessions), threads=c.batch_threads)
    return model


class ServerThread:
    """An ``InteractServer`` on its own event loop in a background thread (tests, benchmarks, in-process demos).

    with ServerThread(ServerConfig(bundle=path, port=0)) as srv:   # started and loaded
        client = Client(f"localhost:{srv.port}")
    """

    def __init__(self, config: ServerConfig, load: bool = True) -> None:
        self.config = config
        self._load = load
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="interact-server", daemon=True)
        self.server: InteractServer | None = None
        self.port: int | None = None

    def run(self, coro, timeout: float | None = 60.0):
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> ServerThread:
        self._thread.start()

        async def make() -> InteractServer:
            return InteractServer(self.config)

        self.server = self.run(make())
        self.port = self.run(self.server.start())
        if self._load:
            self.load()
        return self

    def load(self) -> None:
        self.run(self.server.load(), timeout=300)

    def drain(self, grace: float | None = None) -> None:
        self.run(self.server.drain(grace), timeout=None)

    def stop(self) -> None:
        if self.server is not None and self._thread.is_alive():
            self.drain(grace=0)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------- command line
async def serve(config: ServerConfig) -> None:
    """Run until SIGTERM/SIGINT, then drain with ``config.grace``."""
    server = InteractServer(config)
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    load = asyncio.create_task(server.load())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({load, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if load.done() and load.exception() is not None:
        await server.drain(grace=0)
        raise load.exception()
    await stopping
    log.info("signal received")
    load.cancel()
    await server.drain()


def parse_args(argv: list[str] | None = None) -> tuple[ServerConfig, argparse.Namespace]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="model bundle folder (default: %(default)s)")
    ap.add_argument("--host", default="[::]", help="address to bind (default: all)")
    ap.add_argument("--port", type=int, default=50051, help="0 = any free port")
    ap.add_argument("--backend", default="auto", choices=BACKENDS)
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads per graph")
    ap.add_argument("--precision", default="auto", choices=PRECISIONS,
                    help="auto: the bundle's int8 graphs on ort-cpu where present; fp32: float32 only")  # fmt: skip
    ap.add_argument("--workers", type=int, default=1, help="inference threads shared by all sessions")
    ap.add_argument("--max-sessions", type=int, default=8)
    ap.add_argument("--token", help="require 'authorization: Bearer TOKEN' metadata")
    ap.add_argument("--tls-cert", type=Path, help="PEM certificate chain (with --tls-key)")
    ap.add_argument("--tls-key", type=Path, help="PEM private key")
    ap.add_argument("--grace", type=float, default=10.0, help="s running sessions may take on shutdown")
    ap.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    ap.add_argument("--metrics-host", help="interface of /metrics (default: the --host interface)")
    ap.add_argument("--log-interval", type=float, default=30.0, help="s between summary log lines")
    ap.add_argument("--send-buffer", type=float, default=5.0, help="s of unread frames kept for a slow client")
    ap.add_argument("--no-degrade", action="store_true", help="never trade steps/blocks for speed")
    ap.add_argument("--batch-wait", type=float, metavar="MS", help="batch graph calls across sessions, each waiting "
                    "at most MS ms for others (default: off)")  # fmt: skip
    ap.add_argument("--batch-threads", type=int, default=1, help="threads running the batched graph calls")
    ap.add_argument("--log-json", action="store_true", help="structured JSON log lines")
    ap.add_argument("--log-level", default="INFO")
    a = ap.parse_args(argv)
    config = ServerConfig(bundle=a.bundle, host=a.host, port=a.port, backend=a.backend, threads=a.threads,
                          precision=a.precision, workers=a.workers, max_sessions=a.max_sessions, token=a.token,
                          tls_cert=a.tls_cert, tls_key=a.tls_key, grace=a.grace, metrics_port=a.metrics_port,
                          metrics_host=a.metrics_host, log_interval=a.log_interval, send_buffer=a.send_buffer,
                          degrade=not a.no_degrade, batch_wait=None if a.batch_wait is None else a.batch_wait / 1000,
                          batch_threads=a.batch_threads)  # fmt: skip
    return config, a


def main(argv: list[str] | None = None) -> None:
    config, args = parse_args(argv)
    configure_logging(args.log_level, args.log_json)
    try:
        asyncio.run(serve(config))
    except (ValueError, OSError, BackendUnavailable) as e:  # bad bundle, port in use, missing backend
        log.error("%s", e)
        sys.exit(1)
