"""Python client of the InterAct server (DESIGN 9), used by mic_demo, benchmarks and tests: async and sync.

    async with AsyncClient("localhost:50051") as client:          # waits (with backoff) until the server is SERVING
        stream = await client.open(SessionOptions(seed=7))        # sends the config, returns once the header is in
        print(stream.info.algorithmic_latency)                    # s: delay the audio playback by this much
        await stream.send_audio(pcm_a, speaker=0)                 # float32 [-1, 1] at options.audio.sample_rate
        await stream.send_audio(pcm_b, speaker=1)
        await stream.end()                                        # end_of_audio: the server flushes
        async for item in stream:                                 # Frames | Event | SessionStatus (last)
            ...
        result = await client.replay_wavs("a.wav", "b.wav")      # paced at wall-clock speed, 40 ms chunks

    with Client("localhost:50051") as client:                     # the same, blocking (a loop on a thread)
        result = client.replay_wavs("a.wav", "b.wav", realtime=False)

Everything is returned as domain objects (``runtime.engine.frames.StreamInfo`` / ``Frames``,
``runtime.engine.settings.Event``, ``runtime.serving.api.SessionStatus``); ``Frames.emitted_at`` holds the client's
monotonic receive time. Server errors raise ``grpc.RpcError`` (``.code()``, ``.details()`` name the field and the
reason).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from runtime.engine.frames import Frames, StreamInfo
from runtime.engine.settings import Event
from runtime.formats.wav import read_audio
from runtime.serving.api import ControlChange, ModelInfo, SessionOptions, SessionStatus
from runtime.serving.audio_codec import encode_audio
from runtime.serving.convert import (
    control_to_proto,
    event_from_proto,
    frames_from_proto,
    header_from_proto,
    model_from_proto,
    options_to_proto,
    status_from_proto,
)
from runtime.serving.protos.interact.v1 import interact_pb2 as pb
from runtime.serving.protos.interact.v1 import interact_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

HEADERS_WAIT = 0.3  # s a new stream waits for the server's admission headers before sending its config

SERVICE = "interact.v1.Interact"
CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 60_000),  # ping every 60 s (the server permits >= 30 s)
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.initial_reconnect_backoff_ms", 100),  # reconnect quickly; AsyncClient.connect adds its own backoff
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 5_000),
)


async def _write(call: grpc.aio.StreamStreamCall, msg: pb.ClientMessage) -> None:
    """Write ``msg``; if the server has already ended the call, raise its status (not the write's failure)."""
    try:
        await call.write(msg)
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as e:
        code = await call.code()
        if code == grpc.StatusCode.OK:
            raise
        raise grpc.aio.AioRpcError(code, await call.initial_metadata(), await call.trailing_metadata(),
                                   details=await call.details()) from e  # fmt: skip


@dataclass
class SessionResult:
    info: StreamInfo
    frames: Frames | None  # every frame received, in order (None if none)
    events: list[Event]
    status: SessionStatus | None  # None if the call ended without one

    @property
    def n_frames(self) -> int:
        return 0 if self.frames is None else len(self.frames)


class AsyncStream:
    """One open session: send audio/controls/end, iterate the results (``Frames``, ``Event``, ``SessionStatus``)."""

    def __init__(self, call: grpc.aio.StreamStreamCall, options: SessionOptions, info: StreamInfo) -> None:
        self._call = call
        self.options = options
        self.info = info
        self.status: SessionStatus | None = None

    async def send_audio(self, samples: np.ndarray, speaker: int | None = None) -> None:
        """Float samples in [-1, 1] at ``options.audio.sample_rate``: (N,) of ``speaker`` 0 (A) or 1 (B) in the mono
        layout, (N, 2) with A left and B right (speaker None) in the stereo layout; split into chunks of <= 1 s."""
        for chunk in encode_audio(self.options.audio, samples, speaker):
            await _write(self._call, pb.ClientMessage(audio=chunk))

    async def send_chunk(self, chunk: pb.AudioChunk) -> None:
        """A raw ``AudioChunk`` as it is (tests of the server's validation; tools relaying bytes)."""
        await _write(self._call, pb.ClientMessage(audio=chunk))

    async def control(self, speaker: int, at_time: float, action: str | None = None, style: str | None = None) -> None:
        """Change ``speaker``'s action label or style from ``at_time`` s (session audio time)."""
        msg = pb.ClientMessage(control=control_to_proto(ControlChange(speaker, at_time, action, style)))
        await _write(self._call, msg)

    async def end(self) -> None:
        """End of audio: the server appends silence, sends the remaining frames and the status."""
        await _write(self._call, pb.ClientMessage(end_of_audio=pb.EndOfAudio()))
        try:
            await self._call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass  # the call has ended: results() raises its status

    def cancel(self) -> None:
        self._call.cancel()

    async def results(self) -> AsyncIterator[Frames | Event | SessionStatus]:
        while (msg := await self._call.read()) is not grpc.aio.EOF:
            kind = msg.WhichOneof("kind")
            if kind == "frames":
                yield frames_from_proto(msg.frames, time.monotonic())
            elif kind == "event":
                yield event_from_proto(msg.event)
            elif kind == "status":
                self.status = status_from_proto(msg.status)
                yield self.status
            else:
                raise RuntimeError(f"unexpected {kind!r} message from the server after the header")

    def __aiter__(self) -> AsyncIterator[Frames | Event | SessionStatus]:
        return self.results()

    async def collect(self) -> SessionResult:
        """Read everything until the call ends; raises ``grpc.RpcError`` if the server ended it with an error."""
        frames, events = [], []
        async for item in self.results():
            if isinstance(item, Frames):
                frames.append(item)
            elif isinstance(item, Event):
                events.append(item)
        return SessionResult(self.info, Frames.concat(frames) if frames else None, events, self.status)


class AsyncClient:
    """A channel to one server. ``connect`` retries with exponential backoff until health reports SERVING."""

    def __init__(self, target: str, *, token: str | None = None, root_certificates: bytes | None = None,
                 options: Sequence[tuple[str, object]] = (), connect_timeout: float = 30.0,
                 backoff: tuple[float, float, float] = (0.1, 2.0, 5.0)) -> None:  # fmt: skip
        """``backoff``: (first delay s, factor, longest delay s) between connection attempts."""
        self.target = target
        self.connect_timeout = connect_timeout
        self.backoff = backoff
        opts = list(CHANNEL_OPTIONS) + list(options)
        if root_certificates is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.aio.secure_channel(target, creds, options=opts)
        else:
            self._channel = grpc.aio.insecure_channel(target, options=opts)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._stub = pb_grpc.InteractStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def __aenter__(self) -> AsyncClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def health(self, service: str = SERVICE, timeout: float = 5.0) -> str:
        """The server's health for ``service``: "SERVING", "NOT_SERVING", ... (raises ``grpc.RpcError``)."""
        reply = await self._health.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    async def connect(self) -> None:
        """Wait until the server answers SERVING; retry UNAVAILABLE / NOT_SERVING with exponential backoff."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        delay, factor, longest = self.backoff
        attempt = 0
        while True:
            attempt += 1
            try:
                why = await self.health(timeout=max(0.1, min(5.0, deadline - loop.time())))
                if why == "SERVING":
                    return
            except grpc.aio.AioRpcError as e:
                if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                why = e.code().name
            left = deadline - loop.time()
            if left <= 0:
                raise ConnectionError(f"{self.target}: not serving after {attempt} attempt(s) in "
                                      f"{self.connect_timeout:g} s (last: {why})")  # fmt: skip
            log.info("%s: %s; retrying in %.2f s", self.target, why, min(delay, left))
            await asyncio.sleep(min(delay, left))
            delay = min(delay * factor, longest)

    async def describe(self) -> ModelInfo:
        return model_from_proto(await self._stub.DescribeModel(pb.DescribeModelRequest(), metadata=self._metadata))

    async def open(self, options: SessionOptions | None = None) -> AsyncStream:
        """Start a session: send the config and wait for the header. Raises ``grpc.RpcError`` if refused."""
        options = options or SessionOptions()
        call = self._stub.Stream(metadata=self._metadata)
        # The server sends headers once it admits the session, or its refusal: waiting for them first means the
        # config write cannot race the refusal (grpc.aio would report such a race as INTERNAL; grpc/grpc#36066).
        # A TLS-terminating nginx holds an admitted stream's headers until the first DATA frame (the header
        # message, sent after the config), so the wait is bounded: then the config goes anyway.
        try:
            await asyncio.wait_for(asyncio.shield(call.initial_metadata()), HEADERS_WAIT)
        except TimeoutError:
            pass
        await _write(call, pb.ClientMessage(config=options_to_proto(options)))  # raises a refusal's status
        first = await call.read()  # raises the status if the config is refused
        if first is grpc.aio.EOF or first.WhichOneof("kind") != "header":
            call.cancel()
            raise RuntimeError(f"{self.target}: the server did not start the session with a header")
        return AsyncStream(call, options, header_from_proto(first.header))

    async def replay_wavs(self, path_a: str | Path, path_b: str | Path | None = None,
                          options: SessionOptions | None = None, realtime: bool = True,
                          chunk_ms: float = 40.0) -> SessionResult:  # fmt: skip
        """Stream two WAVs (A, B; or one stereo file, A left) as a live session would, and collect the results.

        ``realtime``: each chunk is sent once its audio would have been recorded (wall-clock pace); otherwise as
        fast as the server reads. The shorter track is padded with silence.
        """
        options = options or SessionOptions()
        rate = options.audio.sample_rate
        a = read_audio(path_a, rate).channels  # (C, N) float32 at ``rate``
        if path_b is None:
            if a.shape[0] < 2:
                raise ValueError(f"{path_a}: one file needs two channels (A left, B right); pass path_b for B")
            tracks = [a[0], a[1]]
        else:
            tracks = [a[0], read_audio(path_b, rate).channels[0]]
        n = max(len(t) for t in tracks)
        tracks = [np.pad(t, (0, n - len(t))) for t in tracks]
        step = max(1, round(rate * chunk_ms / 1000))
        stream = await self.open(options)
        collector = asyncio.create_task(stream.collect())
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            for i in range(0, n, step):
                if realtime:  # a live microphone delivers a chunk once it has been recorded
                    await asyncio.sleep(max(0.0, t0 + min(i + step, n) / rate - loop.time()))
                if collector.done():
                    break  # the server ended the call: its error is raised below
                if options.audio.layout == "stereo":
                    await stream.send_audio(np.stack([tracks[0][i : i + step], tracks[1][i : i + step]], axis=1))
                else:
                    await stream.send_audio(tracks[0][i : i + step], 0)
                    await stream.send_audio(tracks[1][i : i + step], 1)
            else:
                await stream.end()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass  # a write failed because the call ended: the collector raises the reason
        except BaseException:
            collector.cancel()
            stream.cancel()
            raise
        return await collector


class Stream:
    """The blocking form of ``AsyncStream`` (runs on the owning ``Client``'s loop)."""

    def __init__(self, client: Client, stream: AsyncStream) -> None:
        self._client, self._stream = client, stream
        self.info = stream.info
        self.options = stream.options

    @property
    def status(self) -> SessionStatus | None:
        return self._stream.status

    def send_audio(self, samples: np.ndarray, speaker: int | None = None) -> None:
        self._client._run(self._stream.send_audio(samples, speaker))

    def control(self, speaker: int, at_time: float, action: str | None = None, style: str | None = None) -> None:
        self._client._run(self._stream.control(speaker, at_time, action, style))

    def end(self) -> None:
        self._client._run(self._stream.end())

    def cancel(self) -> None:
        self._client._loop.call_soon_threadsafe(self._stream.cancel)

    def __iter__(self) -> Iterator[Frames | Event | SessionStatus]:
        results = self._stream.results()
        while True:
            try:
                yield self._client._run(anext(results))
            except StopAsyncIteration:
                return

    def collect(self) -> SessionResult:
        return self._client._run(self._stream.collect())


class Client:
    """The blocking client: an ``AsyncClient`` on an event loop in a daemon thread. Same arguments."""

    def __init__(self, target: str, **kwargs) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="interact-client", daemon=True)
        self._thread.start()

        async def make() -> AsyncClient:
            return AsyncClient(target, **kwargs)

        self._async = self._run(make())

    def _run(self, coro, timeout: float | None = None):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self) -> None:
        self._run(self._async.connect())

    def health(self, service: str = SERVICE) -> str:
        return self._run(self._async.health(service))

    def describe(self) -> ModelInfo:
        return self._run(self._async.describe())

    def open(self, options: SessionOptions | None = None) -> Stream:
        return Stream(self, self._run(self._async.open(options)))

    def replay_wavs(self, path_a: str | Path, path_b: str | Path | None = None, options: SessionOptions | None = None,
                    realtime: bool = True, chunk_ms: float = 40.0) -> SessionResult:  # fmt: skip
        return self._run(self._async.replay_wavs(path_a, path_b, options, realtime, chunk_ms))

    def close(self) -> None:
        if self._thread.is_alive():
            self._run(self._async.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
