"""The two-person scenario of the synthetic corpus: per person, which action when, and where the root goes.

The pair moves through **episodes**: both sit or both stand (6-30 s), walk together side by side and stop, or one
walks a loop while the other stands. Sit, walk and the walks' loops always return to standing, so the label
sequence of each person is ``sit <-> stand <-> walk`` (paper 4.2 labels, ``runtime.constants.ACTIONS``). Every
change of action is a smooth transition of 0.6-1.2 s; the ground-truth label switches at its midpoint, where the
pose weights (``sit``, ``walk``) pass 0.5.

The plan is what a director would say, in metres and seconds: the ground point under the hips (``ground``), the
body heading (``yaw``), the seated geometry and the footsteps (``training.data.paths`` draws the walking paths).
``training.data.gait`` turns it into feet and legs; ``training.data.bodies`` adds sway and the upper body.
World frame: right-handed, Y up; a heading yaw faces (sin yaw, cos yaw) in the (x, z) plane, so yaw 0 faces +Z
and positive yaw turns left (towards +X).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from runtime.constants import ACTIONS, FPS
from training.data.curves import box, smoothstep, wrap_angle
from training.data.paths import WalkPath, direction, heading_of, left_of, lone_loop, together_paths

log = logging.getLogger(__name__)

SIT, WALK, STAND = (ACTIONS.index(a) for a in ("sit", "walk", "stand"))  # 0, 1, 2
# Gait timing in steps (a step = one foot's landing to the other's): a foot lands when the hips are 0.45 step
# behind its landing point and lifts when they are 0.65 step past it, so each foot stands for 1.1 steps and swings
# for 0.9, and both feet are down for 0.1 step after each landing (walking's double support). The heel rises
# (PUSH_OFF_DEG) before the lift, which lets the trailing leg reach without dropping the hips.
HEEL_STRIKE_AHEAD = 0.45
TOE_OFF_BEHIND = 0.65
STANCE_WIDENING_M = 0.01  # standing ankles 1 cm wider than the hip joints
WALK_NARROWING_M = 0.02  # walking ankles 2 cm narrower than the hip joints
PUSH_OFF_DEG = 40.0  # heel rise at toe-off while walking
SHUFFLE_PUSH_DEG = 6.0  # heel rise of a step on the spot
TURN_IN_STEPS = 1.6  # setting off in a new direction, the body has turned into it after this many steps


@dataclass(frozen=True)
class LegGeometry:
    """What the planner needs of one actor's legs, in metres (see ``skeleton_def.leg_lengths_cm``)."""

    thigh: float
    shank: float
    ankle_height: float  # ankle (Foot joint) above the floor when the foot is flat
    hip_height: float  # Hips joint above the floor in the rest pose
    toe_forward: float  # ToeBase ahead of the ankle
    toe_height: float  # ToeBase above the floor when the foot is flat
    hip_half_width: float  # hip joint to the side of the Hips joint


@dataclass(frozen=True)
class PlanConfig:
    segment_s: tuple[float, float] = (6.0, 30.0)  # a sit / stand episode
    walk_s: tuple[float, float] = (6.0, 18.0)  # a walk (its length follows from speed x time)
    transition_s: tuple[float, float] = (0.6, 1.2)  # each change of action; the label switches at its midpoint
    walk_speed: tuple[float, float] = (0.8, 1.4)  # m/s, one person walking a loop
    together_speed: tuple[float, float] = (0.85, 1.25)  # m/s of the pair's midpoint: the outer walker on a bend
    #   goes up to gap/2 x curvature = 12 % faster, which keeps both inside 0.8-1.4 m/s
    distance_m: tuple[float, float] = (0.9, 2.0)  # conversational distance between two standing people
    facing_noise_deg: float = 20.0  # each person's heading off the line to the partner
    side_by_side_prob: float = 0.2  # start (or re-face after a walk) turned towards a common front instead
    side_by_side_deg: tuple[float, float] = (45.0, 90.0)  # how far each turns from facing the partner then
    start_sitting_prob: float = 0.4
    after_stand: tuple[float, float, float] = (0.4, 0.3, 0.3)  # next episode: sit, walk together, one walks
    pair_gap_m: tuple[float, float] = (0.7, 1.0)  # side by side while walking together
    max_curvature: float = 0.25  # 1/m of the pair's path (turn radius >= 4 m)
    loop_radius_m: tuple[float, float] = (1.0, 2.0)  # the far turn of a lone walker's loop
    clearance_m: float = 1.0  # a lone walker's path keeps this far from the standing partner
    desync_s: float = 0.5  # each person sits down / gets up up to this much before or after the other
    turn_threshold_deg: float = 25.0  # after a walk, turn on the spot to face the partner if further off
    turn_step_s: float = 0.5  # per step when turning on the spot
    sit_hip_ratio: tuple[float, float] = (0.95, 1.08)  # seated hip-joint height / (ankle height + shank)
    sit_shank_tilt_deg: tuple[float, float] = (5.0, 18.0)  # seated shank forward of vertical
    max_seated_knee_deg: float = 85.0  # keeps the knee's X channel clear of the ZXY gimbal at 90 degrees


