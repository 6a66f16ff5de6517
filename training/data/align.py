"""Forced alignment of real English speech with its transcript: phone timings for faces of real voices.

:func:`align` runs PocketSphinx (the ``pocketsphinx`` wheel: its en-us acoustic model and CMU dictionary ship in the
wheel, nothing is downloaded) in two passes: word alignment against the transcript (``Decoder.set_align_text``, an
FSG search that may put optional silences between words), then phone/state alignment inside those word spans
(``Decoder.set_alignment`` and a second decode; ``Decoder.get_alignment``). Its CMU/ARPAbet phones become the
espeak-ng mnemonics of the synthetic corpus (:data:`ARPABET_TO_ESPEAK`), so :mod:`training.data.visemes` turns them
into mouth curves exactly as it does for synthetic speech.

Conventions (all times in seconds from the first sample of the audio):

* Silences (``SIL``) and noise fillers are dropped, leaving gaps: ``visemes`` puts the mouth at rest in a gap
  longer than 80 ms. Phones are ordered and never overlap; consecutive phones inside a word touch.
* p and b follow espeak-ng's convention that :func:`training.data.visemes.seal_span` relies on: ``start`` is the
  *release* (burst), the closure is the gap just before it. The release is the onset of the stop's last HMM state
  plus one 10 ms frame: on 62 p/b of dc-tts-read-speech the high-band (> 2 kHz) energy burst came a median 10 ms
  after that onset (quartiles 5-20 ms). ``end`` is the end of the aligned segment. m keeps its whole nasal murmur.
* ``stressed`` marks the vowel of a primary-stressed syllable. The bundled dictionary carries no stress digits,
  so stress comes from espeak-ng's phonemisation of the same words (:func:`training.data.espeak.phonemize`, the
  source of the synthetic corpus' stress too), sequence-matched onto the aligned phones (vowels match vowels,
  consonants anchor). Without libespeak-ng every phone is unstressed (one warning).
* AH and ER are reduced when unstressed: AH -> "@" (schwa) or "V" (stressed), ER -> "3" or "3:".

Words missing from the dictionary cannot be aligned: PocketSphinx has no grapheme-to-phoneme converter, so
:class:`MissingWordsError` names them. Numbers must be spelled out (LJSpeech's "normalized text" column is).
"""

from __future__ import annotations

import difflib
import functools
import logging
import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.data.dialogue import Phone
from training.data.visemes import phone_classes

log = logging.getLogger(__name__)

ALIGN_RATE = 16000  # Hz: the en-us acoustic model's sample rate; other rates are resampled (soxr)
MIN_DURATION = 0.1  # s: shorter audio is refused

# CMU/ARPAbet (the 39 phones of CMUdict and of PocketSphinx's en-us model) -> espeak-ng en-us mnemonic. Every value
# is a key of visemes' symbol table. AH and ER depend on stress (see _REDUCED); this table holds the stressed form.
ARPABET_TO_ESPEAK: dict[str, str] = {
    # vowels
    "AA": "A:",  # father, lot (US)
    "AE": "a",  # cat
    "AH": "V",  # strut (unstressed: "@", see _REDUCED)
    "AO": "O:",  # thought
    "AW": "aU",  # mouth
    "AY": "aI",  # price
    "EH": "E",  # dress
    "ER": "3:",  # nurse (unstressed: "3", letter)
    "EY": "eI",  # face
    "IH": "I",  # kit
    "IY": "i:",  # fleece
    "OW": "oU",  # goat
    "OY": "OI",  # choice
    "UH": "U",  # foot
    "UW": "u:",  # goose
    # consonants
    "B": "b",
    "CH": "tS",
    "D": "d",
    "DH": "D",
    "F": "f",
    "G": "g",
    "HH": "h",
    "JH": "dZ",
    "K": "k",
    "L": "l",
    "M": "m",
    "N": "n",
    "NG": "N",
    "P": "p",
    "R": "r",
    "S": "s",
    "SH": "S",
    "T": "t",
    "TH": "T",
    "V": "v",
    "W": "w",
    "Y": "j",
    "Z": "z",
    "ZH": "Z",
}
VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"})
_REDUCED = {"AH": "@", "ER": "3"}  # without primary stress
_RELEASE_STOPS = frozenset({"P", "B"})  # start = release (espeak-ng's event), see the module docstring
_FILLER_WORDS = frozenset({"<s>", "</s>", "<sil>"})
_VOWEL_CLASSES = frozenset({"open", "mid_open", "open_round", "mid_round", "close_round", "mid_spread", "spread",
                            "central"})  # fmt: skip


