"""Animate two people talking, live: two microphones (or one stereo device, or two WAVs) -> faces and bodies.

    python -m runtime.mic_demo --demo                          # the shipped demo voices and the default model
    python -m runtime.mic_demo --wav a.wav b.wav               # two WAVs replayed at wall-clock pace (40 ms chunks)
    python -m runtime.mic_demo --devices 1 "USB Mic"           # two input devices (index or name), A then B
    python -m runtime.mic_demo --stereo-device "Scarlett 2i2"  # one stereo device: A left, B right
    python -m runtime.mic_demo --list-devices
      [--bundle DIR | --server HOST:PORT] [--view terminal|3d|none] [--record DIR | --no-record]
      [--livelink HOST:PORT] [--vmc HOST:PORT[,HOST:PORT]] [--browser [HOST:]PORT [--browser-wait S]]
      [--seconds S] [--fast] [--steps K --block B --lookahead L --seed N]
      [--no-alive]

Threads: capture (PortAudio's callbacks, or the WAV replayer) puts chunks on a queue; one worker thread resamples them
to 16 kHz (``runtime.engine.audio.StreamingResampler``), runs the engine in-process (or streams to a server with
``--server``, via ``runtime.serving.client``) and writes frames to the sinks; the main thread only draws the live view,
so neither capture nor the view ever waits for inference. On exit (end of the WAVs, ``--seconds`` of audio, Ctrl-C or
closing the 3D window) the engine is flushed (silence appended so mouths close) and the recording folder
(``recordings/<timestamp>/`` by default: BVH, Live Link CSV, WAV, session.json, contact_sheet.png) is written.

Exit codes: 0 done (also when the default model bundle is not in this checkout: it says how to build it),
1 a runtime failure (bad bundle, server unreachable, audio device error), 2 a usage error.
"""

from __future__ import annotations

import argparse
import logging
import queue
import threading
import time
from pathlib import Path

import numpy as np

from runtime.apps.live_view import LiveState, make_view
from runtime.apps.mic_runner import END, Chunk, LocalRunner, RemoteRunner, Runner
from runtime.constants import FPS, SAMPLE_RATE
from runtime.model.model import DEFAULT_BUNDLE

log = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).resolve().parents[1] / "assets" / "demo"  # a.wav, b.wav: scripts/make_demo_audio.py
CHUNK_S = 0.04  # s of audio per replayed chunk (a microphone callback's worth)
CAPTURE_BLOCK_S = 0.02  # s per PortAudio callback


# ------------------------------------------------------------------------------------------------ audio sources
class WavSource:
    """Two mono 16 kHz tracks replayed in ``CHUNK_S`` chunks, each put once its audio would have been recorded."""

    def __init__(self, a: np.ndarray, b: np.ndarray, realtime: bool = True) -> None:
        n = max(len(a), len(b))
        self.tracks = [np.pad(t.astype(np.float32), (0, n - len(t))) for t in (a, b)]  # shorter one: silence
        self.realtime = realtime
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_files(cls, path_a: Path, path_b: Path, realtime: bool = True) -> WavSource:
        from runtime.formats.wav import read_audio

        clips = [read_audio(p) for p in (path_a, path_b)]
        for clip in clips:
            if clip.n_channels != 1:
                log.warning("%s has %d channels: using the first", clip.path, clip.n_channels)
        return cls(clips[0].channels[0], clips[1].channels[0], realtime)

    @property
    def duration(self) -> float:
        return len(self.tracks[0]) / SAMPLE_RATE

    def start(self, out: queue.Queue) -> None:
        self._thread = threading.Thread(target=self._run, args=(out,), name="wav-replay", daemon=True)
        self._thread.start()

    def _run(self, out: queue.Queue) -> None:
        step = int(CHUNK_S * SAMPLE_RATE)  # 640 samples
        t0 = time.perf_counter()
        n = len(self.tracks[0])
        for i in range(0, n, step):
            if self.realtime:  # deadline from the start, so sleeping never accumulates drift
                delay = t0 + min(i + step, n) / SAMPLE_RATE - time.perf_counter()
                if self._stop.wait(max(0.0, delay)):
                    break
            elif self._stop.is_set():
                break
            now = time.monotonic()
            for p in (0, 1):
                out.put(Chunk(p, self.tracks[p][i : i + step], SAMPLE_RATE, now))
        out.put(END)

    def stop(self) -> None:
        self._stop.set()


