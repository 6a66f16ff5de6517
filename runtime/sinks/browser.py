"""Browser viewer: an HTTP + WebSocket server that shows both people live in a web page (``runtime/viewer/static``).

    sink = BrowserSink("127.0.0.1:8030")   # "PORT", "HOST:PORT"; port 0 = any free port (``sink.url`` after open)
    sink.open(info)       # starts the server thread, logs the URL; every page gets the header, now or when it joins
    sink.write(frames)    # one JSON message per frame to every page; never waits for a page
    sink.close()          # tells the pages the session ended, stops the server

One port serves both: ``GET /`` and the page's files (``process_request`` of the ``websockets`` asyncio server) and
the stream at ``/ws``. Messages are compact JSON text:

    {"type": "header", "session_id": "3f2a9c", "fps": 30.0, "model": "...", "block": 6, "lookahead": 3, "steps": 4,
     "algorithmic_latency": 0.3, "blendshape_names": [52], "rotation_names": [9], "actions": ["sit", "walk", "stand"],
     "speakers": ["A", "B"], "root_joint": 0,
     "skeleton": {"names": [J], "parents": [J] (-1 = root), "offsets": [[x, y, z] * J] metres from the parent}}
    {"type": "frame", "t": 1.233 (s), "i": 37, "people": [A, B]}, each person
        {"weights": [52] 0..1 (3 decimals, ARKit order), "joints": [J * 4] local (w, x, y, z) (4 decimals),
         "root": [x, y, z] world metres of the root joint, "rotations": [9] radians (head, left eye, right eye
         yaw/pitch/roll), "speaking": true, "action": "stand"}
    {"type": "end", "frames": 120}

Frames never wait for a page: ``write`` encodes the messages (on the caller's thread) and hands them to the server's
event loop with ``call_soon_threadsafe``; each page has its own queue of at most ``QUEUE_FRAMES`` frames, and a page
that reads slower than frames arrive loses its oldest frames (counted in ``dropped``), never the header or the end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import deque
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from runtime.constants import ACTIONS, SPEAKERS
from runtime.engine.frames import Frames, StreamInfo
from runtime.motion.skeleton import root_joint
from runtime.sinks import parse_address

log = logging.getLogger(__name__)

DEFAULT_PORT = 8030
STATIC = Path(__file__).resolve().parents[1] / "viewer" / "static"  # index.html, viewer.js, vendor/three
QUEUE_FRAMES = 90  # frames queued per page before its oldest are dropped: 3 s at 30 fps
CLOSE_DRAIN_S = 1.0  # s close() waits for the pages to receive their last frames and the end message
WS_PATH = "/ws"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",  # module scripts must be served with a JavaScript MIME type
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".md": "text/plain; charset=utf-8",
    "": "text/plain; charset=utf-8",  # LICENSE
}


def browser_address(text: str) -> tuple[str, int]:
    """``"PORT"``, ``"HOST:PORT"`` or ``"HOST"`` -> (host, port); port 0 asks the system for a free port."""
    text = text.strip()
    if text.isdigit():
        text = f"127.0.0.1:{text}"
    host, _, port = text.rpartition(":")
    if port == "0":
        return host or "127.0.0.1", 0
    return parse_address(text, DEFAULT_PORT)


# ----------------------------------------------------------------------------------------------- messages
def header_message(info: StreamInfo) -> str:
    sk = info.skeleton
    return _dumps({
        "type": "header", "session_id": info.session_id, "fps": float(info.fps), "model": info.model,
        "block": info.block, "lookahead": info.lookahead, "steps": info.steps,
        "algorithmic_latency": round(float(info.algorithmic_latency), 4),
        "blendshape_names": list(info.blendshape_names), "rotation_names": list(info.rotation_names),
        "actions": list(ACTIONS), "speakers": list(SPEAKERS), "styles": list(info.styles),
        "root_joint": root_joint(sk),
        "skeleton": {"names": list(sk.names), "parents": list(sk.parents),
                     "offsets": np.round(np.asarray(sk.offsets, np.float64), 5).tolist()},
    })  # fmt: skip


def frame_messages(frames: Frames) -> list[str]:
    """One JSON message per frame. float32 values are widened before rounding so they print as 0.123, not
    0.12300000339746475."""

    def rounded(a: np.ndarray, decimals: int) -> list:
        return np.round(np.asarray(a, np.float64), decimals).tolist()

    people = []
    for person in frames.people:
        n = len(person.joint_rotations)
        people.append({
            "weights": rounded(person.blendshapes, 3),  # (N, 52)
            "joints": rounded(np.reshape(person.joint_rotations, (n, -1)), 4),  # (N, J * 4) w, x, y, z
            "root": rounded(person.root_position, 4),  # (N, 3) m
            "rotations": rounded(person.rotations, 4),  # (N, 9) rad
            "speaking": np.asarray(person.speaking, bool).tolist(),
            "action": [ACTIONS[int(a)] if 0 <= int(a) < len(ACTIONS) else "?" for a in person.action],
        })  # fmt: skip
    messages = []
    for f, (t, i) in enumerate(zip(frames.time, frames.index, strict=True)):
        each = [{k: v[f] for k, v in p.items()} for p in people]
        messages.append(_dumps({"type": "frame", "t": round(float(t), 4), "i": int(i), "people": each}))
    return messages


def _dumps(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"), allow_nan=False)  # NaN is not JSON: fail loudly


# ------------------------------------------------------------------------------------------------- a page
class _Page:
    """One connected page: its queue (frames droppable, header and end not) and the task that sends it."""

    def __init__(self, ws, limit: int) -> None:
        self.ws = ws
        self.limit = limit
        self.queue: deque[tuple[bool, str]] = deque()  # (droppable, message)
        self.frames = 0  # droppable messages in the queue
        self.dropped = 0
        self.sending = False  # inside ws.send: waiting for the socket to drain when the page reads slowly
        self.ready = asyncio.Event()

    def put(self, message: str, droppable: bool) -> None:
        self.queue.append((droppable, message))
        self.frames += droppable
        while self.frames > self.limit:  # drop the oldest frame (header and end messages stay)
            k = next(k for k, (d, _) in enumerate(self.queue) if d)
            del self.queue[k]
            self.frames -= 1
            self.dropped += 1
        self.ready.set()

    async def send_all(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                await self.ready.wait()
                self.ready.clear()
                while self.queue:
                    droppable, message = self.queue.popleft()
                    self.frames -= droppable
                    self.sending = True
                    await self.ws.send(message)
                    self.sending = False
        except ConnectionClosed:
            pass


# --------------------------------------------------------------------------------------------------- sink
class BrowserSink:
    def __init__(self, address: str = f"127.0.0.1:{DEFAULT_PORT}", wait: float = 0.0,
                 queue_frames: int = QUEUE_FRAMES) -> None:  # fmt: skip
        """``wait``: s ``open`` waits for a first page to connect (so a replayed input is seen from its start)."""
        self.host, self.port = browser_address(address)
        if queue_frames < 1:
            raise ValueError(f"queue_frames must be >= 1, got {queue_frames}")
        self.wait, self.queue_frames = wait, queue_frames
        self.pages: set[_Page] = set()  # touched on the server thread only
        self.connected = threading.Event()  # a page has connected at least once
        self.frames_written = 0
        self.dropped = 0  # frames dropped for slow pages (pages that have gone included)
        self._header: str | None = None
        self._last: str | None = None  # the latest frame, for pages that join mid-session
        self._end: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '[::]', '') else host}:{self.port}/"  # any -> local

    def open(self, info: StreamInfo) -> None:
        if self._thread is None:
            self._start()
        header = header_message(info)
        self._call(self._publish_header, header)
        log.info("browser viewer: open %s", self.url)
        if self.wait > 0 and not self.connected.is_set():
            log.info("waiting up to %.0f s for a page to connect", self.wait)
            if not self.connected.wait(self.wait):
                log.info("no page connected: starting anyway")

    def write(self, frames: Frames) -> None:
        if self._loop is None:
            raise RuntimeError("BrowserSink.write before open")
        if not len(frames):
            return
        self.frames_written += len(frames)
        messages = frame_messages(frames if self.pages else frames[-1:])  # no page: only the latest, for joiners
        self._call(self._publish_frames, messages)

    def close(self) -> None:
        if self._loop is None or self._thread is None:
            return
        end = _dumps({"type": "end", "frames": self.frames_written})
        try:
            asyncio.run_coroutine_threadsafe(self._finish(end), self._loop).result(CLOSE_DRAIN_S + 5)
        finally:
            self._thread.join(5)
            self._loop = self._thread = None
        if self.dropped:
            log.info("browser viewer: %d frame(s) dropped for slow pages", self.dropped)

    # -- the server thread -------------------------------------------------------------------------------
    def _start(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(ready, failure),),
                                        name="browser-viewer", daemon=True)  # fmt: skip
        self._thread.start()
        if not ready.wait(10) or failure:
            self._thread = None
            cause = failure[0] if failure else None
            raise OSError(f"browser viewer: cannot listen on {self.host}:{self.port} ({cause or 'timed out'}); "
                          "choose another one: --browser HOST:PORT") from cause  # fmt: skip

    async def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        from websockets.asyncio.server import serve

        quiet = logging.getLogger(f"{__name__}.server")  # websockets logs every page request at INFO
        quiet.setLevel(logging.WARNING)
        self._stop = asyncio.Event()
        try:
            server = await serve(self._handle, self.host, self.port, process_request=self._http,
                                 compression=None, close_timeout=CLOSE_DRAIN_S, logger=quiet)  # fmt: skip
        except OSError as e:
            failure.append(e)
            ready.set()
            return
        self.port = server.sockets[0].getsockname()[1]
        self._loop = asyncio.get_running_loop()
        ready.set()
        async with server:
            await self._stop.wait()

    def _call(self, fn, *args) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn, *args)

    def _publish_header(self, header: str) -> None:
        self._header, self._last, self._end = header, None, None
        for page in self.pages:
            page.put(header, droppable=False)

    def _publish_frames(self, messages: list[str]) -> None:
        self._last = messages[-1]
        for page in self.pages:
            before = page.dropped
            for m in messages:
                page.put(m, droppable=True)
            self.dropped += page.dropped - before

    async def _finish(self, end: str) -> None:
        """The end message to every page, up to ``CLOSE_DRAIN_S`` for them to receive it, then stop serving."""
        self._end = end
        for page in self.pages:
            page.put(end, droppable=False)
        deadline = asyncio.get_running_loop().time() + CLOSE_DRAIN_S
        while any(p.queue or p.sending for p in self.pages) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        for page in self.pages:
            if page.queue or page.sending:  # a page that stopped reading: a closing handshake would wait on it forever
                page.ws.transport.abort()
        assert self._stop is not None
        self._stop.set()

    async def _handle(self, ws) -> None:
        """One page on /ws (``_http`` answered every other path)."""
        page = _Page(ws, self.queue_frames)
        for message in (self._header, self._last, self._end):  # a page joining mid-session: where things stand
            if message is not None:
                page.put(message, droppable=False)
        self.pages.add(page)
        self.connected.set()
        sender = asyncio.create_task(page.send_all())
        try:
            async for _ in ws:  # the page sends nothing; this returns when it goes away
                pass
        except Exception:  # a page that vanished mid-frame is not an error of the session
            log.debug("page connection ended", exc_info=True)
        finally:
            self.pages.discard(page)
            sender.cancel()

    def _http(self, connection, request):
        """GET / and the page's files; None lets ``/ws`` go on to the WebSocket handshake."""
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        path = urlsplit(request.path).path
        if path == WS_PATH:
            return None
        file = (STATIC / (path.lstrip("/") or "index.html")).resolve()
        if not file.is_relative_to(STATIC) or not file.is_file():
            return connection.respond(404, f"not found: {path}\n")
        body = file.read_bytes()
        headers = Headers([
            ("Content-Type", CONTENT_TYPES.get(file.suffix, "application/octet-stream")),
            ("Content-Length", str(len(body))), ("Cache-Control", "no-cache"), ("Connection", "close"),
        ])  # fmt: skip
        return Response(200, "OK", headers, body)
