"""Cross-session batching: the queue's wait bound on a fake clock, the batcher's bookkeeping, and real sessions whose
frames are the same batched and alone."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from runtime.model.batching import BatchQueue, MicroBatcher, Request


def _request(graph: str, arrival: float, rows: int = 1, frames: int = 33) -> Request:
    return Request(graph, {"x": np.zeros((rows, frames, 4), np.float32)}, arrival)


def simulate(arrivals: list[Request], max_wait: float, max_batch: int, cost) -> list[tuple[float, float, list]]:
    """One worker on a fake clock: it takes a due batch as soon as it is free, else sleeps until the next deadline
    or arrival. Returns (dispatch time, worker free since, batch) per batch."""
    q = BatchQueue(max_wait, max_batch)
    pending = sorted(arrivals, key=lambda r: r.arrival)
    free_at, out = 0.0, []
    while pending or q.groups:
        now = free_at
        while pending and pending[0].arrival <= now:
            q.add(pending.pop(0))
        batch = q.take(now)
        if batch is None:
            times = [t for t in (q.next_deadline(), pending[0].arrival if pending else None) if t is not None]
            free_at = max(now, min(times))
            continue
        out.append((now, free_at, batch))
        free_at = now + cost(batch)
    return out


def test_no_call_waits_longer_than_the_bound_while_the_worker_is_idle() -> None:
    rng = np.random.default_rng(0)
    graphs = ["face_k4", "body_lower_k4", "body_upper_k4"]
    arrivals = [_request(graphs[rng.integers(3)], float(t), rows=int(rng.integers(1, 3)))
                for t in np.sort(rng.uniform(0, 2.0, 400))]  # fmt: skip
    max_wait, max_batch = 0.004, 8
    runs = simulate(arrivals, max_wait, max_batch, cost=lambda b: 0.002 + 0.001 * sum(r.rows for r in b))
    seen = [r for _, _, batch in runs for r in batch]
    assert sorted(map(id, seen)) == sorted(map(id, arrivals))  # every call exactly once
    previous_end = 0.0
    for dispatch, _, batch in runs:
        assert len({r.key for r in batch}) == 1 and sum(r.rows for r in batch) <= max_batch
        assert [r.arrival for r in batch] == sorted(r.arrival for r in batch)  # first come, first served
        for r in batch:  # the wait the batcher adds: from when the call and an idle worker were both there
            assert dispatch - max(r.arrival, previous_end) <= max_wait + 1e-12
        previous_end = dispatch + 0.002 + 0.001 * sum(r.rows for r in batch)
    sizes = [len(b) for _, _, b in runs]
    assert max(sizes) > 1 and len(runs) < len(arrivals)  # it did batch


def test_a_full_group_leaves_at_once_and_the_rest_waits_its_turn() -> None:
    q = BatchQueue(max_wait=1.0, max_batch=4)
    for i in range(6):
        q.add(_request("face_k4", 10.0 + i * 1e-3))
    batch = q.take(10.005)
    assert [r.arrival for r in batch] == [10.0, 10.001, 10.002, 10.003]  # full: no need to wait 1 s
    assert q.take(10.006) is None  # the other two wait for company, up to their first's deadline
    assert q.next_deadline() == pytest.approx(11.004)
    assert len(q.take(11.004)) == 2
    other = _request("face_k4", 0.0, frames=21)  # another window length: never batched with the 33-frame ones
    assert other.key != _request("face_k4", 0.0).key


def test_batcher_gives_each_caller_its_rows_and_shares_errors() -> None:
    calls: list[int] = []

    def run(graph: str, feeds: dict) -> dict:
        calls.append(len(feeds["x"]))
        if graph == "broken":
            raise ValueError("bad graph")
        return {"y": feeds["x"] * 2 + 1}

    batcher = MicroBatcher(run, max_wait=0.2, max_batch=16)
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def caller(i: int, graph: str = "g") -> None:
        try:
            results[i] = batcher.run(graph, {"x": np.full((1 + i % 2, 3), float(i), np.float32)})["y"]
        except ValueError as e:
            errors.append(e)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(6)]
    threads += [threading.Thread(target=caller, args=(10 + i, "broken")) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    batcher.close()
    for i in range(6):
        np.testing.assert_array_equal(results[i], np.full((1 + i % 2, 3), 2.0 * i + 1))
    assert len(errors) == 2 and sum(calls) == 9 + 3 and len(calls) < 8  # 8 calls (12 rows) in fewer graph runs
    assert batcher.longest_wait < 5.0


def test_batched_sessions_give_the_same_frames_as_alone(untrained_bundle: Path) -> None:
    """Four real sessions stepping at once through one batched model = each run alone (float tolerance)."""
    from runtime.engine.frames import Frames
    from runtime.engine.settings import SessionSettings
    from runtime.engine.stream import Engine
    from runtime.model.model import Model

    rng = np.random.default_rng(3)
    audio = [[(rng.standard_normal(24000) * 0.1).astype(np.float32) for _ in (0, 1)] for _ in range(4)]

    def session(model: Model, k: int) -> Frames:
        engine = Engine(model, SessionSettings(seed=k + 1, degrade=False), f"s{k}")
        parts = []
        for i in range(0, 24000, 3200):
            for p in (0, 1):
                engine.push_audio(p, audio[k][p][i : i + 3200])
            while (f := engine.step()) is not None:
                parts.append(f)
        parts.append(engine.flush())
        return Frames.concat([f for f in parts if f is not None])

    alone = [session(Model.load(untrained_bundle), k) for k in range(4)]
    shared = Model.load(untrained_bundle)
    batcher = shared.batch_across_sessions(max_wait=0.05)
    together: dict[int, Frames] = {}
    threads = [threading.Thread(target=lambda k=k: together.__setitem__(k, session(shared, k))) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    batcher.close()
    assert batcher.batches < batcher.calls  # sessions did share graph calls
    for k in range(4):
        a, b = alone[k], together[k]
        np.testing.assert_array_equal(a.index, b.index)
        for pa, pb in zip(a.people, b.people, strict=True):
            np.testing.assert_allclose(pa.blendshapes, pb.blendshapes, atol=1e-4)
            np.testing.assert_allclose(pa.joint_rotations, pb.joint_rotations, atol=1e-4)
            np.testing.assert_allclose(pa.root_position, pb.root_position, atol=1e-4)
