"""End to end: a tiny synthetic corpus, tiny checkpoints trained for a few steps, ``training.evaluate`` on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from runtime.engine.settings import SessionSettings
from training import evaluate
from training.checkpoint import load_weights
from training.clips import load_clips
from training.data.windows import Corpus
from training.metrics import adapter as ad
from training.metrics import body as bm
from training.train import main as train

# Two scenes; at this fraction the hash split holds one out (20260101_001) and trains on the other.
TEST_FRACTION = 0.5


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    corpus = tiny_corpus
    out = {"root": root, "corpus": corpus, "cache": root / "cache"}
    for kind, steps in (("face", 2), ("body", 1), ("body_single", 1)):
        config = root / f"{kind}.yaml"
        config.write_text(yaml.safe_dump({
            "model": kind,
            "data": {"corpus": str(corpus), "cache": str(root / "cache"), "test_fraction": TEST_FRACTION},
            "net": {"dim": 16, "depth": 1, "n_heads": 2, "ff_mult": 1},
            "train": {"steps": steps, "batch_size": 2, "window": 32, "min_window": 24, "max_context": 8,
                      "out": str(root / kind), "log_every": 100, "eval_every": 100, "ckpt_every": 100},
        }))  # fmt: skip
        out[kind] = train(["--config", str(config)])
    return out


def _run(tiny: dict[str, Path], model: str, *extra: str) -> dict:
    return evaluate.main([
        "--model", model, "--cache", str(tiny["cache"]), "--test-fraction", str(TEST_FRACTION), "--max-seconds", "12",
        "--out", str(tiny["root"] / "eval"), *extra,
    ])  # fmt: skip


def _table(path: Path) -> list[list[str]]:
    lines = [line for line in path.read_text().splitlines() if line.startswith("| ")]  # header + rows, no |---|
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_face_evaluation_writes_a_table_with_every_row_and_finite_model_numbers(tiny):
    report = _run(tiny, "face", "--checkpoint", str(tiny["face"]), "--baseline-checkpoint", str(tiny["face"]))
    names = [r["name"] for r in report["rows"]]
    assert names[0] == "ground truth" and names[-2:] == ["mean face", "audio-energy jaw"]
    assert [r["mode"] for r in report["rows"]][1:4] == ["streaming", "offline", "offline"]
    truth, mean = report["rows"][0], report["rows"][-2]
    assert truth["lip_error"] == 0.0 and truth["fdd"] == 0.0 and truth["bilabial_onsets"] > 0
    assert truth["bilabial_closure"] > 0.9 and mean["bilabial_closure"] == 0.0  # the corpus seals p/b/m on time
    assert truth["listener_reaction"] > 0.1 and mean["listener_reaction"] == 0.0  # real listeners react
    for row in report["rows"][1:]:
        for key in ("lip_error", "fdd", "bilabial_closure"):
            assert np.isfinite(row[key]) and 0.0 <= row[key] <= 1.0, (row["name"], key)
    assert report["clips"] == [{"name": "20260101_001", "frames": 360}]
    assert report["checkpoints"][0]["sha256"] == load_weights(tiny["face"])["sha256"]
    table = _table(tiny["root"] / "eval" / "eval_face.md")
    assert table[0] == ["row", "lip error", "FDD", "bilabial closure", "shut while open", "listener reaction", "RTF"]
    assert [r[0] for r in table[1:]] == names
    saved = json.loads((tiny["root"] / "eval" / "eval_face.json").read_text())
    assert saved["machine"]["cores"] >= 1 and "--model face" in saved["command"]


def test_body_evaluation_has_every_row_and_finite_metrics(tiny):
    report = _run(tiny, "body", "--checkpoint", str(tiny["body"]), "--baseline-checkpoint", str(tiny["body_single"]),
                  "--samples", "2")  # fmt: skip
    rows = {r["name"]: r for r in report["rows"]}
    assert list(rows)[0] == "ground truth" and list(rows)[-2:] == ["mean pose", "random real clip"]
    assert [r["mode"] for r in report["rows"]][1:4] == ["streaming", "offline", "offline"]
    truth = rows["ground truth"]
    assert abs(truth["fid_g"]) < 1e-3 * rows["mean pose"]["fid_g"] and truth["distance_w1"] == 0.0
    assert truth["action_agreement"] > 0.9  # the heuristic re-labels real hips as the corpus labelled them
    assert rows["mean pose"]["div_g"] < 1e-3 and rows["mean pose"]["div_sample"] == 0.0
    for row in report["rows"][1:]:
        for key in ("fid_g", "fid_k", "div_g", "div_k", "foot_skating", "jerk", "action_agreement", "distance_w1"):
            assert np.isfinite(row[key]), (row["name"], key)
    assert report["rows"][2]["div_sample"] > 0.0  # two offline samples differ
    assert report["rows"][1]["div_sample"] is None  # one streamed sample: undefined, reported as such
    table = _table(tiny["root"] / "eval" / "eval_body.md")
    assert table[0][:6] == ["row", "FID_g", "FID_k", "Div_g", "Div_k", "Div_sample"]
    assert [r[0] for r in table[1:]] == list(rows)


def test_the_engine_fed_real_body_windows_reproduces_the_real_motion(tiny):
    """GroundTruthBody indexes the engine's windows right: what the engine poses is the corpus motion."""
    model = ad.CheckpointModel([load_weights(tiny["face"])])
    corpus = Corpus(tiny["corpus"], tiny["cache"])
    clip = load_clips(corpus, ["20260101_001"], 6.0)[0]
    lower, upper = model.poser.join(clip.seq.body[0], clip.seq.body[1])
    settings = SessionSettings(
        block=5,
        lookahead=2,
        context=7,
        steps=1,
        degrade=False,
        placement=clip.placement,
        hold_root=False,
        body_smooth=0.0,
    )  # the raw windows: no root hold, no smoothing
    people = ad.stream_bodies(ad.GroundTruthBody(model, lower, upper, settings), clip.audio, clip.seq.actions, settings)
    streamed = bm.pair_from_posed(model.poser, people)
    real = bm.pair_from_features(model.poser, clip.seq.body, clip.placement)
    for s, r in zip(streamed, real, strict=True):
        np.testing.assert_allclose(s.world, r.world, atol=2e-3)  # metres; float32 normalisation round trip


def test_bad_arguments_are_refused_with_a_message(tiny, capsys):
    with pytest.raises(ValueError, match="cannot be the model"):
        _run(tiny, "face", "--checkpoint", str(tiny["body"]))
    with pytest.raises(SystemExit):
        _run(tiny, "body", "--checkpoint", str(tiny["body"]), "--samples", "0")
    assert "--samples must be >= 1" in capsys.readouterr().err
