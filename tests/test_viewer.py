"""The browser viewer: the sink's messages over a real WebSocket, its HTTP files and slow pages; then the page itself
in headless Chromium on a live session of the default model (skipped without chromium + chromedriver + selenium)."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import numpy as np
import pytest

from runtime.apps import mic_demo
from runtime.engine.frames import Frames, PersonFrames, StreamInfo
from runtime.motion.skeleton import Skeleton
from runtime.sinks.browser import BrowserSink, browser_address
from runtime.viewer.__main__ import viewer_argv
from runtime.viewer.screenshot import ViewerProcess, chromium, chromium_missing, wait_for

ROT = ("Zrotation", "Xrotation", "Yrotation")


def stream_info(joints: int = 3) -> StreamInfo:
    names = tuple(["Hips"] + [f"Joint{j}" for j in range(1, joints)])
    offsets = np.array([[0.0, 0.98, 0.0]] + [[0.0, 0.1, 0.01]] * (joints - 1))
    channels = (("Xposition", "Yposition", "Zposition", *ROT),) + (ROT,) * (joints - 1)
    skeleton = Skeleton(names, (-1, *range(joints - 1)), offsets, channels)
    return StreamInfo("test-session", skeleton, model="tiny", block=6, lookahead=3, steps=4)


def make_frames(start: int, n: int, joints: int = 3, seed: int = 0) -> Frames:
    rng = np.random.default_rng(seed + start)
    index = np.arange(start, start + n)

    def person(p: int) -> PersonFrames:
        q = rng.standard_normal((n, joints, 4)).astype(np.float32)
        return PersonFrames(
            blendshapes=rng.random((n, 52)).astype(np.float32),
            rotations=rng.standard_normal((n, 9)).astype(np.float32) * 0.1,
            root_position=np.tile(np.array([0.0, 0.98, 1.4 * p], np.float32), (n, 1)),
            joint_rotations=q / np.linalg.norm(q, axis=-1, keepdims=True),
            action=np.full(n, 2 - p, np.int8),  # A stand, B walk
            speaking=np.arange(n) % 2 == p,
        )

    return Frames(index, index / 30.0, (person(0), person(1)))


@pytest.fixture
def sink():
    s = BrowserSink("127.0.0.1:0")
    yield s
    s.close()


def connect(sink: BrowserSink, **kwargs):
    from websockets.sync.client import connect as ws_connect

    return ws_connect(f"ws://127.0.0.1:{sink.port}/ws", open_timeout=5, **kwargs)


def receive(ws) -> dict:
    return json.loads(ws.recv(timeout=5))


def test_page_gets_the_skeleton_then_every_frame_then_the_end(sink: BrowserSink) -> None:
    info = stream_info()
    sink.open(info)
    frames = make_frames(0, 6)
    with connect(sink) as ws:
        header = receive(ws)
        assert header["type"] == "header" and header["session_id"] == "test-session" and header["fps"] == 30.0
        assert header["skeleton"]["names"] == ["Hips", "Joint1", "Joint2"]
        assert header["skeleton"]["parents"] == [-1, 0, 1]
        assert header["skeleton"]["offsets"] == [[0.0, 0.98, 0.0], [0.0, 0.1, 0.01], [0.0, 0.1, 0.01]]
        assert header["root_joint"] == 0 and len(header["blendshape_names"]) == 52 and header["speakers"] == ["A", "B"]
        sink.write(frames)
        got = [receive(ws) for _ in range(6)]
        assert [m["i"] for m in got] == list(range(6)) and got[3]["t"] == pytest.approx(0.1)
        a, b = got[3]["people"]
        assert a["weights"] == np.round(frames.people[0].blendshapes[3].astype(np.float64), 3).tolist()
        assert all(len(repr(v)) <= 5 for v in a["weights"])  # 0.123, never 0.12300000339746475
        np.testing.assert_allclose(a["joints"], frames.people[0].joint_rotations[3].ravel(), atol=5e-5)
        assert b["root"] == [0.0, 0.98, 1.4] and len(b["rotations"]) == 9
        assert (a["action"], b["action"]) == ("stand", "walk") and (a["speaking"], b["speaking"]) == (False, True)
        sink.close()
        assert receive(ws) == {"type": "end", "frames": 6}
    assert sink.frames_written == 6 and sink.dropped == 0


def test_a_page_joining_mid_session_gets_the_header_and_the_latest_frame(sink: BrowserSink) -> None:
    sink.open(stream_info())
    sink.write(make_frames(0, 6))
    sink.write(make_frames(6, 6))
    with connect(sink) as ws:
        assert receive(ws)["type"] == "header"
        assert receive(ws)["i"] == 11
        sink.write(make_frames(12, 6))
        assert [receive(ws)["i"] for _ in range(6)] == list(range(12, 18))


def test_a_stuck_page_never_blocks_write_and_loses_only_its_oldest_frames(sink: BrowserSink) -> None:
    """A page that stops reading (its socket buffers full) costs frames for that page only: ``write`` returns at once,
    a page that reads gets every frame, and ``close`` does not wait for the stuck one."""
    sink.open(stream_info(joints=52))
    stuck_sock = socket.create_connection(("127.0.0.1", sink.port))
    stuck_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck = connect(sink, sock=stuck_sock, max_queue=1)  # reads one message, then nothing more
    received: list[int] = []
    with connect(sink) as reader:
        assert receive(reader)["type"] == "header"

        def read() -> None:
            while (m := receive(reader))["type"] != "end":
                received.append(m["i"])

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        slowest = 0.0
        for start in range(0, 3000, 6):  # 100 s of frames, ~3.5 kB each, as fast as they can be made
            t0 = time.perf_counter()
            sink.write(make_frames(start, 6, joints=52))
            slowest = max(slowest, time.perf_counter() - t0)
            time.sleep(0.001)  # the reader's share of the GIL
        t0 = time.perf_counter()
        sink.close()
        assert time.perf_counter() - t0 < 3.0
        thread.join(5)
    stuck.close_socket()
    assert slowest < 0.25, f"a write took {slowest:.3f} s"
    assert sink.dropped > 0, "the stuck page should have lost frames"
    assert received and received[-1] == 2999 and received == sorted(received)
    assert len(received) >= 3000 - sink.dropped


def test_http_serves_the_page_and_nothing_else(sink: BrowserSink) -> None:
    sink.open(stream_info())

    def get(path: str) -> tuple[int, str, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{sink.port}{path}", timeout=5) as r:
                return r.status, r.headers["Content-Type"], r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers["Content-Type"], e.read()

    status, kind, body = get("/")
    assert status == 200 and kind.startswith("text/html") and b'src="viewer.js"' in body
    status, kind, body = get("/viewer.js")
    assert status == 200 and kind.startswith("text/javascript") and b"./vendor/three.module.min.js" in body
    status, kind, body = get("/vendor/three.module.min.js")
    assert status == 200 and kind.startswith("text/javascript") and b"three.core.min.js" in body
    assert get("/vendor/LICENSE")[0] == 200
    assert get("/nope.js")[0] == 404
    assert get("/../../sinks/browser.py")[0] == 404 and get("/%2e%2e/__init__.py")[0] == 404
    assert sink.url == f"http://127.0.0.1:{sink.port}/"


def test_addresses_and_the_command_lines() -> None:
    assert browser_address("8030") == ("127.0.0.1", 8030)
    assert browser_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert browser_address("localhost:0") == ("localhost", 0)
    with pytest.raises(ValueError, match="port must be 1..65535"):
        browser_address("localhost:70000")
    args = mic_demo.parse_args(["--demo", "--browser", "9123", "--browser-wait", "5"])
    [browser] = [s for s in mic_demo._sinks(args) if isinstance(s, BrowserSink)]
    assert (browser.host, browser.port, browser.wait) == ("127.0.0.1", 9123, 5.0)
    assert viewer_argv([]) == ["--demo", "--browser", "127.0.0.1:8030", "--browser-wait", "60.0", "--view", "none"]
    assert viewer_argv(["--wav", "a.wav", "b.wav", "--browser=9000", "--view", "terminal"]) == [
        "--browser-wait", "60.0", "--wav", "a.wav", "b.wav", "--browser=9000", "--view", "terminal"]  # fmt: skip


# ------------------------------------------------------------------------------------------- the real page
def changed_pixels(png_a: bytes, png_b: bytes) -> float:
    from PIL import Image, ImageChops

    a, b = (Image.open(io.BytesIO(p)).convert("RGB") for p in (png_a, png_b))
    diff = np.asarray(ImageChops.difference(a, b)).max(axis=-1)
    return float((diff > 8).mean())


@pytest.mark.skipif(chromium_missing() is not None, reason=f"no headless Chromium: {chromium_missing()}")
def test_the_page_shows_a_live_session_and_reconnects() -> None:
    """``python -m runtime.viewer`` (the default model, 4 s of the demo in real time) in headless Chromium: the page
    loads, gets every frame, its 3D view moves, its console stays clean; a second session on the same port is picked
    up by the same page."""
    from selenium.webdriver.common.by import By

    session = ViewerProcess(["--browser", "127.0.0.1:0", "--browser-wait", "30", "--seconds", "4", "--no-record"])
    sessions, driver = [session], None
    try:
        url = session.url(60)
        driver = chromium(960, 600)
        driver.get(url)
        assert driver.title == "InterAct live viewer"
        wait_for(driver, "window.viewer.framesShown > 3", 20, "frames on the page")
        assert driver.execute_script("return window.viewer.webgl"), "no WebGL in headless Chromium"
        scene = driver.find_element(By.ID, "scene")
        first = scene.screenshot_as_png
        time.sleep(0.4)
        assert changed_pixels(first, scene.screenshot_as_png) > 0.001, "the 3D view did not move in 0.4 s"
        assert "frames" in driver.find_element(By.ID, "counter").text
        assert [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")] == []
        assert session.wait(30) == 0, "\n".join(session.lines)
        wait_for(driver, "window.viewer.status === 'ended'", 10, "the end of the session")
        state = driver.execute_script("return window.viewer")
        assert state["framesReceived"] == 120 and state["dropped"] == 0  # all 4 s
        # The playhead trails the newest frame by the jitter buffer and plays it out at wall-clock pace after the end.
        wait_for(driver, "window.viewer.time > 3.9", 5, "the playhead reaching the last frame")
        # after the end the page retries the gone server (Chromium logs each refused attempt); nothing else may fail
        severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert [m for m in severe if "ERR_CONNECTION_REFUSED" not in m] == []

        port = urlsplit(url).port  # the server is gone; the page retries until a new session listens there
        again = ViewerProcess(["--browser", f"127.0.0.1:{port}", "--browser-wait", "30", "--seconds", "1", "--fast",
                               "--no-record"])  # fmt: skip
        sessions.append(again)
        wait_for(driver, "window.viewer.sessions === 2 && window.viewer.status === 'ended'", 40, "the reconnection")
        assert again.wait(30) == 0
        assert driver.execute_script("return window.viewer.framesReceived") == 150
        outage = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert all("ERR_CONNECTION_REFUSED" in e["message"] for e in outage), outage  # only the retries
    finally:
        if driver is not None:
            driver.quit()
        for s in sessions:
            s.stop()
