"""Section 2: two speakers replayed at wall-clock pace through the in-process engine and through the gRPC server.

A microphone delivers a 40 ms chunk of both speakers once its last sample has been recorded: chunk ``c`` (ending
at sample ``e_c``) *arrives* at ``t0 + e_c / 16000`` on the monotonic clock, whether or not the consumer is ready
for it then. Every frame's emission time is when the engine returned it (in-process) or when the client received
its batch (gRPC). From these (definitions repeated in benchmarks/README.md):

- chunk->frame latency of frame f: emission - arrival of the chunk that completes f's lookahead, i.e. holds sample
  ``samples_needed_for_frame(f + L)``. It includes waiting for the rest of f's block, compute and transport, and
  excludes the lookahead itself (reported separately as L / fps).
- block latency: the same for a block's last frame = arrival of the audio that made the block ready -> emission
  (compute + queueing + transport; what the engine itself logs).
- mic->frame latency of frame f: emission - arrival of the chunk holding f's own audio (sample
  ``samples_needed_for_frame(f)``): everything, lookahead included.
- first frame: emission of frame 0 - the stream's start (when its first sample was recorded).
- jitter: per block |(emission - previous block's emission) - B / fps|, p99 and max.
- RTF: compute seconds / audio seconds (in-process: time inside push_audio/step; gRPC: the server process's CPU).

Frames committed by the final flush (their lookahead is the appended silence) are not in the latency statistics.
Each measured gRPC run follows a 1 s session with the same settings sent unpaced: the server warms up only its
default K at start, and the graphs of another K would otherwise load during the measured run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from benchmarks.common import CHUNK_MS, Setting, stats_ms
from runtime.constants import FPS, SAMPLE_RATE
from runtime.engine.audio import n_output_frames, samples_needed_for_frame
from runtime.engine.frames import Frames
from runtime.engine.settings import Event
from runtime.engine.stream import Engine
from runtime.model.model import Model
from runtime.serving.api import SessionOptions
from runtime.serving.client import AsyncClient

log = logging.getLogger(__name__)

CHUNK = int(SAMPLE_RATE * CHUNK_MS / 1000)  # 640 samples per speaker per chunk
START_DELAY = 0.05  # s between setting up a replay and its first sample (so the first chunk is not already late)
WARM_UP = SAMPLE_RATE  # samples per speaker of the unpaced session before each measured gRPC run (1 s)


@dataclass
class Replay:
    """What one paced session recorded (monotonic seconds)."""

    start: float  # when sample 0 was recorded
    samples: int  # per speaker
    chunk_ends: list[int] = field(default_factory=list)  # cumulative samples after each chunk
    arrivals: list[float] = field(default_factory=list)  # when each chunk was complete
    index: list[np.ndarray] = field(default_factory=list)  # frame indices per emitted batch
    emitted: list[float] = field(default_factory=list)  # emission time per batch
    events: Counter = field(default_factory=Counter)
    compute: float = 0.0  # s (in-process only)

    def add(self, frames: Frames, at: float) -> None:
        self.index.append(np.asarray(frames.index))
        self.emitted.append(at)


def analyse(replay: Replay, setting: Setting) -> dict:
    """Latency, jitter and completeness of a replay (see the module docstring)."""
    ends = np.asarray(replay.chunk_ends)
    arrivals = np.asarray(replay.arrivals)
    live, blocks, last, received, disorder = [], [], -1, 0, 0
    for idx, at in zip(replay.index, replay.emitted, strict=True):
        for f in idx:
            disorder += int(f) <= last  # a repeated or earlier frame (gaps are frames dropped: counted below)
            last, received = max(last, int(f)), received + 1
            need = samples_needed_for_frame(int(f) + setting.lookahead)
            if need <= replay.samples:  # its lookahead is real audio, not the flush's silence
                live.append((int(f), at, need))
        if len(idx) and live and live[-1][0] == int(idx[-1]):
            blocks.append(live[-1])
    expected = n_output_frames(replay.samples)
    out: dict = {"frames_expected": expected, "frames_received": received, "frames_out_of_order": disorder,
                 "events": dict(replay.events)}  # fmt: skip
    if not live:
        return out | {"latency_ms": stats_ms([]), "block_latency_ms": stats_ms([]), "mic_to_frame_ms": stats_ms([]),
                      "first_frame_ms": 0.0, "jitter_ms": stats_ms([]), "late_frames": 0}  # fmt: skip
    f, at, need = (np.asarray(x) for x in zip(*live, strict=True))
    own = np.array([samples_needed_for_frame(int(i)) for i in f])
    arrival = arrivals[np.minimum(np.searchsorted(ends, need), len(ends) - 1)]
    arrival_own = arrivals[np.minimum(np.searchsorted(ends, own), len(ends) - 1)]
    latency = at - arrival
    block_at = np.array([b[1] for b in blocks])
    block_need = np.array([b[2] for b in blocks])
    block_latency = block_at - arrivals[np.minimum(np.searchsorted(ends, block_need), len(ends) - 1)]
    jitter = np.abs(np.diff(block_at) - setting.block / FPS)
    first = replay.emitted[0] - replay.start if replay.emitted else 0.0
    return out | {
        "latency_ms": stats_ms(latency),
        "block_latency_ms": stats_ms(block_latency),
        "mic_to_frame_ms": stats_ms(at - arrival_own),
        "first_frame_ms": 1000.0 * first,
        "jitter_ms": stats_ms(jitter),
        "late_frames": int(np.sum(latency * 1000.0 > setting.latency_bound_ms)),
    }


def describe(setting: Setting, replay: Replay, transport: str, backend: str, rtf: float) -> dict:
    return {"backend": backend, "transport": transport, **setting.to_dict(), "label": setting.label,
            "block_ms": setting.block_ms, "lookahead_ms": setting.lookahead_ms,
            "algorithmic_ms": setting.algorithmic_ms, "latency_bound_ms": setting.latency_bound_ms,
            "audio_seconds": replay.samples / SAMPLE_RATE, "rtf": rtf, **analyse(replay, setting)}  # fmt: skip


# ---------------------------------------------------------------------------------------------------- in-process
def replay_in_process(model: Model, setting: Setting, a: np.ndarray, b: np.ndarray, backend: str) -> dict:
    """One engine on this thread, fed at the microphones' pace; each ready block is committed at once."""
    model.warm_up(frames=setting.session().window, steps=setting.steps)
    engine = Engine(model, setting.session())
    rep = Replay(time.monotonic() + START_DELAY, len(a))
    for i in range(0, len(a), CHUNK):
        end = min(i + CHUNK, len(a))
        due = rep.start + end / SAMPLE_RATE
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        t0 = time.perf_counter()
        engine.push_audio(0, a[i:end], t=due)
        engine.push_audio(1, b[i:end], t=due)
        rep.chunk_ends.append(end)
        rep.arrivals.append(due)
        while (frames := engine.step()) is not None:
            rep.add(frames, time.monotonic())
        rep.compute += time.perf_counter() - t0
        rep.events.update(e.kind for e in engine.drain_events())
    if (tail := engine.flush()) is not None:
        rep.add(tail, time.monotonic())
    row = describe(setting, rep, "in-process", backend, rep.compute / (len(a) / SAMPLE_RATE))
    log.info(
        "in-process %s: chunk->frame p95 %.0f ms (bound %.0f), block p95 %.0f ms, RTF %.3f",
        setting.label,
        row["latency_ms"]["p95"],
        setting.latency_bound_ms,
        row["block_latency_ms"]["p95"],
        row["rtf"],
    )
    return row