class AlignmentError(RuntimeError):
    """A file (or audio buffer) that could not be aligned; ``source`` names it and ``reason`` says why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class MissingWordsError(AlignmentError):
    """Transcript words that are not in PocketSphinx's dictionary (it has no grapheme-to-phoneme fallback)."""

    def __init__(self, source: str, words: list[str]) -> None:
        hint = " (spell numbers out)" if any(any(c.isdigit() for c in w) for w in words) else ""
        super().__init__(source, "words not in the pronunciation dictionary: " + ", ".join(words) + hint)
        self.words = words


def arpabet_to_espeak(phone: str, stressed: bool = False) -> str:
    """ARPAbet phone (``"AH"``, or with a CMUdict stress digit ``"AH1"``) -> espeak-ng mnemonic.

    A digit wins over ``stressed``: 1 is primary stress; 0 and 2 reduce AH and ER like an unstressed vowel.
    Raises ``KeyError`` for anything that is not one of the 39 ARPAbet phones.
    """
    base = phone.rstrip("012")
    if base != phone:
        stressed = phone[len(base) :] == "1"
    symbol = ARPABET_TO_ESPEAK[base]
    return symbol if stressed or base not in _REDUCED else _REDUCED[base]


def transcript_words(transcript: str) -> list[str]:
    """Lower-case dictionary words of a transcript: accents folded, hyphens and dashes split, punctuation dropped.

    Apostrophes inside words stay ("don't"); quotes around words go. Digits stay (and then fail the lookup).
    """
    text = unicodedata.normalize("NFKD", transcript)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"[-\u2010-\u2015/]", " ", text)
    return [w for w in (t.strip("'") for t in re.findall(r"[a-z0-9']+", text)) if w]


@dataclass(frozen=True)
class _Aligned:
    """One aligned ARPAbet phone, in 10 ms frames of the 16 kHz audio."""

    arpabet: str
    start: int  # first frame (for P/B: the release frame)
    end: int  # frame after the last


@functools.lru_cache(maxsize=1)
def _decoder():  # -> pocketsphinx.Decoder
    """One decoder per process (model and dictionary load once); callers hold ``_decoder_lock`` while using it."""
    try:
        import pocketsphinx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("training.data.align needs pocketsphinx: pip install 'pocketsphinx>=5.1.1'") from exc
    # bestpath off: a lattice (bestpath) result can give a phone fewer frames than its HMM has states and then the
    # phone pass fails (pocketsphinx PR #500; its `align` command turns it off too). loglevel FATAL: failures come
    # back to us as None / RuntimeError and are reported as AlignmentError with a reason.
    return pocketsphinx.Decoder(lm=None, bestpath=False, loglevel="FATAL", samprate=ALIGN_RATE)


_decoder_lock = threading.Lock()


