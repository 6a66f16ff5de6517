"""FACEGOOD Mandarin pairs mapped to ARKit: shapes, ranges, the evidence-based column mapping, the split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.formats.arkit import ARKIT_NAMES
from training.data.facegood import (
    EVAL_IDS,
    FPS,
    MAPPING,
    PAIR_IDS,
    TRAIN_IDS,
    USED_FRAMES,
    USED_WEIGHT,
    VALID_MASK,
    evidence,
    lagged_corr,
    load_pair,
    rig_names,
)
from training.data.speech import frame_rms

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "external" / "facegood-mandarin"
JAW = ARKIT_NAMES.index("jawOpen")
# Measured best-lag r of jawOpen with frame RMS: 0.62 (3_16) to 0.79 (2_03); lag 0 alone: 0.59 to 0.78.
MIN_JAW_R = 0.4


@pytest.fixture(scope="module")
def root() -> Path:
    if not ROOT.is_dir():
        pytest.skip(f"FACEGOOD data not present at {ROOT} (real external files, absent on a fresh clone)")
    return ROOT


@pytest.mark.parametrize("pair_id", PAIR_IDS)
def test_pair_shapes_ranges_and_jaw_follows_loudness(root: Path, pair_id: str) -> None:
    pair = load_pair(pair_id, root)
    frames = len(pair.weights)
    assert pair.weights.shape == (frames, len(ARKIT_NAMES)) and pair.rig.shape == (frames, 116)
    assert frames / pair.seconds == pytest.approx(FPS, abs=0.05)
    assert pair.weights.dtype == np.float32 and 0.0 <= pair.weights.min() and pair.weights.max() <= 1.0
    assert pair.mask.shape == (len(ARKIT_NAMES),) and pair.mask.dtype == bool and pair.mask.any()
    assert pair.mask[JAW]
    assert not pair.weights[:, ~pair.mask].any(), "invalid channels must be 0"
    r = lagged_corr([pair.weights[:, JAW : JAW + 1]], [frame_rms(pair.audio, frames)])[:, 0]
    assert r.max() > MIN_JAW_R, f"jawOpen vs frame RMS, lags -3..3: {np.round(r, 3)}"


def test_mapping_agrees_with_the_data(root: Path) -> None:
    rows = evidence(PAIR_IDS, root)
    for name, (columns, valid) in MAPPING.items():
        used = max(rows[c].used_frames for c in columns)
        assert (used >= USED_FRAMES) == valid, f"{name}: {used} frames > {USED_WEIGHT}, marked valid={valid}"
        assert VALID_MASK[ARKIT_NAMES.index(name)] == valid
    assert max(rows, key=lambda r: r.r_best).column == MAPPING["jawOpen"][0][0], "jawOpen is the loudness column"
    # The names file is off by one: shifted, jawOpen's column carries the table's jawOpen shape.
    file_names, names = rig_names(root)
    assert names[MAPPING["jawOpen"][0][0]] == "mouth_stretch_c" != file_names[MAPPING["jawOpen"][0][0]]


def test_split_is_a_partition_with_a_full_take_held_out() -> None:
    assert set(EVAL_IDS).isdisjoint(TRAIN_IDS) and set(EVAL_IDS) | set(TRAIN_IDS) == set(PAIR_IDS)
    assert EVAL_IDS == ("2_05",)
