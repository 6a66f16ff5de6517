"""runtime.inspect: a one-paragraph summary of every kind of file, and a non-zero exit with the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.apps.inspect import main
from runtime.formats.wav import write_wav


def test_real_files(external: Path, capsys) -> None:
    files = [
        external / "bandai-namco-motion" / "dataset-1_bye_normal_001.bvh",
        external / "neurosync-trainer-lite" / "MySlate_166_iPhone_cal.csv",
        external / "pyannote-dialogue" / "dev00.wav",
    ]
    assert main([str(f) for f in files]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "22 joints" in out[0] and "111 frames at 30 fps" in out[0] and "ZXY" in out[0] and "cm" in out[0]
    assert "1848 frames at 60 fps" in out[1]
    assert "FLOAT" in out[2] and "16000 Hz" in out[2] and "30.00 s" in out[2]


def test_bundle(untrained_bundle: Path, capsys) -> None:
    assert main([str(untrained_bundle)]) == 0
    out = capsys.readouterr().out
    assert "model bundle untrained" in out and "face_k4 (unrolled K=4)" in out and "hashes verified" in out


def test_unreadable_files_exit_nonzero_with_the_reason(tmp_path: Path, capsys) -> None:
    fake = tmp_path / "song.wav"
    fake.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 64)
    good = tmp_path / "ok.wav"
    write_wav(good, np.zeros(1600, np.float32), 16000)
    assert main([str(fake), str(good), str(tmp_path / "missing.bvh"), str(tmp_path)]) == 1
    captured = capsys.readouterr()
    err = captured.err
    assert "song.wav" in err and "MP3" in err
    assert "missing.bvh: no such file" in err
    assert "not a model bundle" in err
    assert "ok.wav: WAV PCM_16, 16000 Hz" in captured.out  # one bad file does not hide the good ones