def import_sounddevice():
    """sounddevice, or a RuntimeError that says what to install."""
    try:
        import sounddevice
    except ImportError as e:
        raise RuntimeError("microphone input needs sounddevice: pip install 'interact-runtime[mic]'") from e
    except OSError as e:  # the Python package is there, the PortAudio library is not
        raise RuntimeError(f"PortAudio is missing ({e}): install it (Debian/Ubuntu: sudo apt-get install "
                           "libportaudio2; macOS: brew install portaudio)") from e  # fmt: skip
    return sounddevice


def _device(spec: str) -> int | str:
    return int(spec) if spec.isdigit() else spec


class MicSource:
    """Live input: two devices (A, B) or one stereo device (A left, B right), each at its own native rate."""

    def __init__(self, devices: list[str], stereo: bool) -> None:
        self.sd = import_sounddevice()
        self.devices, self.stereo = [_device(d) for d in devices], stereo
        self.streams: list = []
        self.overflows = 0
        self.rates: list[int] = []
        for d in self.devices:
            try:
                info = self.sd.query_devices(d, "input")
            except (ValueError, self.sd.PortAudioError) as e:
                raise RuntimeError(f"input device {d!r}: {e} (python -m runtime.mic_demo --list-devices)") from e
            if stereo and info["max_input_channels"] < 2:
                raise RuntimeError(f"--stereo-device {info['name']!r} has {info['max_input_channels']} input "
                                   "channel(s); it needs 2 (A left, B right)")  # fmt: skip
            self.rates.append(int(info["default_samplerate"]))
            log.info("input %s: %r at %d Hz", "A+B" if stereo else "AB"[len(self.rates) - 1], info["name"],
                     self.rates[-1])  # fmt: skip

    def start(self, out: queue.Queue) -> None:
        for k, (device, rate) in enumerate(zip(self.devices, self.rates, strict=True)):

            def callback(indata: np.ndarray, frames: int, at, status, k: int = k, rate: int = rate) -> None:
                if status.input_overflow:
                    self.overflows += 1
                now = time.monotonic()
                if self.stereo:
                    out.put(Chunk(0, indata[:, 0].copy(), rate, now))
                    out.put(Chunk(1, indata[:, 1].copy(), rate, now))
                else:
                    out.put(Chunk(k, indata[:, 0].copy(), rate, now))

            stream = self.sd.InputStream(
                device=device,
                channels=2 if self.stereo else 1,
                samplerate=rate,
                blocksize=int(rate * CAPTURE_BLOCK_S),
                dtype="float32",
                callback=callback,
            )
            stream.start()
            self.streams.append(stream)

    def stop(self) -> None:
        for s in self.streams:
            s.stop()
            s.close()
        self.streams = []
        if self.overflows:
            log.warning("the audio device dropped input %d time(s) (overflow)", self.overflows)


def list_devices() -> int:
    try:
        sd = import_sounddevice()
        devices = [(i, d) for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]
    except RuntimeError as e:
        log.info("cannot list audio devices: %s", e)
        return 0
    except Exception as e:  # PortAudio initialised but found no usable host API
        log.info("cannot list audio devices: %s", e)
        return 0
    if not devices:
        log.info(
            "no audio input devices found (this machine has no sound card or microphone?).\n"
            "Replay two WAV files instead: python -m runtime.mic_demo --wav A.wav B.wav (or --demo)"
        )
        return 0
    log.info("audio input devices (use the index or a unique part of the name):")
    for i, d in devices:
        log.info("  %3d  %-40s %d ch  %5.0f Hz", i, d["name"], d["max_input_channels"], d["default_samplerate"])
    return 0


