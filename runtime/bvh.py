"""BVH motion files: read, write, resample (DESIGN section 4).

What BVH leaves open, and what this module chose:

- ``BvhClip.values`` keeps the raw channel values, (F, C) float64 in file order: degrees and source units.
- A joint's position channels, where it has them, *replace* its OFFSET in that frame (the reading of Blender and
  pymo; the Bandai Namco files store the offset itself in them). ``runtime.motion`` uses the same rule.
- Euler order is the order of a joint's rotation channels: "Zrotation Xrotation Yrotation" is R = Rz Rx Ry.
- Units: BVH has none. ``BvhClip.units`` guesses from the rest pose (every rotation zero, offsets only): the
  diagonal of the bounding box of all joints and End Sites. A person is 1-2 m tall, so that is about 100-250 in
  cm and 1-2.5 in m; above 10 reads as "cm", otherwise "m" (inches are not told apart: they read as "cm").
- Speed: the MOTION numbers are parsed by a vectorised byte parser (``_parse_numbers``, SWAR arithmetic on
  64-bit words, two threads): plain decimals ("-12.345678", up to 15 characters) take the fast path; a block of
  text with anything else (exponents, "nan") is parsed by numpy's ``fromstring`` instead, so every file that
  numpy can read parses, the unusual ones at C-loop speed.
"""

from __future__ import annotations

import logging
import mmap
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.skeleton import POSITION_CHANNELS, ROTATION_CHANNELS, Skeleton

log = logging.getLogger(__name__)

CHANNEL_NAMES = {c.lower(): c for c in POSITION_CHANNELS + ROTATION_CHANNELS}  # accepted case-insensitively
CM_THRESHOLD = 10.0  # rest-pose bounding-box diagonal above this reads as centimetres (see module docstring)


class BvhError(ValueError):
    """A malformed BVH file; the message names the file, the line where known, and what was expected."""


@dataclass(frozen=True, eq=False)
class BvhClip:
    skeleton: Skeleton
    frame_time: float  # seconds per frame
    values: np.ndarray  # (F, C) float64 raw channel values in file order (degrees, source units)

    def __post_init__(self) -> None:
        c = self.skeleton.n_channels
        if self.values.ndim != 2 or self.values.shape[1] != c:
            raise ValueError(f"BvhClip.values: expected (frames, {c}) for this skeleton, got {self.values.shape}")
        if not self.frame_time > 0:
            raise ValueError(f"BvhClip.frame_time must be > 0 seconds, got {self.frame_time}")

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def n_frames(self) -> int:
        return self.values.shape[0]

    @property
    def duration(self) -> float:
        """Seconds covered by the frames: ``n_frames * frame_time``."""
        return self.n_frames * self.frame_time

    @property
    def units(self) -> str:
        """ "cm" or "m", guessed from the rest pose's size (rule in the module docstring)."""
        sk = self.skeleton
        rest = np.zeros((sk.n_joints, 3))
        for j, p in enumerate(sk.parents):
            rest[j] = sk.offsets[j] + (rest[p] if p >= 0 else 0.0)
        points = [rest] + [rest[j] + np.asarray(o)[None] for j, o in sk.end_sites.items()]
        points = np.concatenate(points)
        return "cm" if np.linalg.norm(np.ptp(points, axis=0)) > CM_THRESHOLD else "m"

    def to_metres(self) -> BvhClip:
        """This clip in metres: offsets, End Sites and position channels scaled by 0.01 if it is in cm."""
        if self.units == "m":
            return self
        values = self.values.copy()
        names = [c for chans in self.skeleton.channels for c in chans]  # (C,) channel name per column
        values[:, [i for i, c in enumerate(names) if c in POSITION_CHANNELS]] *= 0.01
        return BvhClip(self.skeleton.scaled(0.01), self.frame_time, values)


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


def _line_of(buf: bytes | mmap.mmap, pos: int) -> int:
    return buf.count(b"\n", 0, pos) + 1 if isinstance(buf, bytes) else bytes(buf[:pos]).count(b"\n") + 1


