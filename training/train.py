"""Train a face or body model: ``python -m training.train --config training/configs/face.yaml``.

One entry for every model (the config's ``model`` picks it). AdamW with warm-up and cosine decay, EMA weights,
random window lengths and context lengths, condition dropout, feature-domain audio augmentation. Writes to the
run folder: ``metrics.csv`` (and TensorBoard events when installed), a resumable ``state.pt`` and the weights-only
``<name>.pt`` that export reads. Re-running the same command resumes. Multi-GPU / multi-process with
``torchrun --nproc_per_node N -m training.train ...`` (DDP; gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import argparse
import copy
import csv
import logging
import math
import os
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml
from torch import distributed as dist

from training.checkpoint import load_weights, save_weights
from training.config import Experiment, load_experiment
from training.data.augment import augment_mel
from training.data.windows import WindowSource
from training.tasks import DENOISER_PREFIX, Task, model_configs, swap_denoiser

log = logging.getLogger("training.train")


def _lr(step: int, exp: Experiment) -> float:
    t = exp.train
    if step < t.warmup:
        return t.lr * (step + 1) / t.warmup
    progress = min(1.0, (step - t.warmup) / max(1, t.steps - t.warmup))
    return t.lr_min + 0.5 * (t.lr - t.lr_min) * (1 + math.cos(math.pi * progress))


class Trainer:
    def __init__(self, exp: Experiment, rank: int = 0, world: int = 1) -> None:
        self.exp, self.rank, self.world = exp, rank, world
        self.out = Path(exp.train.out)
        torch.set_num_threads(exp.train.threads)
        torch.manual_seed(exp.train.seed)
        self.data = WindowSource(exp, split="train")
        self.val = WindowSource(exp, split="test", stats=self.data.stats)
        # fine-tuning: windows of the corpus with the full loss keep the rest of the face (and the lips) in place
        self.anchors = [
            WindowSource(replace(exp, data=replace(exp.data, subset=subset)), split="train", stats=self.data.stats)
            for subset in (exp.finetune.anchor_subsets if exp.finetune.anchor > 0 else ())
        ]
        configs = model_configs(exp, self.data.dims, self.data.n_styles)
        self.task = Task(exp, configs)
        if exp.model == "face":
            self.task.set_face_scale(self.data.stats["face"])
        if exp.finetune.init:
            init = load_weights(exp.finetune.init)
            self.task.load_net_state(init["state_dict"])
            log.info("initialised from %s", exp.finetune.init)
        self.ema = copy.deepcopy(self.task).eval().requires_grad_(False)
        if exp.distill.teacher:  # after the EMA copy: the teacher is frozen and belongs to the training task only
            teacher = load_weights(exp.distill.teacher)
            self.task.set_teacher(teacher["state_dict"], teacher["model_config"])
            log.info("distilling %s (K %d) into K %d", exp.distill.teacher, exp.distill.teacher_steps,
                     exp.distill.steps)  # fmt: skip
        params = [
            p for n, p in self.task.named_parameters()
            if exp.finetune.train_only == "all" or f".net.{DENOISER_PREFIX}" in n
        ]  # fmt: skip
        self.opt = torch.optim.AdamW(params, lr=exp.train.lr, weight_decay=exp.train.weight_decay)
        self.model = self.task
        if world > 1:
            self.model = torch.nn.parallel.DistributedDataParallel(self.task)
        self.step = 0
        self.gen = torch.Generator().manual_seed(exp.train.seed * 1000 + rank)
        self._resume()

    # -- state ---------------------------------------------------------------------------------------------
    def _resume(self) -> None:
        state_path = self.out / "state.pt"
        if not state_path.is_file():
            return
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        self.task.load_state_dict(state["task"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])
        self.step = state["step"]
        log.info("resumed %s at step %d", state_path, self.step)

    def _save_state(self) -> None:
        if self.rank:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        state = {"task": self.task.state_dict(), "ema": self.ema.state_dict(), "opt": self.opt.state_dict(),
                 "gen": self.gen.get_state(), "step": self.step}  # fmt: skip
        tmp = self.out / "state.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(self.out / "state.pt")

    def save_weights(self) -> Path:
        """The EMA weights, weights-only, with everything export needs."""
        path = self.out / f"{self.exp.name}.pt"
        meta = self.data.meta() | {"train": {"steps": self.step, "config": self.exp.train.__dict__,
                                             "net": self.exp.net, "finetune": self.exp.finetune.__dict__,
                                             "distill": self.exp.distill.__dict__}}  # fmt: skip
        state = self.ema.net_state()
        if self.exp.finetune.swap_into:
            tuned = self.out / f"{self.exp.name}_unswapped.pt"  # the fine-tuned model as trained, for the ablation
            save_weights(tuned, self.exp.model, self.task.model_config, state, dict(meta, train=dict(meta["train"])))
            base = load_weights(self.exp.finetune.swap_into)
            state = swap_denoiser(base["state_dict"], state)
            meta["train"]["swapped_into"] = {"base": self.exp.finetune.swap_into, "sha256": base["sha256"]}
        save_weights(path, self.exp.model, self.task.model_config, state, meta)
        return path

    # -- loop ----------------------------------------------------------------------------------------------
    def _batch(self, source: WindowSource | None = None) -> dict:
        t = self.exp.train
        short = torch.rand(1, generator=self.gen).item() < t.p_short
        length = int(torch.randint(t.min_window, t.window + 1, (1,), generator=self.gen)) if short else t.window
        augment = (lambda mel: augment_mel(mel, self.exp.augment, self.gen)) if t.augment else None
        return (source or self.data).batch(t.batch_size, length, self.gen, augment)

    @torch.no_grad()
    def _ema_update(self) -> None:
        decay = min(self.exp.train.ema, (1 + self.step) / (10 + self.step))
        for e, p in zip(self.ema.parameters(), self.task.parameters(), strict=True):
            e.lerp_(p, 1 - decay)

    @torch.no_grad()
    def validate(self) -> float:
        with torch.random.fork_rng():
            torch.manual_seed(1234)  # the same windows, diffusion steps and noise every time
            gen = torch.Generator().manual_seed(1234)
            losses = [self.ema(b)[0].item() for b in self.val.fixed_batches(4, self.exp.train.window, gen)]
        return sum(losses) / max(1, len(losses))

    def fit(self) -> Path:
        t = self.exp.train
        writer, tb = None, None
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(yaml.safe_dump(_as_dict(self.exp), sort_keys=False))
            new = not (self.out / "metrics.csv").exists()
            writer = open(self.out / "metrics.csv", "a", newline="")  # noqa: SIM115 (closed below)
            if new:
                writer.write("step,seconds,lr,loss,pos,vel,val_loss\n")
            tb = _tensorboard(self.out)
        bar = _progress(self.step, t.steps, self.rank)
        start = time.time()
        self.task.train()
        while self.step < t.steps:
            lr = _lr(self.step, self.exp)
            for g in self.opt.param_groups:
                g["lr"] = lr
            loss, parts = self.model(self._batch(), self.gen)  # Task.forward is the loss (DDP syncs through it)
            for source in self.anchors:
                anchor, _ = self.model(self._batch(source), self.gen, all_channels=True)
                loss = loss + self.exp.finetune.anchor * anchor
            if self.anchors:
                parts = dict(parts, loss=loss.item())
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.task.parameters(), t.grad_clip)
            self.opt.step()
            self._ema_update()
            self.step += 1
            bar.update(1)
            val = None
            if self.step % t.eval_every == 0 or self.step == t.steps:
                val = self.validate() if self.rank == 0 else None
            if self.rank == 0 and (self.step % t.log_every == 0 or val is not None):
                pos = parts.get("pos", parts.get("lower_pos", 0.0) + parts.get("upper_pos", 0.0))
                vel = parts.get("vel", parts.get("lower_vel", 0.0) + parts.get("upper_vel", 0.0))
                row = [self.step, round(time.time() - start, 1), f"{lr:.3g}", f"{parts['loss']:.5f}", f"{pos:.5f}",
                       f"{vel:.5f}", "" if val is None else f"{val:.5f}"]  # fmt: skip
                csv.writer(writer).writerow(row)
                writer.flush()
                bar.set_postfix(loss=f"{parts['loss']:.4f}", **({"val": f"{val:.4f}"} if val is not None else {}))
                if tb is not None:
                    tb.add_scalar("loss/train", parts["loss"], self.step)
                    if val is not None:
                        tb.add_scalar("loss/val", val, self.step)
            if self.step % t.ckpt_every == 0 or self.step == t.steps:
                self._save_state()
        bar.close()
        if writer is not None:
            writer.close()
        return self.save_weights() if self.rank == 0 else self.out


def _as_dict(exp: Experiment) -> dict:
    augment = {k: list(v) if isinstance(v, tuple) else v for k, v in exp.augment.__dict__.items()}
    return {"model": exp.model, "data": exp.data.__dict__, "net": exp.net, "train": exp.train.__dict__,
            "finetune": exp.finetune.__dict__, "augment": augment, "distill": exp.distill.__dict__}  # fmt: skip


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tb"))


def _progress(start: int, total: int, rank: int):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the train extra
        tqdm = None
    if tqdm is None or rank:

        class _Quiet:
            def update(self, n: int) -> None: ...
            def set_postfix(self, **kw) -> None: ...
            def close(self) -> None: ...

        return _Quiet()
    return tqdm(total=total, initial=start, desc="train", dynamic_ncols=True, mininterval=2.0)


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, type=Path, help="experiment YAML (training/configs/*.yaml)")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="override config values")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    exp = load_experiment(args.config, overrides)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        path = Trainer(exp, rank, world).fit()
    finally:
        if world > 1:
            dist.destroy_process_group()
    if rank == 0:
        log.info("wrote %s", path)
    return path


if __name__ == "__main__":
    main()