@dataclass
class PersonPlan:
    labels: np.ndarray  # (F,) int8 ground-truth action per frame (index into ACTIONS)
    sit: np.ndarray  # (F,) seated-pose weight 0..1, 0.5 where the label switches
    walk: np.ndarray  # (F,) locomotion weight 0..1, 0.5 where the label switches
    ground: np.ndarray  # (F, 2) m, (x, z) under the hips: standing anchor or walking path, before any sway
    yaw: np.ndarray  # (F,) rad, body heading
    stride: np.ndarray  # (F,) rad, gait phase: cos(stride) = 1 when the left foot lands; +pi per step
    sit_height: np.ndarray  # (F,) m, hip-joint height of the current (or nearest) seat
    sit_forward: np.ndarray  # (F,) m, seated ankles ahead of the hip joints: the hips move back this far to sit
    steps: np.ndarray  # (S, 7) per step: foot (0 left, 1 right), lift s, land s, ankle x, z (m), foot heading
    #   (rad, before toe-out), push-off pitch (rad): how far the heel has risen when the foot leaves the floor
    start_feet: np.ndarray  # (2, 2) m, (x, z) of the left and right ankle at frame 0


@dataclass
class PairPlan:
    people: tuple[PersonPlan, PersonPlan]
    episodes: list[tuple[str, float, float]] = field(default_factory=list)  # (kind, start s, end s)


@dataclass
class _Person:
    """One person's plan under construction."""

    legs: LegGeometry
    anchor: np.ndarray  # (2,) current standing ground point
    yaw: float
    first_label: int
    start: np.ndarray = field(default_factory=lambda: np.zeros(2))  # (2,) ground point at frame 0
    start_yaw: float = 0.0
    changes: list[tuple[float, int]] = field(default_factory=list)  # (time, new label)
    sits: list[tuple[float, float, float, float, float, float]] = field(default_factory=list)
    #   (start, end, width in, width out, hip-joint height, ankle forward)
    walks: list[tuple[float, float, float, float, WalkPath, float]] = field(default_factory=list)
    #   (start, end, width in, width out, path, pace speed m/s)
    turns: list[tuple[float, float, float, float, int]] = field(default_factory=list)
    #   (start, end, yaw from, yaw to, steps)


def _seat(rng: np.random.Generator, legs: LegGeometry, cfg: PlanConfig) -> tuple[float, float]:
    """(hip-joint height, ankle forward of the hip joints) in m for a random chair, knee bent <= 85 degrees.

    Thigh slope s below horizontal and shank tilt p forward of vertical: height - ankle = thigh sin s + shank cos p,
    and the knee bends 90 - s - p degrees.
    """
    height = (legs.ankle_height + legs.shank) * rng.uniform(*cfg.sit_hip_ratio)
    tilt = math.radians(rng.uniform(*cfg.sit_shank_tilt_deg))
    min_sum = math.radians(90.0 - cfg.max_seated_knee_deg)
    for _ in range(8):  # a low chair tilts the thigh up; push the feet forward until the knee is <= 85 degrees
        slope = math.asin(np.clip((height - legs.ankle_height - legs.shank * math.cos(tilt)) / legs.thigh, -1, 1))
        if slope + tilt >= min_sum:
            break
        tilt += min_sum - (slope + tilt)
    return height, legs.thigh * math.cos(slope) + legs.shank * math.sin(tilt)


def _facing_pair(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, cfg: PlanConfig) -> tuple[float, float]:
    """Headings for two people at ``a`` and ``b``: towards each other with noise, or (sometimes) both turned
    45-90 degrees towards a common front, side by side."""
    to_b, to_a = heading_of(b - a), heading_of(a - b)
    if rng.random() < cfg.side_by_side_prob:
        turn = rng.choice([-1.0, 1.0]) * math.radians(rng.uniform(*cfg.side_by_side_deg))
        return to_b - turn, to_a + turn
    noise = math.radians(cfg.facing_noise_deg)
    return to_b + rng.uniform(-noise, noise), to_a + rng.uniform(-noise, noise)


