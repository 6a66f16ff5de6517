"""Whitespace-separated decimal numbers -> float64, vectorised, for BVH MOTION sections (no loop over values).

Split out of ``runtime.formats.bvh`` because it is one concept: a fast, exact number parser (a 10-minute 120 fps take,
13.8 M numbers, parses in ~0.6-0.9 s on 2 cores against ~3.5 s for ``np.fromstring``; benchmarks/bvh_parse.py).
"""

from __future__ import annotations

import mmap
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class NumberError(ValueError):
    """Text in the data that is not a number: ``pos`` is its byte offset, ``token`` the text."""

    def __init__(self, pos: int, token: str) -> None:
        super().__init__(f"{token!r} is not a number")
        self.pos, self.token = pos, token


def line_of(buf: bytes | mmap.mmap, pos: int) -> int:
    """1-based line number of byte ``pos``."""
    return buf.count(b"\n", 0, pos) + 1 if isinstance(buf, bytes) else bytes(buf[:pos]).count(b"\n") + 1


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


def parse_numbers(buf: mmap.mmap | bytes, start: int, stop: int) -> np.ndarray:
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
            v = _parse_slow(buf, a + 1, z)
            if v.size != offsets[i + 1] - offsets[i]:
                raise NumberError(a + 1, "(data that numpy reads differently)")
        out[offsets[i] : offsets[i + 1]] = v

    with ThreadPoolExecutor(min(_THREADS, max(1, len(spans)))) as pool:
        offsets = np.concatenate([[0], np.cumsum(list(pool.map(count, spans)))]).astype(int)
        out = np.empty(offsets[-1])
        list(pool.map(parse, range(len(spans))))
    return out


def _parse_slow(buf: mmap.mmap | bytes, start: int, stop: int) -> np.ndarray:
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
            raise NumberError(start + m.start(), m.group()[:40].decode(errors="replace")) from None
    raise NumberError(start, "(data)")
