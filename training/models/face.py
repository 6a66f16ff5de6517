"""Face denoiser: two-speaker audio -> ARKit weights (paper 4.1; DiffSpeaker-style diffusion transformer).

Per frame: noisy weights, known context (+ mask), own and partner log-mel encoded separately then concatenated and
projected (paper eq. 3), the "facing the partner" flag, a periodic positional encoding (period 30 frames, paper B.1).
Global condition tokens in front of the frames: diffusion step and speaker style (biased conditional attention).
Predicts x0. The network knows nothing of noise schedules (STYLE 2); ``training.models.diffusion`` does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from runtime.constants import N_MELS
from runtime.formats.arkit import N_BLENDSHAPES
from training.models.layers import AudioEncoder, Backbone, periodic_encoding, step_embedding


@dataclass(frozen=True)
class FaceConfig:
    n_features: int = N_BLENDSHAPES  # 52 ARKit weights (normalised)
    n_mels: int = N_MELS
    n_styles: int = 16  # learned speaker-style embeddings; index n_styles is "no style" (dropout, unknown actor)
    dim: int = 256
    depth: int = 4
    n_heads: int = 4
    ff_mult: int = 2
    dropout: float = 0.1
    period: int = 30  # frames; periodic positional encoding, 1 s at 30 fps (paper B.1)

    def to_dict(self) -> dict:
        return asdict(self)


class FaceDenoiser(nn.Module):
    def __init__(self, config: FaceConfig) -> None:
        super().__init__()
        self.config = c = config
        self.motion_in = nn.Linear(2 * c.n_features + 1, c.dim)  # noisy x, context, context mask
        self.audio_self = AudioEncoder(c.n_mels, c.dim // 2, c.dropout)
        self.audio_partner = AudioEncoder(c.n_mels, c.dim // 2, c.dropout)
        self.audio_proj = nn.Linear(c.dim, c.dim)
        self.facing = nn.Linear(1, c.dim)
        self.step = nn.Sequential(nn.Linear(c.dim, c.dim), nn.SiLU(), nn.Linear(c.dim, c.dim))
        self.style = nn.Embedding(c.n_styles + 1, c.dim)
        self.backbone = Backbone(c.dim, c.depth, c.n_heads, c.ff_mult, c.dropout, bias="alibi")
        self.out = nn.Linear(c.dim, c.n_features)

    def forward(
        self,
        x: torch.Tensor,  # (B, T, 52) noisy normalised weights
        t: torch.Tensor,  # (B,) diffusion step
        mel_self: torch.Tensor,  # (B, T, 80) normalised log-mel of this person's microphone
        mel_partner: torch.Tensor,  # (B, T, 80) the partner's
        style: torch.Tensor,  # (B,) int64 speaker-style id, n_styles = none
        facing: torch.Tensor,  # (B, T, 1) 1 while facing the partner
        context: torch.Tensor,  # (B, T, 52) known (committed) frames, zeros elsewhere
        context_mask: torch.Tensor,  # (B, T, 1) 1 on known frames
    ) -> torch.Tensor:  # (B, T, 52) predicted clean weights (normalised)
        c = self.config
        audio = self.audio_proj(torch.cat([self.audio_self(mel_self), self.audio_partner(mel_partner)], dim=-1))
        h = self.motion_in(torch.cat([x, context, context_mask], dim=-1)) + audio + self.facing(facing)
        h = h + periodic_encoding(x.shape[1], c.dim, c.period, x.device)
        prefix = torch.stack([self.step(step_embedding(t, c.dim)), self.style(style)], dim=1)  # (B, 2, dim)
        return self.out(self.backbone(h, prefix))
