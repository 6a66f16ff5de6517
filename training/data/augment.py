"""Feature-domain augmentation of log-mel so a model trained on espeak voices transfers to real microphones.

Applied to raw (un-normalised) natural-log mel frames at the 30 fps clock, (B, T, n_mels), in torch:
gain (a constant in log space), spectral tilt / EQ (a smooth random curve over mel bins), additive noise (in the
power domain, coloured), and reverberation (exponential smearing of power over time). Each is drawn per example.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from runtime.constants import FPS, LOG_FLOOR


@dataclass(frozen=True)
class AugmentConfig:
    p: float = 0.8  # probability an example is augmented at all
    gain_db: float = 12.0  # uniform in +-gain_db: microphones and speakers differ in level
    tilt_db: float = 10.0  # +-dB from lowest to highest mel bin: bright vs dull microphones
    eq_db: float = 4.0  # +-dB of a smooth random bump curve over the bins (3 cosine components)
    noise_snr_db: tuple[float, float] = (5.0, 40.0)  # uniform SNR range of added noise vs the example's mean power
    p_noise: float = 0.5
    rt60_s: tuple[float, float] = (0.1, 0.7)  # reverberation time range
    p_reverb: float = 0.4


def _db_to_log(db: torch.Tensor) -> torch.Tensor:
    return db * (math.log(10.0) / 10.0)  # power dB -> natural-log units


def augment_mel(mel: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None = None) -> torch.Tensor:
    """(B, T, M) log-mel -> augmented copy. Deterministic for a given generator."""
    b, t, m = mel.shape

    def u(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen)

    on = (u(b) < cfg.p).float()[:, None, None]
    bins = torch.linspace(0.0, 1.0, m)
    gain = (u(b, 1, 1) * 2 - 1) * cfg.gain_db
    tilt = (u(b, 1, 1) * 2 - 1) * cfg.tilt_db * (bins - 0.5)[None, None]
    phases = u(b, 3, 1) * 2 * math.pi
    freqs = torch.arange(1, 4).float()[None, :, None]
    eq = ((u(b, 3, 1) * 2 - 1) * torch.cos(freqs * math.pi * bins[None, None] + phases)).sum(1, keepdim=True)
    shaped = mel + on * _db_to_log(gain + tilt + eq * cfg.eq_db / 3)

    power = (shaped.exp() - LOG_FLOOR).clamp_min(0.0)  # (B, T, M)
    if cfg.p_reverb > 0:
        rt60 = cfg.rt60_s[0] + u(b) * (cfg.rt60_s[1] - cfg.rt60_s[0])
        decay = torch.exp(-math.log(1000.0) / (rt60 * FPS))  # per-frame power decay: -60 dB after rt60
        use = (u(b) < cfg.p_reverb).float() * on[:, 0, 0]
        a = (decay * use)[:, None]  # (B, 1)
        tail = torch.zeros(b, m)
        out = []
        for i in range(t):  # (T <= 150) first-order recursion: tail = a * (tail + x)
            tail = a * (tail + power[:, i])
            out.append(power[:, i] + 0.5 * tail)
        power = torch.stack(out, dim=1)
    if cfg.p_noise > 0:
        snr = cfg.noise_snr_db[0] + u(b, 1, 1) * (cfg.noise_snr_db[1] - cfg.noise_snr_db[0])
        level = power.mean(dim=(1, 2), keepdim=True) * 10 ** (-snr / 10)
        colour = torch.exp(_db_to_log((u(b, 1, 1) * 2 - 1) * 12.0 * (bins - 0.5)[None, None]))  # pink-ish / bright
        noise = level * colour * (0.5 + u(b, t, m))  # fluctuating noise floor
        use = ((u(b) < cfg.p_noise).float() * on[:, 0, 0])[:, None, None]
        power = power + use * noise
    return torch.log(power + LOG_FLOOR)
