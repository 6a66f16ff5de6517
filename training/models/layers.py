"""Building blocks shared by the face and body denoisers (torch). Exportable to ONNX: plain matmuls, no fused ops.

Attention is translation-invariant: scores get a bias that depends only on the distance between frames, either
ALiBi-like linear slopes (FaceFormer / DiffSpeaker's biased attention) or a learned table over clipped distances
(LDA's translation-invariant self-attention, TISA). Nothing depends on absolute position inside the window, so a
streaming window can start anywhere.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def step_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """(B,) diffusion steps -> (B, dim) sinusoidal embedding (DDPM / DiT)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def periodic_encoding(n_frames: int, dim: int, period: int, device: torch.device) -> torch.Tensor:
    """(T, dim) periodic positional encoding (FaceFormer): sinusoids of (frame index mod period).

    Paper B.1: period 30 frames = 1 s. Only the phase within the period is encoded, never the absolute position.
    """
    pos = (torch.arange(n_frames, device=device) % period).float()[:, None]
    div = torch.exp(torch.arange(0, dim, 2, device=device).float() * (-math.log(10_000.0) / dim))
    enc = torch.zeros(n_frames, dim, device=device)
    enc[:, 0::2] = torch.sin(pos * div)
    enc[:, 1::2] = torch.cos(pos * div)
    return enc


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Per-head slopes 2^(-8 h / H), h = 1..H (Press et al. 2022)."""
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / n_heads) for h in range(n_heads)])


class DistanceBias(nn.Module):
    """Attention bias from the frame distance |i - j| only: ALiBi (fixed slopes) or a learned TISA-like table."""

    def __init__(self, n_heads: int, kind: str = "alibi", max_distance: int = 64) -> None:
        super().__init__()
        if kind not in ("alibi", "learned"):
            raise ValueError(f"attention bias kind must be 'alibi' or 'learned', got {kind!r}")
        self.kind = kind
        self.max_distance = max_distance
        if kind == "alibi":
            self.register_buffer("slopes", alibi_slopes(n_heads), persistent=False)
        else:
            self.table = nn.Parameter(torch.zeros(n_heads, 2 * max_distance + 1))

    def forward(self, n_frames: int, device: torch.device) -> torch.Tensor:
        """-> (H, T, T) additive bias."""
        idx = torch.arange(n_frames, device=device)
        rel = idx[None, :] - idx[:, None]  # (T, T) j - i
        if self.kind == "alibi":
            return -self.slopes[:, None, None] * rel.abs().float()[None]
        rel = rel.clamp(-self.max_distance, self.max_distance) + self.max_distance
        return self.table[:, rel]


class Attention(nn.Module):
    def __init__(self, dim: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"model width {dim} is not divisible by {n_heads} heads")
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """x (B, N, dim), bias (H, N, N) or (B, H, N, N) -> (B, N, dim)."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(d // self.n_heads)) + bias
        weights = F.dropout(scores.softmax(dim=-1), self.dropout, self.training)
        return self.out((weights @ v).transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(LN x); x + FF(LN x)."""

    def __init__(self, dim: int, n_heads: int, ff_mult: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, n_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(
            nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_mult * dim, dim)
        )

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), bias)
        return x + self.ff(self.norm2(x))


class Backbone(nn.Module):
    """Transformer over frames with ``n_prefix`` global condition tokens in front (DiffSpeaker's biased conditional
    attention: frames attend to the condition tokens with no distance penalty, condition tokens see everything).
    """

    def __init__(
        self, dim: int, depth: int, n_heads: int, ff_mult: int, dropout: float, bias: str, max_distance: int = 64
    ) -> None:
        super().__init__()
        self.bias = DistanceBias(n_heads, bias, max_distance)
        self.blocks = nn.ModuleList(Block(dim, n_heads, ff_mult, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, frames: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """frames (B, T, dim), prefix (B, P, dim) -> (B, T, dim)."""
        n_prefix, n_frames = prefix.shape[1], frames.shape[1]
        frame_bias = self.bias(n_frames, frames.device)  # (H, T, T)
        bias = F.pad(frame_bias, (n_prefix, 0, n_prefix, 0))  # condition tokens: zero bias both ways
        x = torch.cat([prefix, frames], dim=1)
        for block in self.blocks:
            x = block(x, bias)
        return self.norm(x[:, n_prefix:])


class AudioEncoder(nn.Module):
    """Per-frame log-mel (B, T, n_mels) -> (B, T, dim): two temporal convolutions (+-2 frames), GELU."""

    def __init__(self, n_mels: int, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, kernel_size=3, padding=1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.conv1(mel.transpose(1, 2)))
        h = F.gelu(self.conv2(self.dropout(h)))
        return h.transpose(1, 2)