def _read(buf: mmap.mmap, path: Path) -> BvhClip:
    m = _MOTION.search(buf)
    if m is None:
        raise BvhError(f"{path}: no MOTION section (expected a line 'MOTION' after the HIERARCHY)")
    skeleton = _parse_hierarchy(bytes(buf[: m.start()]).decode("utf-8", errors="replace"), path)
    head = _FRAMES.match(buf, m.end())
    line = _line_of(buf, m.end()) + 1
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
    values = _parse_numbers(buf, head.end(), len(buf), path)
    if values.size != n_frames * c:
        raise BvhError(f"{path}: {_count_problem(buf, head.end(), n_frames, c, values.size)}")
    return BvhClip(skeleton, frame_time, values.reshape(n_frames, c))


def _count_problem(buf: mmap.mmap, start: int, n_frames: int, c: int, got: int) -> str:
    """Why the value count is wrong, naming the first bad line (slow; error path only)."""
    expected = f"expected {n_frames} frames x {c} channels = {n_frames * c} values, got {got}"
    first_line = _line_of(buf, start)
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
            return float(tok)
        except ValueError:
            raise fail(line, f"{tok!r} is not a number ({line_hint})") from None

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
# MOTION numbers -> float64, vectorised (no Python loop over frames or values).
#
# A token (a run of bytes > 0x20) is found by its start s and end e. The 16 bytes ending at e are read as two
# little-endian uint64 words: hi = bytes e-16..e-9, lo = e-8..e-1. The bytes before the token and its sign are
# set to "0", the first "." is set to "0" and its place kept, and each word's 8 digits are summed by three
# multiply-shift steps (SWAR, as simdjson's parse_eight_digits). With at most 15 characters the integer n is exact
# in float64, so value = (n with the dot's "0" taken out) / 10^p is one correctly rounded division: the same
# double that strtod returns. A chunk holding anything else (exponents, "nan", "+1", 16+ characters) is parsed by
# numpy's fromstring instead.

_CHUNK = 1 << 19  # bytes of MOTION text per work item (~50k numbers): measured best of 64 KB .. 1 MB
_THREADS = 2  # the 2-core CPU of DESIGN section 7


def _u64(x: int) -> np.uint64:
    return np.uint64(x)


_B1 = 0x0101010101010101
_ONES, _HIGHS, _ZEROS, _DOTS = (_u64(c * _B1) for c in (0x01, 0x80, 0x30, 0x2E))
_NINE_UP = _u64(0x46 * _B1)  # byte + 0x46 sets the byte's high bit iff byte > "9"
_LOW4 = _u64(0x0F * _B1)
_DOT_TO_ZERO = _u64(0x2E ^ 0x30)
# By dot code (byte index 0..15 of the first "." in the 16 bytes, 16 = none); p = 15 - code digits follow the dot.
_DIV = np.array([10.0 ** (16 - c) for c in range(16)] + [np.inf])  # 10^(p+1): n // _DIV = digits before the dot
_NINES = np.array([9 * 10.0 ** (15 - c) for c in range(16)] + [0.0])  # n - q * 9 * 10^p drops the dot's "0"
_SCALE = np.array([10.0 ** (15 - c) for c in range(16)] + [1.0])
_SCALE = np.concatenate([_SCALE, -_SCALE])  # [code + 17 * negative]


class _Scratch:
    """One thread's buffers, reused for every chunk so that parsing does not churn the allocator."""

    def __init__(self, n_bytes: int) -> None:
        cap = n_bytes // 2 + 1  # at most one number per two bytes
        self.n_bytes = n_bytes
        self.ws, self.edge = np.empty(n_bytes + 1, bool), np.empty(n_bytes, bool)
        self.idx, self.length, self.code = (np.empty(cap, np.intp) for _ in range(3))
        self.t, self.d = np.empty((cap, 2), np.uint64), np.empty((cap, 2), np.uint64)
        self.u = np.empty(cap, np.uint64)
        self.dots, self.first = np.empty((cap, 2), np.uint8), np.empty(cap, np.uint8)
        self.neg, self.bad, self.flag = (np.empty(cap, bool) for _ in range(3))
        self.v, self.q, self.f = (np.empty(cap) for _ in range(3))


def _digits8(v: np.ndarray) -> np.ndarray:
    """uint64 words of 8 ASCII digits, first character in the low byte -> their integer values (in place)."""
    v &= _LOW4
    v *= _u64(10 * 256 + 1)
    v >>= _u64(8)
    v &= _u64(0x00FF00FF00FF00FF)
    v *= _u64(100 * 65536 + 1)
    v >>= _u64(16)
    v &= _u64(0x0000FFFF0000FFFF)
    v *= _u64(10000 * 2**32 + 1)
    v >>= _u64(32)
    return v


