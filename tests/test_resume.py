"""Sessions that survive their server: the Resume protocol on one real server, and the Python client's reconnect and
resume across two real servers (a drain notice, and a server that stops mid-stream)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import numpy as np
import pytest
from serving import running, speechlike, wait_until

from runtime.constants import FPS, SAMPLE_RATE
from runtime.engine.frames import Frames
from runtime.serving.api import Resume, SessionOptions
from runtime.serving.client import AsyncClient, Client
from runtime.serving.resume import SEAM_FRAMES, ResumingStream

SECONDS = 4.0
CHUNK = 640  # 40 ms at 16 kHz


def test_resumed_session_continues_the_time_codes(untrained_bundle: Path) -> None:
    """Audio re-sent from frame 30; frames wanted from 45: the stream's frames are 45.. with time codes index / 30,
    events are in session time, and the count follows the whole-session rule."""
    x, y = speechlike(3.0, 5), speechlike(3.0, 6)
    start = 30
    sample = start * SAMPLE_RATE // 30
    resume = Resume(start, 45, ((3.0, -2.0, 0.3), (3.5, -0.4, 3.0)), "earlier")
    with running(untrained_bundle) as srv, Client(f"127.0.0.1:{srv.port}") as c:
        stream = c.open(SessionOptions(seed=3, resume=resume))
        assert stream.info.first_frame == 45
        stream.send_audio(x[sample:], 0)
        stream.send_audio(y[sample:], 1)
        stream.end()
        result = stream.collect()
    frames = result.frames
    np.testing.assert_array_equal(frames.index, np.arange(45, 90))  # ceil(3 s x 30) = 90 in the whole session
    np.testing.assert_allclose(frames.time, frames.index / FPS)
    assert result.status.frames == 45
    assert all(e.time >= 45 / FPS for e in result.events)  # none from the re-sent context
    for person, (x, z, _) in zip(frames.people, resume.roots, strict=True):  # from the given roots, not the placement
        assert np.hypot(person.root_position[0, 0] - x, person.root_position[0, 2] - z) < 0.5


@pytest.mark.parametrize(
    ("resume", "field"),
    [(Resume(31, 40), "config.resume.start_frame"), (Resume(30, 20), "config.resume.first_frame"),
     (Resume(30, 40, ((0.0, float("nan"), 0.0), (0.0, 1.4, 3.1))), "config.resume.root_a.z")],
)  # fmt: skip
def test_bad_resume_is_refused_with_the_field(untrained_bundle: Path, resume: Resume, field: str) -> None:
    with running(untrained_bundle) as srv, Client(f"127.0.0.1:{srv.port}") as c:
        with pytest.raises(grpc.RpcError) as e:
            c.open(SessionOptions(resume=resume))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in e.value.details()


async def _stream_through(target: str, when_half_sent) -> tuple[list, ResumingStream]:
    """Stream SECONDS of two voices through a ResumingStream on ``target``; ``when_half_sent`` runs once half the
    audio is sent and some frames are back. Returns (every result item, the stream)."""
    x, y = speechlike(SECONDS, 7), speechlike(SECONDS, 8)
    items: list = []
    async with AsyncClient(target, options=(("grpc.lb_policy_name", "pick_first"),), connect_timeout=20) as client:
        stream = await ResumingStream.open(client, SessionOptions(seed=5, placement=(0.4, 1.8, 2.8)))

        async def read() -> None:
            async for item in stream:
                items.append(item)

        reader = asyncio.create_task(read())
        await stream.control(0, 3.5, action="sit")  # falls after the hand-over: the next server must get it too
        for i in range(0, len(x), CHUNK):
            if i == len(x) // 2 // CHUNK * CHUNK:
                while stream.frames_received < 20:
                    await asyncio.sleep(0.02)
                await when_half_sent()
            await stream.send_audio(x[i : i + CHUNK], 0)
            await stream.send_audio(y[i : i + CHUNK], 1)
            await asyncio.sleep(0.005)
        await stream.end()
        await asyncio.wait_for(reader, 60)
    return items, stream


def _check_continuous(items: list, stream: ResumingStream) -> Frames:
    frames = Frames.concat([i for i in items if isinstance(i, Frames)])
    n = int(np.ceil(SECONDS * FPS))
    np.testing.assert_array_equal(frames.index, np.arange(n))  # every frame once, in order, across both servers
    np.testing.assert_allclose(frames.time, frames.index / FPS)
    assert stream.reconnects == 1
    resumed = [i for i in items if getattr(i, "kind", "") == "resumed"]
    assert len(resumed) == 1
    seam = int(round(resumed[0].time * FPS))
    for person in frames.people:  # the root carries on across the seam: no jump to the start placement
        step = np.linalg.norm(np.diff(person.root_position, axis=0), axis=1)
        assert step[seam - 1 : seam + SEAM_FRAMES].max() < 0.05, step[seam - 3 : seam + SEAM_FRAMES]
    status = items[-1]
    assert status.frames == n and "resumed 1 time" in status.message
    applied = [i for i in items if getattr(i, "kind", "") == "control_applied"]
    assert [round(e.time, 3) for e in applied] == [3.5]  # re-sent to the new server, applied once, on its frame
    assert frames.people[0].action[104] != frames.people[0].action[106]  # frame 105 = 3.5 s: sit from there
    return frames


def test_client_resumes_on_the_other_server_after_a_drain_notice(untrained_bundle: Path) -> None:
    with running(untrained_bundle) as first, running(untrained_bundle) as second:
        target = f"ipv4:127.0.0.1:{first.port},127.0.0.1:{second.port}"  # pick_first: the first while it serves

        async def drain_first() -> None:
            asyncio.get_running_loop().run_in_executor(None, first.drain, 10.0)  # SIGTERM's drain, grace 10 s

        items, stream = asyncio.run(_stream_through(target, drain_first))
        assert any(getattr(i, "kind", "") == "draining" for i in items)
        _check_continuous(items, stream)
        ended = lambda: second.server.metrics.snapshot()["sessions_ended"] == {"OK": 1}  # noqa: E731
        wait_until(ended, "the resumed session to end OK on the second server")


def test_client_resumes_when_its_server_stops_mid_stream(untrained_bundle: Path) -> None:
    with running(untrained_bundle) as first, running(untrained_bundle) as second:
        target = f"ipv4:127.0.0.1:{first.port},127.0.0.1:{second.port}"

        async def stop_first() -> None:
            await asyncio.get_running_loop().run_in_executor(None, first.drain, 0.0)  # sessions cut: UNAVAILABLE

        items, stream = asyncio.run(_stream_through(target, stop_first))
        _check_continuous(items, stream)
