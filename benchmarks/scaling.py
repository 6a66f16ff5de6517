"""Section 3: concurrent sessions on one server, and memory over one long session.

Scaling: 1, 2, 3, ... sessions run at once against one server process, each its own channel, each replaying both
speakers at wall-clock pace; session i starts i / n of a block period after the first (live sessions do not start
in step). A level is *sustained* when every session received every frame, no frames were dropped, and every
session's p95 block latency (audio that made a block ready -> block received) is at most one block period: beyond
that the inference thread cannot keep up and queues grow. The run stops at the first level not sustained.
CPU per session = server CPU seconds / wall seconds / sessions (1.0 = one core); memory per session = (peak server
RSS during the level - idle RSS before the first level) / sessions.

Memory: one session of ``minutes`` of audio (the speech looped) sent as fast as the server takes it (gRPC flow
control paces the client), frames read and dropped; the server's RSS is read each time the received frames pass
another ``every`` seconds of audio. Flat means: the last reading exceeds the first one taken after audio started
(at ``every`` s, once warm-up allocations are done) by at most max(10 MiB, 5 %).
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from benchmarks.common import Setting
from benchmarks.server_process import ServerProcess
from benchmarks.streaming import analyse, grpc_session, options
from runtime.constants import FPS, SAMPLE_RATE
from runtime.engine.frames import Frames
from runtime.engine.settings import Event
from runtime.serving.client import AsyncClient

log = logging.getLogger(__name__)

RSS_SAMPLE_S = 0.25  # s between server RSS readings during a scaling level
FLAT_MB, FLAT_FRACTION = 10.0, 0.05  # memory counts as flat within max(10 MiB, 5 %)


async def _level(server: ServerProcess, setting: Setting, a: np.ndarray, b: np.ndarray, n: int) -> dict:
    clients = [AsyncClient(server.target, connect_timeout=60.0) for _ in range(n)]
    peak = server.rss()
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, server.rss())
            await asyncio.sleep(RSS_SAMPLE_S)

    try:
        for c in clients:
            await c.connect()
        watcher = asyncio.create_task(watch())
        cpu0, t0 = server.cpu(), time.monotonic()
        period = setting.block / FPS
        replays = await asyncio.gather(*(grpc_session(c, setting, a, b, seed=i + 1, offset=i * period / n)
                                         for i, c in enumerate(clients)), return_exceptions=True)  # fmt: skip
        wall, cpu = time.monotonic() - t0, server.cpu() - cpu0
        done.set()
        await watcher
    finally:
        for c in clients:
            await c.close()
    sessions, errors = [], []
    for r in replays:
        if isinstance(r, BaseException):
            errors.append(f"{type(r).__name__}: {r}")
        else:
            sessions.append(analyse(r, setting))
    return {"sessions": n, "wall_seconds": wall, "cpu_per_session": cpu / wall / n, "peak_rss_mb": peak,
            "per_session": sessions, "errors": errors}  # fmt: skip


def run_scaling(server: ServerProcess, setting: Setting, a: np.ndarray, b: np.ndarray, max_sessions: int) -> dict:
    idle = server.rss()
    levels, sustained, reason = [], 0, f"reached the limit of {max_sessions} sessions set for this run"
    for n in range(1, max_sessions + 1):
        level = asyncio.run(_level(server, setting, a, b, n))
        per = level.pop("per_session")
        worst = max((s["block_latency_ms"]["p95"] for s in per), default=float("inf"))
        complete = all(s["frames_received"] == s["frames_expected"] and not s["frames_out_of_order"] for s in per)
        dropped = sum(s["events"].get("frames_dropped", 0) + s["events"].get("degraded", 0) for s in per)
        level |= {
            "worst_block_latency_p95_ms": worst,
            "latency_p95_ms": max((s["latency_ms"]["p95"] for s in per), default=0.0),
            "latency_p99_ms": max((s["latency_ms"]["p99"] for s in per), default=0.0),
            "jitter_p99_ms": max((s["jitter_ms"]["p99"] for s in per), default=0.0),
            "frames_complete": complete and not level["errors"],
            "frames_dropped_events": dropped,
            "rss_per_session_mb": max(0.0, level["peak_rss_mb"] - idle) / n,
        }
        level["sustained"] = bool(level["frames_complete"] and dropped == 0 and worst <= setting.block_ms)
        verdict = "sustained" if level["sustained"] else "NOT sustained"
        log.info("scaling %d session(s): worst block p95 %.0f ms (period %.0f), CPU %.2f core/session, %s", n,
                 worst, setting.block_ms, level["cpu_per_session"], verdict)  # fmt: skip
        levels.append(level)
        if not level["sustained"]:
            why = "frames missing" if not level["frames_complete"] else "frames dropped" if dropped else ""
            reason = why or f"p95 block latency {worst:.0f} ms > block period {setting.block_ms:.0f} ms"
            reason = f"{n} sessions: {reason}"
            break
        sustained = n
    return {"setting": setting.to_dict(), "idle_rss_mb": idle, "levels": levels, "sustained_sessions": sustained,
            "stopped_because": reason}  # fmt: skip


# ---------------------------------------------------------------------------------------------------- memory
async def _long_session(server: ServerProcess, setting: Setting, a: np.ndarray, b: np.ndarray, minutes: float,
                        every: float) -> dict:  # fmt: skip
    total = int(minutes * 60 * SAMPLE_RATE)
    readings: list[tuple[float, float]] = []
    frames, events = 0, {}
    async with AsyncClient(server.target, connect_timeout=60.0) as client:
        stream = await client.open(options(setting, seed=1))
        readings.append((0.0, server.rss()))
        t0 = time.monotonic()

        async def read() -> None:
            nonlocal frames
            mark = every
            async for item in stream.results():
                if isinstance(item, Frames):
                    frames += len(item)
                    while len(item) and (item.index[-1] + 1) / FPS >= mark - 1e-9:  # audio covered so far
                        readings.append((mark, server.rss()))
                        mark += every
                elif isinstance(item, Event):
                    events[item.kind] = events.get(item.kind, 0) + 1

        reader = asyncio.create_task(read())
        step = SAMPLE_RATE  # 1 s chunks: the largest the server accepts, the least client work
        for i in range(0, total, step):
            idx = np.arange(i, min(i + step, total))
            await stream.send_audio(np.take(a, idx, mode="wrap"), 0)
            await stream.send_audio(np.take(b, idx, mode="wrap"), 1)
            if reader.done():
                break
        else:
            await stream.end()
        await reader
        wall = time.monotonic() - t0
    rss = [r for _, r in readings]
    base = rss[1] if len(rss) > 2 else rss[0]  # the first reading after warm-up allocations, when there is one
    growth = rss[-1] - base
    return {"minutes": minutes, "every_seconds": every, "frames": frames, "events": events, "wall_seconds": wall,
            "speed": minutes * 60 / wall, "rss_mb": [[round(t, 1), r] for t, r in readings], "growth_mb": growth,
            "flat": bool(growth <= max(FLAT_MB, FLAT_FRACTION * base)), "peak_rss_mb": max(rss)}  # fmt: skip


def run_memory(server: ServerProcess, setting: Setting, a: np.ndarray, b: np.ndarray, minutes: float,
               every: float) -> dict:  # fmt: skip
    out = asyncio.run(_long_session(server, setting, a, b, minutes, every))
    log.info("memory: %.1f min of audio at %.1fx real time, RSS %.0f -> %.0f MiB (%s)", minutes, out["speed"],
             out["rss_mb"][0][1], out["rss_mb"][-1][1], "flat" if out["flat"] else "GROWING")  # fmt: skip
    return out
