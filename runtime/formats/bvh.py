"""BVH motion files: read, write, resample (DESIGN section 4).

What BVH leaves open, and what this module chose:

- ``BvhClip.values`` keeps the raw channel values, (F, C) float64 in file order: degrees and source units.
- A joint's position channels, where it has them, *replace* its OFFSET in that frame (the reading of Blender and
  pymo; the Bandai Namco files store the offset itself in them). ``runtime.motion.kinematics`` uses the same rule.
- Euler order is the order of a joint's rotation channels: "Zrotation Xrotation Yrotation" is R = Rz Rx Ry.
- Units: BVH has none; ``BvhClip.units`` guesses them from the rest pose (rule in ``runtime.motion.clip``).
- Speed: the MOTION numbers are parsed by a vectorised byte parser (``runtime.formats.bvh_numbers``, SWAR arithmetic on
  64-bit words, two threads): plain decimals ("-12.345678", up to 15 characters) take the fast path; a block of
  text with anything else (exponents, "nan") is parsed by numpy's ``fromstring`` instead, so every file that
  numpy can read parses, the unusual ones at C-loop speed.
"""

from __future__ import annotations

import logging
import math
import mmap
import re
from pathlib import Path

import numpy as np

from runtime.formats.bvh_numbers import NumberError, line_of, parse_numbers
from runtime.motion import kinematics
from runtime.motion.clip import BvhClip
from runtime.motion.skeleton import POSITION_CHANNELS, ROTATION_CHANNELS, Skeleton

log = logging.getLogger(__name__)

CHANNEL_NAMES = {c.lower(): c for c in POSITION_CHANNELS + ROTATION_CHANNELS}  # accepted case-insensitively


class BvhError(ValueError):
    """A malformed BVH file; the message names the file, the line where known, and what was expected."""


# ----------------------------------------------------------------------------------------------------------------
# Reading


def read_bvh(path: str | Path) -> BvhClip:
    """Read a BVH file: any channel order, positions on any joint, End Sites, CRLF, tabs, blank lines."""
    path = Path(path)
    with open(path, "rb") as f:
        if f.seek(0, 2) == 0:
            raise BvhError(f"{path}: empty file, expected a BVH HIERARCHY")
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        return _read(buf, path)
    finally:
        try:
            buf.close()
        except BufferError:  # a view is still held by an exception's traceback; the GC closes it later
            pass


_MOTION = re.compile(rb"^[ \t]*MOTION[ \t]*\r?$", re.M)
_FRAMES = re.compile(rb"\s*Frames:[ \t]*(\S*)[^\n]*\n\s*Frame[ \t]+Time:[ \t]*(\S*)[^\n]*(\n|$)")


def _read(buf: mmap.mmap, path: Path) -> BvhClip:
    m = _MOTION.search(buf)
    if m is None:
        raise BvhError(f"{path}: no MOTION section (expected a line 'MOTION' after the HIERARCHY)")
    skeleton = _parse_hierarchy(bytes(buf[: m.start()]).decode("utf-8", errors="replace"), path)
    head = _FRAMES.match(buf, m.end())
    line = line_of(buf, m.end()) + 1
    if head is None:
        raise BvhError(f"{path}: line {line}: expected 'Frames: N' and 'Frame Time: seconds' after MOTION")
    try:
        n_frames, frame_time = int(head.group(1)), float(head.group(2))
    except ValueError:
        raise BvhError(
            f"{path}: line {line}: bad 'Frames: {head.group(1).decode(errors='replace')}' or "
            f"'Frame Time: {head.group(2).decode(errors='replace')}' (expected an integer and seconds > 0)"
        ) from None
    if n_frames < 0 or not frame_time > 0:
        raise BvhError(f"{path}: line {line}: Frames must be >= 0 and Frame Time > 0, got {n_frames}, {frame_time}")
    c = skeleton.n_channels
    try:
        values = parse_numbers(buf, head.end(), len(buf))
    except NumberError as e:
        raise BvhError(f"{path}: line {line_of(buf, e.pos)}: {e.token!r} in MOTION is not a number") from None
    if values.size != n_frames * c:
        raise BvhError(f"{path}: {_count_problem(buf, head.end(), n_frames, c, values.size)}")
    values = values.reshape(n_frames, c)
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        f, k = (int(x) for x in bad[0])
        raise BvhError(f"{path}: frame {f} (line {line + 2 + f}), channel {k}: {values[f, k]} is not a finite number "
                       f"({len(bad)} non-finite value(s) in MOTION)")  # fmt: skip
    return BvhClip(skeleton, frame_time, values)


