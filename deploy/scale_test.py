"""``make scale-test``: sessions that survive lost replicas, on this machine, loopback only.

    python -m deploy.scale_test [--replicas 3] [--sessions 6] [--seconds 24] [--kill-at 6] [--drain-at 12]

Starts the cluster (``deploy.cluster``: N ``runtime.server`` replicas behind nginx) and streams real two-person
speech (``../shared/external/pyannote-dialogue`` when present, else the shipped demo voices) in M concurrent sessions
at real-time pace through the front, each a ``runtime.serving.resume.ResumingStream``. At ``--kill-at`` s it
``kill -9``s the replica serving the most sessions; at ``--drain-at`` s it SIGTERMs another replica that serves
sessions (it drains: DRAINING events, then it exits once its sessions have moved). Then it checks and prints:

- every session's frames cover its whole audio, in order, no index twice (frames lost 0), time codes index / 30;
- reconnects per session and in all, and why (the kill: UNAVAILABLE; the drain: the DRAINING notice);
- the longest gap in frames at a client (wall clock between two frame batches: the failover pause);
- that no session opened after nginx noticed the dead replica was routed to it (nginx's access log);
- that the drained replica's sessions moved without error and it exited with code 0.

Exits 1 on any failure; the last line is one summary.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deploy.cluster import Cluster, ClusterError
from deploy.processes import REPO

REAL = REPO.parent / "shared" / "external" / "pyannote-dialogue"
DEMO = REPO / "runtime" / "assets" / "demo"
CHUNK_S = 0.04


@dataclass
class Run:
    """One session as its client saw it."""

    name: str
    frames: list[np.ndarray] = field(default_factory=list)  # index arrays in arrival order
    times: list[np.ndarray] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # monotonic s of each batch
    session_ids: list[str] = field(default_factory=list)  # one per server it ran on
    resumed: list[str] = field(default_factory=list)  # why, per reconnect
    status: object = None
    error: str = ""

    @property
    def index(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros(0, np.int64)


def voices(seconds: float, rate: int = 16000) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pairs of (A, B) tracks: real two-person speech, each session starting at another offset."""
    from runtime.formats.wav import read_audio

    paths = [REAL / "dev00.wav", REAL / "sample.wav"]
    if not all(p.is_file() for p in paths):
        paths = [DEMO / "a.wav", DEMO / "b.wav"]
    a, b = (read_audio(p, rate).channels[0] for p in paths)
    n = int(seconds * rate)
    out = []
    for k in range(16):
        shift = int(k * 1.7 * rate)
        out.append((np.resize(np.roll(a, -shift), n).astype(np.float32),
                    np.resize(np.roll(b, -shift), n).astype(np.float32)))  # fmt: skip
    return out


async def stream_one(front: str, run: Run, a: np.ndarray, b: np.ndarray, start_at: float) -> None:
    from runtime.engine.frames import Frames
    from runtime.serving.api import SessionOptions
    from runtime.serving.client import AsyncClient
    from runtime.serving.resume import ResumingStream

    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start_at - loop.time()))
    async with AsyncClient(front, connect_timeout=60) as client:
        stream = await ResumingStream.open(client, SessionOptions())
        run.session_ids.append(stream.info.session_id)

        async def read() -> None:
            async for item in stream:
                if isinstance(item, Frames):
                    run.frames.append(item.index)
                    run.times.append(item.time)
                    run.arrivals.append(time.monotonic())
                elif getattr(item, "kind", "") == "resumed":
                    run.resumed.append(item.message)
                    run.session_ids.append(stream.stream.info.session_id)
                elif hasattr(item, "frames") and hasattr(item, "latency_p95"):
                    run.status = item

        reader = asyncio.create_task(read())
        step = int(CHUNK_S * 16000)
        t0 = loop.time()
        for i in range(0, len(a), step):
            await asyncio.sleep(max(0.0, t0 + (i + step) / 16000 - loop.time()))  # as a microphone delivers it
            await stream.send_audio(a[i : i + step], 0)
            await stream.send_audio(b[i : i + step], 1)
        await stream.end()
        await reader


def busiest(cluster: Cluster, exclude: set[int]) -> int:
    """Index of the live replica with the most active sessions (its /metrics)."""
    counts = {}
    for r in cluster.replicas:
        if r.index in exclude or not r.alive:
            continue
        try:
            counts[r.index] = r.metric("interact_sessions_active")
        except OSError:
            counts[r.index] = -1
    return max(counts, key=lambda i: (counts[i], -i))


def routed_to_dead(access_log: Path, dead: str, noticed_after: float) -> tuple[int, int, int]:
    """Calls that started after ``noticed_after`` (epoch s): (how many ended on the dead replica, how many nginx
    tried on it first and moved to another before the client saw anything, how many in all)."""
    bad = probed = total = 0
    for line in access_log.read_text().splitlines():
        m = re.search(r"msec=([\d.]+) .*upstream=(\S.*?) upstream_status=.* seconds=([\d.]+)", line)
        if not m:
            continue
        started = float(m[1]) - float(m[3])
        if started <= noticed_after:
            continue
        total += 1
        tried = [u.strip() for u in m[2].split(",")]
        bad += tried[-1] == dead
        probed += dead in tried[:-1]
    return bad, probed, total


def check(runs: list[Run], seconds: float) -> list[str]:
    n = int(np.ceil(seconds * 30 - 1e-9))
    problems = []
    for r in runs:
        idx = r.index
        if r.error:
            problems.append(f"{r.name}: {r.error}")
        elif not np.array_equal(idx, np.arange(n)):
            missing = np.setdiff1d(np.arange(n), idx)
            problems.append(f"{r.name}: {len(idx)} frames for {n}; missing {len(missing)}, "
                            f"repeated {len(idx) - len(np.unique(idx))}")  # fmt: skip
        elif not np.allclose(np.concatenate(r.times), idx / 30.0):
            problems.append(f"{r.name}: time codes are not index / 30")
    return problems


