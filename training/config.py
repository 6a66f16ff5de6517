"""Experiment configuration: small frozen dataclasses with defaults (STYLE 4); a YAML file overrides a few values.

    model: face                     # face | body | body_single
    data: {corpus: data/corpus}
    net: {dim: 256, depth: 4}       # FaceConfig / BodyConfig fields (body: applied to both networks)
    train: {steps: 4000, batch_size: 16}
    finetune: {init: runs/face/face.pt, subset: lip, loss_channels: lip}

Unknown keys are errors that name the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import yaml

from training.data.augment import AugmentConfig
from training.models import KINDS


@dataclass(frozen=True)
class DataConfig:
    corpus: str = "data/corpus"  # an InterAct-layout folder (the release or the synthetic corpus)
    cache: str = "data/cache"  # per-sequence feature arrays and normalisation statistics
    test_fraction: float = 0.14  # held-out sequences (paper B.1: 33 of 241)
    subset: str = "dialogue"  # "dialogue" (two-person scenes), "lip" (lip-accurate single speaker) or "real" (voices)
    # subset "real": training.data.real's sources -> sampling weight per frame (1 = in proportion to their length)
    real_sources: dict = field(default_factory=lambda: {"english": 1.0, "facegood": 1.0})


@dataclass(frozen=True)
class TrainConfig:
    out: str = "runs/face"  # run folder: state.pt (resumable), metrics.csv, <name>.pt (weights only)
    steps: int = 4000
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: int = 200  # steps of linear learning-rate warm-up, then cosine decay to lr_min
    lr_min: float = 3e-5
    grad_clip: float = 1.0
    ema: float = 0.999  # EMA of weights; the exported model is the EMA one
    window: int = 150  # frames per training window: 5 s (paper B.1)
    min_window: int = 24  # shortest window: streaming windows are short, so train on short ones too
    p_short: float = 0.5  # fraction of batches using a random length in [min_window, window]
    max_context: int = 48  # known context frames drawn uniformly in 0..max_context (DESIGN 5)
    p_drop_partner: float = 0.1  # condition dropout (classifier-free guidance, graceful degradation)
    p_drop_style: float = 0.1
    p_drop_action: float = 0.1
    velocity_weight: float = 1.0
    acceleration_weight: float = 0.0  # loss on second differences (see DiffusionConfig)
    context_noise: float = 0.5  # max std of the noise blurring the known context (see DiffusionConfig)
    regression: bool = False  # the same-size no-diffusion baseline
    augment: bool = True
    log_every: int = 50
    eval_every: int = 500
    ckpt_every: int = 500
    seed: int = 0
    threads: int = 2  # torch intra-op threads per process


@dataclass(frozen=True)
class FinetuneConfig:
    init: str = ""  # weights-only checkpoint to start from ("" = train from scratch)
    loss_channels: str = "all"  # "all" or "lip" (loss on lip and jaw blendshapes only, paper 4.1)
    train_only: str = "all"  # "all" parameters or only the "denoiser" (transformer) while fine-tuning
    swap_into: str = ""  # base checkpoint: after fine-tuning, write a variant = base + this run's denoiser weights
    anchor: float = 0.0  # weight of a full-loss batch of each anchor subset added to every step (0 = none)
    anchor_subsets: tuple[str, ...] = ("dialogue",)  # corpus subsets that anchor a fine-tuning ("dialogue", "lip")


@dataclass(frozen=True)
class DistillConfig:
    """Few-step students (issue 14): the student's K-step DDIM output is trained to match the teacher's from the
    same noise, conditions and context (sampler distillation, Luhman & Luhman 2021). The student starts from
    ``finetune.init`` (normally the teacher's weights)."""

    teacher: str = ""  # the teacher's weights-only checkpoint ("" = no distillation)
    teacher_steps: int = 4  # DDIM steps the teacher samples with (its served K)
    steps: int = 1  # the student's K
    # Weight of the lip-closure term (faces, ``training.tasks.Task._closure``): the student's lips shut where the
    # truth's close between open frames (p, b, m) and stay open in the vowels away from them (0 = off).
    closure: float = 0.0


@dataclass(frozen=True)
class Experiment:
    model: str = "face"
    data: DataConfig = field(default_factory=DataConfig)
    net: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    @property
    def name(self) -> str:
        return Path(self.train.out).name


def _build(cls, values: dict, where: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def load_experiment(path: str | Path, overrides: dict | None = None) -> Experiment:
    """Read a YAML experiment; ``overrides`` like {"train.steps": 10} win over the file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: cannot read experiment config ({e})") from e
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        if name:
            raw.setdefault(section, {})[name] = value
        else:
            raw[section] = value
    sections = {"data": DataConfig, "train": TrainConfig, "finetune": FinetuneConfig, "augment": AugmentConfig,
                "distill": DistillConfig}  # fmt: skip
    unknown = sorted(set(raw) - set(sections) - {"model", "net"})
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {unknown}")
    exp = Experiment(
        model=raw.get("model", "face"),
        net=dict(raw.get("net") or {}),
        **{k: _build(cls, raw.get(k) or {}, f"{path} [{k}]") for k, cls in sections.items()},
    )
    if exp.model not in KINDS:
        raise ValueError(f"{path}: model must be one of {sorted(KINDS)}, got {exp.model!r}")
    return exp


def with_train(exp: Experiment, **changes) -> Experiment:
    return replace(exp, train=replace(exp.train, **changes))
