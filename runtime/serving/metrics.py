"""Server metrics: counters, live sessions, a Prometheus text endpoint and a periodic summary (DESIGN 10).

    metrics = Metrics()
    metrics.started(session) ... metrics.ended(session, "OK")
    endpoint = MetricsEndpoint(metrics, port=9100).start()    # GET /metrics (Prometheus text format 0.0.4)

The endpoint is a plain ``http.server`` on a daemon thread; it only reads numbers the event loop and the inference
thread write, under a lock for the session table.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

log = logging.getLogger(__name__)


class SessionStats(Protocol):
    """What a live session reports (``runtime.serving.session.Session``)."""

    id: str
    frames_produced: int
    latency: tuple[float, float]  # s, p50 / p95

    @property
    def frames_sent(self) -> int: ...

    @property
    def frames_dropped(self) -> int: ...

    @property
    def audio_seconds(self) -> float: ...


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, SessionStats] = {}
        self.ended_by_code: Counter[str] = Counter()  # finished sessions by gRPC status code name
        self.rejected: Counter[str] = Counter()  # sessions refused before starting, by reason
        self._frames_sent = 0  # of finished sessions
        self._frames_dropped = 0
        self.ready = False  # model loaded and warm
        self.draining = False
        self.started_at = time.monotonic()

    def started(self, session: SessionStats) -> None:
        with self._lock:
            self._live[session.id] = session

    def ended(self, session: SessionStats, code: str) -> None:
        with self._lock:
            if self._live.pop(session.id, None) is None:
                return
            self.ended_by_code[code] += 1
            self._frames_sent += session.frames_sent
            self._frames_dropped += session.frames_dropped

    def reject(self, reason: str) -> None:
        with self._lock:
            self.rejected[reason] += 1

    @property
    def active(self) -> int:
        return len(self._live)

    def snapshot(self) -> dict:
        """Totals and per-session numbers (the periodic log line; tests)."""
        with self._lock:
            live = list(self._live.values())
            sessions = {s.id: {"frames": s.frames_sent, "dropped": s.frames_dropped,
                               "audio_s": round(s.audio_seconds, 2), "latency_p50": round(s.latency[0], 4),
                               "latency_p95": round(s.latency[1], 4)}
                        for s in live}  # fmt: skip
            return {
                "sessions": len(live),
                "sessions_ended": dict(self.ended_by_code),
                "sessions_rejected": dict(self.rejected),
                "frames_sent": self._frames_sent + sum(s.frames_sent for s in live),
                "frames_dropped": self._frames_dropped + sum(s.frames_dropped for s in live),
                "ready": self.ready,
                "draining": self.draining,
                "per_session": sessions,
            }

    def render(self) -> str:
        """Prometheus text exposition format."""
        s = self.snapshot()
        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            lines.extend([f"# HELP {name} {help_}", f"# TYPE {name} {kind}"])
            lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

        metric("interact_ready", "gauge", "1 once the model is loaded and warm.", [("", int(s["ready"]))])
        metric("interact_draining", "gauge", "1 while the server shuts down.", [("", int(s["draining"]))])
        metric("interact_sessions_active", "gauge", "Sessions streaming now.", [("", s["sessions"])])
        metric("interact_sessions_ended_total", "counter", "Finished sessions by gRPC status code.",
               [(f'{{code="{c}"}}', n) for c, n in sorted(s["sessions_ended"].items())])  # fmt: skip
        metric("interact_sessions_rejected_total", "counter", "Sessions refused before starting, by reason.",
               [(f'{{reason="{r}"}}', n) for r, n in sorted(s["sessions_rejected"].items())])  # fmt: skip
        metric("interact_frames_sent_total", "counter", "Frames written to clients.", [("", s["frames_sent"])])
        metric("interact_frames_dropped_total", "counter", "Frames dropped for clients reading too slowly.",
               [("", s["frames_dropped"])])  # fmt: skip
        per = s["per_session"]
        metric("interact_session_frames_sent", "gauge", "Frames written so far, per live session.",
               [(f'{{session="{i}"}}', v["frames"]) for i, v in per.items()])  # fmt: skip
        metric("interact_session_latency_seconds", "gauge",
               "Audio completing a frame's lookahead -> frame emitted, per live session.",
               [(f'{{session="{i}",quantile="{q}"}}', v[f"latency_p{int(float(q) * 100)}"])
                for i, v in per.items() for q in ("0.5", "0.95")])  # fmt: skip
        return "\n".join(lines) + "\n"


def ipv4_interface(grpc_host: str) -> str:
    """The IPv4 interface matching a gRPC listen host: ``[::]`` -> all, ``[::1]`` / localhost -> loopback."""
    host = grpc_host.strip("[]")
    return {"": "0.0.0.0", "::": "0.0.0.0", "::1": "127.0.0.1", "localhost": "127.0.0.1"}.get(host, host)


class MetricsEndpoint:
    """``GET /metrics`` on ``host:port`` (port 0 picks a free one) from a daemon thread."""

    def __init__(self, metrics: Metrics, port: int = 0, host: str = "0.0.0.0") -> None:
        self.metrics = metrics
        metrics_ref = metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is served here")
                    return
                body = metrics_ref.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
                log.debug("metrics %s: " + format, self.address_string(), *args)

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics", daemon=True)

    def start(self) -> MetricsEndpoint:
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics", self._httpd.server_address[0], self.port)
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