def _token_edges(b: np.ndarray, a: int, z: int, k: _Scratch) -> np.ndarray:
    """(m,) bool: True where a number starts or ends in b[a + 1 : z + 1]; b[a] is whitespace, b[z] too or z is
    the end of the text."""
    m = z - a
    np.less_equal(b[a:z], 32, out=k.ws[:m])
    k.ws[m] = True
    return np.not_equal(k.ws[1 : m + 1], k.ws[:m], out=k.edge[:m])


def _parse_chunk(b: np.ndarray, words: np.ndarray, a: int, z: int, k: _Scratch) -> np.ndarray | None:
    """Values of the numbers in b[a + 1 : z] (a view into the scratch), or None if the fast path cannot."""
    edge = _token_edges(b, a, z, k)
    se = np.flatnonzero(edge).reshape(-1, 2)
    se += a + 1
    s, e = se[:, 0], se[:, 1]  # (n,) first byte and one past the last byte of each number
    n = len(s)
    neg, length, bad, flag, code = k.neg[:n], k.length[:n], k.bad[:n], k.flag[:n], k.code[:n]
    np.take(b, s, out=k.first[:n])
    np.equal(k.first[:n], ord("-"), out=neg)
    np.subtract(e, s, out=length)
    length -= neg
    np.greater(length, 15, out=bad)
    bad |= np.equal(length, 0, out=flag)
    np.minimum(length, 16, out=length)
    np.subtract(e, 16, out=k.idx[:n])
    x = words[k.idx[:n]].view(np.uint64).reshape(n, 2)  # hi, lo words of the 16 bytes ending at each number
    t, d, u = k.t[:n], k.d[:n], k.u[:n]
    shift = k.idx[:n]  # bytes before the number: the low 16 - L bytes of the 16 (hi first)
    np.multiply(length, -8, out=shift)
    shift += 128
    np.minimum(shift, 64, out=shift)  # bits of hi before the number: 128 - 8 L, all 64 if L <= 8
    np.left_shift(1, shift, out=d[:, 0], casting="unsafe")  # 1 << 64 is 0 in numpy
    np.multiply(length, -8, out=shift)
    shift += 64
    np.maximum(shift, 0, out=shift)  # bits of lo before it: 64 - 8 L, none if L >= 8
    np.left_shift(1, shift, out=d[:, 1], casting="unsafe")
    d -= _u64(1)  # (n, 2) pad masks
    np.bitwise_xor(x, _ZEROS, out=t)
    t &= d
    x ^= t  # bytes before the number, and its sign, -> "0"
    np.bitwise_xor(x, _DOTS, out=t)
    np.subtract(t, _ONES, out=d)
    np.invert(t, out=t)
    d &= t
    d &= _HIGHS  # high bit of each "." byte (exact for the first one in a word)
    np.negative(d, out=t)
    d &= t  # the first "." of each word only: a second one stays and fails the digit test
    np.equal(d[:, 0], 0, out=flag)
    d[:, 1] *= flag  # a "." in hi (earlier characters) comes first
    np.right_shift(d, _u64(7), out=t)
    t *= _DOT_TO_ZERO
    x ^= t
    np.add(x, _NINE_UP, out=t)
    d -= _u64(1)
    np.bitwise_count(d, out=k.dots[:n])  # 8 * byte + 7 of the ".", 64 if none
    np.subtract(x, _ZEROS, out=d)
    t |= d
    t &= _HIGHS  # high bit of each byte that is not a digit
    np.bitwise_or(t[:, 0], t[:, 1], out=u)
    bad |= np.not_equal(u, 0, out=flag)
    dots = k.dots[:n]
    dots >>= 3  # byte 0..7 of the first "." in each word, 8 if none
    np.equal(dots[:, 0], 8, out=flag)
    np.multiply(dots[:, 1], flag, out=code, casting="unsafe")
    code += dots[:, 0]  # byte 0..15 of the first "." in the 16, 16 if none
    np.equal(length, 1, out=flag)
    flag &= code < 16
    bad |= flag  # "." or "-." alone
    if bad.any():
        return None
    _digits8(x.reshape(-1))
    v, q, f = k.v[:n], k.q[:n], k.f[:n]
    np.multiply(x[:, 0], 1e8, out=v)
    v += x[:, 1]
    np.divide(v, np.take(_DIV, code, out=f), out=q)
    np.floor(q, out=q)
    q *= np.take(_NINES, code, out=f)
    v -= q
    np.multiply(neg, 17, out=k.idx[:n], casting="unsafe")
    code += k.idx[:n]
    v /= np.take(_SCALE, code, out=f)
    return v


