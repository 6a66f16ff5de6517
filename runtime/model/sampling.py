"""Diffusion schedule and the deterministic DDIM sampler, as plain maths over any callable (DESIGN sections 1, 5).

The sampler only multiplies and adds arrays by Python floats, so the *same* function drives a numpy array
through an ONNX Runtime / TensorRT graph in serving, a torch tensor through an ``nn.Module`` in training, and is
traced into the unrolled K-step ONNX graph by ``export``. One loop, never two copies (STYLE 2).

Parameterisation: the network predicts the clean sample x0 (paper 4.1, DiffSpeaker). Cosine schedule
(Nichol & Dhariwal 2021).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

N_TRAIN_STEPS = 1000  # discrete diffusion steps seen in training; samplers visit K of them

Denoiser = Callable[[Any, int], Any]  # (x_t, step) -> predicted x0, same array type as x_t


@dataclass(frozen=True)
class Schedule:
    """Cosine noise schedule: alpha_bar(t) = cos^2(((t+1)/T + s) / (1 + s) * pi/2) / alpha_bar(-1)."""

    n_steps: int = N_TRAIN_STEPS
    offset: float = 0.008  # s in Nichol & Dhariwal: keeps beta_0 from being vanishingly small
    max_beta: float = 0.999  # clip so the last steps stay finite

    @cached_property
    def alphas_cumprod(self) -> np.ndarray:
        """(n_steps,) float64 alpha_bar at steps 0..n_steps-1 (step 0 = least noise)."""

        def f(u: np.ndarray) -> np.ndarray:
            return np.cos((u + self.offset) / (1 + self.offset) * math.pi / 2) ** 2

        u = np.arange(self.n_steps + 1, dtype=np.float64) / self.n_steps
        betas = np.minimum(1 - f(u[1:]) / f(u[:-1]), self.max_beta)
        return np.cumprod(1 - betas)

    def timesteps(self, k: int) -> list[int]:
        """K steps for DDIM, evenly spaced and descending, always starting at the noisiest step.

        >>> Schedule().timesteps(4)
        [999, 749, 499, 249]
        """
        if not 1 <= k <= self.n_steps:
            raise ValueError(f"number of sampling steps must be in 1..{self.n_steps}, got {k}")
        stride = self.n_steps / k
        return [int(round(self.n_steps - 1 - i * stride)) for i in range(k)]

    def describe(self, k: int) -> dict:
        """What a bundle manifest records about sampling with K steps."""
        steps = self.timesteps(k)
        return {
            "kind": "cosine",
            "n_train_steps": self.n_steps,
            "offset": self.offset,
            "parameterisation": "x0",
            "sampler": "ddim",
            "eta": 0.0,
            "steps": steps,
            "alphas_cumprod": [float(self.alphas_cumprod[t]) for t in steps],
        }


def q_sample(x0: Any, noise: Any, alpha_bar: Any) -> Any:
    """Forward process: x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) noise (alpha_bar broadcastable)."""
    return alpha_bar**0.5 * x0 + (1 - alpha_bar) ** 0.5 * noise


def inpaint(x0: Any, context: Any | None, mask: Any | None) -> Any:
    """Replace known frames by their values: mask is 1 on context frames, 0 on frames to generate."""
    if context is None or mask is None:
        return x0
    return x0 * (1 - mask) + context * mask  # exact on known frames when mask is 0 or 1


def sample_ddim(
    denoise: Denoiser,
    noise: Any,
    schedule: Schedule,
    k: int,
    *,
    context: Any | None = None,
    context_mask: Any | None = None,
) -> Any:
    """Deterministic DDIM (eta = 0) in ``k`` steps from a given noise tensor; returns x0.

    ``noise``: (batch, frames, dims). ``context``/``context_mask`` (same shape, mask 1 where known) are applied to
    every x0 estimate, so known frames stay exactly what was committed (SAiD-style inpainting, DESIGN 5).
    The caller fixes ``noise`` once per session so successive windows do not flicker.
    """
    steps = schedule.timesteps(k)
    abar = schedule.alphas_cumprod
    x = noise
    x0 = noise
    for i, t in enumerate(steps):
        x0 = inpaint(denoise(x, t), context, context_mask)
        if i + 1 == len(steps):
            break
        a_t, a_next = float(abar[t]), float(abar[steps[i + 1]])
        eps = (x - a_t**0.5 * x0) * (1.0 / (1 - a_t) ** 0.5)
        x = a_next**0.5 * x0 + (1 - a_next) ** 0.5 * eps
    return x0


def guided(cond: Denoiser, uncond: Denoiser, scale: float) -> Denoiser:
    """Classifier-free guidance on x0: uncond + scale * (cond - uncond). ``scale`` 1 means no guidance."""

    def denoise(x: Any, t: int) -> Any:
        c = cond(x, t)
        if scale == 1.0:
            return c
        u = uncond(x, t)
        return u + scale * (c - u)

    return denoise


def sample_ddpm(
    denoise: Denoiser, noise: np.ndarray, schedule: Schedule, k: int, rng: np.random.Generator
) -> np.ndarray:
    """Ancestral DDPM over ``k`` respaced steps (LDA samples 150 this way); a slow numpy reference for benchmarks."""
    steps = schedule.timesteps(k)
    abar = schedule.alphas_cumprod
    x = noise
    for i, t in enumerate(steps):
        x0 = denoise(x, t)
        if i + 1 == len(steps):
            return x0
        a_t, a_prev = float(abar[t]), float(abar[steps[i + 1]])  # Python floats keep x in its own dtype
        beta = 1 - a_t / a_prev
        mean = (a_prev**0.5 * beta / (1 - a_t)) * x0 + ((1 - beta) ** 0.5 * (1 - a_prev) / (1 - a_t)) * x
        var = beta * (1 - a_prev) / (1 - a_t)
        x = mean + var**0.5 * rng.standard_normal(x.shape).astype(x.dtype)
    return x
