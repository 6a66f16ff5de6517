"""What mic_demo shows while a session runs: a terminal panel, a periodic log line, or a matplotlib 3D window.

``LiveState`` is filled by the inference thread and read by the view on the main thread (a lock guards it); the
views only read snapshots, so drawing never blocks inference. ``make_view(kind, state)`` picks the view and falls
back (with a message) when the request cannot be met: ``3d`` without matplotlib or a display -> the terminal panel
(or the log line when stdout is not a terminal).

The terminal panel is the one place in the runtime that writes to the terminal on purpose (ANSI redraws).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from runtime.constants import ACTIONS, FPS, SPEAKERS
from runtime.engine.frames import Frames, StreamInfo
from runtime.formats.arkit import ARKIT_NAMES, INDEX
from runtime.motion.skeleton import root_joint

log = logging.getLogger(__name__)

BAR_WIDTH = 18  # characters of a full (1.0) blendshape bar
TOP_K = 6  # blendshapes shown per person
NAME_W = max(len(n) for n in ARKIT_NAMES) + 1  # 20 characters: the longest ARKit name and a space
_EIGHTHS = " ▏▎▍▌▋▊▉"
GAUGES = ("jawOpen", "mouthClose", "mouthSmileLeft", "eyeBlinkLeft", "browInnerUp")  # the 3D view's face bars


@dataclass
class Snapshot:
    info: StreamInfo | None
    frames: int  # emitted so far
    audio_s: float  # s of audio pushed (the slower speaker)
    weights: list[np.ndarray | None]  # per person (52,) latest weights
    joint_rotations: list[np.ndarray | None]  # per person (J, 4) wxyz
    root_position: list[np.ndarray | None]  # per person (3,) m
    action: list[str]
    speaking: list[bool]
    latency_ms: tuple[float, float] | None  # p50, p95 over the recent frames
    events: list[str]
    done: bool

    @property
    def behind(self) -> int:
        """Frames whose audio (and lookahead) is known but not yet emitted: the compute backlog."""
        if self.info is None:
            return 0
        window = self.info.block + self.info.lookahead
        return max(0, int(self.audio_s * FPS) - self.frames - window)


@dataclass
class LiveState:
    info: StreamInfo | None = None
    frames: int = 0
    audio_s: float = 0.0
    latencies: deque = field(default_factory=lambda: deque(maxlen=300))  # s, recent blocks
    events: deque = field(default_factory=lambda: deque(maxlen=4))
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _last: Frames | None = None

    def set_info(self, info: StreamInfo) -> None:
        with self.lock:
            self.info = info

    def add_frames(self, frames: Frames) -> None:
        if len(frames):
            with self.lock:
                self.frames = int(frames.index[-1]) + 1
                self._last = frames[len(frames) - 1 :]

    def add_audio_seconds(self, seconds: float) -> None:
        with self.lock:
            self.audio_s = seconds

    def add_latencies(self, seconds: list[float]) -> None:
        with self.lock:
            self.latencies.extend(seconds)

    def add_events(self, events: list) -> None:
        with self.lock:
            for e in events:
                who = f"{SPEAKERS[e.speaker]} " if e.speaker in (0, 1) else ""
                self.events.append(f"{e.time:6.2f} s {who}{e.kind}{': ' + e.message if e.message else ''}")

    def snapshot(self) -> Snapshot:
        with self.lock:
            last = self._last
            lat = np.asarray(self.latencies, dtype=np.float64) * 1000.0
            people = last.people if last is not None else (None, None)
            return Snapshot(
                self.info, self.frames, self.audio_s,
                [p.blendshapes[0].copy() if p is not None else None for p in people],
                [p.joint_rotations[0].copy() if p is not None else None for p in people],
                [p.root_position[0].copy() if p is not None else None for p in people],
                [ACTIONS[int(p.action[0])] if p is not None else "-" for p in people],
                [bool(p.speaking[0]) if p is not None else False for p in people],
                (float(np.percentile(lat, 50)), float(np.percentile(lat, 95))) if len(lat) else None,
                list(self.events), self.done.is_set(),
            )  # fmt: skip


def bar(value: float, width: int = BAR_WIDTH) -> str:
    """0..1 -> a bar of block characters ``width`` long (eighths of a character)."""
    eighths = int(round(float(np.clip(value, 0.0, 1.0)) * width * 8))
    full, part = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[part] if part else "")).ljust(width)


def top_blendshapes(weights: np.ndarray, k: int = TOP_K) -> list[tuple[str, float]]:
    order = np.argsort(-weights, kind="stable")[:k]
    return [(ARKIT_NAMES[i], float(weights[i])) for i in order]


def status_line(s: Snapshot) -> str:
    lat = f"latency p50 {s.latency_ms[0]:.0f} ms p95 {s.latency_ms[1]:.0f} ms" if s.latency_ms else "latency -"
    return f"t {s.frames / FPS:6.1f} s  frames {s.frames:6d}  {lat}  behind {s.behind} fr"


def render_panel(s: Snapshot) -> str:
    """The terminal panel: per person the top blendshapes as bars, action, speaking; then latency and backlog."""
    col = NAME_W + BAR_WIDTH + 8  # characters per person column
    model = s.info.model if s.info is not None else "connecting"
    lines = [f"InterAct live  {model}".ljust(2 * col), status_line(s), ""]
    heads, rows = [], [[] for _ in range(TOP_K)]
    for p, name in enumerate(SPEAKERS):
        talk = "● speaking" if s.speaking[p] else "○ quiet   "
        heads.append(f"{name}  {talk}  {s.action[p]}".ljust(col))
        top = top_blendshapes(s.weights[p]) if s.weights[p] is not None else [("", 0.0)] * TOP_K
        for r, (shape, value) in enumerate(top):
            rows[r].append(f"{shape:<{NAME_W}}{bar(value)} {value:4.2f}".ljust(col) if shape else " " * col)
    lines.append("".join(heads))
    lines += ["".join(r) for r in rows]
    lines += ["", "events: " + ("  |  ".join(s.events[-3:]) if s.events else "-"), "Ctrl-C: stop and save"]
    return "\n".join(lines)


class TerminalView:
    """Redraws ``render_panel`` in place a few times per second (ANSI cursor home + clear to end)."""

    interval = 0.2  # s between redraws

    def __init__(self, state: LiveState, stream=None) -> None:
        self.state, self.out = state, stream or sys.stdout
        self.out.write("\x1b[?25l")  # hide the cursor while redrawing

    def update(self) -> bool:
        self.out.write("\x1b[H\x1b[J" + render_panel(self.state.snapshot()) + "\n")
        self.out.flush()
        return True

    def close(self) -> None:
        self.out.write("\x1b[?25h")
        self.out.flush()


class LogView:
    """A plain log line every few seconds (stdout is not a terminal, e.g. ``make demo | tee``)."""

    interval = 2.0

    def __init__(self, state: LiveState) -> None:
        self.state = state
        self.printed = -1  # frames count of the last line printed

    def update(self) -> bool:
        s = self.state.snapshot()
        if s.frames == self.printed:
            return True
        self.printed = s.frames
        people = []
        for p, name in enumerate(SPEAKERS):
            if s.weights[p] is not None:
                shape, value = top_blendshapes(s.weights[p], 1)[0]
                talk = "speaking" if s.speaking[p] else "quiet"
                people.append(f"{name} {talk} {s.action[p]} jawOpen {s.weights[p][INDEX['jawOpen']]:.2f} "
                              f"top {shape} {value:.2f}")  # fmt: skip
        log.info("%s  %s", status_line(s), " | ".join(people))
        return True

    def close(self) -> None:
        pass


class NoView(LogView):
    interval = 0.2

    def update(self) -> bool:
        return True


class Plot3DView:
    """A matplotlib window: both stick figures in 3D (forward kinematics) and a few face gauges per person."""

    interval = 0.1

    def __init__(self, state: LiveState, plt) -> None:
        self.state, self.plt = state, plt
        self.fig = plt.figure("InterAct live", figsize=(11, 6))
        grid = self.fig.add_gridspec(2, 2, width_ratios=(2.2, 1.0))
        self.ax3d = self.fig.add_subplot(grid[:, 0], projection="3d")
        self.gauges = [self.fig.add_subplot(grid[p, 1]) for p in (0, 1)]
        self.lines: list = [[], []]
        self.bars: list = []
        for p, ax in enumerate(self.gauges):
            self.bars.append(ax.barh(range(len(GAUGES)), np.zeros(len(GAUGES)), color=("tab:blue", "tab:orange")[p]))
            ax.set_yticks(range(len(GAUGES)), GAUGES, fontsize=8)
            ax.set_xlim(0, 1)
            ax.invert_yaxis()
        self.closed = False
        self.fig.canvas.mpl_connect("close_event", lambda _: setattr(self, "closed", True))
        plt.show(block=False)

    def update(self) -> bool:
        """Redraw; False once the window was closed (mic_demo then stops the session)."""
        from runtime.sinks.contact_sheet import bones, world_positions

        if self.closed:
            return False
        s = self.state.snapshot()
        if s.info is not None and s.joint_rotations[0] is not None:
            sk = s.info.skeleton
            pairs = bones(sk)
            for p in (0, 1):
                joints, ends = world_positions(sk, s.joint_rotations[p][None], s.root_position[p][None], root_joint(sk))
                pts = np.concatenate([joints[0], ends[0]])  # (J + E, 3) m, Y up
                if not self.lines[p]:
                    colour = ("tab:blue", "tab:orange")[p]
                    self.lines[p] = [self.ax3d.plot([], [], [], color=colour, lw=2)[0] for _ in pairs]
                for line, (a, b) in zip(self.lines[p], pairs, strict=True):  # Y-up -> Z-up: (x, y, z) -> (x, -z, y)
                    line.set_data_3d([pts[a, 0], pts[b, 0]], [-pts[a, 2], -pts[b, 2]], [pts[a, 1], pts[b, 1]])
            centre = np.mean([s.root_position[0], s.root_position[1]], axis=0)
            self.ax3d.set_xlim(centre[0] - 1.2, centre[0] + 1.2)
            self.ax3d.set_ylim(-centre[2] - 1.2, -centre[2] + 1.2)
            self.ax3d.set_zlim(0.0, 2.0)
            self.ax3d.set_box_aspect((2.4, 2.4, 2.0))
            for p in (0, 1):
                for rect, name in zip(self.bars[p], GAUGES, strict=True):
                    rect.set_width(float(s.weights[p][INDEX[name]]))
                talk = "speaking" if s.speaking[p] else "quiet"
                self.gauges[p].set_title(f"{SPEAKERS[p]}: {talk}, {s.action[p]}", fontsize=9)
        self.ax3d.set_title(status_line(s), fontsize=9)
        self.plt.pause(self.interval)
        return not self.closed

    def close(self) -> None:
        self.plt.close(self.fig)


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def make_view(kind: str | None, state: LiveState):
    """``kind``: "terminal", "3d", "none", or None (terminal when stdout is a TTY, else the periodic log line)."""
    tty = sys.stdout.isatty()
    if kind == "none":
        return NoView(state)
    if kind == "3d":
        try:
            import matplotlib

            if not _has_display():
                raise RuntimeError("no display (DISPLAY / WAYLAND_DISPLAY unset)")
            import matplotlib.pyplot as plt
            from matplotlib.backends import BackendFilter, backend_registry

            backend = matplotlib.get_backend().lower()
            if backend in backend_registry.list_builtin(BackendFilter.NON_INTERACTIVE):
                raise RuntimeError(f"matplotlib's backend {backend!r} cannot open windows")
            return Plot3DView(state, plt)
        except ImportError:
            log.warning("--view 3d needs matplotlib: pip install 'interact-runtime[view]'; using the %s view",
                        "terminal" if tty else "log")  # fmt: skip
        except Exception as e:  # no display, no GUI toolkit: the session still runs
            log.warning("--view 3d unavailable (%s); using the %s view", e, "terminal" if tty else "log")
    if kind in (None, "terminal", "3d") and tty:
        return TerminalView(state)
    if kind == "terminal":
        log.info("stdout is not a terminal: printing a status line every %.0f s instead of the panel",
                 LogView.interval)  # fmt: skip
    return LogView(state)
