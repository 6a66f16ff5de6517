"""mic_demo's worker: audio chunks from a queue -> 16 kHz -> the engine (in-process) or a server -> sinks and view.

    runner = LocalRunner(model, args, queue, state, sinks, recorder)   # or RemoteRunner("host:port", ...)
    runner.open()                  # the stream header: sinks opened, the view told
    threading.Thread(target=runner.run).start()
    ...                            # capture puts Chunk(speaker, samples, rate, t) items, END when the input ends
    runner.stop()                  # from any thread: no more audio, flush the rest

``run`` resamples each speaker's device rate to 16 kHz with ``runtime.engine.audio.StreamingResampler``, cuts the input
at ``--seconds``, hands the audio to the recorder and the engine, and writes every emitted ``Frames`` to the sinks and
the live state. At the end it flushes (the engine appends silence so mouths close) and closes every sink: the recorder
writes its folder. A sink that fails (an unreachable UDP address) is reported once and dropped; the session goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import uuid
from collections import deque
from typing import NamedTuple

import numpy as np

from runtime.apps.live_view import LiveState
from runtime.constants import FPS, SAMPLE_RATE
from runtime.engine.audio import StreamingResampler
from runtime.engine.frames import Frames, StreamInfo

log = logging.getLogger(__name__)


class Chunk(NamedTuple):
    speaker: int  # 0 = A, 1 = B
    samples: np.ndarray  # (N,) float32 in [-1, 1] at ``rate``
    rate: int  # Hz
    t: float  # monotonic s when the chunk was complete (captured)


END = None  # put on the queue when the input ends


class Runner:
    def __init__(self, args, q: queue.Queue, state: LiveState, sinks: list, recorder) -> None:
        self.queue, self.state, self.recorder = q, state, recorder
        self.sinks = ([recorder] if recorder is not None else []) + list(sinks)
        self.limit = int(round(args.seconds * SAMPLE_RATE)) if args.seconds else None  # samples per speaker
        self.args = args
        self.resamplers: list[StreamingResampler | None] = [None, None]
        self.pushed = [0, 0]  # 16 kHz samples handed on per speaker
        self.error: BaseException | None = None
        self.info: StreamInfo | None = None
        self._stopping = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------------------------
    def open(self) -> StreamInfo:
        self.info = self._open()
        for sink in self.sinks:
            sink.open(self.info)
        self.state.set_info(self.info)
        log.info(
            "model %s: block %d, lookahead %d, steps %d -> algorithmic latency %.0f ms",
            self.info.model,
            self.info.block,
            self.info.lookahead,
            self.info.steps,
            1000 * self.info.algorithmic_latency,
        )
        return self.info

    def stop(self) -> None:
        """No more audio (thread-safe): ``run`` flushes and returns."""
        self._stopping.set()
        self.queue.put(END)

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                item = self.queue.get()
                if item is END:
                    break
                self._accept(item)
                if self.limit is not None and min(self.pushed) >= self.limit:
                    log.info("%.1f s of audio: stopping", self.limit / SAMPLE_RATE)
                    break
            for p, r in enumerate(self.resamplers):  # the resamplers' filter tails
                if r is not None:
                    self._hand_on(p, r.flush(), None)
            self._finish()
        except Exception as e:  # reported by mic_demo; the sinks still close (the recording keeps what was made)
            log.debug("worker failed", exc_info=True)
            self.error = e
        finally:
            self._close_sinks()
            self.state.done.set()

    def _accept(self, chunk: Chunk) -> None:
        p = chunk.speaker
        if chunk.rate != SAMPLE_RATE:
            if self.resamplers[p] is None:
                self.resamplers[p] = StreamingResampler(chunk.rate)
            pcm = self.resamplers[p].push(chunk.samples)
        else:
            pcm = np.asarray(chunk.samples, dtype=np.float32)
        self._hand_on(p, pcm, chunk.t)

    def _hand_on(self, p: int, pcm: np.ndarray, t: float | None) -> None:
        if self.limit is not None:
            pcm = pcm[: max(0, self.limit - self.pushed[p])]
        if not len(pcm):
            return
        if self.recorder is not None:
            self.recorder.add_audio(p, pcm)
        self.pushed[p] += len(pcm)
        self._push(p, pcm, t)
        self.state.add_audio_seconds(min(self.pushed) / SAMPLE_RATE)

    def _emit(self, frames: Frames | None) -> None:
        if frames is None or not len(frames):
            return
        for sink in list(self.sinks):
            try:
                sink.write(frames)
            except Exception as e:
                if sink is self.recorder:
                    raise
                log.warning("%s failed (%s): no more frames go there", type(sink).__name__, e)
                self.sinks.remove(sink)
        self.state.add_frames(frames)

    def _events(self, events: list) -> None:
        if events:
            self.state.add_events(events)
            if self.recorder is not None:
                self.recorder.add_events(events)

    def _latencies(self, seconds: list[float]) -> None:
        self.state.add_latencies(seconds)
        if self.recorder is not None:
            self.recorder.add_latencies(seconds)

    def _close_sinks(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as e:
                log.error("%s.close failed: %s", type(sink).__name__, e)
                if sink is self.recorder and self.error is None:
                    self.error = e

    # -- implemented by the two runners --------------------------------------------------------------------
    def _open(self) -> StreamInfo:
        raise NotImplementedError

    def _push(self, speaker: int, pcm: np.ndarray, t: float | None) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError


class LocalRunner(Runner):
    """The engine in this process, on the worker thread."""

    def __init__(self, model, args, q: queue.Queue, state: LiveState, sinks: list, recorder) -> None:
        super().__init__(args, q, state, sinks, recorder)
        self.model = model

    def _open(self) -> StreamInfo:
        from runtime.engine.settings import SessionSettings
        from runtime.engine.stream import Engine

        a = self.args
        settings = SessionSettings.from_bundle(
            self.model.bundle.defaults,
            block=a.block or None,
            lookahead=a.lookahead,
            steps=a.steps or None,
            seed=a.seed,
            alive=getattr(a, "alive", None),
        )
        self.engine = Engine(self.model, settings, session_id=uuid.uuid4().hex[:12])
        log.info("warming up the model (%s)", self.model.bundle.name)
        self.model.warm_up(settings.window, settings.steps)
        return self.engine.info

    def _push(self, speaker: int, pcm: np.ndarray, t: float | None) -> None:
        self.engine.push_audio(speaker, pcm, t)
        while (frames := self.engine.step()) is not None:
            if self.engine.latencies:  # one per block committed before the flush (Engine._account)
                self._latencies([self.engine.latencies[-1]])
            self._emit(frames)
        self._events(self.engine.drain_events())

    def _finish(self) -> None:
        self._emit(self.engine.flush())
        self._events(self.engine.drain_events())


class RemoteRunner(Runner):
    """Audio to an InterAct server (``runtime.serving.client``); results read on a receiver thread."""

    def __init__(self, target: str, args, q: queue.Queue, state: LiveState, sinks: list, recorder) -> None:
        super().__init__(args, q, state, sinks, recorder)
        self.target = target
        self.arrivals: deque[tuple[int, float]] = deque()  # (samples of the slower speaker, monotonic s)
        self.status = None

    def _open(self) -> StreamInfo:
        from runtime.serving.client import Client
        from runtime.serving.convert import SessionOptions

        a = self.args
        log.info("connecting to %s", self.target)
        self.client = Client(self.target, connect_timeout=10.0)
        try:
            self.client.connect()
            self.stream = self.client.open(SessionOptions(block=a.block or 0, lookahead=a.lookahead,
                                                          steps=a.steps or 0, seed=a.seed,
                                                          alive=getattr(a, "alive", True)))  # fmt: skip
        except Exception as e:
            self.client.close()
            why = e.details() if callable(getattr(e, "details", None)) else e  # grpc.RpcError carries details()
            raise ConnectionError(f"--server {self.target}: {why}") from e
        self.receiver = threading.Thread(target=self._receive, name="receiver", daemon=True)
        self.receiver.start()
        return self.stream.info

    def _push(self, speaker: int, pcm: np.ndarray, t: float | None) -> None:
        self.stream.send_audio(pcm, speaker)
        if t is not None:
            self.arrivals.append((min(self.pushed), t))

    def _receive(self) -> None:
        from runtime.engine.settings import Event
        from runtime.serving.convert import SessionStatus

        try:
            for item in self.stream:
                if isinstance(item, Frames):
                    self._latencies(self._frame_latencies(item))
                    self._emit(item)
                elif isinstance(item, Event):
                    self._events([item])
                elif isinstance(item, SessionStatus):
                    self.status = item
        except Exception as e:
            self.error = e
            self.stop()

    def _frame_latencies(self, frames: Frames) -> list[float]:
        """Arrival of the audio that completed each batch's lookahead -> the batch received (s)."""
        assert self.info is not None
        need = int(np.ceil((int(frames.index[-1]) + 1 + self.info.lookahead) * SAMPLE_RATE / FPS))
        while len(self.arrivals) > 1 and self.arrivals[0][0] < need:  # later frames need more audio still
            self.arrivals.popleft()
        if not self.arrivals or self.arrivals[0][0] < need or not len(frames.emitted_at):
            return []  # the flush tail (silence the server appended) or nothing recorded
        return [float(frames.emitted_at[-1] - self.arrivals[0][1])]

    def _finish(self) -> None:
        try:
            if self.error is None:
                self.stream.end()
            self.receiver.join()
        finally:
            self.client.close()
        if self.status is not None and self.recorder is not None:
            self.recorder.meta["server_status"] = dataclasses.asdict(self.status)
        if self.error is not None:
            raise self.error
