"""The UDP bridges as a receiver sees them: frames paced at 30 Hz (fake clock, then real loopback), and VMC frames
split into bundles under the MTU with the status, time, jaw and eye messages, decoded by python-osc."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from benchmarks.bridges import Receiver, interval_stats, livelink_frames, vmc_frames
from runtime.formats.arkit import INDEX
from runtime.sinks import pacer as pacing
from runtime.sinks.livelink import LiveLinkSink
from runtime.sinks.vmc import DEFAULT_PORT_B, JAW_OPEN_RAD, MAX_DATAGRAM, VmcSink

FRAME = 1 / 30
BLOCK = 6


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        assert dt > 0
        self.t += dt


def paced_run(arrivals: list[float], buffer: float = BLOCK * FRAME) -> tuple[list[tuple[float, int]], pacing.Pacer]:
    """Frame k (stream time k/30) handed to a pacer at ``arrivals[k]`` (fake clock s from the start); the thread's
    loop runs on the fake clock. Returns (send time, frame) in send order, and the pacer."""
    clock = FakeClock()
    start = clock.t
    sent: list[tuple[float, int]] = []
    pacer = pacing.Pacer(lambda k: sent.append((clock.t, k)), buffer, clock=clock.now, sleep=clock.sleep)
    items = iter(enumerate(arrivals))

    def get():  # a queue's blocking get: waits (on the fake clock) until the next frame has arrived
        k, at = next(items, (None, None))
        if k is None:
            return pacing._STOP
        clock.t = max(clock.t, start + at)
        return (k * FRAME, k)

    pacer.run(get)
    return sent, pacer


def block_arrivals(blocks: int, delay: list[float]) -> list[float]:
    """Each block of 6 frames arrives at once, when its last frame's audio is in, plus that block's compute delay."""
    return [(b + 1) * BLOCK * FRAME + delay[b] for b in range(blocks) for _ in range(BLOCK)]


def test_pacer_spreads_blocks_to_the_frame_rate_with_a_fake_clock() -> None:
    rng = np.random.default_rng(0)
    jitter = list(rng.uniform(0.0, 0.19, 20))  # compute time varying by up to a block
    arrivals = block_arrivals(20, jitter)
    sent, pacer = paced_run(arrivals)
    assert [k for _, k in sent] == list(range(120))  # all, in order
    gaps = np.diff([t for t, _ in sent])
    np.testing.assert_allclose(gaps, FRAME, atol=1e-9)  # exactly 30 Hz: the jitter is absorbed by the buffer
    assert pacer.schedule.late == 0
    assert all(t >= 100.0 + a for (t, _), a in zip(sent, arrivals, strict=True))  # never before it arrived
    unpaced = np.diff(arrivals)
    assert np.mean(unpaced < 0.002) > 0.8  # what receivers got before: 5 of 6 frames back to back


def test_a_block_later_than_the_buffer_slides_the_schedule_instead_of_bursting() -> None:
    delay = [0.05] * 10
    delay[4] = 0.5  # one block 0.5 s late (longer than the 0.2 s buffer); later blocks on time again
    sent, pacer = paced_run(block_arrivals(10, delay))
    times = np.array([t for t, _ in sent])
    gaps = np.diff(times)
    assert [k for _, k in sent] == list(range(60))
    assert gaps.min() >= FRAME - 1e-9  # no burst to catch up
    assert pacer.schedule.late >= 1
    assert np.sum(gaps > FRAME + 1e-6) == 1  # one longer gap where the late block was, then 30 Hz again


def test_pacer_thread_sends_everything_on_close_and_survives_send_errors() -> None:
    got: list[int] = []

    def send(k: int) -> None:
        if k == 2:
            raise OSError("network unreachable")
        got.append(k)

    p = pacing.Pacer(send, buffer=0.0).start()
    for k in range(5):
        p.put(k * 0.001, k)  # 1 ms apart: a few ms in all
    p.close(timeout=5.0)
    assert got == [0, 1, 3, 4] and p.errors == 1 and p.sent == 4


def test_paced_sinks_on_real_loopback(engine_session) -> None:
    """Blocks handed over every 200 ms at real time arrive at both sinks' receivers one frame apart (kernel receive
    timestamps). Loose bounds: the strict figure is ``python -m benchmarks.bridges`` on a quiet machine."""
    info, frames, _ = engine_session
    frames = frames[:36]
    ll, vmc_a, vmc_b = Receiver(), Receiver(), Receiver()
    sinks = [LiveLinkSink(f"127.0.0.1:{ll.port}"), VmcSink(f"127.0.0.1:{vmc_a.port},127.0.0.1:{vmc_b.port}")]
    try:
        for s in sinks:
            s.open(info)
        for start in range(0, len(frames), BLOCK):
            time.sleep(BLOCK * FRAME)
            for s in sinks:
                s.write(frames[start : start + BLOCK])
        for s in sinks:
            s.close()  # drains the pacers
        time.sleep(0.2)
    finally:
        for r in (ll, vmc_a, vmc_b):
            r.close()
    streams = [livelink_frames(ll.arrivals, "InterAct_A"), livelink_frames(ll.arrivals, "InterAct_B"),
               vmc_frames(vmc_a.arrivals), vmc_frames(vmc_b.arrivals)]  # fmt: skip
    for times in streams:
        stats = interval_stats(times)
        assert stats["frames"] == len(frames)
        assert abs(stats["p50_ms"] - 1000 * FRAME) < 5.0, stats
        assert np.mean(np.diff(times) < 0.010) <= 0.05, stats  # bursts were 5 of 6 frames


def unity_forward(xyzw: np.ndarray) -> np.ndarray:
    """Where a bone's local +Z (forward) points, for a Unity rotation brought back to our right-handed frame."""
    mirror = np.diag([-1.0, 1.0, 1.0])
    return mirror @ Rotation.from_quat(xyzw).as_matrix() @ mirror @ [0.0, 0.0, 1.0]