def _count_problem(buf: mmap.mmap, start: int, n_frames: int, c: int, got: int) -> str:
    """Why the value count is wrong, naming the first bad line (slow; error path only)."""
    expected = f"expected {n_frames} frames x {c} channels = {n_frames * c} values, got {got}"
    first_line = line_of(buf, start)
    rows = bytes(buf[start:]).split(b"\n")
    frame = 0
    for i, row in enumerate(rows):
        n = len(row.split())
        if n == 0:
            continue
        if n != c:
            return f"line {first_line + i}: frame {frame} has {n} values, expected {c} ({expected})"
        frame += 1
    return f"{expected}: the file has {frame} frame lines (truncated or wrong 'Frames:')"


_TOKEN = re.compile(r"[{}]|[^\s{}]+")


def _until_brace(tokens: list[str]) -> list[str]:
    return tokens[: tokens.index("{")] if "{" in tokens else tokens


def _parse_hierarchy(text: str, path: Path) -> Skeleton:
    """HIERARCHY text -> Skeleton. Joint names may contain spaces ("Bip01 Spine"): the rest of the line."""
    lines = [_TOKEN.findall(line) for line in text.splitlines()]
    toks = [(t, i + 1, k, toks) for i, toks in enumerate(lines) for k, t in enumerate(toks)]
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    end_sites: dict[int, np.ndarray] = {}
    stack: list[tuple[int, int]] = []  # (joint index or -2 for an End Site, line it opened on)
    pos = 0

    def fail(line: int, what: str) -> BvhError:
        return BvhError(f"{path}: line {line}: {what}")

    def take(expected: str) -> tuple[str, int]:
        nonlocal pos
        if pos >= len(toks):
            last = toks[-1][1] if toks else 1
            raise fail(last, f"hierarchy ends early, expected {expected}")
        tok, line = toks[pos][0], toks[pos][1]
        pos += 1
        return tok, line

    def number(line_hint: str) -> float:
        tok, line = take(f"a number ({line_hint})")
        try:
            value = float(tok)
        except ValueError:
            raise fail(line, f"{tok!r} is not a number ({line_hint})") from None
        if not math.isfinite(value):
            raise fail(line, f"{tok!r} is not a finite number ({line_hint})")
        return value

    def offset() -> list[float]:
        tok, line = take("OFFSET")
        if tok != "OFFSET":
            raise fail(line, f"expected OFFSET, got {tok!r}")
        return [number("OFFSET x"), number("OFFSET y"), number("OFFSET z")]

    tok, line = take("HIERARCHY")
    if tok != "HIERARCHY":
        raise fail(line, f"expected HIERARCHY, got {tok!r}")
    while pos < len(toks):
        tok, line, k, line_toks = toks[pos]
        pos += 1
        if tok in ("ROOT", "JOINT"):
            if (tok == "ROOT") == bool(stack):
                raise fail(line, "ROOT inside a joint" if stack else "JOINT outside any ROOT")
            if stack and stack[-1][0] == -2:
                raise fail(line, "JOINT inside an End Site")
            name_toks = _until_brace(line_toks[k + 1 :])
            if not name_toks:
                raise fail(line, f"{tok} without a name")
            pos += len(name_toks)
            names.append(" ".join(name_toks))
            parents.append(stack[-1][0] if stack else -1)
            if take("'{'")[0] != "{":
                raise fail(line, f"expected '{{' after {tok} {names[-1]}")
            offsets.append(offset())
            tok, line = take("CHANNELS")
            if tok != "CHANNELS":
                raise fail(line, f"expected CHANNELS for joint {names[-1]!r}, got {tok!r}")
            n_tok, line = take("channel count")
            if not n_tok.isdigit():
                raise fail(line, f"expected a channel count for joint {names[-1]!r}, got {n_tok!r}")
            chans = []
            for _ in range(int(n_tok)):
                ch, line = take("a channel name")
                if ch.lower() not in CHANNEL_NAMES:
                    raise fail(
                        line, f"unknown channel name {ch!r} in joint {names[-1]!r} (expected X/Y/Z position/rotation)"
                    )
                chans.append(CHANNEL_NAMES[ch.lower()])
            if len(set(chans)) != len(chans):
                raise fail(line, f"joint {names[-1]!r} lists a channel twice: {chans}")
            channels.append(tuple(chans))
            stack.append((len(names) - 1, line))
        elif tok == "End":
            if not stack or stack[-1][0] < 0:
                raise fail(line, "End Site outside a joint")
            pos += len(_until_brace(line_toks[k + 1 :]))  # "Site"
            if take("'{'")[0] != "{":
                raise fail(line, "expected '{' after End Site")
            site = np.array(offset())
            joint = stack[-1][0]
            if joint in end_sites:
                log.warning("%s: line %d: joint %r has a second End Site; keeping the first", path, line, names[joint])
            else:
                end_sites[joint] = site
            stack.append((-2, line))
        elif tok == "}":
            if not stack:
                raise fail(line, "unbalanced braces: '}' without a matching '{'")
            stack.pop()
        else:
            raise fail(line, f"unexpected {tok!r} (expected JOINT, End Site or '}}')")
    if stack:
        what = "End Site" if stack[-1][0] == -2 else f"joint {names[stack[-1][0]]!r}"
        raise BvhError(
            f"{path}: unbalanced braces: {len(stack)} '{{' not closed ({what} opened at line {stack[-1][1]})"
        )
    if not names:
        raise BvhError(f"{path}: HIERARCHY has no ROOT joint")
    try:
        return Skeleton(tuple(names), tuple(parents), np.array(offsets, dtype=np.float64), tuple(channels), end_sites)
    except ValueError as e:
        raise BvhError(f"{path}: {e}") from None


