"""Regenerate ``runtime/assets/demo/{a,b}.wav``: the two voices ``make demo`` animates on a machine without a mic.

A ~20 s synthetic two-person dialogue from the training corpus generator (``training.data.speech``): espeak-ng
voices with turn-taking, overlaps and backchannels, each person's close-talk microphone as a headset hears it
(own voice + the partner's bleed + room noise). Person A's track goes to ``a.wav``, B's to ``b.wav``: 16 kHz mono
PCM16, ~640 KB each. Deterministic for a given seed (and espeak-ng version).

Usage: ``.venv/bin/python scripts/make_demo_audio.py [--seed 7] [--seconds 20] [--out runtime/assets/demo]``
(needs the training extra and espeak-ng; the runtime only reads the WAVs).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from runtime.constants import SAMPLE_RATE  # noqa: E402
from runtime.formats.wav import write_wav  # noqa: E402

OUT = REPO / "runtime" / "assets" / "demo"
log = logging.getLogger("make_demo_audio")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7, help="dialogue seed (default 7)")
    parser.add_argument("--seconds", type=float, default=20.0, help="dialogue length in seconds (default 20)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT.relative_to(REPO)})")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from training.data.speech import generate_dialogue  # the training extra (espeak-ng), not the runtime

    dialogue = generate_dialogue(np.random.default_rng(args.seed), args.seconds)
    for name, track in zip(("a", "b"), dialogue.tracks, strict=True):
        path = args.out / f"{name}.wav"
        write_wav(path, track.audio, SAMPLE_RATE, subtype="PCM_16")
        said = " / ".join(u.text for u in track.utterances)
        log.info("%s: %.1f s, voice %s, %d utterances: %s", path, len(track.audio) / SAMPLE_RATE, track.voice,
                 len(track.utterances), said)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
