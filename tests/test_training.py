"""Models and training: shapes and masks, x0 parameterisation, the lower -> upper wiring, a short run that lowers
the loss, resuming, the denoiser swap, DDP with torchrun, and BVH export of a generated two-person clip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from runtime.formats.bvh import read_bvh, write_bvh
from runtime.model.sampling import Schedule
from runtime.motion.kinematics import local_quats, rotation_angle_deg
from runtime.motion.root import MotionLayout, features_to_clip
from runtime.motion.skeleton import Skeleton
from training.checkpoint import load_weights
from training.config import load_experiment
from training.data.windows import WindowSource
from training.models.diffusion import Diffusion
from training.models.face import FaceConfig, FaceDenoiser
from training.tasks import Task, swap_denoiser
from training.train import Trainer

REPO = Path(__file__).resolve().parents[1]
TINY_NET = {"dim": 32, "depth": 1, "n_heads": 2, "ff_mult": 1}


def _config(tmp: Path, corpus: Path, model: str, **train) -> Path:
    path = tmp / f"{model}.yaml"
    path.write_text(yaml.safe_dump({
        "model": model, "data": {"corpus": str(corpus), "cache": str(tmp / "cache"), "test_fraction": 0.5},
        "net": TINY_NET,
        "train": {"out": str(tmp / model), "steps": 40, "batch_size": 4, "window": 48, "min_window": 24,
                  "max_context": 8, "lr": 2e-3, "warmup": 5, "log_every": 10, "eval_every": 1000, "ckpt_every": 20,
                  "threads": 1, **train},
    }))  # fmt: skip
    return path


def _face_inputs(b: int = 2, t: int = 20) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"mel_self": torch.randn(b, t, 80, generator=g), "mel_partner": torch.randn(b, t, 80, generator=g),
            "style": torch.tensor([0, 3])[:b], "facing": torch.ones(b, t, 1)}  # fmt: skip


def test_face_denoiser_shapes_and_translation_invariance() -> None:
    net = FaceDenoiser(FaceConfig(dim=32, depth=2, n_heads=2, n_styles=4)).eval()
    cond = _face_inputs()
    x = torch.randn(2, 20, 52)
    out = net(x, torch.tensor([10, 900]), context=torch.zeros_like(x), context_mask=torch.zeros(2, 20, 1), **cond)
    assert out.shape == (2, 20, 52)
    assert 1.0 <= sum(p.numel() for p in FaceDenoiser(FaceConfig()).parameters()) / 1e6 <= 4.0  # 2-4 M default


def test_loss_ignores_known_context_frames() -> None:
    torch.manual_seed(0)
    diff = Diffusion(FaceDenoiser(FaceConfig(dim=32, depth=1, n_heads=2, n_styles=4)))
    x0 = torch.randn(2, 20, 52)
    mask = torch.zeros(2, 20, 1)
    mask[:, :8] = 1.0
    cond = _face_inputs()
    torch.manual_seed(1)
    a, _ = diff.loss(x0, cond, mask)
    changed = x0.clone()
    changed[:, :8] += 5.0  # different context values change the input, but never count as targets
    torch.manual_seed(1)
    b, _ = diff.loss(changed, cond, mask)
    diff.net.motion_in.weight.data.zero_()  # now the context cannot reach the output at all
    torch.manual_seed(1)
    c, _ = diff.loss(x0, cond, mask)
    torch.manual_seed(1)
    d, _ = diff.loss(changed, cond, mask)
    assert a != b and c == d


def test_x0_parameterisation_one_step_returns_the_prediction() -> None:
    net = FaceDenoiser(FaceConfig(dim=32, depth=1, n_heads=2, n_styles=4)).eval()
    diff = Diffusion(net, schedule=Schedule())
    cond = _face_inputs()
    noise = torch.randn(2, 20, 52)
    with torch.no_grad():
        direct = net(noise, torch.full((2,), 999), context=torch.zeros_like(noise),
                     context_mask=torch.zeros(2, 20, 1), **cond)  # fmt: skip
    torch.testing.assert_close(diff.sample(cond, noise, k=1), direct)


def test_upper_body_is_conditioned_on_the_lower_body_result(tiny_corpus: Path, tmp_path: Path) -> None:
    exp = load_experiment(_config(tmp_path, tiny_corpus, "body"))
    lower = {"part": "lower", "n_features": 62, **TINY_NET}
    task = Task(exp, {"body_lower": lower, "body_upper": dict(lower, part="upper", n_features=258, n_lower=62)}).eval()
    seen = {}
    task.models["body_upper"].net.register_forward_hook(lambda m, a, kw, out: seen.update(lower=kw["lower"]),
                                                        with_kwargs=True)  # fmt: skip
    b, t = 1, 16
    batch = {"mel_a": torch.randn(b, t, 80), "mel_b": torch.randn(b, t, 80), "actions": torch.full((b, t, 2), 2),
             "placement": torch.tensor([[0.0, 1.4, -1.0, 0.0]]), "context_mask": torch.zeros(b, t, 1)}  # fmt: skip
    noise = {"lower": torch.randn(b, t, 62), "upper": torch.randn(b, t, 258)}
    out = task.sample(batch, 2, noise)
    torch.testing.assert_close(seen["lower"], out["lower"])  # the upper network saw the lower network's result
    up = task.models["body_upper"].net
    args = (torch.randn(b, t, 258), torch.full((b,), 500), batch["mel_a"], batch["mel_b"], batch["actions"],
            batch["placement"], torch.zeros(b, t, 258), torch.zeros(b, t, 1))  # fmt: skip
    with torch.no_grad():
        assert not torch.allclose(up(*args, lower=out["lower"]), up(*args, lower=torch.zeros_like(out["lower"])))


def test_training_lowers_the_loss_resumes_and_describes_itself(tiny_corpus: Path, tmp_path: Path) -> None:
    trainer = Trainer(load_experiment(_config(tmp_path, tiny_corpus, "face")))
    before = _fixed_loss(trainer)
    path = trainer.fit()
    assert _fixed_loss(trainer) < 0.7 * before
    ckpt = load_weights(path)
    assert ckpt["kind"] == "face" and ckpt["model_config"]["face"]["dim"] == 32
    assert set(ckpt["meta"]) >= {"stats", "skeleton", "layout", "styles", "data", "train"}
    assert ckpt["meta"]["train"]["steps"] == 40
    resumed = Trainer(load_experiment(_config(tmp_path, tiny_corpus, "face", steps=50)))
    assert resumed.step == 40  # picked up state.pt
    resumed.fit()
    rows = (tmp_path / "face" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and rows[-1].startswith("50,")


def test_body_training_lowers_the_loss(tiny_corpus: Path, tmp_path: Path) -> None:
    trainer = Trainer(load_experiment(_config(tmp_path, tiny_corpus, "body")))
    before = _fixed_loss(trainer)
    trainer.fit()
    assert _fixed_loss(trainer) < 0.7 * before


def test_lip_fine_tuning_trains_the_denoiser_on_the_speaker_and_swaps_it_in(tiny_corpus: Path, tmp_path: Path) -> None:
    base = Trainer(load_experiment(_config(tmp_path, tiny_corpus, "face", steps=4))).fit()
    config = yaml.safe_load(_config(tmp_path, tiny_corpus, "face", steps=4, out=str(tmp_path / "lip")).read_text())
    config["data"]["subset"] = "lip"
    config["finetune"] = {"init": str(base), "loss_channels": "lip", "train_only": "denoiser",
                          "swap_into": str(base), "anchor": 1.0}  # fmt: skip
    (tmp_path / "lip.yaml").write_text(yaml.safe_dump(config))
    trainer = Trainer(load_experiment(tmp_path / "lip.yaml"))
    assert [a.seqs[0].body is not None for a in trainer.anchors] == [True]  # dialogue windows anchor it
    batch = trainer.data.batch(8, 24, torch.Generator().manual_seed(0))
    assert (batch["x0"].std(dim=1).amax(dim=-1) > 0.1).all()  # every target is the speaking A, never B's blank face
    swapped, tuned, start = [
        load_weights(p)["state_dict"] for p in (trainer.fit(), tmp_path / "lip" / "lip_unswapped.pt", base)
    ]
    for name, value in swapped.items():
        assert torch.equal(value, (tuned if name.startswith("face.backbone.") else start)[name]), name
    assert any(not torch.equal(tuned[n], start[n]) for n in tuned if n.startswith("face.backbone."))


def _fixed_loss(trainer: Trainer) -> float:
    """The EMA model's loss on fixed training windows, fixed diffusion steps and noise."""
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(0)
        batches = trainer.data.fixed_batches(3, 48, torch.Generator().manual_seed(0))
        return float(np.mean([trainer.ema(b)[0].item() for b in batches]))