# ----------------------------------------------------------------------------------------------------------------
# Writing


def _dfs_order(skeleton: Skeleton) -> list[int]:
    order: list[int] = []
    stack = [j for j, p in enumerate(skeleton.parents) if p < 0][::-1]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(skeleton.children(j)[::-1])
    return order


def write_bvh(path: str | Path, clip: BvhClip, precision: int = 6) -> None:
    """Write ``clip`` with each joint's own channel list and order.

    Motion values are written ``%.{precision}f``, so numbers read from a file with at most ``precision`` decimals
    come back exactly; others within 0.5 * 10^-precision. OFFSETs and the frame time are written exactly (Python's
    shortest round-trip repr). A skeleton whose joints are not in depth-first order is written depth-first, its
    columns reordered to match (reading it back gives that order).
    """
    sk = clip.skeleton
    order = _dfs_order(sk)
    starts = sk.channel_offsets()
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        lines.append(f"{pad}{'ROOT' if sk.parents[j] < 0 else 'JOINT'} {sk.names[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {' '.join(repr(float(o)) for o in sk.offsets[j])}")
        lines.append(f"{pad}  CHANNELS {len(sk.channels[j])}{''.join(' ' + c for c in sk.channels[j])}")
        if j in sk.end_sites:
            lines.extend([f"{pad}  End Site", f"{pad}  {{"])
            lines.append(f"{pad}    OFFSET {' '.join(repr(float(o)) for o in sk.end_sites[j])}")
            lines.append(f"{pad}  }}")
        for c in sk.children(j):
            emit(c, depth + 1)
        lines.append(f"{pad}}}")

    for root in (j for j in order if sk.parents[j] < 0):
        emit(root, 0)
    cols = np.concatenate([np.arange(starts[j], starts[j + 1]) for j in order]).astype(int)
    values = clip.values[:, cols] if len(cols) else clip.values
    lines += ["MOTION", f"Frames: {clip.n_frames}", f"Frame Time: {float(clip.frame_time)!r}"]
    row = " ".join([f"%.{int(precision)}f"] * values.shape[1])
    with open(path, "w", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
        for i in range(0, clip.n_frames, 4096):  # bounded memory for long takes
            block = values[i : i + 4096].tolist()
            f.write("\n".join(row % tuple(r) for r in block) + "\n")


# ----------------------------------------------------------------------------------------------------------------
# Resampling


def resample(clip: BvhClip, fps: float) -> BvhClip:
    """``clip`` at ``fps`` frames per second, frame 0 kept at time 0.

    An integer ratio (120 or 60 -> 30, within 0.1 %) keeps every n-th frame: values untouched, frame time n times
    the source's. Any other ratio interpolates at t_k = k / fps up to the last source frame: position channels
    linearly, each joint's rotation by quaternion slerp (scipy ``Rotation``), written back in the joint's own Euler
    order (angles come back in scipy's ranges, so an unwrapped Euler track is re-wrapped).
    """
    if not fps > 0:
        raise ValueError(f"resample: fps must be > 0, got {fps}")
    ratio = clip.fps / fps
    step = round(ratio)
    if step >= 1 and abs(ratio - step) <= 1e-3 * ratio:
        return BvhClip(clip.skeleton, clip.frame_time * step, clip.values[::step].copy())
    span = (clip.n_frames - 1) * clip.frame_time
    u = np.arange(int(np.floor(span * fps + 1e-9)) + 1) / fps / clip.frame_time  # (F',) source frame coordinates
    i0 = np.minimum(np.floor(u).astype(int), max(clip.n_frames - 2, 0))
    i1 = np.minimum(i0 + 1, clip.n_frames - 1)
    w = (u - i0)[:, None]  # (F', 1) weight of frame i1
    values = clip.values[i0] * (1 - w) + clip.values[i1] * w  # positions linear; rotations replaced below
    q = kinematics.local_quats(clip)  # (F, J, 4) xyzw
    q_new = kinematics.slerp(q[i0], q[i1], w[:, :, None] * np.ones(q.shape[1])[None, :, None])
    kinematics.write_rotations(clip.skeleton, values, q_new)
    return BvhClip(clip.skeleton, 1.0 / fps, values)
