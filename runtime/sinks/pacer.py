"""Frames leave at their time codes, 30 Hz, instead of in bursts of a block.

The engine commits a block of frames at once (6 frames every 200 ms at the defaults). Receivers that show the latest
sample (Unreal Live Link, EVMC4U) would then update at 5 Hz. The UDP sinks hand each frame's datagrams to a ``Pacer``,
whose thread sends them when their time comes: the first frame leaves one jitter buffer (a block) after it arrived,
every later frame at the same offset from its time code, so a block that arrives up to a buffer late still leaves
evenly spaced. A frame that arrives later than that leaves at once and the offset grows by its lateness (the buffer
slides instead of bursting to catch up); ``late`` counts those frames.

The clock and sleep are injectable: tests drive the thread's loop with a fake clock.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

_STOP = object()
DEFAULT_BUFFER = 0.2  # s of jitter buffer when the stream does not say its block (the default block)


@dataclass
class Schedule:
    """When each frame leaves: ``offset + time code``, the offset fixed by the first frame and grown by lateness."""

    buffer: float  # s a frame may arrive late without disturbing the spacing
    offset: float | None = None  # wall clock - stream time
    late: int = 0

    def due(self, stream_time: float, now: float) -> float:
        if self.offset is None:
            self.offset = now + self.buffer - stream_time
        at = self.offset + stream_time
        if at < now:
            self.offset += now - at
            self.late += 1
            at = now
        return at


class Pacer:
    """A thread that runs ``send(payload)`` for each ``put(stream_time, payload)`` at its due time, in order."""

    def __init__(
        self,
        send: Callable[[object], None],
        buffer: float,
        *,
        name: str = "pacer",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.send = send
        self.schedule = Schedule(buffer)
        self.clock, self.sleep = clock, sleep
        self.name = name
        self.sent = 0
        self.errors = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> Pacer:
        self._thread = threading.Thread(target=self.run, args=(self._queue.get,), name=self.name, daemon=True)
        self._thread.start()
        return self

    def put(self, stream_time: float, payload: object) -> None:
        self._queue.put((stream_time, payload))

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued (still paced), then stop the thread."""
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run(self, get: Callable[[], object]) -> None:
        """The thread's loop; ``get`` blocks until the next item (a queue's ``get``, or a test's fake)."""
        while (item := get()) is not _STOP:
            stream_time, payload = item
            wait = self.schedule.due(stream_time, self.clock()) - self.clock()
            if wait > 0:
                self.sleep(wait)
            try:
                self.send(payload)
                self.sent += 1
            except OSError as e:  # an unreachable receiver must not stop the stream (nor spam the log)
                self.errors += 1
                if self.errors == 1:
                    log.warning("%s: send failed (%s); further failures are counted, not logged", self.name, e)


class PacedSink:
    """What the UDP sinks share: ``_emit(time, payload)`` hands a frame's datagrams to the pacer (or sends them at
    once when ``pace`` is off: file replays, content tests); ``send_now(payload)`` is the sink's own."""

    pace = True
    pacer: Pacer | None = None

    def send_now(self, payload: object) -> None:
        raise NotImplementedError

    def _start_pacer(self, block: int, fps: float) -> None:
        if self.pace:
            buffer = block / fps if block else DEFAULT_BUFFER
            self.pacer = Pacer(self.send_now, buffer, name=f"{type(self).__name__} pacer").start()

    def _emit(self, stream_time: float, payload: object) -> None:
        if self.pacer is not None:
            self.pacer.put(stream_time, payload)
        else:
            self.send_now(payload)

    def _stop_pacer(self) -> None:
        if self.pacer is not None:
            self.pacer.close()
            self.pacer = None