def test_denoiser_swap_keeps_every_other_weight(tiny_corpus: Path, tmp_path: Path) -> None:
    base = Task(load_experiment(_config(tmp_path, tiny_corpus, "face")), {"face": {"n_styles": 4, **TINY_NET}})
    tuned = Task(load_experiment(_config(tmp_path, tiny_corpus, "face")), {"face": {"n_styles": 4, **TINY_NET}})
    swapped = swap_denoiser(base.net_state(), tuned.net_state())
    for name, value in swapped.items():
        source = tuned.net_state() if name.startswith("face.backbone.") else base.net_state()
        assert torch.equal(value, source[name]), name
    assert any(n.startswith("face.backbone.") for n in swapped) and any(n.startswith("face.audio") for n in swapped)


def test_generated_two_person_clip_exports_to_bvh(tiny_corpus: Path, tmp_path: Path) -> None:
    exp = load_experiment(_config(tmp_path, tiny_corpus, "body"))
    data = WindowSource(exp, "train")
    task = Task(exp, {"body_lower": {"part": "lower", "n_features": data.dims["lower"], **TINY_NET},
                      "body_upper": {"part": "upper", "n_features": data.dims["upper"],
                                     "n_lower": data.dims["lower"], **TINY_NET}}).eval()  # fmt: skip
    batch = data.batch(1, 30, torch.Generator().manual_seed(0))
    noise = {k: torch.randn_like(batch[k]) for k in ("lower", "upper")}
    out = task.sample(batch, 2, noise)
    lower = out["lower"][0].numpy() * data.stats["lower"]["std"] + data.stats["lower"]["mean"]
    upper = out["upper"][0].numpy() * data.stats["upper"]["std"] + data.stats["upper"]["mean"]
    skeleton, layout = Skeleton.from_dict(data.corpus.skeleton), MotionLayout.from_dict(data.corpus.layout.to_dict())
    for p, feats in enumerate(data.poser.split(lower, upper)):
        clip = features_to_clip(feats, layout, skeleton, (1.4 * p, 0.0), np.pi * p)
        write_bvh(tmp_path / f"{'AB'[p]}.bvh", clip)
        back = read_bvh(tmp_path / f"{'AB'[p]}.bvh")
        assert back.n_frames == 30 and back.skeleton.names == skeleton.names
        assert rotation_angle_deg(local_quats(back), local_quats(clip)).max() < 1e-3


