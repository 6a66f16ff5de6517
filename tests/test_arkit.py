"""ARKit names and the adapters to Live Link Face and Unity orders."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.formats import arkit


def test_names() -> None:
    assert len(arkit.ARKIT_NAMES) == 52 and len(set(arkit.ARKIT_NAMES)) == 52
    assert arkit.ARKIT_NAMES[0] == "eyeBlinkLeft" and arkit.ARKIT_NAMES[-1] == "tongueOut"
    assert len(arkit.LIVELINK_NAMES) == 61
    assert arkit.LIVELINK_NAMES[15:17] == ("JawRight", "JawLeft")  # Epic swaps these pairs vs Apple
    assert arkit.UNITY_NAMES[:3] == ("BrowDownLeft", "BrowDownRight", "BrowInnerUp")


def test_livelink_order_matches_a_real_take(external) -> None:
    header = (external / "neurosync-trainer-lite" / "MySlate_166_iPhone_cal.csv").open().readline().strip()
    assert tuple(header.split(",")[2:]) == arkit.LIVELINK_NAMES


def test_round_trips() -> None:
    w = np.random.default_rng(0).random((4, 52)).astype(np.float32)
    rot = np.random.default_rng(1).random((4, 9)).astype(np.float32)
    values = arkit.to_livelink(w, rot)
    assert values[0, arkit.LIVELINK_NAMES.index("JawOpen")] == w[0, arkit.INDEX["jawOpen"]]
    back, r = arkit.from_livelink(values)
    np.testing.assert_array_equal(back, w)
    np.testing.assert_array_equal(r, rot)
    unity = arkit.to_unity(w)
    assert unity[1, arkit.UNITY_NAMES.index("MouthLeft")] == w[1, arkit.INDEX["mouthLeft"]]


def test_select_by_name_any_case() -> None:
    names = ["Timecode", "JAWOPEN", "mouthclose", "Angry"]
    out = arkit.select(np.array([[0.0, 0.7, 0.2, 0.9]]), names)
    assert out[0, arkit.INDEX["jawOpen"]] == pytest.approx(0.7)
    assert out[0, arkit.INDEX["mouthClose"]] == pytest.approx(0.2)
    assert out.sum() == pytest.approx(0.9)


def test_bad_shapes_are_named() -> None:
    with pytest.raises(ValueError, match="52 ARKit weights"):
        arkit.to_livelink(np.zeros((2, 51)))
