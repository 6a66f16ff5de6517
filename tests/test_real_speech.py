"""Real voices in training and evaluation: the per-window channel mask of the loss, the real sources' sequences, and
the real-speech rows of ``training.evaluate`` on short clips of ``../shared/external``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from runtime.constants import FPS, LOG_FLOOR, SAMPLE_RATE
from runtime.engine.settings import SessionSettings
from runtime.formats.arkit import INDEX
from runtime.formats.wav import read_audio
from runtime.model.model import Model
from training.models.diffusion import Diffusion
from training.models.face import FaceConfig, FaceDenoiser

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = REPO / "runtime" / "assets" / "default"
JAW = INDEX["jawOpen"]


def test_per_window_channel_mask_limits_the_loss_to_supervised_channels() -> None:
    torch.manual_seed(0)
    diff = Diffusion(FaceDenoiser(FaceConfig(dim=32, depth=1, n_heads=2, n_styles=4)))
    diff.net.motion_in.weight.data.zero_()  # the prediction no longer depends on x0: the loss is a pure function of it
    g = torch.Generator().manual_seed(0)
    cond = {"mel_self": torch.randn(2, 20, 80, generator=g), "mel_partner": torch.randn(2, 20, 80, generator=g),
            "style": torch.tensor([0, 3]), "facing": torch.ones(2, 20, 1)}  # fmt: skip
    x0, no_context = torch.randn(2, 20, 52), torch.zeros(2, 20, 1)
    mask = torch.ones(2, 1, 52)
    mask[0, 0, JAW + 1 :] = 0.0  # window 0 supervises only channels 0..jawOpen; window 1 all

    def loss(x: torch.Tensor) -> float:
        torch.manual_seed(1)
        return diff.loss(x, cond, no_context, mask)[0].item()

    base = loss(x0)
    unsupervised, supervised, other_window = x0.clone(), x0.clone(), x0.clone()
    unsupervised[0, :, JAW + 1 :] += 3.0
    supervised[0, :, JAW] += 3.0
    other_window[1, :, JAW + 1 :] += 3.0
    assert loss(unsupervised) == base
    assert loss(supervised) != base and loss(other_window) != base


def test_real_english_becomes_a_masked_single_speaker_sequence(external: Path) -> None:
    from runtime.engine.audio import log_mel
    from training.data.align import align_file
    from training.data.read_speech import dataset_items
    from training.data.real import EXPRESSION_CHANNELS, english_mask, english_target
    from training.data.visemes import MOUTH_CHANNELS, phone_classes
    from training.data.windows import single_speaker

    path, text = next((p, t) for p, t in dataset_items(external / "dc-tts-read-speech") if t)
    audio = read_audio(path).channels[0]
    phones = align_file(path, text)
    n = int(len(audio) / SAMPLE_RATE * FPS)
    face = english_target(audio, phones, n)
    mask = english_mask()
    mouth = {INDEX[c] for c in MOUTH_CHANNELS}
    assert set(np.flatnonzero(mask)) == mouth - {INDEX[c] for c in EXPRESSION_CHANNELS}
    assert not face[:, sorted(set(range(52)) - mouth)].any(), "only the viseme channels carry a target"
    vowels = np.zeros(n, bool)
    for p in phones:
        if phone_classes(p.symbol)[0] in ("open", "mid_open", "open_round", "mid_spread"):
            vowels[int(p.start * FPS) : int(np.ceil(p.end * FPS))] = True
    assert face[vowels, JAW].mean() > 2 * face[~vowels, JAW].mean(), "the jaw opens on the aligned vowels"

    seq = single_speaker("en_test", log_mel(audio), face, 8, mask)
    assert seq.mel.shape[0] == 2 and seq.mel.shape[1] == seq.face.shape[1] == seq.n_frames
    assert np.allclose(seq.mel[1], np.log(LOG_FLOOR)), "B is a quiet room"
    assert seq.body is None and seq.mask.dtype == np.float32 and list(seq.style) == [8, 8]


def test_real_speech_rows_run_on_short_clips(external: Path) -> None:
    from training.real_speech import LIVE_COLUMNS, beat_rows, english_rows, facegood_rows, markdown, reference_row

    model = Model.load(DEFAULT_BUNDLE)
    settings = SessionSettings(seed=0, degrade=False)
    beat = beat_rows(model, settings, 8.0, files=[external / "beat-speech" / "2_scott_0_14_14.wav"])
    assert [r["row"] for r in beat] == ["speaker, layer on", "listener, layer on", "speaker, layer off",
                                        "listener, layer off"]  # fmt: skip
    for r in beat[:2]:  # with the layer on both people blink in 8 s, so every figure is defined
        assert all(np.isfinite(r[k]) for k in LIVE_COLUMNS), r
    assert beat[0]["lively channels"] > beat[2]["lively channels"], "the living layer moves more of the face"
    facegood = facegood_rows(model, settings, 8.0)
    jaw = next(r for r in facegood if r["channel"] == "jawOpen")
    assert jaw["seconds"] == 8.0 and 0.2 < jaw["r"] <= 1.0, "the jaw follows the held-out FACEGOOD curve"
    english = english_rows(model, settings, max_files=1)
    assert [r["files"] for r in english] == [1, 1]
    assert all(0.0 < r["lip error"] < 1.0 and 0.0 <= r["bilabial closure"] <= 1.0 for r in english)
    assert all(0.0 <= r["shut while open"] <= 1.0 for r in english)
    table = markdown({"living_face": [*beat, reference_row()], "facegood": facegood, "english": english})
    assert "| speaker, layer on |" in table and "FACEGOOD held-out channel" in table and "held-out English" in table