def test_vmc_datagrams_fit_the_mtu_and_carry_status_time_jaw_and_eyes(engine_session) -> None:
    from pythonosc.osc_bundle import OscBundle

    info, frames, _ = engine_session
    frames = frames[10:13]
    a, b = Receiver(), Receiver()
    sink = VmcSink(f"127.0.0.1:{a.port},127.0.0.1:{b.port}", pace=False)
    sink.open(info)
    sink.write(frames)
    sink.close()
    time.sleep(0.2)
    a.close()
    b.close()
    for p, receiver in enumerate((a, b)):
        sizes = [len(d) for _, d in receiver.arrivals]
        assert max(sizes) <= MAX_DATAGRAM and len(sizes) >= 3 * 5  # a ~7 kB frame in >= 5 datagrams
        messages = [(m.address, m.params) for _, d in receiver.arrivals for m in OscBundle(d)]
        starts = [i for i, (address, _) in enumerate(messages) if address == "/VMC/Ext/OK"]
        assert len(starts) == 3 and starts[0] == 0
        person = frames.people[p]
        for f, (s, e) in enumerate(zip(starts, [*starts[1:], len(messages)], strict=True)):
            frame = messages[s:e]
            assert frame[0] == ("/VMC/Ext/OK", [1, 3, 0, 1])
            assert frame[1][0] == "/VMC/Ext/T" and frame[1][1][0] == pytest.approx(float(frames.time[f]))
            assert frame[-1][0] == "/VMC/Ext/Blend/Apply"
            assert sum(address == "/VMC/Ext/Blend/Val" for address, _ in frame) == 52
            bones = {args[0]: np.array(args[1:]) for address, args in frame if address == "/VMC/Ext/Bone/Pos"}
            forward = lambda bone, bones=bones: unity_forward(bones[bone][3:])  # noqa: E731
            opening = JAW_OPEN_RAD * person.blendshapes[f, INDEX["jawOpen"]]
            np.testing.assert_allclose(forward("Jaw"), [0.0, -np.sin(opening), np.cos(opening)], atol=1e-5)
            for bone, k in (("LeftEye", 3), ("RightEye", 6)):
                yaw, pitch = person.rotations[f, k], person.rotations[f, k + 1]  # > 0: to the left, up
                gaze = [np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)]
                np.testing.assert_allclose(forward(bone), gaze, atol=1e-5)
            assert bones["LeftEye"][0] < 0 < bones["RightEye"][0]  # person's left (+X ours) is -X in Unity


def test_vmc_addresses() -> None:
    sink = VmcSink("10.0.0.5")
    assert sink.addresses == [("10.0.0.5", 39539), ("10.0.0.5", DEFAULT_PORT_B)]
    assert DEFAULT_PORT_B not in (39539, 39540)  # the receivers' and VirtualMotionCapture's own ports
    assert VmcSink("h:5000,g:6000").addresses == [("h", 5000), ("g", 6000)]
    with pytest.raises(ValueError, match="different receivers"):
        VmcSink("h:5000,h:5000")