# ---------------------------------------------------------------------------------------------- command line
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m runtime.mic_demo", description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--wav", nargs=2, type=Path, metavar=("A.wav", "B.wav"), help="replay two WAVs in real time")
    src.add_argument("--devices", nargs=2, metavar=("IN_A", "IN_B"), help="two input devices (index or name)")
    src.add_argument("--stereo-device", metavar="IN", help="one stereo input device: A left, B right")
    src.add_argument("--demo", action="store_true", help="the shipped demo voices with the default model")
    src.add_argument("--list-devices", action="store_true", help="list audio input devices and exit")
    ap.add_argument("--bundle", type=Path, help=f"model bundle folder (default {DEFAULT_BUNDLE})")
    ap.add_argument("--server", metavar="HOST:PORT", help="stream to an InterAct server instead of running locally")
    ap.add_argument("--view", choices=("terminal", "3d", "none"), help="live view (default: terminal on a TTY)")
    ap.add_argument("--record", type=Path, metavar="DIR", help="recording folder (default recordings/<timestamp>)")
    ap.add_argument("--no-record", action="store_true", help="write no recording")
    ap.add_argument("--livelink", metavar="HOST:PORT", help="send Live Link Face UDP (Unreal; port 11111)")
    ap.add_argument("--vmc", metavar="HOST:PORT[,HOST:PORT]",
                    help="send VMC over OSC (Unity EVMC4U): A to the first address (port 39539 by default), B to the "
                         "second (default: A's host, port 39549)")  # fmt: skip
    ap.add_argument("--browser", metavar="[HOST:]PORT", help="serve a live browser viewer there (e.g. 8030)")
    ap.add_argument("--browser-wait", type=float, default=0.0, metavar="S",
                    help="with --browser: wait up to S s for a page to connect before the audio starts")  # fmt: skip
    ap.add_argument("--seconds", type=float, help="stop after this many seconds of audio")
    ap.add_argument("--fast", action="store_true", help="replay WAVs as fast as inference runs (tests)")
    ap.add_argument("--steps", type=int, help="DDIM steps K (default: the model's)")
    ap.add_argument("--block", type=int, help="frames committed per step (default: the model's)")
    ap.add_argument("--lookahead", type=int, help="frames of future audio per step (default: the model's)")
    ap.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    ap.add_argument("--no-alive", dest="alive", action="store_false",
                    help="the face model's raw output: no blinks, gaze shifts, brow raises or nods added")  # fmt: skip
    args = ap.parse_args(argv)
    if not (args.list_devices or args.demo or args.wav or args.devices or args.stereo_device):
        ap.error("choose an input: --demo, --wav A.wav B.wav, --devices IN_A IN_B or --stereo-device IN "
                 "(--list-devices shows the devices)")  # fmt: skip
    if args.seconds is not None and not args.seconds > 0:
        ap.error(f"--seconds must be > 0, got {args.seconds}")
    if args.fast and not (args.wav or args.demo):
        ap.error("--fast only applies to --wav / --demo replays")
    return args


MISSING_DEFAULT = """\
The default model bundle is not in this checkout yet: {path}/manifest.json is missing.
Build it (train on the synthetic corpus, then export):  make bundle
Or try the whole pipeline now with random weights (motion is meaningless, everything else is real):
  .venv/bin/python -m export.untrained --out bundles/untrained
  .venv/bin/python -m runtime.mic_demo --demo --bundle bundles/untrained"""


def _load_model(args: argparse.Namespace):
    """(model, exit code): exit code 0 / 1 / 2 when the model cannot be loaded (the message is logged)."""
    from runtime.model.bundle import BundleError
    from runtime.model.model import Model

    path = args.bundle or DEFAULT_BUNDLE
    if not (path / "manifest.json").is_file():
        if args.bundle is None:
            log.warning(MISSING_DEFAULT.format(path=path))
            return None, 0
        log.error("--bundle %s: no manifest.json there (expected a model bundle folder from export/)", path)
        return None, 2
    try:
        model = Model.load(path)
    except (BundleError, OSError, ValueError) as e:
        log.error("cannot load the model bundle: %s", e)
        return None, 1
    return model, 0


