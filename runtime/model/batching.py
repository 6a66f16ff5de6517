"""Cross-session batching: graph calls of concurrent sessions run as one batched call (issue 14, DESIGN 11).

Every session's engine calls the same graphs (``face_k4``, ``body_lower_k4``, ...) on windows of the same shape. A
``MicroBatcher`` attached to the shared ``Model`` collects the calls that arrive from session threads: calls for the
same graph with the same shapes (apart from the batch axis) are concatenated along the batch axis, run once, and
each caller gets its own rows back. The policy is Triton's dynamic batcher's, bounded:

- a call waits at most ``max_wait`` s for others to join it, and less when ``max_batch`` rows are reached;
- while a batch runs, new calls queue, and the next batch takes all of them (so under load batches grow with no
  added wait, and with one session alone each call runs after at most ``max_wait``).

``BatchQueue`` is the policy alone, over an injected clock (the tests drive it with a fake one); ``MicroBatcher``
runs it on one thread. Results equal unbatched runs within float tolerance: the graphs treat batch rows
independently (no batch-wide operation), so only the summation order inside a matrix product may differ.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

Feeds = Mapping[str, np.ndarray]
RunGraph = Callable[[str, Feeds], dict[str, np.ndarray]]


@dataclass
class Request:
    graph: str
    feeds: Feeds
    arrival: float
    rows: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, np.ndarray] | None = None
    error: BaseException | None = None
    dispatched: float | None = None

    def __post_init__(self) -> None:
        self.rows = len(next(iter(self.feeds.values())))

    @property
    def key(self) -> tuple:
        """Calls that can share a batch: the same graph, the same shapes and dtypes past the batch axis."""
        return (self.graph, tuple((k, v.shape[1:], v.dtype.str) for k, v in sorted(self.feeds.items())))


class BatchQueue:
    """Groups of waiting calls and when each must leave. Not thread-safe (``MicroBatcher`` holds its lock)."""

    def __init__(self, max_wait: float, max_batch: int) -> None:
        if max_wait < 0 or max_batch < 1:
            raise ValueError(f"max_wait must be >= 0 s and max_batch >= 1, got {max_wait}, {max_batch}")
        self.max_wait, self.max_batch = max_wait, max_batch
        self.groups: dict[tuple, list[Request]] = {}

    def add(self, request: Request) -> None:
        self.groups.setdefault(request.key, []).append(request)

    def deadline(self, group: list[Request]) -> float:
        return group[0].arrival + self.max_wait

    def next_deadline(self) -> float | None:
        return min((self.deadline(g) for g in self.groups.values()), default=None)

    def take(self, now: float) -> list[Request] | None:
        """The batch to run now, oldest deadline first: a group that is full or whose first call has waited
        ``max_wait``; at most ``max_batch`` rows (the rest stay, first in line). None if none is due."""
        due = [(self.deadline(g), k) for k, g in self.groups.items()
               if self.deadline(g) <= now or sum(r.rows for r in g) >= self.max_batch]  # fmt: skip
        if not due:
            return None
        key = min(due)[1]
        group, batch, rows = self.groups[key], [], 0
        while group and (not batch or rows + group[0].rows <= self.max_batch):
            rows += group[0].rows
            batch.append(group.pop(0))
        if not group:
            del self.groups[key]
        return batch


def run_batch(run: RunGraph, batch: list[Request]) -> None:
    """One graph call for the whole batch; each request gets its rows (or the error)."""
    graph = batch[0].graph
    try:
        if len(batch) == 1:
            outputs = run(graph, batch[0].feeds)
            batch[0].result = outputs
        else:
            feeds = {k: np.concatenate([r.feeds[k] for r in batch]) for k in batch[0].feeds}
            outputs = run(graph, feeds)
            start = 0
            for r in batch:
                r.result = {k: v[start : start + r.rows] for k, v in outputs.items()}
                start += r.rows
    except BaseException as e:  # noqa: BLE001 - every caller re-raises it on its own thread
        for r in batch:
            r.error = e
    for r in batch:
        r.done.set()


class MicroBatcher:
    """``run(graph, feeds)`` from any thread; ``threads`` batching threads run the graphs (``run_graph``), each
    taking the next due batch (two on a 2-core CPU: a graph runs on one core while the other batch runs)."""

    def __init__(self, run_graph: RunGraph, max_wait: float = 0.002, max_batch: int = 16,
                 clock: Callable[[], float] = time.monotonic, threads: int = 1) -> None:  # fmt: skip
        self.queue = BatchQueue(max_wait, max_batch)
        self.run_graph, self.clock = run_graph, clock
        self.batches = 0  # graph calls made
        self.calls = 0  # calls batched into them
        self.longest_wait = 0.0  # s, arrival -> dispatch, the worst seen
        self._cond = threading.Condition()
        self._closed = False
        self._threads = [threading.Thread(target=self._loop, name=f"micro-batcher-{i}", daemon=True)
                         for i in range(threads)]  # fmt: skip
        for t in self._threads:
            t.start()

    def run(self, graph: str, feeds: Feeds) -> dict[str, np.ndarray]:
        request = Request(graph, feeds, self.clock())
        with self._cond:
            if self._closed:
                raise RuntimeError("MicroBatcher.run after close")
            self.queue.add(request)
            self._cond.notify()
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.result

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=5)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while (batch := self.queue.take(now := self.clock())) is None:
                    if self._closed and not self.queue.groups:
                        return
                    deadline = self.queue.next_deadline()
                    self._cond.wait(None if deadline is None else max(0.0, deadline - now))
                for r in batch:
                    r.dispatched = now
                    self.longest_wait = max(self.longest_wait, now - r.arrival)
                self.batches += 1
                self.calls += len(batch)
                if self.queue.groups:
                    self._cond.notify()  # another thread may take the next due batch meanwhile
            run_batch(self.run_graph, batch)
