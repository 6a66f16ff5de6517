"""The torch modules that become bundle graphs: one denoiser step, or the whole K-step sampler unrolled.

Both run the *runtime's* sampler maths (``runtime.model.sampling.sample_ddim``) on torch tensors, so the unrolled ONNX
graph is the same loop the runtime uses over the step graph (STYLE 2), traced once. The torch backend
(``export.torch_backend``) runs these same modules as the reference.
"""

from __future__ import annotations

import torch
from torch import nn

from runtime.model.sampling import Schedule, sample_ddim

# Condition inputs of each model, in graph input order (after x/t for step graphs, after noise for unrolled ones).
CONDITIONS: dict[str, tuple[str, ...]] = {
    "face": ("mel_self", "mel_partner", "style", "facing", "context", "context_mask"),
    "body_lower": ("mel_a", "mel_b", "actions", "placement", "context", "context_mask"),
    "body_upper": ("mel_a", "mel_b", "actions", "placement", "context", "context_mask", "lower"),
    "body_single": ("mel_a", "mel_b", "actions", "placement", "context", "context_mask"),
}
INT_INPUTS = {"t", "style", "actions"}  # int64 inputs; everything else float32


class StepGraph(nn.Module):
    """(x_t, t, *conditions) -> x0: one denoiser call."""

    def __init__(self, net: nn.Module, model: str) -> None:
        super().__init__()
        self.net = net
        self.names = CONDITIONS[model]

    def forward(self, x: torch.Tensor, t: torch.Tensor, *conds: torch.Tensor) -> torch.Tensor:
        return self.net(x, t, **dict(zip(self.names, conds, strict=True)))


class UnrolledGraph(nn.Module):
    """(noise, *conditions) -> x0: K deterministic DDIM steps with context inpainting, as one graph."""

    def __init__(self, net: nn.Module, model: str, schedule: Schedule, steps: int) -> None:
        super().__init__()
        self.net = net
        self.names = CONDITIONS[model]
        self.schedule = schedule
        self.steps = steps

    def forward(self, noise: torch.Tensor, *conds: torch.Tensor) -> torch.Tensor:
        kw = dict(zip(self.names, conds, strict=True))
        batch_zeros = torch.zeros_like(noise[:, 0, 0], dtype=torch.long)  # (B,) keeps the batch axis dynamic

        def denoise(x: torch.Tensor, step: int) -> torch.Tensor:
            return self.net(x, batch_zeros + step, **kw)

        return sample_ddim(
            denoise, noise, self.schedule, self.steps, context=kw["context"], context_mask=kw["context_mask"]
        )


def example_inputs(model: str, net: nn.Module, batch: int, frames: int, unrolled: bool) -> dict[str, torch.Tensor]:
    """Random inputs with the right names, shapes and dtypes (tracing, parity tests, benchmarks)."""
    c = net.config
    g = torch.Generator().manual_seed(0)
    n = c.n_features
    shapes = {
        "x": (batch, frames, n),
        "noise": (batch, frames, n),
        "mel_self": (batch, frames, c.n_mels),
        "mel_partner": (batch, frames, c.n_mels),
        "mel_a": (batch, frames, c.n_mels),
        "mel_b": (batch, frames, c.n_mels),
        "facing": (batch, frames, 1),
        "placement": (batch, 4),
        "context": (batch, frames, n),
        "context_mask": (batch, frames, 1),
        "lower": (batch, frames, getattr(c, "n_lower", 0)),
    }
    names = (("noise",) if unrolled else ("x", "t")) + CONDITIONS[model]
    out = {}
    for name in names:
        if name == "t":
            out[name] = torch.randint(0, 1000, (batch,), generator=g)
        elif name == "style":
            out[name] = torch.randint(0, c.n_styles + 1, (batch,), generator=g)
        elif name == "actions":
            out[name] = torch.randint(0, c.n_actions + 1, (batch, frames, 2), generator=g)
        elif name == "context_mask":
            mask = torch.zeros(shapes[name])
            mask[:, : frames // 3] = 1.0
            out[name] = mask
        elif name == "facing":
            out[name] = (torch.rand(shapes[name], generator=g) > 0.3).float()
        else:
            out[name] = torch.randn(shapes[name], generator=g)
    return out