# ---------------------------------------------------------------------------------------------------- gRPC
def options(setting: Setting, seed: int) -> SessionOptions:
    return SessionOptions(block=setting.block, lookahead=setting.lookahead, steps=setting.steps, seed=seed)


async def grpc_session(client: AsyncClient, setting: Setting, a: np.ndarray, b: np.ndarray, seed: int = 1,
                       offset: float = 0.0, paced: bool = True) -> Replay:  # fmt: skip
    """One session on an open client: 40 ms chunks of A and B sent at wall-clock pace (first sample recorded
    ``offset`` s from now; ``paced=False``: as fast as the server takes them), frames read concurrently with their
    receive times, then end_of_audio."""
    stream = await client.open(options(setting, seed))
    rep = Replay(time.monotonic() + START_DELAY + offset, len(a))

    async def read() -> None:
        async for item in stream.results():
            if isinstance(item, Frames):
                rep.add(item, float(item.emitted_at[0]) if len(item.emitted_at) else time.monotonic())
            elif isinstance(item, Event):
                rep.events[item.kind] += 1

    reader = asyncio.create_task(read())
    try:
        for i in range(0, len(a), CHUNK):
            end = min(i + CHUNK, len(a))
            due = rep.start + end / SAMPLE_RATE
            if paced:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            if reader.done():
                break  # the server ended the call: its status is raised below
            await stream.send_audio(a[i:end], 0)
            await stream.send_audio(b[i:end], 1)
            rep.chunk_ends.append(end)
            rep.arrivals.append(due)
        else:
            await stream.end()
        await reader
    finally:
        if not reader.done():
            reader.cancel()
            stream.cancel()
    return rep


async def _replay_grpc(server, setting: Setting, a: np.ndarray, b: np.ndarray) -> tuple[Replay, float]:
    async with AsyncClient(server.target, connect_timeout=60.0) as client:
        # The server warms up its default K only; graphs of other Ks load on first use. Pay that outside the run.
        await grpc_session(client, setting, a[:WARM_UP], b[:WARM_UP], paced=False)
        cpu0 = server.cpu()
        rep = await grpc_session(client, setting, a, b)
        return rep, server.cpu() - cpu0


def replay_grpc(server, setting: Setting, a: np.ndarray, b: np.ndarray, backend: str) -> dict:
    """One paced session through the server process (after an unpaced 1 s warm-up session with the same settings);
    RTF from the server's CPU time over the session."""
    rep, cpu = asyncio.run(_replay_grpc(server, setting, a, b))
    row = describe(setting, rep, "grpc", backend, cpu / (len(a) / SAMPLE_RATE))
    log.info("gRPC %s: chunk->frame p95 %.0f ms (bound %.0f), block p95 %.0f ms, server CPU/audio %.3f",
             setting.label, row["latency_ms"]["p95"], setting.latency_bound_ms, row["block_latency_ms"]["p95"],
             row["rtf"])  # fmt: skip
    return row
