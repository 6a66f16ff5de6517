"""Time curves the synthetic body generator is built from: smooth ramps, smooth boxes and band-limited noise.

All functions are vectorised over frames; times are seconds, frame arrays at ``runtime.constants.FPS``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter1d


def smoothstep(x: np.ndarray) -> np.ndarray:
    """3x^2 - 2x^3 on [0, 1], clamped: zero slope at both ends, symmetric about x = 0.5."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def ramp(t: np.ndarray, center: float, width: float) -> np.ndarray:
    """0 -> 1 over ``[center - width/2, center + width/2]`` (s); exactly 0.5 at ``center``."""
    return smoothstep((t - (center - 0.5 * width)) / max(width, 1e-9))


def box(t: np.ndarray, start: float, end: float, width_in: float, width_out: float) -> np.ndarray:
    """Smooth indicator of ``[start, end]``: 0.5 at both edges, ramps of the given widths centred on them."""
    return ramp(t, start, width_in) - ramp(t, end, width_out)


def smooth_noise(rng: np.random.Generator, n: int, sigma_frames: float, dims: int = 1) -> np.ndarray:
    """(n, dims) Gaussian noise low-passed by a Gaussian of ``sigma_frames``, with unit standard deviation.

    The scale uses the filter's analytic gain (white noise through a unit-area Gaussian of std s has variance
    1 / (2 sqrt(pi) s)), so the amplitude does not depend on the random draw.
    """
    sigma = max(float(sigma_frames), 0.5)
    pad = int(4 * sigma) + 1
    white = rng.standard_normal((n + 2 * pad, dims))
    low = gaussian_filter1d(white, sigma, axis=0, mode="wrap")[pad : pad + n]
    return low * math.sqrt(2.0 * math.sqrt(math.pi) * sigma)


def wrap_angle(a: np.ndarray | float) -> np.ndarray | float:
    """Angle(s) in radians wrapped to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2.0 * np.pi) - np.pi
