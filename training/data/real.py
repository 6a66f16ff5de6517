"""Real voices as training windows: the ``real`` subset (issue 12), next to the synthetic corpus that stays the bulk.

Two sources from ``../shared/external`` (its README gives licences and roles), each a single speaker as person A
with a quiet room as B, and each supervising only the channels it knows (``SeqArrays.mask``; the rest of the face is
filled with the corpus mean and carries no loss):

- **Read English with transcripts** (``dc-tts-read-speech/``, Apache-2.0): PocketSphinx phone timings
  (``training.data.align``) drive the corpus's own viseme generator (``training.data.visemes.mouth``, the same
  coarticulation and loudness gain as the synthetic faces), so the targets are the synthetic rule on a real voice.
  Supervised: the viseme channels but the smile (see below). Every 5th file (by name) is held out,
  and LJSpeech is held out whole (a second voice), for ``training.real_speech``. Files the aligner cannot align are
  named in a warning and skipped.
- **FACEGOOD Mandarin** (``facegood-mandarin/``, MIT): real speech with an artist's mouth curves mapped to ARKit
  (``training.data.facegood``). Supervised: the table's valid channels the artist moves (jaw, funnel, pucker, lower
  and upper lip). Take 2_05 is held out.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from runtime.constants import FPS, SAMPLE_RATE
from runtime.engine.audio import log_mel
from runtime.formats.arkit import INDEX, N_BLENDSHAPES
from runtime.formats.wav import read_audio
from training.data.windows import single_speaker

log = logging.getLogger(__name__)

EXTERNAL = Path(__file__).resolve().parents[2].parent / "shared" / "external"
ENGLISH_TRAIN = "dc-tts-read-speech"
ENGLISH_HELD_OUT_EVERY = 5  # every 5th dc-tts file (by name) is kept back; LJSpeech is kept back whole
ENGLISH_HELD_OUT_ONLY = ("ljspeech-excerpts",)
# The smile is expression, not articulation: the synthetic faces add a per-actor smile bias and emotion poses on top of
# the visemes (median 0.17), which neither the aligner nor FACEGOOD's mouth-only animation knows. Supervising it with
# their near-0 smile would teach the default face to stop smiling; it stays unsupervised in both real sources.
EXPRESSION_CHANNELS = ("mouthSmileLeft", "mouthSmileRight")
FACEGOOD_ACTIVE_P95 = 0.05  # a FACEGOOD channel is supervised where its 95th percentile over the training takes is
# at least this: the table's "valid" press, roll, stretch and shrug curves are 0 on 95 % of frames (p95 0.000); as
# targets they would teach lips that never press or roll (the synthetic corpus presses to 0.35 on every p/b/m).


def english_items(name: str, held_out: bool) -> list[tuple[Path, str]]:
    """(audio, transcript) of one English set, the training or the held-out part."""
    from training.data.read_speech import dataset_items

    items = [(p, t) for p, t in dataset_items(EXTERNAL / name) if t]
    if name in ENGLISH_HELD_OUT_ONLY:
        return items if held_out else []
    kept = set(range(0, len(items), ENGLISH_HELD_OUT_EVERY))
    return [it for i, it in enumerate(items) if (i in kept) == held_out]


def english_target(audio: np.ndarray, phones: list, n_frames: int) -> np.ndarray:
    """(F, 52) viseme-channel weights for a real voice: the synthetic corpus's rule (loudness opens the jaw)."""
    from training.data.speech import frame_rms
    from training.data.visemes import mouth

    loud = frame_rms(audio, n_frames)
    speaking = loud[loud > np.percentile(loud, 50)]
    ref = float(np.median(speaking)) if speaking.size and np.median(speaking) > 1e-6 else 1.0
    gain = np.clip(0.8 + 0.2 * loud / ref, 0.75, 1.3).astype(np.float32)
    w = np.zeros((n_frames, N_BLENDSHAPES), np.float32)
    for name, values in mouth(phones, n_frames, gain).items():
        w[:, INDEX[name]] = values
    return w


def english_mask() -> np.ndarray:
    """(52,) the viseme channels but the smile."""
    from training.data.visemes import MOUTH_CHANNELS

    mask = np.zeros(N_BLENDSHAPES, np.float32)
    mask[[INDEX[c] for c in MOUTH_CHANNELS if c not in EXPRESSION_CHANNELS]] = 1.0
    return mask


def facegood_mask(weights: list[np.ndarray], valid: np.ndarray) -> np.ndarray:
    """(52,) the table's valid channels that the artist actually moves (p95 >= FACEGOOD_ACTIVE_P95), but the smile."""
    p95 = np.percentile(np.concatenate(weights), 95, axis=0)
    mask = valid & (p95 >= FACEGOOD_ACTIVE_P95)
    mask[[INDEX[c] for c in EXPRESSION_CHANNELS]] = False
    return mask.astype(np.float32)


def english_sequences(style: int) -> list:
    """The training part of the read English, aligned; unalignable files are named and skipped."""
    from training.data.align import AlignmentError, align

    out, failed = [], 0
    for path, text in english_items(ENGLISH_TRAIN, held_out=False):
        audio = read_audio(path).channels[0]
        try:
            phones = align(audio, SAMPLE_RATE, text, source=str(path))
        except AlignmentError as exc:
            log.warning("real English: skipping %s", exc)
            failed += 1
            continue
        n = int(len(audio) / SAMPLE_RATE * FPS)
        face = english_target(audio, phones, n)
        out.append(single_speaker(f"en_{path.stem}", log_mel(audio), face, style, english_mask()))
    log.info("real English: %d files aligned, %d skipped", len(out), failed)
    return out


def facegood_sequences(style: int) -> list:
    """FACEGOOD's training takes with their mapped mouth curves."""
    from training.data.facegood import SAMPLE_RATE as FG_RATE
    from training.data.facegood import TRAIN_IDS, load_pair

    if FG_RATE != SAMPLE_RATE:
        raise ValueError(f"FACEGOOD audio is {FG_RATE} Hz, the model hears {SAMPLE_RATE} Hz")
    pairs = [load_pair(pair_id) for pair_id in TRAIN_IDS]
    mask = facegood_mask([p.weights for p in pairs], pairs[0].mask)
    log.info("FACEGOOD: supervising %s", ", ".join(n for n, i in INDEX.items() if mask[i]))
    return [single_speaker(f"facegood_{p.pair_id}", log_mel(p.audio), p.weights, style, mask) for p in pairs]


def real_sequences(style: int) -> list:
    """Every real training sequence this machine has the data for (absent sources are named, not failed)."""
    out = []
    for name, build in (("dc-tts-read-speech", english_sequences), ("facegood-mandarin", facegood_sequences)):
        if not (EXTERNAL / name).is_dir():
            log.warning("real speech: %s is absent; training without it", EXTERNAL / name)
            continue
        out += build(style)
    if not out:
        raise FileNotFoundError(f"{EXTERNAL}: no real speech to train on")
    return out
