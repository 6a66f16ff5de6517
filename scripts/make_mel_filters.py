"""Regenerate ``runtime/assets/mel_filters.npy``: the Slaney mel filterbank the runtime's log-mel uses.

librosa is a training/dev dependency; the runtime only ``np.load``s the result, so serving never imports it.
Usage: ``.venv/bin/python scripts/make_mel_filters.py`` (writes the file; ``--check`` only compares).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from runtime.constants import FMAX, FMIN, N_FFT, N_MELS, SAMPLE_RATE  # noqa: E402

OUT = REPO / "runtime" / "assets" / "mel_filters.npy"
log = logging.getLogger("make_mel_filters")


def librosa_mel_filters() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) = (80, 257) float32 Slaney-style, Slaney-normalised mel filters from librosa."""
    import librosa

    filters = librosa.filters.mel(
        sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX, htk=False, norm="slaney", dtype=np.float32
    )
    return np.ascontiguousarray(filters, dtype=np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    filters = librosa_mel_filters()
    if args.check:
        committed = np.load(OUT)
        same = committed.shape == filters.shape and np.array_equal(committed, filters)
        log.info("%s %s librosa's output", OUT, "equals" if same else "DIFFERS FROM")
        return 0 if same else 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.save(OUT, filters)
    log.info("wrote %s: %s %s", OUT, filters.shape, filters.dtype)
    return 0


if __name__ == "__main__":
    sys.exit(main())
