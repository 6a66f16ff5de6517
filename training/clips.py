"""Held-out test clips of a corpus, cut to the evaluated length, with their microphones, phone timings and speech
activity: what ``training.evaluate``, ``training.figures`` and the quality benchmark stream through the engine."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from runtime.constants import FPS, SAMPLE_RATE
from runtime.formats.wav import read_audio
from training.data.dialogue import Phone
from training.data.windows import Corpus, SeqArrays
from training.metrics import face as fm


@dataclass
class Clip:
    seq: SeqArrays  # cut to the evaluated frames
    audio: tuple[np.ndarray, np.ndarray]  # float32 16 kHz microphones of A and B, exactly the clip's frames long
    phones: tuple[list[Phone], list[Phone]] | None  # phoneme timings (synthetic corpus), None when absent
    active: np.ndarray  # (2, F) bool speech activity (utterance timings, else mel energy)

    @property
    def n(self) -> int:
        return self.seq.n_frames

    @property
    def placement(self) -> tuple[float, float, float]:
        """B in A's heading frame at frame 0: x, z (m), yaw (rad), as ``SessionSettings.placement``."""
        x, z, c, s = (float(v) for v in self.seq.placement[0, 0])
        return x, z, float(np.arctan2(s, c))


def _cut(s: SeqArrays, n: int) -> SeqArrays:
    """The first n frames of every per-frame array ((2, F, ...); style (2,) is per person)."""
    return replace(s, **{k: v[:, :n] for k, v in vars(s).items() if isinstance(v, np.ndarray) and v.ndim >= 2})


def _read_phones(path: Path | None) -> tuple[list[Phone], list[tuple[float, float]]] | None:
    if path is None:
        return None
    d = json.loads(path.read_text())
    phones = [Phone(str(p[0]), float(p[1]), float(p[2]), bool(p[3])) for p in d["phones"]]
    return phones, [(float(u[1]), float(u[2])) for u in d["utterances"]]


def load_clips(corpus: Corpus, names: list[str], max_seconds: float | None) -> list[Clip]:
    by_name = {s.name: s for s in corpus.rel.sequences}
    clips = []
    for arrays in corpus.sequences(names):
        n = arrays.n_frames if max_seconds is None else min(arrays.n_frames, int(max_seconds * FPS))
        seq = by_name[arrays.name]
        samples = int(n * SAMPLE_RATE // FPS)  # the engine then emits ceil(samples * FPS / SAMPLE_RATE) = n frames
        audio = []
        for perf in seq.people:
            pcm = read_audio(perf.wav).channels[0][:samples]
            audio.append(np.pad(pcm, (0, samples - len(pcm))))
        timing = [_read_phones(perf.phones) for perf in seq.people]
        arrays = _cut(arrays, n)
        if all(t is not None for t in timing):
            active = np.stack([fm.speech_activity(t[1], n) for t in timing])
            phones = (timing[0][0], timing[1][0])
        else:
            active, phones = np.stack([fm.energy_activity(m) for m in arrays.mel]), None
        clips.append(Clip(arrays, (audio[0], audio[1]), phones, active))
    return clips