def _next_space(b: np.ndarray, pos: int, stop: int) -> int:
    """First whitespace byte at or after ``pos``, or ``stop``."""
    while pos < stop:
        hit = np.flatnonzero(b[pos : pos + 256] <= 32)
        if hit.size:
            return min(pos + int(hit[0]), stop)
        pos += 256
    return stop


def _parse_numbers(buf: mmap.mmap | bytes, start: int, stop: int, path: Path) -> np.ndarray:
    """All whitespace-separated numbers in buf[start:stop] (buf[start - 1] is whitespace, start >= 16)."""
    if start >= stop:
        return np.empty(0)
    b = np.frombuffer(buf, np.uint8)
    words = np.ndarray((b.size - 15,), dtype="V16", buffer=buf, strides=(1,))  # 16 bytes starting at each byte
    edges = [start - 1]
    while edges[-1] + _CHUNK < stop:
        edges.append(_next_space(b, edges[-1] + _CHUNK, stop))
    edges.append(stop)
    spans = [(a, z) for a, z in zip(edges[:-1], edges[1:], strict=True) if z > a]
    local = threading.local()

    def scratch(n_bytes: int) -> _Scratch:
        k = getattr(local, "k", None)
        if k is None or k.n_bytes < n_bytes:
            k = local.k = _Scratch(n_bytes + 256)
        return k

    def count(span: tuple[int, int]) -> int:
        a, z = span
        return int(np.count_nonzero(_token_edges(b, a, z, scratch(z - a)))) // 2

    def parse(i: int) -> None:
        a, z = spans[i]
        v = _parse_chunk(b, words, a, z, scratch(z - a))
        if v is None:
            v = _parse_slow(buf, a + 1, z, path)
            if v.size != offsets[i + 1] - offsets[i]:
                raise BvhError(f"{path}: MOTION data near line {_line_of(buf, a + 1)} is not plain numbers")
        out[offsets[i] : offsets[i + 1]] = v

    with ThreadPoolExecutor(min(_THREADS, max(1, len(spans)))) as pool:
        offsets = np.concatenate([[0], np.cumsum(list(pool.map(count, spans)))]).astype(int)
        out = np.empty(offsets[-1])
        list(pool.map(parse, range(len(spans))))
    return out


def _parse_slow(buf: mmap.mmap | bytes, start: int, stop: int, path: Path) -> np.ndarray:
    """numpy's C parser for a chunk the fast path declined; names the line of a token that is not a number."""
    text = bytes(buf[start:stop])
    try:
        return np.fromstring(text.decode("ascii"), sep=" ")
    except (UnicodeDecodeError, ValueError):
        pass
    for m in re.finditer(rb"\S+", text):
        try:
            float(m.group())
        except ValueError:
            line = _line_of(buf, start + m.start())
            raise BvhError(
                f"{path}: line {line}: {m.group()[:40].decode(errors='replace')!r} in MOTION is not a number"
            ) from None
    raise BvhError(f"{path}: MOTION data near line {_line_of(buf, start)} is not plain numbers")


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
    from runtime import motion  # motion imports this module; a top-level import would be circular

    span = (clip.n_frames - 1) * clip.frame_time
    u = np.arange(int(np.floor(span * fps + 1e-9)) + 1) / fps / clip.frame_time  # (F',) source frame coordinates
    i0 = np.minimum(np.floor(u).astype(int), max(clip.n_frames - 2, 0))
    i1 = np.minimum(i0 + 1, clip.n_frames - 1)
    w = (u - i0)[:, None]  # (F', 1) weight of frame i1
    values = clip.values[i0] * (1 - w) + clip.values[i1] * w  # positions linear; rotations replaced below
    q = motion.local_quats(clip)  # (F, J, 4) xyzw
    q_new = motion.slerp(q[i0], q[i1], w[:, :, None] * np.ones(q.shape[1])[None, :, None])
    motion.write_rotations(clip.skeleton, values, q_new)
    return BvhClip(clip.skeleton, 1.0 / fps, values)