def plan_pair(
    n_frames: int, rng: np.random.Generator, legs: tuple[LegGeometry, LegGeometry], cfg: PlanConfig = PlanConfig()
) -> PairPlan:
    """Plan ``n_frames`` at FPS of two people: episodes, labels, ground paths, headings, seats and footsteps."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    duration = n_frames / FPS
    sitting = rng.random() < cfg.start_sitting_prob
    first = SIT if sitting else STAND
    pos_b = rng.uniform(*cfg.distance_m) * direction(rng.uniform(-math.pi, math.pi))
    yaw_a, yaw_b = _facing_pair(rng, np.zeros(2), pos_b, cfg)
    people = [_Person(legs[0], np.zeros(2), yaw_a, first), _Person(legs[1], pos_b, yaw_b, first)]
    for p in people:
        p.start, p.start_yaw = p.anchor.copy(), p.yaw
    episodes: list[tuple[str, float, float]] = []
    width = lambda: rng.uniform(*cfg.transition_s)  # noqa: E731
    t, kind = 0.0, "sit" if sitting else "stand"
    while t < duration:
        if kind == "sit":
            end = t + rng.uniform(*cfg.segment_s)
            for p in people:
                t0 = -10.0 if t == 0.0 else t + rng.uniform(-cfg.desync_s, cfg.desync_s)
                t1 = end + rng.uniform(-cfg.desync_s, cfg.desync_s)
                if t0 > 0:
                    p.changes.append((t0, SIT))
                p.changes.append((t1, STAND))
                p.sits.append((t0, t1, width(), width(), *_seat(rng, p.legs, cfg)))
            nxt = "stand"
        elif kind == "stand":
            end = t + rng.uniform(*cfg.segment_s)
            if t > 0.0 and episodes and episodes[-1][0] != "sit":
                _face_each_other(rng, people, t, cfg)
            nxt = str(rng.choice(["sit", "walk_together", "one_walks"], p=list(cfg.after_stand)))
        elif kind == "walk_together":
            speed = rng.uniform(*cfg.together_speed)
            length = speed * rng.uniform(*cfg.walk_s)
            end = t + length / speed
            gap = rng.uniform(*cfg.pair_gap_m)
            paths = together_paths(rng, people[0].anchor, people[1].anchor, length, gap, cfg.max_curvature)
            w_in, w_out = width(), width()
            for p, path in zip(people, paths, strict=True):
                p.walks.append((t, end, w_in, w_out, path, speed))
                p.changes += [(t, WALK), (end, STAND)]
                p.anchor, p.yaw = path.points[-1].copy(), float(path.heading[-1])
            nxt = "stand"
        else:  # one_walks
            walker = int(rng.integers(2))
            w, s = people[walker], people[1 - walker]
            speed = rng.uniform(*cfg.walk_speed)
            length = speed * rng.uniform(*cfg.walk_s)
            path = lone_loop(
                rng, w.anchor, w.yaw, s.anchor, s.yaw, length, cfg.distance_m, cfg.loop_radius_m, cfg.clearance_m
            )
            if path is None:
                log.debug("no clear loop around the partner at t=%.1f s; the pair keeps standing", t)
                kind = "stand"
                continue
            end = t + path.param[-1] / speed
            w.walks.append((t, end, width(), width(), path, speed))
            w.changes += [(t, WALK), (end, STAND)]
            w.anchor, w.yaw = path.points[-1].copy(), float(path.heading[-1])
            nxt = "stand"
        episodes.append((kind, t, end))
        t, kind = end, nxt
    log.debug("planned %d episodes over %.1f s", len(episodes), duration)
    total = max(n_frames, int(math.ceil((t + 2.0) * FPS)))
    rendered = [_render(p, total, rng, cfg) for p in people]
    for r in rendered:
        for name in ("labels", "sit", "walk", "ground", "yaw", "stride", "sit_height", "sit_forward"):
            setattr(r, name, getattr(r, name)[:n_frames])
    return PairPlan((rendered[0], rendered[1]), episodes)


def _face_each_other(rng: np.random.Generator, people: list[_Person], t: float, cfg: PlanConfig) -> None:
    """After a walk: each turns on the spot (stepping) to face the partner, if more than the threshold off."""
    targets = _facing_pair(rng, people[0].anchor, people[1].anchor, cfg)
    for p, target in zip(people, targets, strict=True):
        delta = float(wrap_angle(target - p.yaw))
        if abs(delta) < math.radians(cfg.turn_threshold_deg):
            continue
        steps = 2 if abs(delta) <= math.radians(60) else 3 if abs(delta) <= math.radians(120) else 4
        start = t + 1.0 + rng.uniform(0.0, 0.6)  # after the stop and its closing step
        p.turns.append((start, start + steps * cfg.turn_step_s, p.yaw, p.yaw + delta, steps))
        p.yaw += delta


def _render(p: _Person, n: int, rng: np.random.Generator, cfg: PlanConfig) -> PersonPlan:
    """Per-frame arrays of one person's plan over ``n`` frames."""
    t = np.arange(n) / FPS
    labels = np.full(n, p.first_label, dtype=np.int8)
    for time, label in sorted(p.changes):
        labels[t >= time] = label
    sit = np.zeros(n)
    sit_height, sit_forward = np.full(n, np.nan), np.full(n, np.nan)
    for t0, t1, w0, w1, height, forward in p.sits:
        sit += box(t, t0, t1, w0, w1)
        span = (t >= t0 - w0) & (t <= t1 + w1)
        sit_height[span], sit_forward[span] = height, forward
    if np.all(np.isnan(sit_height)):
        sit_height[:], sit_forward[:] = _seat(rng, p.legs, cfg)
    for a in (sit_height, sit_forward):  # hold each seat's geometry between sits
        idx = np.where(~np.isnan(a), np.arange(n), 0)
        np.maximum.accumulate(idx, out=idx)
        a[:] = np.where(np.isnan(a[idx]), a[~np.isnan(a)][0], a[idx])

    walk = np.zeros(n)
    ground = np.empty((n, 2))
    yaw = np.empty(n)
    ground[:] = p.start
    yaw[:] = p.start_yaw
    stride = np.zeros(n)
    steps: list[np.ndarray] = []
    events = [("walk", e[0] - e[2] / 2, e) for e in p.walks] + [("turn", e[0], e) for e in p.turns]
    for kind, _, e in sorted(events, key=lambda x: x[1]):
        if kind == "walk":
            t0, t1, w0, w1, path, speed = e
            w = box(t, t0, t1, w0, w1)
            walk += w
            idx = np.flatnonzero((t >= t0 - w0 / 2) & (t <= t1 + w1 / 2))
            if idx.size < 2:
                continue
            s = np.concatenate([[0.0], np.cumsum(w[idx][1:])]) / FPS * speed  # (n,) m along the path
            s *= path.param[-1] / max(s[-1], 1e-9)
            pts = np.stack([np.interp(s, path.param, path.points[:, k]) for k in (0, 1)], axis=-1)
            start_yaw = float(yaw[idx[0]])
            heading = path.heading + 2 * np.pi * np.round((start_yaw - path.heading[0]) / (2 * np.pi))
            sl = _whole_steps(float(path.param[-1]), step_length(speed, p.legs))
            turn_in = smoothstep(s / (TURN_IN_STEPS * sl))  # the body turns into the path over the first steps
            yaw_w = start_yaw + turn_in * (np.interp(s, path.param, heading) - start_yaw)
            ground[idx[0] :] = pts[-1]
            ground[idx] = pts
            yaw[idx[0] :] = yaw_w[-1]
            yaw[idx] = yaw_w
            walk_steps, phase, first = _walk_steps(rng, t[idx], s, yaw_w, path, sl, p.legs)
            steps.append(walk_steps)
            stride[idx] = np.pi * (phase - (1.0 if first == 0 else 0.0))
        else:
            t0, t1, y0, y1, k = e
            idx = np.flatnonzero((t >= t0) & (t <= t1))
            if idx.size < 2:
                continue
            start_yaw = float(yaw[idx[0]])  # the planned turn, from the rendered heading (which may be 2 pi off)
            yaw[idx[0] :] = start_yaw + (y1 - y0)
            yaw[idx] = start_yaw + smoothstep((t[idx] - t0) / (t1 - t0)) * (y1 - y0)
            steps.append(_turn_steps(t0, t1, k, ground[idx[0]], start_yaw, y1 - y0, p.legs))
    start_feet = p.start + np.array([1.0, -1.0])[:, None] * left_of(np.array(p.start_yaw)) * (
        p.legs.hip_half_width + STANCE_WIDENING_M
    )
    return PersonPlan(
        labels=labels,
        sit=np.clip(sit, 0.0, 1.0),
        walk=np.clip(walk, 0.0, 1.0),
        ground=ground,
        yaw=yaw,
        stride=stride,
        sit_height=sit_height,
        sit_forward=sit_forward,
        steps=np.concatenate(steps) if steps else np.zeros((0, 7)),
        start_feet=start_feet,
    )


