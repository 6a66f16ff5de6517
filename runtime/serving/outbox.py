"""A session's outgoing messages: a bounded queue that never blocks the producer (DESIGN 8, anchors 7.6).

Inference puts messages in; the gRPC writer takes them out at the client's pace. When a slow client lets more than
``max_frames`` frames pile up, the oldest frame batches are dropped (never the header, events or the status) and a
marker takes their place; the writer turns a marker into one ``EVENT_TYPE_FRAMES_DROPPED`` event with the count, at
the position of the dropped frames, so the client still sees everything in time order. Inference for this and every
other session never waits on a client.

Single-threaded: used from the event loop only.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from runtime.constants import FPS
from runtime.serving.protos.interact.v1 import interact_pb2 as pb

log = logging.getLogger(__name__)

MAX_EVENTS = 1024  # queued non-frame messages beyond which the oldest events are dropped (a flooding client)


class SessionError(Exception):
    """Ends a session with a gRPC status ``code`` (a ``grpc.StatusCode``) and a precise ``message``."""

    def __init__(self, code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Dropped:
    count: int  # frames dropped
    first: int  # index of the first dropped frame
    last: int  # index of the last dropped frame


@dataclass
class _Batch:
    msg: pb.ServerMessage
    first: int  # frame index of the batch's first frame
    count: int  # frames in the batch


class Outbox:
    def __init__(self, max_frames: int) -> None:
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        self.max_frames = max_frames
        self._items: deque[pb.ServerMessage | _Batch | _Dropped] = deque()
        self._frames = 0  # frames queued
        self._events = 0  # non-frame messages queued
        self._closed = False
        self._error: SessionError | None = None
        self._ready = asyncio.Event()
        self.frames_sent = 0
        self.frames_dropped = 0
        self.events_dropped = 0

    @property
    def error(self) -> SessionError | None:
        return self._error

    def __len__(self) -> int:
        return len(self._items)

    @property
    def frames_queued(self) -> int:
        return self._frames

    def put(self, msg: pb.ServerMessage) -> None:
        """Queue a message; frame batches beyond ``max_frames`` push the oldest batches out."""
        if self._error is not None:
            return  # the session failed: nothing more will be sent
        if self._closed:
            raise RuntimeError("Outbox.put after close")
        if msg.WhichOneof("kind") == "frames":
            frames = msg.frames.frames
            self._items.append(_Batch(msg, frames[0].index, len(frames)))
            self._frames += len(frames)
            while self._frames > max(self.max_frames, len(frames)):  # the newest batch always stays
                self._drop_oldest_batch()
        else:
            self._items.append(msg)
            self._events += 1
            if self._events > MAX_EVENTS:
                self._drop_oldest_event()
        self._ready.set()

    def close(self) -> None:
        """No more messages: ``get`` returns None once the queue is empty."""
        self._closed = True
        self._ready.set()

    def fail(self, error: SessionError) -> None:
        """End the session: the next ``get`` raises ``error`` (queued messages are discarded)."""
        if self._error is None:
            self._error = error
        self._closed = True
        self._ready.set()

    async def get(self) -> pb.ServerMessage | None:
        """The next message to write, None when closed and empty; raises the ``SessionError`` given to ``fail``."""
        while True:
            if self._error is not None:
                raise self._error
            if self._items:
                return self._pop()
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()

    def _pop(self) -> pb.ServerMessage:
        item = self._items.popleft()
        if isinstance(item, _Batch):
            self._frames -= item.count
            self.frames_sent += item.count
            return item.msg
        if isinstance(item, _Dropped):
            self._events -= 1
            return pb.ServerMessage(event=pb.Event(
                type=pb.EVENT_TYPE_FRAMES_DROPPED, time=(item.last + 1) / FPS, count=item.count,
                message=f"frames {item.first}-{item.last} dropped: the client read too slowly"))  # fmt: skip
        self._events -= 1
        return item

    def _drop_oldest_batch(self) -> None:
        i = next(i for i, item in enumerate(self._items) if isinstance(item, _Batch))  # frames are queued
        item = self._items[i]
        del self._items[i]
        self._frames -= item.count
        self.frames_dropped += item.count
        last = item.first + item.count - 1
        before = self._items[i - 1] if i > 0 else None
        if isinstance(before, _Dropped) and before.last + 1 == item.first:  # extend the adjacent marker
            before.count += item.count
            before.last = last
        else:
            self._items.insert(i, _Dropped(item.count, item.first, last))
            self._events += 1
        log.debug("dropped frames %d-%d for a slow client", item.first, last)

    def _drop_oldest_event(self) -> None:
        for i, item in enumerate(self._items):
            if isinstance(item, pb.ServerMessage) and item.WhichOneof("kind") == "event":
                del self._items[i]
                self._events -= 1
                self.events_dropped += 1
                return