@pytest.mark.slow
def test_ddp_with_torchrun_on_cpu(tiny_corpus: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, tiny_corpus, "face", steps=4, ckpt_every=4)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           "-m", "training.train", "--config", str(config)]  # fmt: skip
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    ckpt = load_weights(tmp_path / "face" / "face.pt")
    assert ckpt["meta"]["train"]["steps"] == 4


def test_voice_guidance_is_one_batched_call_equal_to_the_two_separate_ones() -> None:
    from training.models.body import AudioGuided, BodyConfig, BodyDenoiser, as_served

    torch.manual_seed(0)
    net = BodyDenoiser(BodyConfig(part="upper", n_features=6, n_lower=4, dim=32, depth=1, guidance=3.0)).eval()
    torch.nn.init.normal_(net.out.weight, std=0.5)
    b, t = 2, 10
    kw = {"actions": torch.randint(0, 3, (b, t, 2)), "placement": torch.randn(b, 4), "context": torch.zeros(b, t, 6),
          "context_mask": torch.zeros(b, t, 1), "lower": torch.randn(b, t, 4)}  # fmt: skip
    x, step, mel_a, mel_b = torch.randn(b, t, 6), torch.tensor([500, 20]), torch.randn(b, t, 80), torch.randn(b, t, 80)
    served = as_served(net)
    assert isinstance(served, AudioGuided)
    with torch.no_grad():
        cond = net(x, step, mel_a, mel_b, **kw)
        uncond = net(x, step, torch.zeros_like(mel_a), torch.zeros_like(mel_b), **kw)
        got = served(x, step, mel_a, mel_b, **kw)
    torch.testing.assert_close(got, uncond + 3.0 * (cond - uncond), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, cond)
    plain = BodyDenoiser(BodyConfig(part="lower", n_features=6, dim=32, depth=1))
    assert as_served(plain) is plain  # guidance 1: served as trained


def test_net_config_per_part_overrides_reach_only_that_part() -> None:
    from training.config import Experiment
    from training.tasks import model_configs

    exp = Experiment(model="body", net={"dim": 32, "depth": 1, "upper": {"guidance": 3.5}})
    cfg = model_configs(exp, {"lower": 10, "upper": 20}, 2)
    assert cfg["body_upper"]["guidance"] == 3.5 and cfg["body_upper"]["dim"] == 32
    assert "guidance" not in cfg["body_lower"] and "upper" not in cfg["body_lower"]


def _distill_gap(trainer: Trainer) -> float:
    """Mean squared gap between the student's K-step sample and the teacher's, on fixed windows and noise."""
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        return sum(trainer.task._distill(b, gen)[1]["pos"] for b in trainer.val.fixed_batches(3, 48, gen)) / 3