async def drive(cluster: Cluster, args: argparse.Namespace, log: logging.Logger) -> tuple[list[Run], dict]:
    loop = asyncio.get_running_loop()
    pairs = voices(args.seconds)
    runs = [Run(f"session {k + 1}") for k in range(args.sessions)]
    t0 = loop.time()
    tasks = [asyncio.create_task(stream_one(cluster.front, r, *pairs[k % len(pairs)], t0 + 0.3 * k))
             for k, r in enumerate(runs)]  # fmt: skip
    events: dict = {}
    await asyncio.sleep(max(0.0, t0 + args.kill_at - loop.time()))
    victim = busiest(cluster, set())
    cluster.replicas[victim].kill(signal.SIGKILL)
    events["killed"] = (victim, time.time())
    log.info("t %.1f s: kill -9 %s (pid %d)", loop.time() - t0, cluster.replicas[victim].name,
             cluster.replicas[victim].pid)  # fmt: skip
    await asyncio.sleep(max(0.0, t0 + args.drain_at - loop.time()))
    drained = busiest(cluster, {victim})
    events["drained"] = (drained, time.time(), cluster.replicas[drained].metric("interact_sessions_active"))
    cluster.replicas[drained].kill(signal.SIGTERM)
    log.info("t %.1f s: SIGTERM %s (%d sessions)", loop.time() - t0, cluster.replicas[drained].name,
             events["drained"][2])  # fmt: skip
    for r, t in zip(runs, tasks, strict=True):
        try:
            await asyncio.wait_for(t, args.seconds * 3 + 60)
        except Exception as e:  # noqa: BLE001 - reported per session
            r.error = f"{type(e).__name__}: {e}"
    return runs, events


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--sessions", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=24.0, help="audio per session, streamed at real time")
    ap.add_argument("--kill-at", type=float, default=6.0, help="s after the first session starts")
    ap.add_argument("--drain-at", type=float, default=12.0)
    ap.add_argument("--grace", type=float, default=30.0, help="the replicas' drain grace period")
    ap.add_argument("--run-dir", type=Path, help="keep the cluster's logs here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log = logging.getLogger("scale-test")
    for noisy in ("runtime", "grpc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cluster = Cluster(args.replicas, 0, max_sessions=args.sessions, grace=args.grace, run_dir=args.run_dir)
    try:
        cluster.start()
    except ClusterError as e:
        print(f"scale-test: FAILED to start the cluster: {e}")
        return 1
    log.info("%s", cluster.describe())
    try:
        runs, events = asyncio.run(drive(cluster, args, log))
        victim, killed_at = events["killed"]
        drained, _, moved = events["drained"]
        drained_rc = cluster.replicas[drained].wait(args.grace + 15)
        access = cluster.run_dir / "access.log"
        dead = cluster.replicas[victim].address
        noticed = _noticed(access, dead, killed_at)
        bad, probed, later = routed_to_dead(access, dead, noticed) if noticed else (0, 0, 0)
    finally:
        cluster.stop(remove_run_dir=args.run_dir is None)
    problems = check(runs, args.seconds)
    reconnects = sum(len(r.resumed) for r in runs)
    by_drain = sum("drain" in m for r in runs for m in r.resumed)
    gaps = [np.diff(r.arrivals).max() for r in runs if len(r.arrivals) > 1]
    longest = max(gaps) if gaps else float("nan")
    for r in runs:
        log.info("%s: %d frames, servers %s, resumed %d (%s)", r.name, len(r.index), " -> ".join(r.session_ids),
                 len(r.resumed), "; ".join(r.resumed) or "-")  # fmt: skip
    if noticed is None:
        problems.append("nginx's access log shows no call that reached the killed replica after the kill")
    if bad:
        problems.append(f"{bad} of {later} calls started after nginx noticed the dead replica were routed to it")
    if drained_rc != 0:
        problems.append(f"the drained replica exited with {drained_rc}, not 0")
    if by_drain < moved:
        problems.append(f"the drained replica had {moved:g} sessions but only {by_drain} moved on its notice")
    for p in problems:
        log.error("FAILED: %s", p)
    verdict = "passed" if not problems else f"FAILED ({len(problems)} problems)"
    lost_frames = sum(max(0, int(np.ceil(args.seconds * 30)) - len(np.unique(r.index))) for r in runs)
    print(f"scale-test {verdict}: {len(runs)} sessions x {args.seconds:g} s on {args.replicas} replicas, "
          f"frames lost {lost_frames}, reconnects {reconnects} ({reconnects - by_drain} after kill -9, {by_drain} on "
          f"the drain notice), longest gap {1000 * longest:.0f} ms, new calls to the dead replica after nginx "
          f"noticed {bad}/{later} ({probed} more retried by nginx unseen), drained replica: {moved:g} sessions "
          f"moved, exit {drained_rc}")  # fmt: skip
    return 0 if not problems else 1


def _noticed(access_log: Path, dead: str, killed_at: float) -> float | None:
    """Epoch s when nginx first ended a call on the dead replica after the kill (it then marks it failed)."""
    for line in access_log.read_text().splitlines():
        m = re.search(r"msec=([\d.]+) .*upstream=(\S.*?) upstream_status=", line)
        if m and float(m[1]) >= killed_at and dead in m[2]:
            return float(m[1])
    return None


if __name__ == "__main__":
    sys.exit(main())
