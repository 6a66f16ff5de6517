"""A one-page PNG of a session, to look at before opening Blender: poses at 6 moments and the face curves.

Top row: both people as stick figures (forward kinematics of the streamed rotations) at 6 evenly spaced moments,
seen from the side of the line between them (turned 35 degrees towards a 3/4 view, so arms held out sideways
still show), so they stand side by side facing each other; each panel is centred on the pair, all at one scale.
Below, one panel per person: jawOpen, mouthClose, mouthSmile (mean of left and right), eyeBlink (mean) over
time, with speech activity shaded and the 6 moments marked. matplotlib (the ``view`` extra) is imported only
when a sheet is drawn. The pose-row pieces (``side_views``, ``view_box``, ``pose_height``, ``draw_pair``) also draw
``training.figures``' body strip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from runtime.constants import ACTIONS, SPEAKERS
from runtime.engine.frames import Frames, StreamInfo
from runtime.formats.arkit import INDEX
from runtime.motion.kinematics import forward_kinematics
from runtime.motion.skeleton import Skeleton, root_joint

N_MOMENTS = 6
WIDTH_IN, CURVE_IN = 16.0, 1.8  # figure width and height of each face-curve panel (inches)
VIEW_YAW_DEG = 35.0  # the camera looks at the pair from this far off the perpendicular of the line between them
COLOURS = ("tab:blue", "tab:orange")  # person A, person B
CURVES = {  # label -> ARKit names averaged
    "jawOpen": ("jawOpen",),
    "mouthClose": ("mouthClose",),
    "mouthSmile": ("mouthSmileLeft", "mouthSmileRight"),
    "eyeBlink": ("eyeBlinkLeft", "eyeBlinkRight"),
}


def world_positions(
    skeleton: Skeleton, joint_rotations: np.ndarray, root_position: np.ndarray, root: int
) -> tuple[np.ndarray, np.ndarray]:
    """World joint and End Site positions (N, J, 3), (N, E, 3) in metres from streamed frames.

    joint_rotations: (N, J, 4) local (w, x, y, z); root_position: (N, 3) m, the world position of joint ``root``.
    Joints above the root stay at rest in the stream, so moving the whole figure onto it is exact.
    """
    q = np.asarray(joint_rotations, dtype=np.float64)
    n = len(q)
    rot = Rotation.from_quat(q[..., [1, 2, 3, 0]].reshape(-1, 4))
    local = np.broadcast_to(np.asarray(skeleton.offsets, dtype=np.float64), (n, skeleton.n_joints, 3))
    pose = forward_kinematics(skeleton, rot, local, end_sites=bool(skeleton.end_sites))
    shift = (np.asarray(root_position, dtype=np.float64) - pose.positions[:, root])[:, None]  # (N, 1, 3)
    ends = pose.end_sites + shift if pose.end_sites is not None else np.zeros((n, 0, 3))
    return pose.positions + shift, ends


def bones(skeleton: Skeleton) -> list[tuple[int, int]]:
    """(parent, child) pairs to draw; End Sites are children numbered J + their rank in ascending joint order."""
    pairs = [(p, j) for j, p in enumerate(skeleton.parents) if p >= 0]
    return pairs + [(j, skeleton.n_joints + k) for k, j in enumerate(sorted(skeleton.end_sites))]


def curve(blendshapes: np.ndarray, label: str) -> np.ndarray:
    """(N,) mean of the ARKit channels behind a ``CURVES`` label."""
    return np.mean([blendshapes[:, INDEX[n]] for n in CURVES[label]], axis=0)


def side_axis(points_a: np.ndarray, points_b: np.ndarray) -> np.ndarray:
    """Unit ground vector (x, z) from A's mean root to B's: the horizontal axis of the side view."""
    d = np.mean(points_b[:, [0, 2]], axis=0) - np.mean(points_a[:, [0, 2]], axis=0)
    norm = float(np.linalg.norm(d))
    return d / norm if norm > 1e-6 else np.array([1.0, 0.0])


def side_views(skeleton: Skeleton, people: list[tuple[np.ndarray, np.ndarray]], moments: np.ndarray
               ) -> list[list[tuple[np.ndarray, np.ndarray]]]:  # fmt: skip
    """Both people at ``moments`` seen from the side of the line between them, turned VIEW_YAW_DEG towards a 3/4
    view: per moment, per person, orthographic (horizontal, up) coordinates (J + E,) in metres of joints then End
    Sites. ``people``: per person (joint rotations (N, J, 4) wxyz, root positions (N, 3) m) over the whole session,
    whose mean roots fix the line."""

    r = root_joint(skeleton)
    posed = []
    for rotations, roots in people:
        joints, ends = world_positions(skeleton, rotations[moments], roots[moments], r)
        posed.append(np.concatenate([joints, ends], axis=1))  # (M, J + E, 3)
    along = side_axis(people[0][1], people[1][1])
    c, s_ = np.cos(np.radians(VIEW_YAW_DEG)), np.sin(np.radians(VIEW_YAW_DEG))
    axis = c * along + s_ * np.array([-along[1], along[0]])  # the A->B line turned towards the camera

    def project(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # orthographic: horizontal, up (m)
        return p[..., 0] * axis[0] + p[..., 2] * axis[1], p[..., 1]

    return [[project(p[k]) for p in posed] for k in range(len(moments))]


def view_box(views: list[list[tuple[np.ndarray, np.ndarray]]]) -> tuple[list[float], float, float, float]:
    """Panel centres (one per moment) and the shared width, bottom and top (m): each panel centred on its pair,
    all at one scale."""
    centres = [0.5 * (min(h.min() for h, _ in v) + max(h.max() for h, _ in v)) for v in views]
    width = max(max(h.max() for h, _ in v) - min(h.min() for h, _ in v) for v in views) + 0.4
    top = max(float(v.max()) for view in views for _, v in view) + 0.15
    bottom = min(-0.05, min(float(v.min()) for view in views for _, v in view) - 0.05)
    return centres, width, bottom, top


def pose_height(n_panels: int, width: float, bottom: float, top: float, shortest: float = 1.5) -> float:
    """Height (inches) of a row of ``n_panels`` pose panels across 93 % of WIDTH_IN (panels 5 % apart) with the
    data's aspect, so there are no empty bands; at least ``shortest``, at most 6."""
    panel_w = WIDTH_IN * 0.93 / (n_panels + 0.05 * (n_panels - 1))
    return float(np.clip(panel_w * (top - bottom) / width, shortest, 6.0))


