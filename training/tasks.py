"""What each checkpoint kind trains: networks, condition dropout, loss, and sampling (used by train and evaluate).

Batches are dicts of tensors made by ``training.data.windows`` (all normalised):
  face: x0 (B,T,52), mel_self, mel_partner (B,T,80), style (B,), facing (B,T,1), context_mask (B,T,1),
        loss_mask (B,1,52) (the channels each window's source supervises; real voices supervise only some)
  body: lower (B,T,Dl), upper (B,T,Du), mel_a, mel_b (B,T,80), actions (B,T,2), placement (B,4), context_mask
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from runtime.formats.arkit import ARKIT_NAMES, INDEX
from runtime.model.sampling import sample_ddim
from training.config import Experiment
from training.data.faces import LIP_CLOSED_GAP, LIP_OPEN_GAP
from training.models import build_nets
from training.models.body import as_served
from training.models.diffusion import Diffusion, DiffusionConfig, difference_loss

LIP_PREFIXES = ("jaw", "mouth")  # lip and jaw blendshapes: the lip-error channels and the fine-tuning loss
LIP_CHANNELS = tuple(i for i, n in enumerate(ARKIT_NAMES) if n.startswith(LIP_PREFIXES))
DENOISER_PREFIX = "backbone."  # the part swapped in after lip fine-tuning (paper B.2); the rest stays the base's
# The distilled face's lip-closure term (``DistillConfig.closure``): a frame of the truth is a closure when its lip gap
# (jawOpen - mouthClose, weight units) is below LIP_CLOSED_GAP (the metric's threshold) and the lips are open (gap
# above LIP_OPEN_GAP) within CLOSURE_REACH frames: a p/b/m inside speech, not a mouth at rest. There the student's gap
# is pushed below CLOSURE_MARGIN, a little past shut: the teacher pulls back, and a session's noise draw opens the
# jaw by a few hundredths (a margin of +0.02 left 12 % of closures at gaps 0.05-0.13, seed 2). Where the truth's
# lips are open and no closure is within OPEN_REACH frames, the student's are kept above LIP_OPEN_GAP, that part
# weighted OPEN_WEIGHT: without it the lips shut in vowels too (open frames outnumber closures about 10 to 1).
# Frames next to a closure are left free, where its timing is unsure.
CLOSURE_MARGIN, CLOSURE_REACH, OPEN_REACH, OPEN_WEIGHT = -0.02, 5, 2, 4.0


def model_configs(exp: Experiment, dims: dict[str, int], n_styles: int) -> dict[str, dict]:
    """Network configs of ``exp.model`` given the data's widths (face 52; body lower/upper of both people)."""
    net = {k: v for k, v in exp.net.items() if k not in ("lower", "upper")}  # shared; per part under its name
    if exp.model == "face":
        return {"face": {"n_features": dims["face"], "n_styles": n_styles, **net}}
    if exp.model == "body":
        return {
            "body_lower": {"part": "lower", "n_features": dims["lower"], **net, **exp.net.get("lower", {})},
            "body_upper": {
                "part": "upper",
                "n_features": dims["upper"],
                "n_lower": dims["lower"],
                **net,
                **exp.net.get("upper", {}),
            },
        }
    return {"body_single": {"part": "single", "n_features": dims["lower"] + dims["upper"], **net}}


class Match(NamedTuple):
    """One network's student matched to its teacher (``Task._match``)."""

    target: torch.Tensor  # the teacher's K-step sample
    loss: torch.Tensor  # position + velocity_weight * velocity
    pos: float
    vel: float
    student: torch.Tensor  # the student's sample


