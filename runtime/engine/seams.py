"""How one streamed body window joins the frames already committed (issue 13).

Measured on held-out synthetic clips, nearly all of a streamed body's jerk sat at the block seams: inside a block the
Gaussian-smoothed model output is as smooth as the data (third differences of 20-33 m/s^3 against 21), across a
seam it jumped (116-786), because the new window's first frames are not the ones the previous window predicted.
Two things make the stream both lively and smooth:

- **Fresh noise per window** for the upper body (``window_noise``): reusing one noise tensor for every window pinned
  each block to the same draw, which the model answered with nearly the same small motion (wrist speed 0.28 of the
  data's); a fresh draw per window lets the gestures vary. The draw is counter-based, a function of (seed, stream,
  first frame), so the output still depends only on the audio and the settings, never on chunk sizes. The lower
  body keeps the session's draw: fresh legs every 200 ms slid the feet (foot skating 12 vs 9 cm/s).
- **A critically damped seam** (``join``): the difference between the committed history and the new window at the
  last committed frame, in value and in velocity, is carried into the new frames and dies out as
  (g + (v + r g) k) exp(-r k) over k frames: continuous in value and velocity at the seam, gone within a block.
"""

from __future__ import annotations

import numpy as np

STREAMS = {"body_lower": 1, "body_upper": 2, "face": 3}
PADDING = 1 << 20  # added to frame numbers in a draw's key: a window at the stream start reaches back before frame 0


def window_noise(seed: int, stream: str, frame: int, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 noise for the window whose first new frame is ``frame``: a pure function of its
    arguments."""
    return np.random.default_rng([seed, STREAMS[stream], frame]).standard_normal(shape).astype(np.float32)


class FrameNoise:
    """Noise tied to frames, not to window rows (the faces): frame t's (people, D) draw is a pure function of (seed,
    stream, t), so a frame meets the same noise in every window that holds it, and each frame of a session its own.
    The session's one draw, reused at every window, gives each block's rows the same few draws and so biases every
    block alike for a whole session (closure 89-98 % over seeds 0-3). Tied to frames, sessions agree (90-92 %), but
    the noise then moves the jaw frame by frame, apart from the voice: FACEGOOD jaw r 0.79 -> 0.75. Not the default.
    """

    def __init__(self, seed: int, stream: str, people: int, dim: int) -> None:
        self.key, self.people, self.dim = (seed, STREAMS[stream]), people, dim
        self.first, self.rows = 0, np.zeros((people, 0, dim), np.float32)  # the frames drawn so far, oldest first

    def _draw(self, frame: int) -> np.ndarray:
        rng = np.random.default_rng([*self.key, frame + PADDING])
        return rng.standard_normal((self.people, 1, self.dim)).astype(np.float32)

    def window(self, first: int, n: int) -> np.ndarray:
        """(people, n, D) noise of frames first .. first + n - 1; frames kept from the last call are not drawn again."""
        held = self.rows[:, first - self.first :][:, :n] if first >= self.first else self.rows[:, :0]
        drawn = (self._draw(t) for t in range(first + held.shape[1], first + n))
        self.first, self.rows = first, np.concatenate([held, *drawn], axis=1)
        return self.rows


def join(history: np.ndarray, x: np.ndarray, context: int, rate: float) -> np.ndarray:
    """Carry the seam's value and velocity mismatch into the new frames of window ``x`` and let it die out.

    history (N, D): committed frames, newest last; x (1, W, D): the window, rows ``context - N .. context - 1``
    holding the same frames as the model sees them, rows ``context ..`` new. Returns a copy of ``x`` whose new rows
    start from the committed value and velocity. ``rate`` per frame (0 = off). Needs N >= 2 for the velocity.
    """
    if rate <= 0 or len(history) < 2 or context < 2:
        return x
    last, prev = x[0, context - 1], x[0, context - 2]
    gap = history[-1] - last
    slope = (history[-1] - history[-2]) - (last - prev)
    k = np.arange(1, x.shape[1] - context + 1, dtype=np.float32)[:, None]
    out = x.copy()
    out[0, context:] += (gap + (slope + rate * gap) * k) * np.exp(-rate * k)
    return out
