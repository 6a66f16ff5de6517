"""runtime/formats/livelink_csv.py: the two real takes, both timecode conventions, 60 -> 30 fps, round trip, errors."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from runtime.formats.arkit import ARKIT_NAMES, INDEX, LIVELINK_NAMES, LIVELINK_ROTATIONS, pascal
from runtime.formats.livelink_csv import (
    FaceTake,
    LiveLinkCsvError,
    format_timecode,
    read_livelink_csv,
    resample_take,
    write_livelink_csv,
)

IPHONE = Path("neurosync-trainer-lite/MySlate_166_iPhone_cal.csv")
GENERATED = Path("neurosync-player-generated/shapes.csv")
EMOTIONS = ["Angry", "Disgusted", "Fearful", "Happy", "Neutral", "Sad", "Surprised"]


def _columns(path: Path) -> dict[str, list[str]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return {name: [row[i] for row in rows[1:]] for i, name in enumerate(rows[0])}


def _write(tmp_path: Path, header: list[str], rows: list[list[str]], name: str = "take.csv", eol: str = "\n") -> Path:
    path = tmp_path / name
    path.write_text(eol.join(",".join(r) for r in [header, *rows]) + eol)
    return path


def _small_rows(n: int = 4, names: tuple[str, ...] = LIVELINK_NAMES) -> list[list[str]]:
    return [[f"00:00:01:{i:02d}.000", "61"] + [f"{0.01 * (i + 1):.4f}"] * len(names) for i in range(n)]


# ----------------------------------------------------------------------------------------------- real files
def test_real_iphone_take(external: Path) -> None:
    take = read_livelink_csv(external / IPHONE)
    assert take.n_frames == 1848 and take.fps == 60.0
    assert take.weights.shape == (1848, 52) and take.rotations.shape == (1848, 9) and take.extra == {}
    assert 0.0 <= take.weights.min() and take.weights.max() == pytest.approx(0.7936, abs=1e-4)
    # Subframe convention: 19:18:11:20.002 -> 19:18:11 + 20.002 / 60 s; the take lasts ~30.8 s.
    assert take.start == pytest.approx(19 * 3600 + 18 * 60 + 11 + 20.002 / 60)
    assert take.times[0] == 0.0 and take.times[-1] == pytest.approx((42 - 11) + (9.949 - 20.002) / 60)
    assert np.all(np.diff(take.times) > 0)
    # Columns picked by name: Epic's file order swaps jawLeft/jawRight relative to Apple's.
    raw = _columns(external / IPHONE)
    for name in ("jawLeft", "jawRight", "mouthLeft", "eyeBlinkLeft", "tongueOut"):
        np.testing.assert_allclose(take.weights[:, INDEX[name]], np.array(raw[pascal(name)], float), atol=1e-7)
    np.testing.assert_allclose(take.rotations[:, 3], np.array(raw["LeftEyeYaw"], float), atol=1e-7)


def test_real_generated_take_with_emotions_and_negative_zero(external: Path) -> None:
    take = read_livelink_csv(external / GENERATED)
    assert take.n_frames == 610 and take.fps == 60.0
    assert list(take.extra) == EMOTIONS  # the 7 extra columns, not mistaken for blendshapes
    assert all(v.shape == (610,) for v in take.extra.values())
    assert -0.01 < take.weights.min() and take.weights.max() < 1.0
    # "-0.0" is read as +0.0 (first row is all zeros, many written "-0.0").
    assert not np.any(np.signbit(take.weights[0])) and not np.any(np.signbit(take.rotations[0]))
    # Milliseconds convention: 00:00:10:09.150 is 10.150 s (not 10 s + 9.15 frames).
    assert take.times[-1] == pytest.approx(10.150)
    assert take.times[1] == pytest.approx(0.016) and take.times[10] == pytest.approx(0.166)
    raw = _columns(external / GENERATED)
    np.testing.assert_allclose(take.extra["Happy"], np.array(raw["Happy"], float))
    np.testing.assert_allclose(take.weights[:, INDEX["jawOpen"]], np.array(raw["JawOpen"], float), atol=1e-7)


@pytest.mark.parametrize(("rel", "n_out"), [(IPHONE, 924), (GENERATED, 305)])
def test_real_takes_resampled_to_30(external: Path, rel: Path, n_out: int) -> None:
    take = read_livelink_csv(external / rel)
    half = resample_take(take, 30)
    assert half.n_frames == n_out and half.fps == 30.0
    np.testing.assert_array_equal(half.weights, take.weights[::2])  # regular 60 fps: every 2nd frame
    np.testing.assert_array_equal(half.times, take.times[::2])
    assert all(np.array_equal(half.extra[k], v[::2]) for k, v in take.extra.items())
    assert np.median(np.diff(half.times)) == pytest.approx(1 / 30, rel=0.03)


# ----------------------------------------------------------------------------------------------- resampling
def _take(times: np.ndarray, fps: float) -> FaceTake:
    ramp = np.repeat(times[:, None], 52, axis=1).astype(np.float32)  # weight = time in seconds
    rotations = np.repeat(-times[:, None], 9, axis=1).astype(np.float32)
    return FaceTake(ramp, rotations, times, fps, {"Happy": 2 * times})


def test_irregular_take_is_interpolated() -> None:
    times = np.array([0.0, 1 / 60, 2 / 60, 4 / 60, 5 / 60, 6 / 60, 7 / 60])  # frame 3 dropped
    out = resample_take(_take(times, 60.0), 30)
    np.testing.assert_allclose(out.times, [0, 1 / 30, 2 / 30, 3 / 30])
    np.testing.assert_allclose(out.weights[:, 0], out.times, atol=1e-6)  # a ramp interpolates to itself
    np.testing.assert_allclose(out.rotations[:, 8], -out.times, atol=1e-6)
    np.testing.assert_allclose(out.extra["Happy"], 2 * out.times)


def test_non_integer_ratio_is_interpolated() -> None:
    times = np.arange(50) / 50
    out = resample_take(_take(times, 50.0), 30)
    assert out.n_frames == 30 and out.fps == 30.0  # 0 .. 29/30 s, inside the 0 .. 0.98 s take
    np.testing.assert_allclose(out.weights[:, 17], np.arange(30) / 30, atol=1e-6)


# ----------------------------------------------------------------------------------------------- writing
def test_write_read_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weights = rng.uniform(0, 1, (95, 52)).astype(np.float32)  # > 3 s at 30 fps: crosses second boundaries
    rotations = rng.uniform(-0.5, 0.5, (95, 9)).astype(np.float32)
    path = tmp_path / "out.csv"
    write_livelink_csv(path, weights, rotations, fps=30, start_timecode=3600 + 59.5)
    take = read_livelink_csv(path)
    assert take.fps == 30.0 and take.n_frames == 95 and take.extra == {}
    np.testing.assert_allclose(take.weights, weights, atol=1e-6, rtol=0)
    np.testing.assert_allclose(take.rotations, rotations, atol=1e-6, rtol=0)
    np.testing.assert_allclose(take.times, np.arange(95) / 30, atol=1e-9)
    assert take.start == pytest.approx(3659.5)


def test_written_layout_is_the_apps(tmp_path: Path) -> None:
    weights = np.zeros((2, 52), np.float32)
    weights[1, INDEX["jawLeft"]] = 0.25
    weights[1, INDEX["mouthClose"]] = -0.0
    path = tmp_path / "layout.csv"
    write_livelink_csv(path, weights, fps=30, start_timecode=0.5)
    lines = path.read_bytes().decode().split("\n")
    assert lines[0] == "Timecode,BlendShapeCount," + ",".join(LIVELINK_NAMES)  # Unreal's importer checks these
    assert lines[0].endswith("TongueOut," + ",".join(LIVELINK_ROTATIONS))
    assert lines[-1] == "" and "\r" not in path.read_bytes().decode()  # LF, trailing newline, as the app
    first, second = lines[1].split(","), lines[2].split(",")
    assert first[:3] == ["00:00:00:15.000", "61", "0.0000000000"] and len(first) == 63
    assert second[0] == "00:00:00:16.000"
    assert second[2 + LIVELINK_NAMES.index("JawLeft")] == "0.2500000000"
    assert "-0.0000000000" not in lines[2]


def test_timecode_format() -> None:
    assert format_timecode(0.0, 30) == "00:00:00:00.000"
    assert format_timecode(69491 + 20.002 / 60, 60) == "19:18:11:20.002"  # the iPhone take's first frame
    assert format_timecode(3599 + 29.9999 / 30, 30) == "01:00:00:00.000"  # subframe rounding carries over


def test_write_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(LiveLinkCsvError, match=r"weights must be \(F, 52\)"):
        write_livelink_csv(tmp_path / "a.csv", np.zeros((4, 61)))
    with pytest.raises(LiveLinkCsvError, match="rotations shape"):
        write_livelink_csv(tmp_path / "a.csv", np.zeros((4, 52)), np.zeros((4, 3)))
    with pytest.raises(LiveLinkCsvError, match="whole number"):
        write_livelink_csv(tmp_path / "a.csv", np.zeros((4, 52)), fps=29.97)


# ----------------------------------------------------------------------------------------------- format variants
def test_headers_any_case_trailing_spaces_crlf_and_column_order(tmp_path: Path) -> None:
    names = list(reversed(LIVELINK_NAMES))  # any column order
    header = [" timecode ", "blendshapecount "] + [n.upper() + "  " for n in names]
    path = _write(tmp_path, header, _small_rows(40, tuple(names)), eol="\r\n")
    take = read_livelink_csv(path)
    assert take.n_frames == 40 and take.fps == 60.0  # no second boundary, FF up to 39: 60 fps
    np.testing.assert_allclose(take.weights[:, 0], 0.01 * np.arange(1, 41), atol=1e-7)
    np.testing.assert_allclose(take.times, np.arange(40) / 60)


def test_blendshapes_only_gives_zero_rotations(tmp_path: Path) -> None:
    names = tuple(pascal(n) for n in ARKIT_NAMES)
    take = read_livelink_csv(_write(tmp_path, ["Timecode", "BlendShapeCount", *names], _small_rows(3, names)))
    assert take.rotations.shape == (3, 9) and not take.rotations.any()
    assert take.fps == 30.0  # FF 0..2 within one second: the smaller Live Link rate


def test_fps_override(tmp_path: Path) -> None:
    header = ["Timecode", "BlendShapeCount", *LIVELINK_NAMES]
    take = read_livelink_csv(_write(tmp_path, header, _small_rows(3)), fps=24)
    np.testing.assert_allclose(take.times, np.arange(3) / 24)


# ----------------------------------------------------------------------------------------------- errors
def test_error_no_timecode_column(tmp_path: Path) -> None:
    path = _write(tmp_path, ["Time", "BlendShapeCount", *LIVELINK_NAMES], _small_rows())
    with pytest.raises(LiveLinkCsvError, match=r"take\.csv: no Timecode column"):
        read_livelink_csv(path)


def test_error_missing_arkit_columns_are_listed(tmp_path: Path) -> None:
    names = tuple(n for n in LIVELINK_NAMES if n not in ("JawOpen", "TongueOut"))
    path = _write(tmp_path, ["Timecode", "BlendShapeCount", *names], _small_rows(4, names))
    with pytest.raises(LiveLinkCsvError, match="missing ARKit blendshape columns: JawOpen, TongueOut$"):
        read_livelink_csv(path)


def test_error_bad_timecode_names_the_line(tmp_path: Path) -> None:
    rows = _small_rows()
    rows[2][0] = "00:00:01:0x"
    with pytest.raises(LiveLinkCsvError, match=r"bad timecode '00:00:01:0x' on line 4"):
        read_livelink_csv(_write(tmp_path, ["Timecode", "BlendShapeCount", *LIVELINK_NAMES], rows))


def test_error_non_numeric_value_names_line_and_column(tmp_path: Path) -> None:
    rows = _small_rows()
    rows[1][2 + LIVELINK_NAMES.index("MouthPucker")] = "abc"
    with pytest.raises(LiveLinkCsvError, match=r"non-numeric value 'abc' at line 3 column MouthPucker"):
        read_livelink_csv(_write(tmp_path, ["Timecode", "BlendShapeCount", *LIVELINK_NAMES], rows))


def test_error_ragged_row_and_time_going_backwards(tmp_path: Path) -> None:
    header = ["Timecode", "BlendShapeCount", *LIVELINK_NAMES]
    rows = _small_rows()
    rows[3] = rows[3][:-1]
    with pytest.raises(LiveLinkCsvError, match="line 5 has 62 fields, the header has 63"):
        read_livelink_csv(_write(tmp_path, header, rows))
    rows = _small_rows()
    rows[2][0] = rows[1][0]
    with pytest.raises(LiveLinkCsvError, match="on line 4 is not later than '00:00:01:01.000' on line 3"):
        read_livelink_csv(_write(tmp_path, header, rows))


@pytest.mark.parametrize("value", ["-1", "1e20", "1.2"])
def test_error_weight_outside_unit_range_names_line_and_column(tmp_path: Path, value: str) -> None:
    """Issue 15: weights of -1 or 1e20 were read silently."""
    rows = _small_rows()
    rows[1][2 + LIVELINK_NAMES.index("MouthPucker")] = value
    with pytest.raises(
        LiveLinkCsvError, match=rf"weight {re.escape(f'{float(value):g}')} at line 3 column mouthPucker is outside"
    ):
        read_livelink_csv(_write(tmp_path, ["Timecode", "BlendShapeCount", *LIVELINK_NAMES], rows))


def test_weights_a_hair_outside_unit_range_are_clamped(tmp_path: Path) -> None:
    rows = _small_rows()
    rows[1][2 + LIVELINK_NAMES.index("MouthPucker")] = "1.02"
    rows[2][2 + LIVELINK_NAMES.index("JawOpen")] = "-0.01"
    take = read_livelink_csv(_write(tmp_path, ["Timecode", "BlendShapeCount", *LIVELINK_NAMES], rows))
    assert take.weights[1, INDEX["mouthPucker"]] == 1.0 and take.weights[2, INDEX["jawOpen"]] == 0.0