def step_length(speed: float, legs: LegGeometry) -> float:
    """m per step at ``speed`` m/s: 0.5 (slow, 0.8 m/s) to 0.7 (brisk, 1.4 m/s) of the hip height, which puts a
    1.75 m adult's cadence at 100-125 steps/min."""
    brisk = np.clip((speed - 0.8) / 0.6, 0.0, 1.0)
    return float(legs.hip_height * (0.5 + 0.2 * brisk))


def _whole_steps(length: float, step: float) -> float:
    """Step length (m) nearest to ``step`` that makes ``length`` a whole number of steps (at least one)."""
    return length / max(1, int(round(length / step)))


def _walk_steps(
    rng: np.random.Generator,
    times: np.ndarray,
    s: np.ndarray,
    yaw: np.ndarray,
    path: WalkPath,
    sl: float,
    legs: LegGeometry,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Footsteps of one walk: (S, 7) steps, (n,) gait phase in steps per frame, the foot that moves first.

    ``times``, ``s`` and ``yaw`` (n,) are the walk's frames, distance along the path and body heading; ``sl`` the
    step length. Step k lands k step lengths along the path, when the hips are HEEL_STRIKE_AHEAD steps behind it,
    and lifts when they are TOE_OFF_BEHIND steps past its previous landing; each foot points where the body will
    face when the hips pass over it. Last, the trailing foot closes up beside the other.
    """
    length = float(path.param[-1])
    k_steps = int(round(length / sl))
    k = np.arange(1, k_steps + 1)
    s_mono = s + 1e-9 * np.arange(len(s))  # strictly increasing for the inverse s -> t
    t_of = lambda q: np.interp(q, s_mono, times)  # noqa: E731
    land = t_of((k - HEEL_STRIKE_AHEAD) * sl)
    lift = t_of(np.maximum((k - 2 + TOE_OFF_BEHIND) * sl, 0.03 * sl))
    at = k * sl
    xz = np.stack([np.interp(at, path.param, path.points[:, i]) for i in (0, 1)], axis=-1)
    heading = np.interp(t_of(at), times, yaw)
    first = int(rng.integers(2))  # which foot moves first
    foot = (first + k - 1) % 2
    close_lift = float(t_of(length - 0.3 * sl))
    close_land = max(close_lift + 0.35, float(times[-1]) - 0.1)
    out = np.concatenate([np.stack([foot, lift, land], axis=-1), [[(first + k_steps) % 2, close_lift, close_land]]])
    xz = np.concatenate([xz, xz[-1:]])
    heading = np.concatenate([heading, [yaw[-1]]])
    lateral = np.full(k_steps + 1, legs.hip_half_width - WALK_NARROWING_M)
    lateral[-1] = legs.hip_half_width + STANCE_WIDENING_M  # standing again
    push = np.full(k_steps + 1, math.radians(PUSH_OFF_DEG))
    push[-1] = math.radians(SHUFFLE_PUSH_DEG)
    side = np.where(out[:, 0] == 0, 1.0, -1.0)
    xz = xz + (side * lateral)[:, None] * left_of(heading)
    phase = s / sl + HEEL_STRIKE_AHEAD  # = k when step k lands
    return np.column_stack([out, xz, heading, push]), phase, first


def _turn_steps(
    t0: float, t1: float, k_steps: int, ground: np.ndarray, yaw0: float, delta: float, legs: LegGeometry
) -> np.ndarray:
    """(S, 7) steps turning on the spot by ``delta`` rad over [t0, t1]: each foot re-planted at the new heading."""
    k = np.arange(1, k_steps + 1)
    period = (t1 - t0) / k_steps
    land = t0 + k * period
    lift = land - 0.7 * period  # 70% of each step in the air
    first = 0 if (delta > 0) else 1  # turning left: the left foot leads
    foot = (first + k - 1) % 2
    yaw = yaw0 + smoothstep(k / k_steps) * delta
    side = np.where(foot == 0, 1.0, -1.0)
    xz = ground + (side * (legs.hip_half_width + STANCE_WIDENING_M))[:, None] * left_of(yaw)
    push = np.full(k_steps, math.radians(SHUFFLE_PUSH_DEG))
    return np.column_stack([foot, lift, land, xz, yaw, push])