class Task(nn.Module):
    """The networks of one checkpoint kind, each inside a ``Diffusion`` wrapper."""

    def __init__(self, exp: Experiment, model_config: dict[str, dict]) -> None:
        super().__init__()
        self.kind = exp.model
        self.exp = exp
        self.model_config = model_config
        diff = DiffusionConfig(
            velocity_weight=exp.train.velocity_weight,
            acceleration_weight=exp.train.acceleration_weight,
            regression=exp.train.regression,
            context_noise=exp.train.context_noise,
        )
        self.models = nn.ModuleDict({k: Diffusion(v, diff) for k, v in build_nets(exp.model, model_config).items()})
        if exp.finetune.loss_channels == "lip":
            weights = torch.zeros(len(ARKIT_NAMES))
            weights[list(LIP_CHANNELS)] = 1.0
            self.register_buffer("channel_weights", weights, persistent=False)
        else:
            self.channel_weights = None

    def net_state(self) -> dict[str, torch.Tensor]:
        """Weights as checkpoints store them: ``<model>.<param>`` (model = face, body_lower, ...)."""
        return {f"{k}.{p}": v for k, m in self.models.items() for p, v in m.net.state_dict().items()}

    def load_net_state(self, state: dict[str, torch.Tensor]) -> None:
        for k, m in self.models.items():
            m.net.load_state_dict({p[len(k) + 1 :]: v for p, v in state.items() if p.startswith(k + ".")})

    # -- distillation ----------------------------------------------------------------------------------------
    def set_teacher(self, state: dict[str, torch.Tensor], model_config: dict[str, dict]) -> None:
        """Train this task as a few-step student of a frozen teacher (``DistillConfig``), the teacher sampling as
        served (a body part with voice guidance runs guided). The teacher is kept out of the module tree: not in
        state dicts, not in the optimiser, not copied into the EMA."""
        if self.kind == "body_single":
            raise NotImplementedError("distillation covers the face and the hierarchical body")
        teacher = Task(self.exp, model_config).eval().requires_grad_(False)
        teacher.load_net_state(state)
        for m in teacher.models.values():
            m.net = as_served(m.net)
        object.__setattr__(self, "teacher", teacher)

    def set_face_scale(self, stats: dict) -> None:
        """The face's normalisation (per-channel ``mean``, ``std``): the closure term measures lip gaps in weights."""
        for key in ("mean", "std"):
            self.register_buffer(f"face_{key}", torch.as_tensor(stats[key], dtype=torch.float32), persistent=False)

    def _lip_gap(self, x: torch.Tensor, lips_only: bool = False) -> torch.Tensor:
        """Normalised faces (B, T, 52) -> lip gap jawOpen - mouthClose (B, T) in weight units (not clipped);
        ``lips_only``: no gradient through jawOpen, so a term on the gap moves the lips and leaves the jaw alone."""
        w = x * self.face_std + self.face_mean
        jaw = w[..., INDEX["jawOpen"]]
        return (jaw.detach() if lips_only else jaw) - w[..., INDEX["mouthClose"]]

    def _closure(self, pred: torch.Tensor, batch: dict) -> torch.Tensor:
        """The lip-closure term, in jawOpen standard deviations squared, over generated frames whose source
        supervises both lip channels: the mean squared excess of the student's lip gap over CLOSURE_MARGIN on the
        truth's closures, plus OPEN_WEIGHT times its mean squared shortfall below LIP_OPEN_GAP where the truth's
        lips are open away from closures (see above), so that the lips do not shut between the closures instead."""

        def within(flags: torch.Tensor, reach: int) -> torch.Tensor:  # (B, T) 0/1 -> 1 where a flag is <= reach away
            return F.max_pool1d(flags[:, None], 2 * reach + 1, stride=1, padding=reach)[:, 0]

        gap = self._lip_gap(batch["x0"])
        is_open, is_shut = (gap > LIP_OPEN_GAP).float(), (gap < LIP_CLOSED_GAP).float()
        lips = batch["loss_mask"][..., [INDEX["jawOpen"], INDEX["mouthClose"]]].amin(-1)  # (B, 1)
        counted = (1.0 - batch["context_mask"][..., 0]) * lips
        shut = is_shut * within(is_open, CLOSURE_REACH) * counted
        opened = is_open * (1.0 - within(is_shut, OPEN_REACH)) * counted
        # through mouthClose only: the jaw follows the teacher (moving it too cost FACEGOOD's jaw r 0.79 -> 0.74)
        pred_gap, scale = self._lip_gap(pred, lips_only=True), self.face_std[INDEX["jawOpen"]]
        excess = (torch.relu(pred_gap - CLOSURE_MARGIN) / scale) ** 2
        shortfall = (torch.relu(LIP_OPEN_GAP - pred_gap) / scale) ** 2
        closing = (excess * shut).sum() / shut.sum().clamp_min(1.0)
        return closing + OPEN_WEIGHT * (shortfall * opened).sum() / opened.sum().clamp_min(1.0)

    def _match(self, name: str, cond: dict, x0: torch.Tensor, mask: torch.Tensor, gen: torch.Generator) -> Match:
        """The student of network ``name`` matched to its teacher from the same noise, conditions and known context:
        squared error on the generated frames plus the velocity term, as the denoising loss."""
        d = self.exp.distill
        noise = torch.randn(x0.shape, generator=gen)
        context = x0 * mask
        target = self.teacher.models[name].sample(cond, noise, d.teacher_steps, context, mask)
        student = self.models[name]
        pred = sample_ddim(student.denoiser(cond, context, mask), noise, student.schedule, d.steps,
                           context=context, context_mask=mask)  # fmt: skip
        w = 1.0 - mask
        pos = ((pred - target) ** 2 * w).sum() / w.expand_as(pred).sum().clamp_min(1.0)
        vel = difference_loss(pred, target, w, 1)
        return Match(target, pos + student.config.velocity_weight * vel, pos.item(), vel.item(), pred)

    def _distill(self, batch: dict, gen: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        mask = batch["context_mask"]
        if self.kind == "face":
            cond = {k: batch[k] for k in ("mel_self", "mel_partner", "style", "facing")}
            face = self._match("face", cond, batch["x0"], mask, gen)
            loss, parts = face.loss, {"pos": face.pos, "vel": face.vel}
            if self.exp.distill.closure > 0:
                closure = self._closure(face.student, batch)
                loss = loss + self.exp.distill.closure * closure
                parts["closure"] = closure.item()
            return loss, {"loss": loss.item(), **parts}
        cond = {k: batch[k] for k in ("mel_a", "mel_b", "actions", "placement")}
        lo = self._match("body_lower", cond, batch["lower"], mask, gen)
        # the upper body conditioned on the teacher's lower body, as it is served on the generated one
        up = self._match("body_upper", dict(cond, lower=lo.target), batch["upper"], mask, gen)
        loss = lo.loss + up.loss
        return loss, {"loss": loss.item(), "lower_pos": lo.pos, "lower_vel": lo.vel, "upper_pos": up.pos,
                      "upper_vel": up.vel}  # fmt: skip

    # -- training ------------------------------------------------------------------------------------------
    def _dropout(self, batch: dict, gen: torch.Generator) -> dict:
        t = self.exp.train
        b = next(iter(batch.values())).shape[0]

        def draw(p: float) -> torch.Tensor:
            return torch.rand(b, generator=gen) < p

        batch = dict(batch)
        if self.kind == "face":
            drop = draw(t.p_drop_partner)[:, None, None]
            batch["mel_partner"] = torch.where(drop, torch.zeros_like(batch["mel_partner"]), batch["mel_partner"])
            n_styles = self.models["face"].net.config.n_styles
            no_style = torch.full_like(batch["style"], n_styles)
            batch["style"] = torch.where(draw(t.p_drop_style), no_style, batch["style"])
        else:
            for key in ("mel_a", "mel_b"):
                drop = draw(t.p_drop_partner / 2)[:, None, None]
                batch[key] = torch.where(drop, torch.zeros_like(batch[key]), batch[key])
            n_actions = next(iter(self.models.values())).net.config.n_actions
            drop = draw(t.p_drop_action)[:, None, None]
            batch["actions"] = torch.where(drop, torch.full_like(batch["actions"], n_actions), batch["actions"])
        return batch

    def forward(
        self, batch: dict, gen: torch.Generator | None = None, all_channels: bool = False
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss of a batch; ``gen`` given = training (condition dropout on); ``all_channels`` ignores
        the fine-tuning's lip-only channel weights (the anchor batches)."""
        if getattr(self, "teacher", None) is not None and gen is not None:
            return self._distill(batch, gen)  # the served conditions: no dropout
        if gen is not None:
            batch = self._dropout(batch, gen)
        mask = batch["context_mask"]
        if self.kind == "face":
            cond = {k: batch[k] for k in ("mel_self", "mel_partner", "style", "facing")}
            weights = batch.get("loss_mask")  # (B, 1, 52): the channels each window's source supervises
            if not all_channels and self.channel_weights is not None:
                weights = self.channel_weights if weights is None else weights * self.channel_weights
            return self.models["face"].loss(batch["x0"], cond, mask, weights)
        cond = {k: batch[k] for k in ("mel_a", "mel_b", "actions", "placement")}
        if self.kind == "body_single":
            x0 = torch.cat([batch["lower"], batch["upper"]], dim=-1)
            return self.models["body_single"].loss(x0, cond, mask)
        lo, lo_parts = self.models["body_lower"].loss(batch["lower"], cond, mask)
        up, up_parts = self.models["body_upper"].loss(batch["upper"], dict(cond, lower=batch["lower"]), mask)
        parts = {f"lower_{k}": v for k, v in lo_parts.items()} | {f"upper_{k}": v for k, v in up_parts.items()}
        return lo + up, {"loss": (lo + up).item(), **parts}

    # -- sampling ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, batch: dict, k: int, noise: dict[str, torch.Tensor], context: dict | None = None) -> dict:
        """Generate a batch. ``noise``/``context`` map output names (x0 | lower, upper) to (B,T,D) tensors."""
        mask = batch["context_mask"]
        ctx = context or {}
        if self.kind == "face":
            cond = {k_: batch[k_] for k_ in ("mel_self", "mel_partner", "style", "facing")}
            return {"x0": self.models["face"].sample(cond, noise["x0"], k, ctx.get("x0"), mask)}
        cond = {k_: batch[k_] for k_ in ("mel_a", "mel_b", "actions", "placement")}
        if self.kind == "body_single":
            dl = batch["lower"].shape[-1] if "lower" in batch else noise["lower"].shape[-1]
            both_ctx = torch.cat([ctx["lower"], ctx["upper"]], -1) if ctx else None
            out = self.models["body_single"].sample(cond, torch.cat([noise["lower"], noise["upper"]], -1), k,
                                                    both_ctx, mask)  # fmt: skip
            return {"lower": out[..., :dl], "upper": out[..., dl:]}
        lower = self.models["body_lower"].sample(cond, noise["lower"], k, ctx.get("lower"), mask)
        upper = self.models["body_upper"].sample(dict(cond, lower=lower), noise["upper"], k, ctx.get("upper"), mask)
        return {"lower": lower, "upper": upper}


def swap_denoiser(base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Paper B.2: the base model's weights with only the denoiser (transformer) weights taken from ``tuned``."""
    out = dict(base)
    swapped = 0
    for name, value in tuned.items():
        model, _, param = name.partition(".")
        if param.startswith(DENOISER_PREFIX):
            if name not in base or base[name].shape != value.shape:
                raise ValueError(f"denoiser weight {name} does not match the base model")
            out[name] = value
            swapped += 1
    if not swapped:
        raise ValueError("no denoiser weights found to swap (expected names like 'face.backbone.*')")
    return out
