"""Walking paths of the synthetic corpus: a lone walker's loop back to the partner, and two people side by side.

A path is sampled densely (every few cm) with its pace parameter (arc length of the line that sets the pace) and the
walking heading at each sample. World frame: right-handed, Y up; a heading yaw faces (sin yaw, cos yaw) in the
(x, z) plane, so yaw 0 faces +Z and positive yaw turns left (towards +X). Metres throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

from training.data.curves import smooth_noise, smoothstep

PATH_STEP_M = 0.05  # spacing of the pair's sampled centre line
GAP_CLOSING_M = 2.5  # side by side, the gap between the two closes to its walking value over this distance


@dataclass
class WalkPath:
    param: np.ndarray  # (N,) m, arc length of the path that sets the pace (the pair's midpoint when together)
    points: np.ndarray  # (N, 2) m, (x, z)
    heading: np.ndarray  # (N,) rad, unwrapped yaw of the walking direction


def heading_of(v: np.ndarray) -> float:
    """Heading yaw (rad) of a ground vector (x, z)."""
    return math.atan2(float(v[0]), float(v[1]))


def direction(yaw: float | np.ndarray) -> np.ndarray:
    """(..., 2) unit ground vector (x, z) of heading ``yaw``."""
    yaw = np.asarray(yaw, dtype=np.float64)
    return np.stack([np.sin(yaw), np.cos(yaw)], axis=-1)


def left_of(yaw: float | np.ndarray) -> np.ndarray:
    """(..., 2) unit vector to the left of heading ``yaw`` (facing +Z, left is +X)."""
    yaw = np.asarray(yaw, dtype=np.float64)
    return np.stack([np.cos(yaw), -np.sin(yaw)], axis=-1)


def sample_path(points: np.ndarray, param: np.ndarray) -> WalkPath:
    """A path through (N, 2) ``points`` with pace parameter ``param`` (N,); headings from the local direction."""
    d = np.gradient(points, axis=0)
    return WalkPath(param, points, np.unwrap(np.arctan2(d[:, 0], d[:, 1])))


def lone_loop(
    rng: np.random.Generator,
    start: np.ndarray,
    yaw: float,
    partner: np.ndarray,
    partner_yaw: float,
    length: float,
    distance_m: tuple[float, float],
    radius_m: tuple[float, float],
    clearance_m: float,
) -> WalkPath | None:
    """A loop of about ``length`` m from ``start`` (heading ``yaw``) back to the standing partner.

    It sets off 50-110 degrees to one side of the partner, turns with a radius in ``radius_m``, and arrives walking
    straight at the partner, stopping ``distance_m`` from them. Never closer than ``clearance_m`` to the partner
    (or than where it starts / ends); None if 30 tries found no such loop.
    """
    for _ in range(30):
        out = yaw + math.radians(rng.choice([-1, 1]) * rng.uniform(50.0, 110.0))
        u, n = direction(out), left_of(np.array(out))
        r = rng.uniform(*radius_m)
        end = partner + rng.uniform(*distance_m) * direction(partner_yaw + math.radians(rng.uniform(-40, 40)))
        end_tangent = (partner - end) / np.linalg.norm(partner - end)
        reach = max(1.5, (length - math.pi * r) / 2)
        for _ in range(4):  # fit the straight legs so the loop has the wanted length
            knots = np.stack(
                [
                    start,
                    start + 0.8 * u,
                    start + reach * u + r * n,
                    start + (reach + r) * u,
                    start + reach * u - r * n,
                    end - 1.0 * end_tangent,
                    end,
                ]
            )
            chord = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(knots, axis=0), axis=1))])
            spline = CubicSpline(chord, knots, bc_type=((1, u), (1, end_tangent)))
            pts = spline(np.linspace(0.0, chord[-1], max(200, int(chord[-1] / 0.02))))
            arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
            reach = max(1.5, reach + (length - arc[-1]) / 2)
        keep_off = min(clearance_m, np.linalg.norm(start - partner), np.linalg.norm(end - partner)) - 0.02
        if np.min(np.linalg.norm(pts - partner, axis=1)) >= keep_off:
            return sample_path(pts, arc)
    return None


def together_paths(
    rng: np.random.Generator, a: np.ndarray, b: np.ndarray, length: float, gap: float, max_curvature: float
) -> tuple[WalkPath, WalkPath]:
    """Side-by-side paths from ``a`` and ``b``, ``length`` m along a gently curving centre line (curvature up to
    ``max_curvature`` 1/m) that sets off perpendicular to the line between them; their gap closes to ``gap`` m.

    Both paths share the centre line's arc length as pace parameter, so at equal parameter the two are exactly
    side by side (``gap`` apart once closed).
    """
    mid = 0.5 * (a + b)
    h0 = heading_of(b - a) + rng.choice([-1.0, 1.0]) * math.pi / 2
    n = int(math.ceil(length / PATH_STEP_M)) + 1
    s = np.linspace(0.0, length, n)
    bend = np.clip(smooth_noise(rng, n, 2.5 / PATH_STEP_M)[:, 0] / 2.0, -1.0, 1.0) * max_curvature
    heading = h0 + np.concatenate([[0.0], np.cumsum(bend[:-1] * np.diff(s))])
    centre = mid + np.concatenate([[[0.0, 0.0]], np.cumsum(np.diff(s)[:, None] * direction(heading[:-1]), 0)])
    normal = left_of(heading)
    close = smoothstep(s / GAP_CLOSING_M)[:, None]
    paths = []
    for p in (a, b):
        o0 = float(np.dot(p - mid, normal[0]))
        offset = o0 + (math.copysign(gap / 2, o0) - o0) * close
        paths.append(sample_path(centre + offset * normal, s))
    return paths[0], paths[1]