def draw_pair(ax, skeleton: Skeleton, view: list[tuple[np.ndarray, np.ndarray]], centre: float, width: float,
              bottom: float, top: float) -> None:  # fmt: skip
    """Both people of one ``side_views`` moment as stick figures (A blue, B orange) on a matplotlib Axes."""
    from matplotlib.collections import LineCollection

    pairs = np.array(bones(skeleton)).reshape(-1, 2)  # (bones, parent/child)
    for p in (0, 1):
        h, v = view[p]
        lines = np.stack([h[pairs], v[pairs]], axis=-1)  # (bones, 2 ends, 2 coordinates)
        ax.add_collection(LineCollection(lines, colors=COLOURS[p], linewidths=2, capstyle="round"))
        ax.plot(h[: skeleton.n_joints], v[: skeleton.n_joints], "o", color=COLOURS[p], ms=2)
    ax.set_xlim(centre - width / 2, centre + width / 2)
    ax.set_ylim(bottom, top)
    ax.set_aspect("equal")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xticks([])
    ax.set_yticks([])


def write_contact_sheet(path: str | Path, info: StreamInfo, frames: Frames, dpi: int = 100) -> None:
    """Draw the sheet of ``frames`` (both people) into a PNG at ``path`` (1600 pixels wide at dpi 100)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise RuntimeError("the contact sheet needs matplotlib: pip install 'interact-runtime[view]'") from e

    sk = info.skeleton
    n = len(frames)
    if n == 0:
        raise ValueError("write_contact_sheet: no frames to draw")
    moments = np.unique(np.round(np.linspace(0, n - 1, N_MOMENTS)).astype(int))
    views = side_views(sk, [(p.joint_rotations, p.root_position) for p in frames.people], moments)
    centres, width, bottom, top = view_box(views)
    pose_h = pose_height(len(moments), width, bottom, top)
    height = pose_h + 2 * CURVE_IN + 1.6  # titles, axis labels and gaps
    fig = Figure(figsize=(WIDTH_IN, height), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(3, len(moments), height_ratios=(pose_h, CURVE_IN, CURVE_IN), hspace=0.35, wspace=0.05,
                            left=0.05, right=0.98, top=1 - 0.55 / height, bottom=0.5 / height)  # fmt: skip
    for k, m in enumerate(moments):
        ax = fig.add_subplot(grid[0, k])
        draw_pair(ax, sk, views[k], centres[k], width, bottom, top)
        said = [name for p, name in enumerate(SPEAKERS) if frames.people[p].speaking[m]]
        ax.set_title(f"{frames.time[m]:.1f} s" + (f"  ({' + '.join(said)} speaking)" if said else ""), fontsize=10)
    t = frames.time
    for p, person in enumerate(frames.people):
        ax = fig.add_subplot(grid[1 + p, :])
        ax.fill_between(t, 0, 1, where=person.speaking, step="mid", color=COLOURS[p], alpha=0.12, lw=0,
                        label="speaking")  # fmt: skip
        for label in CURVES:
            ax.plot(t, curve(person.blendshapes, label), lw=1.2, label=label)
        for m in moments:
            ax.axvline(t[m], color="0.5", lw=0.8, ls="--")
        actions = sorted({ACTIONS[a] for a in person.action})
        ax.set_title(f"person {SPEAKERS[p]}: face weights ({', '.join(actions)})", fontsize=10, loc="left")
        ax.set_xlim(t[0], t[-1] if n > 1 else t[0] + 1.0 / info.fps)
        ax.set_ylim(0.0, 1.0)
        ax.set_ylabel("weight")
        if p == 1:
            ax.set_xlabel("time (s)")
        ax.legend(loc="upper right", fontsize=8, ncol=5)
    model = info.model or "model"
    fig.suptitle(f"{model}: {n} frames, {n / info.fps:.1f} s (A blue, B orange)", fontsize=12)
    fig.savefig(path, format="png")
