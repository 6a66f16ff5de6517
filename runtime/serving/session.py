"""One two-person session on the server: the stream protocol as a state machine around an ``Engine`` (DESIGN 8).

    session = Session(session_id, model, executor, limits)
    await session.open(request_iterator)          # reads and validates the config, queues the header
    while (msg := await session.next()) is not None:
        await context.write(msg)                  # header, frame batches, events, then the final status
    await session.close()                         # always (also on error or cancellation)

Three stages with bounded queues between them, all on the event loop except inference:

    reader task   client messages -> validated domain items  -> inbox (asyncio.Queue, ``limits.inbox`` items)
    infer task    inbox -> executor thread in small jobs (one block each, so sessions sharing the thread take
                  turns): resample, Engine.push_audio/step/flush, frames -> protos -> outbox
    writer        outbox (``Outbox``: drops the oldest frames for a slow client) -> the caller writes them

Protocol: the first message must be ``config``, exactly once; then ``audio`` / ``control`` in any mix; then
``end_of_audio`` last. Violations raise ``SessionError`` with FAILED_PRECONDITION (order) or INVALID_ARGUMENT (a bad
field; the message names it). A full inbox stops the reader, so gRPC flow control slows a client that sends faster
than inference runs; a client that reads too slowly only loses its own oldest frames (FRAMES_DROPPED events).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import dataclass, replace

import grpc
import numpy as np

from runtime.constants import FPS
from runtime.engine.audio import StreamingResampler
from runtime.engine.frames import Frames
from runtime.engine.settings import Event
from runtime.engine.stream import Engine, TooManyControls
from runtime.model.model import Model
from runtime.serving.api import ControlChange, SessionOptions, SessionStatus
from runtime.serving.audio_codec import decode_audio
from runtime.serving.convert import (
    InvalidArgument,
    control_from_proto,
    event_to_proto,
    frames_to_proto,
    header_to_proto,
    options_from_proto,
    session_settings,
    status_to_proto,
)
from runtime.serving.outbox import Outbox, SessionError
from runtime.serving.protos.interact.v1 import interact_pb2 as pb

log = logging.getLogger(__name__)

MAX_JOB_CHUNKS = 8  # audio chunks handed to the inference thread in one job (0.32 s of 40 ms chunks per speaker)
BLOCKS_PER_JOB = 1  # blocks committed per job: sessions sharing the inference thread take turns this often
HALF_CLOSE_WAIT = 1.0  # s the final status waits for the client to close its side after end_of_audio


@dataclass(frozen=True)
class SessionLimits:
    send_buffer: float = 5.0  # s of frames a slow client may leave unread before the oldest are dropped
    inbox: int = 32  # client messages queued ahead of inference (0.64 s of 40 ms chunks of both speakers)
    degrade: bool = True  # the engine may use fewer steps / larger blocks when compute falls behind real time


@dataclass(frozen=True)
class _Audio:
    parts: list[tuple[int, np.ndarray]]  # (speaker, (N,) float32 at the client's rate)
    arrival: float  # monotonic s when the chunk was read


_END = object()  # end_of_audio


class Session:
    def __init__(self, session_id: str, model: Model, executor: Executor, limits: SessionLimits) -> None:
        self.id = session_id
        self.model = model
        self.executor = executor
        self.limits = limits
        self.outbox = Outbox(max_frames=max(1, round(limits.send_buffer * FPS)))
        self.inbox: asyncio.Queue = asyncio.Queue(maxsize=limits.inbox)
        self.options: SessionOptions | None = None
        self.engine: Engine | None = None
        self.resamplers: list[StreamingResampler] = []
        self.state = "config"  # config -> streaming -> ended (end_of_audio read) -> done
        self._ending = False  # end_of_audio reached the engine (inference thread)
        self.frames_produced = 0
        self.samples_in = [0, 0]  # per speaker, at the client's rate
        self.degraded = 0  # DEGRADED events
        self.latency = (0.0, 0.0)  # s, p50 / p95 of the engine's latencies
        self._tasks: list[asyncio.Task] = []
        self._reader: asyncio.Task | None = None
        self.offset = 0  # session frame of the engine's frame 0 (a resumed session's Resume.start_frame)
        self.first_frame = 0  # frames before this one are computed but not sent (Resume.first_frame)

    # -- lifecycle -----------------------------------------------------------------------------------------
    async def open(self, requests: AsyncIterator[pb.ClientMessage]) -> None:
        """Read the first message (it must be ``config``), build the engine, queue the header, start the stages."""
        it = aiter(requests)
        try:
            first = await anext(it)
        except StopAsyncIteration:
            raise SessionError(
                grpc.StatusCode.FAILED_PRECONDITION, "the stream ended before config; the first message must be config"
            ) from None
        kind = first.WhichOneof("kind")
        if kind != "config":
            raise SessionError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{kind or 'an empty message'} before config; the first message must be config",
            )
        self._configure(first.config)
        info = replace(self.engine.info, first_frame=self.first_frame)
        self.outbox.put(pb.ServerMessage(header=header_to_proto(info)))
        self.state = "streaming"
        self._reader = asyncio.create_task(self._read(it), name=f"read-{self.id}")
        self._tasks = [self._reader, asyncio.create_task(self._infer(), name=f"infer-{self.id}")]

    async def next(self) -> pb.ServerMessage | None:
        """The next message for the client; None after the status. Raises ``SessionError`` if the session failed.

        Before the status, waits (up to ``HALF_CLOSE_WAIT``) for the client to close its side, so that a message
        sent after end_of_audio is reported as the error it is rather than raced by a successful end.
        """
        msg = await self.outbox.get()
        if msg is not None and msg.WhichOneof("kind") == "status" and self._reader is not None:
            await asyncio.wait({self._reader}, timeout=HALF_CLOSE_WAIT)
            if self.outbox.error is not None:
                raise self.outbox.error
        return msg

    def draining(self, grace: float) -> None:
        """The server is shutting down: tell the client (EVENT_TYPE_DRAINING), which may resume elsewhere now."""
        at = (self.offset + (self.engine.committed if self.engine is not None else 0)) / FPS
        message = f"the server is shutting down; this stream ends within {grace:g} s: resume on another server"
        try:
            self.outbox.put(pb.ServerMessage(event=event_to_proto(Event("draining", at, None, message))))
        except RuntimeError:
            pass  # the session has already queued its status

    def fail(self, code: grpc.StatusCode, message: str) -> None:
        """End the session from outside (e.g. server shutdown): ``next`` raises."""
        self.outbox.fail(SessionError(code, message))

    async def close(self) -> None:
        """Stop the stages and release the engine (an inference job already running finishes on its thread)."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.state = "done"
        self.engine = None

    # -- stats ---------------------------------------------------------------------------------------------
    @property
    def frames_sent(self) -> int:
        return self.outbox.frames_sent

    @property
    def frames_dropped(self) -> int:
        return self.outbox.frames_dropped

    @property
    def audio_seconds(self) -> float:
        rate = self.options.audio.sample_rate if self.options else 1
        return max(self.samples_in) / rate

    def buffer_sizes(self) -> dict[str, int]:
        """Lengths of every buffer the session and its engine hold (for tests and debugging; bounded by design)."""
        sizes = {"inbox": self.inbox.qsize(), "outbox": len(self.outbox), "outbox_frames": self.outbox.frames_queued}
        e = self.engine
        if e is not None:
            sizes |= {
                "mel_frames": max(len(s.frames) for s in e.speakers),
                "history": max(len(e.hist["lower"]), len(e.hist["upper"]), e.hist_face.shape[1], len(e.hist_actions)),
                "root_history": max(len(h) for h in e.root_hist),
                "arrivals": len(e.arrivals),
                "latencies": len(e.latencies),
                "events": len(e.events),
                "controls": len(e.pending_controls),
            }
        return sizes

    # -- stages --------------------------------------------------------------------------------------------
    def _configure(self, cfg: pb.SessionConfig) -> None:
        bundle = self.model.bundle
        try:
            self.options = options_from_proto(cfg, bundle.styles)
            settings = session_settings(self.options, bundle.defaults, seed=random.randrange(1, 2**63))
        except InvalidArgument as e:
            raise SessionError(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
        self.engine = Engine(self.model, replace(settings, degrade=self.limits.degrade), self.id)
        if (r := self.options.resume) is not None:
            self.offset, self.first_frame = r.start_frame, r.first_frame
            log.info("session %s resumes %s: audio from frame %d, frames from %d", self.id,
                     r.previous_session_id or "a session", r.start_frame, r.first_frame)  # fmt: skip
        self.resamplers = [StreamingResampler(self.options.audio.sample_rate) for _ in range(2)]
        s = settings
        log.info("session %s: %s %d Hz %s, block %d, lookahead %d, steps %d, styles %s, actions %s", self.id,
                 self.options.audio.sample_format, self.options.audio.sample_rate, self.options.audio.layout,
                 s.block, s.lookahead, s.steps, s.styles, s.actions)  # fmt: skip

    async def _read(self, it: AsyncIterator[pb.ClientMessage]) -> None:
        try:
            async for msg in it:
                kind = msg.WhichOneof("kind")
                if self.state == "ended":
                    raise SessionError(grpc.StatusCode.FAILED_PRECONDITION,
                                       f"{kind or 'a message'} after end_of_audio; end_of_audio must be the last "
                                       "message")  # fmt: skip
                if kind == "config":
                    raise SessionError(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        "config sent twice; it must be the first message, exactly once",
                    )
                if kind == "audio":
                    item = _Audio(decode_audio(self.options.audio, msg.audio), time.monotonic())
                elif kind == "control":
                    item = control_from_proto(msg.control, self.model.bundle.styles)
                elif kind == "end_of_audio":
                    item, self.state = _END, "ended"
                else:
                    raise SessionError(grpc.StatusCode.INVALID_ARGUMENT, "ClientMessage: no kind set (expected "
                                       "config, audio, control or end_of_audio)")  # fmt: skip
                await self.inbox.put(item)
            if self.state != "ended":
                raise SessionError(
                    grpc.StatusCode.FAILED_PRECONDITION, "the client closed the stream before end_of_audio"
                )
        except InvalidArgument as e:
            self.outbox.fail(SessionError(grpc.StatusCode.INVALID_ARGUMENT, str(e)))
        except SessionError as e:
            self.outbox.fail(e)

    async def _infer(self) -> None:
        """Feed the inference thread in small jobs: sessions sharing it take turns a block at a time, and a job's
        output never outgrows the outbox. New audio is taken only once the engine has caught up, so a client that
        sends faster than inference runs fills the inbox and is slowed by gRPC flow control."""
        loop = asyncio.get_running_loop()
        behind = False  # the engine has ready blocks left over from the last job
        try:
            while True:
                items = [] if behind else [await self.inbox.get()]
                audio = sum(isinstance(i, _Audio) for i in items)
                while not behind and not self.inbox.empty() and audio < MAX_JOB_CHUNKS:
                    items.append(self.inbox.get_nowait())
                    audio += isinstance(items[-1], _Audio)
                messages, done, behind = await loop.run_in_executor(self.executor, self._process, items)
                for msg in messages:
                    self.outbox.put(msg)
                if done:
                    self.outbox.put(pb.ServerMessage(status=status_to_proto(self._status())))
                    self.outbox.close()
                    return
        except asyncio.CancelledError:
            raise
        except TooManyControls as e:
            log.warning("session %s: %s", self.id, e)
            self.outbox.fail(SessionError(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e)))
        except Exception as e:  # a bug or a backend failure: end this session only
            log.exception("session %s: inference failed", self.id)
            self.outbox.fail(SessionError(grpc.StatusCode.INTERNAL, f"inference failed: {type(e).__name__}: {e}"))

    # -- inference thread ----------------------------------------------------------------------------------
    def _process(self, items: list) -> tuple[list[pb.ServerMessage], bool, bool]:
        """Runs on the executor: feed the engine, commit up to ``BLOCKS_PER_JOB`` ready blocks, convert the output.

        Returns (messages, done, behind): ``done`` after the final flush, ``behind`` if more blocks are ready.
        A control first commits every block its audio allows, so where it lands never depends on job sizes.
        """
        engine, out = self.engine, []
        if engine is None:  # closed while queued
            return out, False, False
        for item in items:
            if isinstance(item, _Audio):
                for speaker, pcm in item.parts:
                    self.samples_in[speaker] += len(pcm)
                    engine.push_audio(speaker, self.resamplers[speaker].push(pcm), item.arrival)
            elif isinstance(item, ControlChange):
                self._step(engine, out, limit=None)
                at = max(0.0, item.time - self.offset / FPS)  # session time -> this engine's
                engine.control(item.speaker, at, action=item.action, style=item.style)
            else:  # end of audio: the resamplers' tails; the flush follows once the backlog is done
                for speaker, resampler in enumerate(self.resamplers):
                    tail = resampler.flush()
                    if len(tail):
                        engine.push_audio(speaker, tail, time.monotonic())
                self._ending = True
        self._step(engine, out, limit=BLOCKS_PER_JOB)
        done = False
        if self._ending and not engine.ready():  # silence appended so mouths close; the last frames
            block = engine.settings.block
            frames = engine.flush()
            for i in range(0, len(frames) if frames is not None else 0, block):
                self._emit(engine, frames[i : i + block], out)
            done = True
        self._events(engine, out)
        if engine.latencies:
            p50, p95 = np.percentile(np.fromiter(engine.latencies, float), [50, 95])
            self.latency = (float(p50), float(p95))
        return out, done, not done and engine.ready()

    def _step(self, engine: Engine, out: list[pb.ServerMessage], limit: int | None) -> None:
        n = 0
        while (limit is None or n < limit) and (frames := engine.step()) is not None:
            self._emit(engine, frames, out)
            n += 1

    def _emit(self, engine: Engine, frames: Frames, out: list[pb.ServerMessage]) -> None:
        o = self.options
        frames = frames.shifted(self.offset)
        frames = frames[int(np.searchsorted(frames.index, self.first_frame)) :]  # a resumed stream's re-sent context
        if len(frames):
            out.append(pb.ServerMessage(frames=frames_to_proto(frames, face=o.face, body=o.body)))
            self.frames_produced += len(frames)
        self._events(engine, out)

    def _events(self, engine: Engine, out: list[pb.ServerMessage]) -> None:
        for e in engine.drain_events():
            self.degraded += e.kind == "degraded"
            e = replace(e, time=e.time + self.offset / FPS)
            if e.time < self.first_frame / FPS:  # from a resumed stream's re-sent context: the client has it
                continue
            out.append(pb.ServerMessage(event=event_to_proto(e)))

    def _status(self) -> SessionStatus:
        dropped = self.outbox.frames_dropped
        sent = self.frames_produced - dropped
        notes = [f"{sent} frames"]
        if dropped:
            notes.append(f"{dropped} dropped (the client read too slowly)")
        if self.outbox.events_dropped:
            notes.append(f"{self.outbox.events_dropped} events dropped (the client read too slowly)")
        if self.degraded:
            notes.append(f"degraded {self.degraded} time(s) (compute fell behind real time)")
        code = "warning" if dropped or self.degraded or self.outbox.events_dropped else "success"
        return SessionStatus(code, ", ".join(notes), sent, self.audio_seconds, *self.latency)
