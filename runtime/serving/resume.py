"""A client session that outlives its server: reconnect and resume (proto ``Resume``, docs/streaming.md).

    stream = await ResumingStream.open(client, SessionOptions(...))   # client: an AsyncClient (e.g. to a balancer)
    await stream.send_audio(pcm_a, 0); await stream.send_audio(pcm_b, 1)
    await stream.end()
    async for item in stream:          # Frames (indices continue across servers) | Event | SessionStatus (last)
        ...

When the call ends because the server or the way to it is gone (``lost``), or the server announces a drain
(EVENT_TYPE_DRAINING), the stream opens a new session through the same channel (a balancer picks a live server),
with backoff, asking it to resume: it re-sends the audio it kept from ``RESUME_CONTEXT`` frames before the first
frame it still needs, with where both people stood then and the actions they had. The new server's frames carry on
the session's indices and time codes. The seam: the first ``SEAM_FRAMES`` frames of each resumed stream are blended
from the last frame received into the new ones, so the avatars ease across instead of jumping. Each reconnect is
reported as a client-side ``Event("resumed", ...)``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import grpc
import numpy as np
from scipy.spatial.transform import Rotation

from runtime.constants import ACTIONS, FPS
from runtime.engine.frames import Frames, PersonFrames
from runtime.engine.settings import Event
from runtime.serving.api import ControlChange, Resume, SessionOptions, SessionStatus
from runtime.serving.client import AsyncClient, AsyncStream

log = logging.getLogger(__name__)

RESUME_CONTEXT = 45  # frames of audio re-sent before the first needed frame (1.5 s: the model's context and more)
SEAM_FRAMES = 6  # frames blended from the last received frame into a resumed stream's
KEEP_SECONDS = 20.0  # audio kept for resuming (covers the context plus audio sent but not yet answered)
BACKOFF = (0.2, 2.0, 3.0)  # first delay s, factor, longest delay s between attempts to reopen
# Refusals a retry cannot cure; anything else (UNAVAILABLE from a draining replica, RESOURCE_EXHAUSTED from a full
# one, a reset or a CANCELLED from a refusal racing the config write, grpc/grpc#36066) is retried until the deadline.
_CODE = grpc.StatusCode
PERMANENT = {_CODE.INVALID_ARGUMENT, _CODE.UNAUTHENTICATED, _CODE.PERMISSION_DENIED, _CODE.FAILED_PRECONDITION,
             _CODE.UNIMPLEMENTED, _CODE.OUT_OF_RANGE}  # fmt: skip


def lost(e: grpc.aio.AioRpcError) -> bool:
    """Did a running stream end because its server (or the way to it) went away, so that the session should resume
    elsewhere? Not for a refusal of what the client sent (PERMANENT) nor too many controls (RESOURCE_EXHAUSTED).
    What a lost server looks like varies: UNAVAILABLE from a stopping server; through nginx, a replica killed
    mid-stream resets the stream (INTERNAL "Received RST_STREAM") or fails a pending write (INTERNAL "Internal error
    from Core"). A server's own INTERNAL (a failed inference) is retried too, on whichever server the balancer
    picks, until the client's connect timeout."""
    return e.code() not in PERMANENT and e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED


@dataclass
class _Track:
    """Audio sent for one channel group (a speaker, or both in the stereo layout), the last ``keep`` samples."""

    keep: int
    parts: deque = field(default_factory=deque)
    start: int = 0  # sample index of parts[0][0]
    total: int = 0  # samples sent in all

    def add(self, samples: np.ndarray) -> None:
        self.parts.append(samples)
        self.total += len(samples)
        while self.parts and self.total - self.start - len(self.parts[0]) >= self.keep:
            self.start += len(self.parts.popleft())

    def since(self, sample: int) -> np.ndarray:
        if sample < self.start:
            raise RuntimeError(f"audio from sample {sample} is no longer kept (from {self.start}); raise KEEP_SECONDS")
        return np.concatenate(list(self.parts))[sample - self.start :] if self.parts else np.zeros(0, np.float32)


def ground(frames: Frames, i: int) -> tuple[tuple[float, float, float], ...]:
    """Where each person stands at row ``i``: (x, z, heading yaw) from the root position and the root joint's
    forward axis (the proto ``Resume.root_a/root_b`` rule)."""
    out = []
    for person in frames.people:
        w, x, y, z = (float(v) for v in person.joint_rotations[i, 0])
        forward = Rotation.from_quat([x, y, z, w]).apply([0.0, 0.0, 1.0])
        p = person.root_position[i]
        out.append((float(p[0]), float(p[2]), float(np.arctan2(forward[0], forward[2]))))
    return tuple(out)


def blend(last: Frames, new: Frames, seam: int) -> Frames:
    """``new`` with its first ``seam`` frames eased from ``last`` (one frame) towards their own values."""
    n = min(seam, len(new))
    if n == 0:
        return new
    w = (np.arange(1, n + 1) / (seam + 1))[:, None]
    people = []
    for old, cur in zip(last.people, new.people, strict=True):
        mix = lambda a, b: (1 - w) * a[-1:] + w * b[:n]  # noqa: E731
        q0, q1 = old.joint_rotations[-1:], cur.joint_rotations[:n]
        q0 = q0 * np.sign(np.sum(q0 * q1, axis=-1, keepdims=True) + 1e-12)  # the same hemisphere
        q = (1 - w[..., None]) * q0 + w[..., None] * q1
        q /= np.linalg.norm(q, axis=-1, keepdims=True)
        head = PersonFrames(mix(old.blendshapes, cur.blendshapes), mix(old.rotations, cur.rotations),
                            mix(old.root_position, cur.root_position), q, cur.action[:n], cur.speaking[:n])  # fmt: skip
        people.append(PersonFrames(*(np.concatenate([getattr(head, f), getattr(cur[n:], f)]).astype(
            getattr(cur, f).dtype) for f in ("blendshapes", "rotations", "root_position", "joint_rotations",
                                             "action", "speaking"))))  # fmt: skip
    return Frames(new.index, new.time, (people[0], people[1]), new.emitted_at)


class ResumingStream:
    def __init__(self, client: AsyncClient, options: SessionOptions, stream: AsyncStream) -> None:
        self.client, self.options, self.stream = client, options, stream
        self.info = stream.info
        rate = options.audio.sample_rate
        self.rate = rate
        keep = int(KEEP_SECONDS * rate)
        self.tracks = [_Track(keep)] if options.audio.layout == "stereo" else [_Track(keep), _Track(keep)]
        self.next_frame = 0  # the first frame not yet received
        self.recent: deque[Frames] = deque(maxlen=RESUME_CONTEXT + 3)  # one-frame Frames, newest last
        self.reconnects = 0
        self.frames_received = 0
        self.ended = False
        self.controls: list[ControlChange] = []  # every control sent, in order
        self._broken = False
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, client: AsyncClient, options: SessionOptions | None = None) -> ResumingStream:
        options = options or SessionOptions()
        return cls(client, options, await client.open(options))

    # -- sending -------------------------------------------------------------------------------------------
    async def send_audio(self, samples: np.ndarray, speaker: int | None = None) -> None:
        """Like ``AsyncStream.send_audio``; the audio is also kept for a resume. Never raises for a lost server:
        the audio waits in the history and is re-sent when the session resumes."""
        samples = np.asarray(samples, np.float32)
        async with self._lock:
            self.tracks[0 if speaker is None else speaker].add(samples)
            if not self._broken:
                try:
                    await self.stream.send_audio(samples, speaker)
                except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                    self._broken = True  # the reader sees the call's status and resumes

    async def control(self, speaker: int, at_time: float, action: str | None = None, style: str | None = None) -> None:
        """Like ``AsyncStream.control``; kept, so a resumed session starts with the styles in force and gets the
        controls that fall after its first audio again."""
        async with self._lock:
            self.controls.append(ControlChange(speaker, at_time, action, style))
            if not self._broken:
                try:
                    await self.stream.control(speaker, at_time, action=action, style=style)
                except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                    self._broken = True

    async def end(self) -> None:
        async with self._lock:
            self.ended = True
            if not self._broken:
                try:
                    await self.stream.end()
                except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                    self._broken = True

    # -- receiving -----------------------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[Frames | Event | SessionStatus]:
        return self.results()

    async def results(self) -> AsyncIterator[Frames | Event | SessionStatus]:
        seam = 0
        while True:
            try:
                async for item in self.stream.results():
                    if isinstance(item, Frames):
                        item = item[int(np.searchsorted(item.index, self.next_frame)) :]  # never a repeated index
                        if not len(item):
                            continue
                        if seam and self.recent:
                            item = blend(self.recent[-1], item, seam)
                            seam = max(0, seam - len(item))
                        self.next_frame = int(item.index[-1]) + 1
                        self.frames_received += len(item)
                        self.recent.extend(item[i : i + 1] for i in range(len(item)))
                        yield item
                    elif isinstance(item, SessionStatus):
                        note = f", resumed {self.reconnects} time(s)" if self.reconnects else ""
                        yield replace(item, frames=self.frames_received, message=item.message + note)
                        return
                    else:
                        yield item
                        if item.kind == "draining":
                            self.stream.cancel()
                            raise _Drained
                return
            except (grpc.aio.AioRpcError, _Drained) as e:
                if isinstance(e, grpc.aio.AioRpcError) and not lost(e):
                    raise
                why = "drain notice" if isinstance(e, _Drained) else f"{e.code().name}: {e.details()}"
                await self._resume(why)
                seam = SEAM_FRAMES
                yield Event("resumed", self.next_frame / FPS, None, f"resumed on another server after {why}")

    async def _resume(self, why: str) -> None:
        self._broken = True
        delay, factor, longest = BACKOFF
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.client.connect_timeout
        while True:
            try:
                await self._reopen()
                self.reconnects += 1
                log.info("session %s resumed as %s from frame %d (%s)", self.info.session_id,
                         self.stream.info.session_id, self.next_frame, why)  # fmt: skip
                return
            except grpc.aio.AioRpcError as e:
                if e.code() in PERMANENT or loop.time() > deadline:
                    raise
                log.info("resume of %s: %s; retrying in %.1f s", self.info.session_id, e.code().name, delay)
            await asyncio.sleep(delay)
            delay = min(delay * factor, longest)

    async def _reopen(self) -> None:
        """Open the resumed session and re-send the kept audio, holding the send lock so no chunk slips between."""
        first = self.next_frame
        start = max(0, first - RESUME_CONTEXT) // 3 * 3  # whole samples at any rate that is a multiple of 10 Hz
        roots, actions = None, self.options.actions
        at = [f for f in self.recent if int(f.index[0]) == start]
        if at:  # else nothing received yet: the config's placement and actions, as for a new session
            roots = ground(at[0], 0)
            actions = tuple(ACTIONS[int(p.action[0])] for p in at[0].people)
        resume = Resume(start, first, roots, self.stream.info.session_id)
        styles = list(self.options.styles)
        for c in self.controls:  # the styles in force at the new stream's first audio; later controls are re-sent
            if c.style is not None and c.time <= start / FPS:
                styles[c.speaker] = c.style
        options = replace(self.options, actions=actions, styles=tuple(styles), resume=resume)
        async with self._lock:
            stream = await self.client.open(options)
            sample = start * self.rate // round(FPS)
            try:
                for c in self.controls:  # before the audio, so each lands on its frame, not where the audio is
                    if c.time > start / FPS:
                        await stream.control(c.speaker, c.time, action=c.action, style=c.style)
                kept = [track.since(sample) for track in self.tracks]
                for i in range(0, max(len(k) for k in kept), self.rate):  # a second of each speaker in turn
                    for speaker, k in enumerate(kept):
                        if len(k) > i:
                            await stream.send_audio(k[i : i + self.rate], None if len(kept) == 1 else speaker)
                if self.ended:
                    await stream.end()
            except BaseException:
                stream.cancel()
                raise
            self.stream, self._broken = stream, False


class _Drained(Exception):
    """The server announced a drain: resume elsewhere now."""
