"""Body denoisers for two people at once (paper 4.2): lower body first, then upper body conditioned on it.

``part="lower"``: root deltas + hip height + hips and legs of A and B. ``part="upper"``: spine, neck, head, arms
and hands of A and B, additionally given the lower-body result. ``part="single"``: every joint of both people in
one network (the paper's LDA_2 baseline). Same backbone throughout: a transformer with a learned
translation-invariant distance bias (LDA's TISA idea), x0 prediction.

Conditions: log-mel of both speakers, per-frame action label of each person {sit, walk, stand}, the relative
placement of B in A's heading frame at the window start, optional per-frame text features (zeros + mask when
absent), streaming context + mask, diffusion step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from runtime.constants import ACTIONS, N_MELS
from training.models.layers import AudioEncoder, Backbone, step_embedding

PARTS = ("lower", "upper", "single")
PLACEMENT_DIMS = 4  # B relative to A: [dx, dz (m, A's heading frame), cos dyaw, sin dyaw]


@dataclass(frozen=True)
class BodyConfig:
    part: str = "lower"
    n_features: int = 62  # output width: both people's features of this part (normalised)
    n_lower: int = 0  # width of the lower-body input (part "upper" only)
    n_mels: int = N_MELS
    n_actions: int = len(ACTIONS)  # index n_actions is "no label" (dropout)
    text_dim: int = 0  # per-frame text features (e.g. BERT); 0 = no text input
    dim: int = 256
    depth: int = 4
    n_heads: int = 4
    ff_mult: int = 2
    dropout: float = 0.1
    max_distance: int = 64  # frames; distances beyond share one learned bias
    # Classifier-free guidance on both voices when served (``guided``): x0 = u + g (c - u), u = the prediction with
    # both microphones silent (zero normalised mel, as condition dropout trains it). 1 = off. Training ignores it.
    guidance: float = 1.0

    def __post_init__(self) -> None:
        if self.part not in PARTS:
            raise ValueError(f"body part must be one of {PARTS}, got {self.part!r}")
        if (self.part == "upper") != (self.n_lower > 0):
            raise ValueError("n_lower must be > 0 exactly when part is 'upper'")

    def to_dict(self) -> dict:
        return asdict(self)


class BodyDenoiser(nn.Module):
    def __init__(self, config: BodyConfig) -> None:
        super().__init__()
        self.config = c = config
        self.motion_in = nn.Linear(2 * c.n_features + 1 + c.n_lower, c.dim)  # noisy x, context, mask, lower
        self.audio_a = AudioEncoder(c.n_mels, c.dim // 2, c.dropout)
        self.audio_b = AudioEncoder(c.n_mels, c.dim // 2, c.dropout)
        self.audio_proj = nn.Linear(c.dim, c.dim)
        self.action_a = nn.Embedding(c.n_actions + 1, c.dim)
        self.action_b = nn.Embedding(c.n_actions + 1, c.dim)
        self.text = nn.Linear(c.text_dim + 1, c.dim) if c.text_dim else None
        self.step = nn.Sequential(nn.Linear(c.dim, c.dim), nn.SiLU(), nn.Linear(c.dim, c.dim))
        self.placement = nn.Sequential(nn.Linear(PLACEMENT_DIMS, c.dim), nn.SiLU(), nn.Linear(c.dim, c.dim))
        self.backbone = Backbone(c.dim, c.depth, c.n_heads, c.ff_mult, c.dropout, "learned", c.max_distance)
        self.out = nn.Linear(c.dim, c.n_features)

    def forward(
        self,
        x: torch.Tensor,  # (B, T, n_features) noisy normalised motion of both people
        t: torch.Tensor,  # (B,) diffusion step
        mel_a: torch.Tensor,  # (B, T, 80) normalised log-mel, person A's microphone
        mel_b: torch.Tensor,  # (B, T, 80) person B's
        actions: torch.Tensor,  # (B, T, 2) int64 action id of A and B, n_actions = none
        placement: torch.Tensor,  # (B, 4) B relative to A at the window start
        context: torch.Tensor,  # (B, T, n_features) known frames, zeros elsewhere
        context_mask: torch.Tensor,  # (B, T, 1) 1 on known frames
        lower: torch.Tensor | None = None,  # (B, T, n_lower) clean lower body (part "upper")
        text: torch.Tensor | None = None,  # (B, T, text_dim) text features
        text_mask: torch.Tensor | None = None,  # (B, T, 1) 1 where text features are present
    ) -> torch.Tensor:  # (B, T, n_features) predicted clean motion (normalised)
        c = self.config
        parts = [x, context, context_mask] + ([lower] if c.n_lower else [])
        h = self.motion_in(torch.cat(parts, dim=-1))
        h = h + self.audio_proj(torch.cat([self.audio_a(mel_a), self.audio_b(mel_b)], dim=-1))
        h = h + self.action_a(actions[..., 0]) + self.action_b(actions[..., 1])
        if self.text is not None and text is not None and text_mask is not None:
            h = h + self.text(torch.cat([text * text_mask, text_mask], dim=-1))
        prefix = torch.stack([self.step(step_embedding(t, c.dim)), self.placement(placement)], dim=1)
        return self.out(self.backbone(h, prefix))


class AudioGuided(nn.Module):
    """A body denoiser served with classifier-free guidance on the voices: one batched call of the conditioned and
    the unconditioned (both microphones silent) inputs, x0 = u + g (c - u) (Ho & Salimans 2022, on x0)."""

    def __init__(self, net: BodyDenoiser) -> None:
        super().__init__()
        self.net = net
        self.config = net.config
        self.scale = net.config.guidance

    def forward(self, x: torch.Tensor, t: torch.Tensor, mel_a: torch.Tensor, mel_b: torch.Tensor, **kw) -> torch.Tensor:
        b = x.shape[0]
        both = {k: None if v is None else torch.cat([v, v]) for k, v in kw.items()}
        out = self.net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([mel_a, torch.zeros_like(mel_a)]),
                       torch.cat([mel_b, torch.zeros_like(mel_b)]), **both)  # fmt: skip
        cond, uncond = out[:b], out[b:]
        return uncond + self.scale * (cond - uncond)


def as_served(net: nn.Module) -> nn.Module:
    """``net`` as served: wrapped in ``AudioGuided`` if its config asks for guidance, else itself."""
    return AudioGuided(net) if getattr(net.config, "guidance", 1.0) != 1.0 else net
