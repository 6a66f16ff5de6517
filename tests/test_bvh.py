"""BVH reader, writer and resampler: real Bandai Namco files, constructed clips, malformed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from runtime.formats import bvh_numbers
from runtime.formats.bvh import BvhError, read_bvh, resample, write_bvh
from runtime.motion.clip import BvhClip
from runtime.motion.skeleton import Skeleton

BANDAI_FRAMES = {"dataset-1_bye_normal_001.bvh": 111, "dataset-1_guide_normal_001.bvh": 86,
                 "dataset-1_respond_normal_001.bvh": 106}  # fmt: skip
ZXY6 = ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")


def mixed_clip(n_frames: int = 40, fps: float = 120.0, seed: int = 0) -> BvhClip:
    """Metres; orders ZYX and XYZ and YZX; 6 channels on the root and on one non-root joint (positions last)."""
    sk = Skeleton(
        names=("Pelvis", "Spine", "Head", "Arm", "Leg"),
        parents=(-1, 0, 1, 1, 0),
        offsets=np.array([[0, 0.9, 0], [0, 0.1, 0], [0, 0.5, 0.02], [0.2, 0.4, 0], [0.1, -0.05, 0]]),
        channels=(
            ("Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation"),
            ("Xrotation", "Yrotation", "Zrotation"),
            ("Zrotation", "Yrotation", "Xrotation"),
            ("Yrotation", "Zrotation", "Xrotation", "Xposition", "Yposition", "Zposition"),
            ("Xrotation", "Yrotation", "Zrotation"),
        ),
        end_sites={2: np.array([0.0, 0.12, 0.0])},
    )
    rng = np.random.default_rng(seed)
    values = np.round(rng.uniform(-179, 179, (n_frames, sk.n_channels)), 6)  # <= 6 decimals: exact round trip
    values[:, :3] = np.round(rng.uniform(-2, 2, (n_frames, 3)), 6)
    values[:, 15:18] = [0.2, 0.4, 0.0]  # Arm positions (after its 3 rotations)
    return BvhClip(sk, 1.0 / fps, values)


def test_bandai_files_read_and_round_trip(external: Path, tmp_path: Path) -> None:
    files = sorted((external / "bandai-namco-motion").glob("*.bvh"))
    assert [f.name for f in files] == sorted(BANDAI_FRAMES)
    for f in files:
        clip = read_bvh(f)
        sk = clip.skeleton
        assert sk.n_joints == 22 and sk.names[:2] == ("joint_Root", "Hips")
        assert all(c == ZXY6 for c in sk.channels) and sk.rotation_order(5) == "ZXY"
        assert len(sk.end_sites) == 5 and clip.n_frames == BANDAI_FRAMES[f.name]
        assert clip.values.shape == (clip.n_frames, 132)
        assert clip.fps == pytest.approx(30.0, abs=1e-3) and clip.units == "cm"
        assert clip.values[0, 6:9].tolist() == pytest.approx(sk.offsets[1].tolist(), abs=1e-9)  # Hips position
        write_bvh(tmp_path / f.name, clip)
        back = read_bvh(tmp_path / f.name)
        assert back.skeleton.names == sk.names and back.skeleton.parents == sk.parents
        assert back.skeleton.channels == sk.channels and back.frame_time == clip.frame_time
        np.testing.assert_array_equal(back.skeleton.offsets, sk.offsets)
        assert sorted(back.skeleton.end_sites) == sorted(sk.end_sites)
        np.testing.assert_allclose(back.values, clip.values, rtol=0, atol=1e-6)


def test_mixed_orders_round_trip_exactly(tmp_path: Path) -> None:
    clip = mixed_clip()
    assert clip.units == "m"
    write_bvh(tmp_path / "mixed.bvh", clip)
    back = read_bvh(tmp_path / "mixed.bvh")
    assert back.skeleton.channels == clip.skeleton.channels
    assert [back.skeleton.rotation_order(j) for j in range(5)] == ["ZYX", "XYZ", "ZYX", "YZX", "XYZ"]
    np.testing.assert_array_equal(back.skeleton.end_sites[2], [0.0, 0.12, 0.0])
    np.testing.assert_array_equal(back.values, clip.values)  # written %.6f from <= 6 decimals: same doubles
    assert back.frame_time == clip.frame_time


def test_reader_tolerates_crlf_tabs_blank_lines_and_spaced_names(tmp_path: Path) -> None:
    clip = mixed_clip(n_frames=5)
    write_bvh(tmp_path / "a.bvh", clip)
    text = (tmp_path / "a.bvh").read_text().replace("JOINT Spine", "JOINT Bip01 Spine")
    lines = text.split("\n")
    lines = [ln.replace(" ", "\t", 2) + ("\n" if i % 3 == 0 else "") for i, ln in enumerate(lines)]
    (tmp_path / "b.bvh").write_bytes("\r\n".join(lines).encode())
    back = read_bvh(tmp_path / "b.bvh")
    assert back.skeleton.names[1] == "Bip01 Spine"
    np.testing.assert_array_equal(back.values, clip.values)


def _one_channel_file(path: Path, tokens: list[str]) -> Path:
    head = "HIERARCHY\nROOT J\n{\n  OFFSET 0 0 0\n  CHANNELS 1 Xrotation\n}\nMOTION\n"
    path.write_text(head + f"Frames: {len(tokens)}\nFrame Time: 0.1\n" + "\n".join(tokens) + "\n")
    return path


@pytest.mark.parametrize("chunk", [64, 1 << 17])
def test_plain_decimals_take_the_fast_path_and_parse_like_float(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(bvh_numbers, "_CHUNK", chunk)  # 64: many chunks, both threads, tokens cut at chunk edges
    monkeypatch.setattr(bvh_numbers, "_parse_slow", lambda *a: pytest.fail("plain decimals fell back to numpy"))
    rng = np.random.default_rng(1)
    x = rng.standard_normal(3000) * 10.0 ** rng.integers(-6, 9, 3000)
    tokens = [f"%.{i % 10}f" % v for i, v in enumerate(x)]
    tokens = [t for t in tokens if len(t.lstrip("-")) <= 15]
    tokens += ["-0", "0", ".5", "-.25", "5.", "123456789012345", "-1234567890123.5", "00012.50", "-0.0000000001"]
    clip = read_bvh(_one_channel_file(tmp_path / "n.bvh", tokens))
    np.testing.assert_array_equal(clip.values[:, 0], [float(t) for t in tokens])
    assert np.signbit(clip.values[tokens.index("-0"), 0])  # "-0" is -0.0, as strtod reads it


def test_other_numbers_fall_back_and_parse_like_float(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bvh_numbers, "_CHUNK", 64)
    tokens = ["1.5", "1e3", "-2.5E-05", "+7", "1234567.12345678", "1234567890123456", ".25e1", "7", "-8.25"] * 20
    clip = read_bvh(_one_channel_file(tmp_path / "n.bvh", tokens))
    np.testing.assert_array_equal(clip.values[:, 0], [float(t) for t in tokens])


def _bad_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.bvh"
    path.write_text(text)
    return path


GOOD = mixed_clip(n_frames=3)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.rsplit(" ", 4)[0] + "\n", "line 36: frame 2 has 17 values, expected 21"),  # truncated motion
        (lambda t: t.replace("Yrotation", "Yrot", 1), "line 5: unknown channel name 'Yrot'"),
        (lambda t: t.split("MOTION")[0], "no MOTION section"),
        (lambda t: t.replace("}\nMOTION", "MOTION", 1), "unbalanced braces"),
        (lambda t: t.replace("Frames: 3", "Frames: 4"), "expected 4 frames x 21 channels = 84 values, got 63"),
        (lambda t: t.replace("OFFSET 0.0 0.9", "OFFSET 0.0 x9"), "line 4: 'x9' is not a number"),
        (lambda t: t.replace("OFFSET 0.0 0.9", "OFFSET 0.0 nan"), "line 4: 'nan' is not a finite number"),  # issue 15
        (lambda t: t.replace("OFFSET 0.0 0.9", "OFFSET 0.0 -inf"), "line 4: '-inf' is not a finite number"),
    ],
    ids=["truncated", "channel", "no-motion", "braces", "frames", "offset", "nan-offset", "inf-offset"],
)
def test_malformed_files_name_file_and_reason(tmp_path: Path, edit, message: str) -> None:
    write_bvh(tmp_path / "good.bvh", GOOD)
    path = _bad_file(tmp_path, edit((tmp_path / "good.bvh").read_text()))
    with pytest.raises(BvhError) as err:
        read_bvh(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_text_in_data_names_its_line(tmp_path: Path) -> None:
    write_bvh(tmp_path / "good.bvh", GOOD)
    lines = (tmp_path / "good.bvh").read_text().split("\n")
    row = lines.index("MOTION") + 4  # second frame
    lines[row] = lines[row].replace(" ", " oops ", 1).rsplit(" ", 1)[0]
    path = _bad_file(tmp_path, "\n".join(lines))
    with pytest.raises(BvhError, match=rf"bad.bvh: line {row + 1}: 'oops' in MOTION is not a number"):
        read_bvh(path)


@pytest.mark.parametrize("token", ["nan", "inf", "-Infinity", "1e999"])
def test_non_finite_motion_names_its_frame_and_line(tmp_path: Path, token: str) -> None:
    """Issue 15: NaN/Inf in the motion were read silently."""
    write_bvh(tmp_path / "good.bvh", GOOD)
    lines = (tmp_path / "good.bvh").read_text().split("\n")
    row = lines.index("MOTION") + 4  # second frame (frame 1)
    head, _, rest = lines[row].partition(" ")
    lines[row] = f"{head} {token} {rest.partition(' ')[2]}"
    path = _bad_file(tmp_path, "\n".join(lines))
    with pytest.raises(BvhError, match=rf"bad.bvh: frame 1 \(line {row + 1}\), channel 1: .* is not a finite number"):
        read_bvh(path)


@pytest.mark.parametrize("fps", [120.0, 60.0])
def test_resample_integer_ratio_keeps_every_nth_frame(fps: float) -> None:
    clip = mixed_clip(n_frames=121, fps=fps)
    out = resample(clip, 30)
    step = int(fps // 30)
    assert out.n_frames == len(range(0, 121, step)) and out.fps == pytest.approx(30.0)
    np.testing.assert_array_equal(out.values, clip.values[::step])  # frame k of out is at k / 30 s in the source
    assert out.frame_time * 7 == pytest.approx(clip.frame_time * 7 * step)


def test_resample_other_ratio_interpolates_rotations_and_positions() -> None:
    """50 -> 30 fps: a steady turn about one axis and a linear position come out exactly on the line."""
    sk = Skeleton(("Hips",), (-1,), np.zeros((1, 3)), (ZXY6,))
    t = np.arange(51) / 50.0  # one second
    values = np.zeros((51, 6))
    values[:, 0] = 2.0 * t  # Xposition, linear
    values[:, 5] = 170.0 * t  # Yrotation: a steady turn
    out = resample(BvhClip(sk, 1 / 50, values), 30)
    t_out = np.arange(31) / 30.0
    assert out.n_frames == 31 and out.fps == pytest.approx(30.0)
    np.testing.assert_allclose(out.values[:, 0], 2.0 * t_out, atol=1e-12)
    got = Rotation.from_euler("ZXY", out.values[:, 3:], degrees=True)
    want = Rotation.from_euler("y", 170.0 * t_out[:, None], degrees=True)
    assert np.degrees((got.inv() * want).magnitude()).max() < 1e-9


def test_units_and_to_metres() -> None:
    clip = mixed_clip(n_frames=2)
    cm = BvhClip(clip.skeleton.scaled(100.0), clip.frame_time, clip.values.copy())
    cm.values[:, :3] *= 100.0
    cm.values[:, 15:18] *= 100.0
    assert cm.units == "cm" and clip.units == "m"
    back = cm.to_metres()
    np.testing.assert_allclose(back.values, clip.values, atol=1e-12)
    np.testing.assert_allclose(back.skeleton.offsets, clip.skeleton.offsets, atol=1e-12)
    np.testing.assert_allclose(back.skeleton.end_sites[2], clip.skeleton.end_sites[2], atol=1e-12)