def _pcm16(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono int16 samples at ALIGN_RATE from float ([-1, 1]) or int16 audio, (N,) or (N, channels)."""
    audio = np.asarray(audio)
    x = audio.astype(np.float32) / 32768.0 if audio.dtype.kind in "iu" else audio.astype(np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1:
        raise ValueError(f"audio must be (N,) or (N, channels), got shape {audio.shape}")
    if sample_rate != ALIGN_RATE:
        import soxr

        x = soxr.resample(x, sample_rate, ALIGN_RATE, quality="HQ").astype(np.float32)
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def _run(decoder, pcm: bytes, words: list[str], source: str) -> list[_Aligned]:
    """The two passes (word, then phone/state alignment) -> speech phones; silences and fillers dropped."""
    try:
        decoder.set_align_text(" ".join(words))
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
    except RuntimeError as exc:
        raise AlignmentError(source, f"word alignment pass failed ({exc})") from exc
    if decoder.hyp() is None:
        raise AlignmentError(source, "the transcript could not be matched to the audio (no path reached its end)")
    try:
        decoder.set_alignment()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
    except RuntimeError as exc:
        raise AlignmentError(source, f"phone alignment pass failed ({exc})") from exc
    alignment = decoder.get_alignment()
    if alignment is None:
        raise AlignmentError(source, "the phone alignment pass gave no alignment")
    out = []
    for word in alignment:
        if word.name in _FILLER_WORDS or word.name.startswith("["):
            continue
        for phone in word:
            if phone.name == "SIL" or phone.name.startswith("+"):
                continue  # silence / noise inside a word entry
            if phone.name not in ARPABET_TO_ESPEAK:
                raise AlignmentError(source, f"unexpected phone {phone.name!r} in word {word.name!r}")
            start, end = phone.start, phone.start + phone.duration
            if phone.name in _RELEASE_STOPS:
                states = list(phone)
                release = states[-1].start + 1 if states else start
                start = max(start, min(release, end - 1))
            out.append(_Aligned(phone.name, start, end))
    if not out:
        raise AlignmentError(source, "the alignment holds no speech phones")
    return out


def _espeak_key(symbol: str) -> str:
    """Matching key of an espeak-ng mnemonic: "V" for any vowel, else the consonant without its variant marks."""
    if symbol in ("3:", "3", "@L") or phone_classes(symbol)[0] in _VOWEL_CLASSES:
        return "V"
    return {"*": "t", "t2": "t", "d2": "d"}.get(symbol, symbol.rstrip("#-"))


def _arpabet_key(phone: str) -> str:
    return "V" if phone in VOWELS else ARPABET_TO_ESPEAK[phone]


_espeak_missing = False


def _primary_stress(phones: list[str], words: list[str]) -> list[bool]:
    """Primary-stress flags for the aligned ARPAbet ``phones`` of ``words``, from espeak-ng's phonemisation."""
    global _espeak_missing
    if _espeak_missing:
        return [False] * len(phones)
    try:
        from training.data.espeak import phonemize

        lexical = [(s, st) for s, st in phonemize(" ".join(words)) if s != ";"]  # ";" marks palatalisation
    except (OSError, RuntimeError) as exc:
        _espeak_missing = True
        log.warning("libespeak-ng unavailable (%s): aligned phones carry no stress", exc)
        return [False] * len(phones)
    a = [_arpabet_key(p) for p in phones]
    b = [_espeak_key(s) for s, _ in lexical]
    stressed = [False] * len(phones)
    for block in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            if a[block.a + k] == "V":
                stressed[block.a + k] = lexical[block.b + k][1]
    return stressed


def align(audio: np.ndarray, sample_rate: int, transcript: str, *, source: str = "audio") -> list[Phone]:
    """Phones of ``transcript`` timed in ``audio`` (s from its first sample): espeak-ng mnemonics, ordered, disjoint.

    ``audio`` is mono or (N, channels), float in [-1, 1] or int16, at ``sample_rate`` Hz (resampled to 16 kHz for
    the model). ``transcript`` is plain English text with numbers spelled out; punctuation is ignored. Silences are
    left as gaps; for p/b ``start`` is the release (see the module docstring). ``source`` names the audio in errors.

    Raises :class:`MissingWordsError` for words outside the dictionary and :class:`AlignmentError` when the
    transcript cannot be aligned to the audio (e.g. it is not what was said).
    """
    words = transcript_words(transcript)
    if not words:
        raise AlignmentError(source, "empty transcript")
    pcm = _pcm16(audio, sample_rate)
    duration = len(pcm) / ALIGN_RATE
    if duration < MIN_DURATION:
        raise AlignmentError(source, f"audio too short ({duration:.3f} s)")
    with _decoder_lock:
        decoder = _decoder()
        resolved, missing = [], []
        for w in words:
            if decoder.lookup_word(w) is not None:
                resolved.append(w)
            else:
                missing.append(w)
        if missing:
            raise MissingWordsError(source, list(dict.fromkeys(missing)))
        frame = 1.0 / float(decoder.config["frate"])  # s per frame (10 ms)
        aligned = _run(decoder, pcm.tobytes(), resolved, source)
    stressed = _primary_stress([p.arpabet for p in aligned], resolved)
    phones = []
    for p, s in zip(aligned, stressed, strict=True):
        start, end = min(p.start * frame, duration), min(p.end * frame, duration)
        start, end = round(start, 6), round(max(end, start), 6)  # s, exact to the microsecond (frames are 10 ms)
        phones.append(Phone(arpabet_to_espeak(p.arpabet, s), start, end, stressed=s))
    return phones


def align_file(path: str | Path, transcript: str) -> list[Phone]:
    """:func:`align` on an audio file (any format soundfile reads); errors name the file."""
    import soundfile as sf

    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=False)
    except (RuntimeError, OSError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        raise AlignmentError(str(path), f"cannot read audio ({exc})") from exc
    return align(audio, rate, transcript, source=str(path))