def test_distillation_pulls_the_one_step_student_to_the_teachers_k4(tiny_corpus: Path, tmp_path: Path) -> None:
    teacher = Trainer(load_experiment(_config(tmp_path, tiny_corpus, "face", steps=60))).fit()
    config = _config(tmp_path, tiny_corpus, "face", out=str(tmp_path / "student"), steps=40, lr=1e-3)
    exp = load_experiment(config, {"finetune.init": str(teacher), "distill.teacher": str(teacher),
                                   "distill.teacher_steps": 4, "distill.steps": 1})  # fmt: skip
    trainer = Trainer(exp)
    assert not any("teacher" in k for k in trainer.task.state_dict())  # frozen, outside the module tree
    assert sum(p.numel() for p in trainer.opt.param_groups[0]["params"]) == sum(
        p.numel() for p in trainer.task.parameters()
    )
    before = _distill_gap(trainer)
    path = trainer.fit()
    assert before > 0 and _distill_gap(trainer) < 0.7 * before
    assert load_weights(path)["meta"]["train"]["distill"]["steps"] == 1


def test_the_closure_term_shuts_lips_between_open_frames_and_keeps_open_ones_open() -> None:
    from runtime.formats.arkit import INDEX
    from training.config import DistillConfig, Experiment
    from training.data.faces import LIP_OPEN_GAP
    from training.tasks import CLOSURE_MARGIN, OPEN_WEIGHT, model_configs

    exp = Experiment(model="face", net=TINY_NET, distill=DistillConfig(closure=1.0))
    task = Task(exp, model_configs(exp, {"face": 52}, 4))
    mean, std = np.zeros(52, np.float32), np.full(52, 0.5, np.float32)
    task.set_face_scale({"mean": mean, "std": std})
    jaw, close = INDEX["jawOpen"], INDEX["mouthClose"]
    truth = np.zeros((3, 40, 52), np.float32)  # weights; every window's lips closed at rest
    truth[:, 5:15, jaw] = 0.4  # open, then a 2-frame closure (frames 15-16), open again, then rest from 27 on
    truth[:, 17:27, jaw] = 0.4
    pred = truth.copy()
    pred[:, :, jaw] += 0.1  # the prediction never quite closes: gap 0.1 on every closed frame ...
    pred[1:, 0:16, jaw] += 0.4  # ... and 0.5 where nothing may count: window 1's context, window 2's mouthClose
    batch = {"x0": torch.from_numpy((truth - mean) / std), "context_mask": torch.zeros(3, 40, 1),
             "loss_mask": torch.ones(3, 1, 52)}  # fmt: skip
    batch["context_mask"][1, :16] = 1.0  # window 1: frames 0-15 are known context
    batch["loss_mask"][2, 0, close] = 0.0  # window 2: its source does not animate mouthClose: nothing counts
    got = task._closure(torch.from_numpy((pred - mean) / std), batch).item()
    # counted: window 0's frames 0-4, 15, 16 and 27-31 (open within 5 frames), window 1's 16 and 27-31, each by
    # (0.1 - margin) / std(jaw); not window 0's 32-39 (no open frame near)
    per_frame = ((0.1 - CLOSURE_MARGIN) / 0.5) ** 2
    assert got == pytest.approx(per_frame, rel=1e-5)
    rest = np.zeros((1, 40, 52), np.float32)  # a mouth at rest with no speech near: no closure to count
    quiet = {"x0": torch.from_numpy(rest), "context_mask": torch.zeros(1, 40, 1), "loss_mask": torch.ones(1, 1, 52)}
    assert task._closure(torch.from_numpy(rest + 0.3), quiet).item() == 0.0
    pressed = np.where(truth[..., jaw] == 0, 0.03 - CLOSURE_MARGIN, 0.0)  # lips pressed past the margin where shut
    closed = pred.copy()
    closed[..., close] = pressed
    closed[:, 15:17, jaw] = 0.0
    closed[:, :5, jaw] = closed[:, 27:, jaw] = 0.0
    closed[1:, :16, jaw] = 0.0
    assert task._closure(torch.from_numpy((closed - mean) / std), batch).item() == 0.0
    mumbled = truth.copy()
    mumbled[..., close] = pressed
    mumbled[0, 6, jaw] = 0.0  # shut 2 frames after the truth opens (frame 4 is closed): timing there is free
    assert task._closure(torch.from_numpy((mumbled - mean) / std), batch).item() == 0.0
    mumbled[0, 8, jaw] = 0.0  # lips shut mid-vowel: one of 18 counted open frames (window 0's 7-12 and 19-24, and
    got = task._closure(torch.from_numpy((mumbled - mean) / std), batch).item()  # window 1's 19-24)
    assert got == pytest.approx(OPEN_WEIGHT * (LIP_OPEN_GAP / 0.5) ** 2 / 18, rel=1e-5)
    pushed = torch.from_numpy((pred - mean) / std).requires_grad_(True)
    task._closure(pushed, batch).backward()  # the term moves the lips (mouthClose), never the jaw
    assert pushed.grad[..., jaw].abs().max() == 0.0 and pushed.grad[..., close].abs().max() > 0.0
