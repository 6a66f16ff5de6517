"""What the synthetic corpus knows about a two-person dialogue: the contract between speech, faces and bodies.

``training.data.speech`` produces a :class:`Dialogue`; ``training.data.faces`` and ``training.data.bodies`` turn it
into ARKit weights and BVH motion. All times are seconds from the start of the dialogue; frame arrays are at
``runtime.constants.FPS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Phone:
    symbol: str  # espeak-ng phoneme mnemonic, e.g. "p", "m", "aI", "@"
    start: float  # s, onset as espeak reported it (audio position of the phoneme event)
    end: float  # s, onset of the next phoneme or end of the utterance
    stressed: bool = False  # nucleus of a stressed syllable (espeak's stress marks)


@dataclass(frozen=True)
class Utterance:
    text: str
    start: float  # s
    end: float  # s
    backchannel: bool = False  # "mm-hm", "yeah" while the partner holds the turn


@dataclass
class SpeechTrack:
    """One speaker's side of the dialogue (their close-talk microphone)."""

    audio: np.ndarray  # (N,) float32 at SAMPLE_RATE, this speaker's voice + a little room noise and partner bleed
    phones: list[Phone]  # every phoneme with its timing, sorted by start
    utterances: list[Utterance]
    activity: np.ndarray  # (F,) bool, speaking at each output frame
    loudness: np.ndarray  # (F,) float32, RMS of this speaker's clean voice at each frame (linear, 0..~0.3)
    stresses: np.ndarray  # (M,) float64 times of stressed syllable nuclei: gesture beats are timed to these
    voice: str = ""  # espeak voice name and variant, e.g. "en-us+f3"
    extras: dict = field(default_factory=dict)


@dataclass
class Dialogue:
    duration: float  # s; both tracks cover exactly this long
    tracks: tuple[SpeechTrack, SpeechTrack]  # person A, person B

    @property
    def n_frames(self) -> int:
        return len(self.tracks[0].activity)