def _sinks(args: argparse.Namespace) -> list:
    from runtime.sinks.livelink import LiveLinkSink
    from runtime.sinks.vmc import VmcSink

    sinks = []
    if args.livelink:
        sinks.append(LiveLinkSink(args.livelink))
        log.info("Live Link Face UDP -> %s (subjects InterAct_A, InterAct_B)", args.livelink)
    if args.vmc:
        sink = VmcSink(args.vmc)
        sinks.append(sink)
        log.info("VMC over OSC -> A %s:%d, B %s:%d", *sink.addresses[0], *sink.addresses[1])
    if args.browser:
        from runtime.sinks.browser import BrowserSink

        sinks.append(BrowserSink(args.browser, wait=args.browser_wait))  # logs the URL when the session opens
    return sinks


def _make_runner(args: argparse.Namespace, q: queue.Queue, state: LiveState, sinks: list, recorder):
    """(runner, exit code)."""
    if args.server:
        return RemoteRunner(args.server, args, q, state, sinks, recorder), 0
    model, code = _load_model(args)
    if model is None:
        return None, code
    return LocalRunner(model, args, q, state, sinks, recorder), 0


def _run_view(view, worker: threading.Thread, state: LiveState, on_stop) -> None:
    """Draw until the worker ends; Ctrl-C or a closed window stops the sources (the worker then flushes)."""
    stopping = False
    try:
        while worker.is_alive():
            if not view.update() and not stopping:
                stopping = True
                on_stop("the view window was closed")
            state.done.wait(view.interval)
    except KeyboardInterrupt:
        on_stop("Ctrl-C")
        try:
            while worker.is_alive():  # the worker flushes and writes the recording
                worker.join(0.2)
        except KeyboardInterrupt:
            log.warning("second Ctrl-C: quitting without waiting for the recording")
            raise SystemExit(130) from None
    finally:
        view.update()
        view.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.list_devices:
        return list_devices()
    if args.demo and args.server is None and args.bundle is None and not (DEFAULT_BUNDLE / "manifest.json").is_file():
        log.warning(MISSING_DEFAULT.format(path=DEFAULT_BUNDLE))
        return 0
    try:
        if args.demo or args.wav:
            paths = args.wav or (DEMO_DIR / "a.wav", DEMO_DIR / "b.wav")
            source = WavSource.from_files(paths[0], paths[1], realtime=not args.fast)
            inputs = {"wav": [str(p) for p in paths]}
        else:
            source = MicSource([args.stereo_device] if args.stereo_device else args.devices, args.stereo_device)
            inputs = {"devices": source.devices, "stereo": bool(args.stereo_device), "rates_hz": source.rates}
    except (ValueError, RuntimeError) as e:  # AudioError is a ValueError naming the file
        log.error("%s", e)
        return 2 if args.wav else 1
    from runtime.sinks.files import RecordingSink, default_folder

    q: queue.Queue = queue.Queue()
    state = LiveState()
    recorder = None
    if not args.no_record:
        meta = {"inputs": inputs, "mode": f"server {args.server}" if args.server else "in-process",
                "bundle": str(args.bundle or DEFAULT_BUNDLE) if not args.server else None}  # fmt: skip
        recorder = RecordingSink(args.record or default_folder(), meta=meta)
    try:
        runner, code = _make_runner(args, q, state, _sinks(args), recorder)
        if runner is None:
            return code
        runner.open()
    except (ValueError, RuntimeError, ConnectionError, OSError) as e:
        log.error("%s", e)
        return 1
    return _session(args, source, runner, state, recorder)


def _session(args: argparse.Namespace, source, runner: Runner, state: LiveState, recorder) -> int:
    view = make_view(args.view, state)
    worker = threading.Thread(target=runner.run, name="inference", daemon=True)

    def stop(why: str) -> None:
        log.info("%s: stopping, flushing the last frames", why)
        source.stop()
        runner.stop()

    source.start(runner.queue)
    worker.start()
    try:
        _run_view(view, worker, state, stop)
    finally:
        source.stop()
    if runner.error is not None:
        log.error("the session failed: %s", runner.error)
        return 1
    folder = recorder.folder if recorder is not None and recorder.closed else None
    log.info("%d frames (%.1f s) for both people%s", state.frames, state.frames / FPS,
             f"; recording in {folder}" if folder else "")  # fmt: skip
    return 0
