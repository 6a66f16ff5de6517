"""mic_demo, headless: the path ``make demo`` runs, its recording folder, the server path, and its clear refusals."""

from __future__ import annotations

import argparse
import json
import logging
import queue
import struct
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

from runtime.apps import mic_demo
from runtime.apps.live_view import LiveState, Snapshot, bar, render_panel
from runtime.apps.mic_runner import END, Chunk, LocalRunner
from runtime.formats.bvh import read_bvh
from runtime.formats.livelink_csv import read_livelink_csv
from runtime.formats.wav import read_audio, write_wav

REPO = Path(__file__).resolve().parents[1]


def speechy(seconds: float, rate: int, seed: int) -> np.ndarray:
    """Noise bursts with pauses: something for the voice-activity detector to find."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (0.2 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 0.8 * t) > 0)).astype(np.float32)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory) -> tuple[Path, Path]:
    """A: 2.5 s at 16 kHz; B: 2.0 s at 22.05 kHz (read_audio resamples it; the replay pads it with silence)."""
    folder = tmp_path_factory.mktemp("wavs")
    write_wav(folder / "a.wav", speechy(2.5, 16000, 0), 16000)
    write_wav(folder / "b.wav", speechy(2.0, 22050, 1), 22050)
    return folder / "a.wav", folder / "b.wav"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def check_recording(folder: Path, n_frames: int, audio_s: float) -> dict:
    for name in "AB":
        assert read_bvh(folder / f"{name}.bvh").n_frames == n_frames
        assert read_livelink_csv(folder / f"{name}_face.csv").n_frames == n_frames
        assert read_audio(folder / f"{name}.wav").duration == pytest.approx(audio_s, abs=1e-3)
    width, height = png_size(folder / "contact_sheet.png")
    assert width == 1600 and 400 < height < 1400
    session = json.loads((folder / "session.json").read_text())
    assert session["frames"] == n_frames and session["first_frame"] == 0 and session["frames_filled"] == 0
    assert set(session["people"]) == {"A", "B"} and session["settings"]["steps"] >= 1
    return session


def test_wav_replay_records_the_session(wavs, untrained_bundle: Path, tmp_path: Path) -> None:
    rc = mic_demo.main(["--wav", str(wavs[0]), str(wavs[1]), "--bundle", str(untrained_bundle), "--view", "none",
                        "--fast", "--record", str(tmp_path / "rec")])  # fmt: skip
    assert rc == 0
    session = check_recording(tmp_path / "rec", int(np.ceil(2.5 * 30)), 2.5)  # 75 frames
    assert session["meta"]["inputs"]["wav"] == [str(w) for w in wavs]
    assert session["meta"]["mode"] == "in-process"
    assert session["latency"]["count"] > 0
    assert any(e["kind"] == "speech_start" for e in session["events"])


def test_make_demo_command_headless(untrained_bundle: Path, tmp_path: Path) -> None:
    """``python -m runtime.mic_demo --demo`` (what ``make demo`` runs) on the shipped demo voices, 2 s of them."""
    assert (REPO / "runtime/assets/demo/a.wav").is_file(), "demo audio missing: scripts/make_demo_audio.py"
    out = subprocess.run([sys.executable, "-m", "runtime.mic_demo", "--demo", "--bundle", str(untrained_bundle),
                          "--fast", "--seconds", "2", "--record", str(tmp_path / "rec")], cwd=REPO,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "recording in" in out.stderr and str(tmp_path / "rec") in out.stderr
    check_recording(tmp_path / "rec", 60, 2.0)


def test_server_mode_records_the_session(wavs, untrained_bundle: Path, tmp_path: Path) -> None:
    from runtime.serving.server import ServerConfig, ServerThread

    with ServerThread(ServerConfig(bundle=untrained_bundle, host="127.0.0.1", port=0, backend="ort-cpu")) as srv:
        rc = mic_demo.main(["--wav", str(wavs[0]), str(wavs[1]), "--server", f"127.0.0.1:{srv.port}",
                            "--view", "none", "--fast", "--record", str(tmp_path / "rec")])  # fmt: skip
    assert rc == 0
    session = check_recording(tmp_path / "rec", 75, 2.5)
    assert session["meta"]["server_status"]["frames"] == 75
    assert session["meta"]["mode"].startswith("server 127.0.0.1:")


def test_missing_default_bundle_says_how_to_build_it(monkeypatch, caplog, tmp_path: Path) -> None:
    monkeypatch.setattr(mic_demo, "DEFAULT_BUNDLE", tmp_path / "default")
    with caplog.at_level(logging.INFO):
        assert mic_demo.main(["--demo", "--view", "none"]) == 0
    assert "default model bundle is not in this checkout" in caplog.text
    assert "make bundle" in caplog.text and "export.untrained" in caplog.text
    assert not (tmp_path / "recordings").exists()


def test_missing_explicit_bundle_is_a_usage_error(wavs, caplog, tmp_path: Path) -> None:
    rc = mic_demo.main(["--wav", str(wavs[0]), str(wavs[1]), "--bundle", str(tmp_path / "nope"), "--no-record"])
    assert rc == 2
    assert f"--bundle {tmp_path / 'nope'}: no manifest.json" in caplog.text


def test_list_devices_without_a_sound_card(monkeypatch, caplog) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(query_devices=lambda: []))
    with caplog.at_level(logging.INFO):
        assert mic_demo.main(["--list-devices"]) == 0
    assert "no audio input devices found" in caplog.text and "--wav A.wav B.wav" in caplog.text


def test_microphone_without_sounddevice_says_what_to_install(monkeypatch, caplog) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as if it were not installed
    with caplog.at_level(logging.INFO):
        assert mic_demo.main(["--list-devices"]) == 0
        assert mic_demo.main(["--devices", "0", "1", "--no-record"]) == 1
    assert caplog.text.count("pip install 'interact-runtime[mic]'") == 2


def test_no_input_chosen_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        mic_demo.main([])
    assert e.value.code == 2 and "choose an input" in capsys.readouterr().err


def test_wav_replay_keeps_wall_clock_pace() -> None:
    source = mic_demo.WavSource(np.zeros(6400, np.float32), np.zeros(4000, np.float32), realtime=True)  # 0.4 s
    q: queue.Queue = queue.Queue()
    t0 = time.monotonic()
    source.start(q)
    items = []
    while (item := q.get(timeout=5)) is not END:
        items.append(item)
    assert time.monotonic() - t0 >= 0.38  # the last 40 ms chunk is put once 0.4 s have passed
    assert [len(c.samples) for c in items] == [640] * 20  # 10 chunks per speaker, B padded with silence
    assert [c.speaker for c in items[:2]] == [0, 1] and all(c.rate == 16000 for c in items)
    assert items[-1].t - items[0].t >= 0.3


def test_device_rate_audio_is_resampled_to_16k(untrained_bundle: Path) -> None:
    """A 48 kHz microphone's chunks become 16 kHz audio, cut at --seconds, then flushed to ceil(s x 30) frames."""
    from runtime.model.model import Model
    from runtime.sinks.files import RecordingSink

    args = argparse.Namespace(seconds=1.5, block=None, lookahead=None, steps=None, seed=0)
    q: queue.Queue = queue.Queue()
    recorder = RecordingSink("unused", contact_sheet=False)
    runner = LocalRunner(Model.load(untrained_bundle), args, q, LiveState(), [], recorder)
    runner.open()
    recorder.close = lambda: recorder.folder  # keep the buffers; nothing to write here
    tone = np.sin(2 * np.pi * 440 * np.arange(48000 * 2) / 48000).astype(np.float32) * 0.3  # 2 s at 48 kHz
    for i in range(0, len(tone), 960):  # 20 ms callbacks
        for p in (0, 1):
            q.put(Chunk(p, tone[i : i + 960], 48000, time.monotonic()))
    q.put(END)
    runner.run()
    assert runner.error is None
    got = [np.concatenate(chunks).astype(np.float32) / 32768 for chunks in recorder.audio]
    assert [len(g) for g in got] == [24000, 24000]  # exactly --seconds of 16 kHz audio per speaker
    spectrum = np.abs(np.fft.rfft(got[0][4000:20000]))  # 1 s, 1 Hz bins
    assert abs(int(np.argmax(spectrum)) - 440) <= 1  # still a 440 Hz tone: resampled, not reinterpreted
    assert runner.state.frames == 45


def test_terminal_panel_shows_both_people() -> None:
    weights = np.zeros(52, np.float32)
    weights[17] = 0.75  # jawOpen
    snap = Snapshot(None, 90, 3.0, [weights, weights * 0], [None, None], [None, None], ["stand", "sit"],
                    [True, False], (110.0, 180.0), ["  2.00 s A speech_start"], False)  # fmt: skip
    panel = render_panel(snap)
    assert "A  ● speaking  stand" in panel and "B  ○ quiet" in panel and "sit" in panel
    assert "jawOpen" in panel and bar(0.75).strip() in panel
    assert "latency p50 110 ms p95 180 ms" in panel and "A speech_start" in panel
    assert bar(1.0) == "█" * 18 and bar(0.0).strip() == "" and len(bar(0.33)) == 18
