"""ctypes binding to libespeak-ng: speech audio with the exact phoneme and word timings of the synthesiser.

libespeak-ng reports, for every phoneme it renders, an ``espeakEVENT_PHONEME`` with the phoneme's mnemonic and its
position in the audio it produced; this is the ground truth the synthetic corpus is built on (faces follow these
phonemes, gestures follow the stressed vowels). Stress is not carried by the events: it comes from
``espeak_TextToPhonemes`` (mnemonics with ``'`` primary-stress marks) aligned to the event phonemes.

The library keeps global state and is **not thread-safe**: every :func:`synthesize` call holds a process-wide lock
and loads, initialises and unloads the library (see :class:`_Session`), which also makes it deterministic and safe
in forked or spawned worker processes (each has its own instance). Another module of the same process that keeps
libespeak-ng loaded (e.g. the ``phonemizer`` package) pins its state: the output is then still correct but may
differ by a few samples from run to run.

Layout of ``speak_lib.h`` (espeak-ng 1.51) mirrored here, 64-bit::

    typedef struct {
        espeak_EVENT_TYPE type;          // int, offset 0
        unsigned int unique_identifier;  // 4
        int text_position;               // 8   1-based character index in the text
        int length;                      // 12  word length in characters (WORD events)
        int audio_position;              // 16  ms in the output (truncated)
        int sample;                      // 20  samples at the native rate (what we use: exact)
        void *user_data;                 // 24
        union { int number; const char *name; char string[8]; } id;  // 32, phoneme mnemonic for PHONEME
    } espeak_EVENT;                      // 40 bytes
"""

from __future__ import annotations

import ctypes
import ctypes.util
import difflib
import logging
import threading
from dataclasses import dataclass

import numpy as np
import soxr

from runtime.constants import SAMPLE_RATE
from training.data.dialogue import Phone

log = logging.getLogger(__name__)

# espeak_AUDIO_OUTPUT, espeak_Initialize options, espeak_Synth flags, espeak_PARAMETER, espeak_EVENT_TYPE.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of exit() when the data path is wrong
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_PHONEME = 0, 1, 7
_BUFFER_MS = 200  # length of the audio chunks handed to the callback
_NOISE_SEED = 1  # srand() seed before every synthesis: the same noise every time

PAUSES = frozenset({"_", "_:", "_!", "_;", "_^_", "_|", "||", "|"})  # espeak pause mnemonics: silence, not phones
_PRIMARY_STRESS = "'"
_STRESS_MARKS = "',=%"  # primary, secondary, and espeak's rarer stress/unstress marks, stripped when aligning


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


assert ctypes.sizeof(_Event) == 40, "espeak_EVENT layout must match speak_lib.h on 64-bit"

_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Word:
    text: str
    start: float  # s from the start of the synthesised audio
    end: float  # s, onset of the next word or pause


@dataclass(frozen=True)
class Synthesis:
    """One call's output. Times are seconds from the first sample of ``audio``."""

    audio: np.ndarray  # (N,) float32 in [-1, 1] at ``sample_rate``
    sample_rate: int  # Hz, the requested output rate (16 kHz by default)
    phones: list[Phone]  # speech phonemes (pauses dropped), end = onset of the next phoneme or pause event
    words: list[Word]
    speech_end: float  # s, end of the last phoneme; ``audio`` may run a little past it (the voice decaying)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


_library_name: str | None = None  # which name dlopen accepted, found once per process
_lock = threading.Lock()  # libespeak-ng is one global instance per process: one caller at a time
_libc = ctypes.CDLL(None)  # for srand(): libespeak-ng draws its breath/frication noise from the C library's rand()


def _dlclose(lib: ctypes.CDLL) -> None:
    import _ctypes  # dlclose is only exposed by the private module

    _ctypes.dlclose(lib._handle)


def _library_path() -> str:
    global _library_name
    if _library_name is None:
        names = [n for n in (ctypes.util.find_library("espeak-ng"), "libespeak-ng.so.1") if n]
        errors = []
        for name in names:
            try:
                probe = ctypes.CDLL(name)
            except OSError as exc:
                errors.append(f"{name}: {exc}")
                continue
            _dlclose(probe)  # every session opens its own handle: keep no reference that would pin the library
            _library_name = name
            break
        else:
            raise RuntimeError(
                "libespeak-ng not found (tried " + "; ".join(errors or ["find_library('espeak-ng') -> None"]) + "); "
                "install espeak-ng (Debian/Ubuntu: apt-get install espeak-ng)"
            )
    return _library_name


class _Session:
    """libespeak-ng loaded afresh for one synthesis, unloaded on exit.

    The library keeps state across calls that ``espeak_Initialize`` does not reset (the pitch-flutter phase, the
    last amplitude), so the same text would come out a few samples different depending on what was spoken
    before. Unloading it (``dlclose``) and loading it again restores its static data; seeding ``rand()`` fixes
    its noise. Costs ~5 ms a call and makes :func:`synthesize` a pure function of its arguments.
    """

    def __enter__(self) -> _Session:
        lib = self.lib = ctypes.CDLL(_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_Callback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Terminate.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        options = _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT
        self.rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, None, options)  # Hz
        if self.rate <= 0:
            self._unload()
            raise RuntimeError(f"espeak_Initialize failed ({self.rate}): is the espeak-ng data installed?")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, str]] = []  # (type, text_position, length, sample, mnemonic)
        self._callback = _Callback(self._on_synth)  # kept referenced while libespeak-ng holds the raw pointer
        lib.espeak_SetSynthCallback(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        self.lib.espeak_Terminate()
        self._unload()

    def _unload(self) -> None:
        _dlclose(self.lib)
        del self.lib

    def _on_synth(self, wav, n_samples, events) -> int:  # noqa: ANN001 (ctypes pointers)
        if wav and n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type in (_EVENT_PHONEME, _EVENT_WORD):
                name = bytes(e.id.string).split(b"\0", 1)[0].decode("utf-8", "replace") if e.type == 7 else ""
                self._events.append((e.type, e.text_position, e.length, e.sample, name))
            i += 1
        return 0  # continue synthesis

    def set_voice(self, voice: str, rate: int, pitch: int, pitch_range: int, volume: int) -> None:
        err = self.lib.espeak_SetVoiceByName(voice.encode())
        if err != 0:
            raise ValueError(f"espeak-ng voice {voice!r} not found (error {err}); e.g. 'en-us+f3', 'en+m1'")
        for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range),
                             (_PARAM_VOLUME, volume)):  # fmt: skip
            err = self.lib.espeak_SetParameter(param, int(value), 0)
            if err != 0:
                raise RuntimeError(f"espeak_SetParameter({param}, {value}) failed with error {err}")

    def synth(self, text: str) -> tuple[np.ndarray, list[tuple[int, int, int, int, str]]]:
        """-> ((N,) int16 at self.rate, events (type, text_position, length, sample, mnemonic))."""
        _libc.srand(_NOISE_SEED)
        data = text.encode("utf-8") + b"\0"
        err = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with error {err} for text {text[:60]!r}")
        self.lib.espeak_Synchronize()
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio, self._events

    def stressed_phonemes(self, text: str) -> list[tuple[str, bool]]:
        """espeak's phonemisation of ``text`` as (mnemonic, carries primary stress), clause by clause."""
        out: list[tuple[str, bool]] = []
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        ptr = ctypes.c_char_p(ctypes.addressof(buf))
        mode = ord(" ") << 8  # mnemonics (not IPA), phonemes separated by spaces
        while ptr.value:
            result = self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, mode)
            for token in (result or b"").decode("utf-8", "replace").split():
                stressed = _PRIMARY_STRESS in token
                symbol = token.translate(str.maketrans("", "", _STRESS_MARKS))
                if symbol:
                    out.append((symbol, stressed))
        return out


def native_rate() -> int:
    """libespeak-ng's output sample rate in Hz (22050 for the default voices)."""
    with _lock, _Session() as session:
        return session.rate


def phonemize(text: str, voice: str = "en-us") -> list[tuple[str, bool]]:
    """espeak-ng's phonemisation of ``text`` (no audio): (mnemonic, carries primary stress) in order, pauses omitted.

    The same lexical stress that :func:`synthesize` puts on its phones; ``training.data.align`` copies it onto
    phones aligned in real speech. Thread-safe (serialised like :func:`synthesize`).
    """
    with _lock, _Session() as session:
        session.set_voice(voice, 175, 50, 50, 100)
        return session.stressed_phonemes(text)


def synthesize(
    text: str,
    voice: str = "en-us",
    rate: int = 175,
    pitch: int = 50,
    pitch_range: int = 50,
    volume: int = 100,
    sample_rate: int = SAMPLE_RATE,
) -> Synthesis:
    """Speak ``text`` with libespeak-ng; return audio at ``sample_rate`` and its phoneme and word timings.

    ``voice`` is an espeak voice name with an optional variant (``"en-us+f3"``), ``rate`` in words per minute
    (80-450), ``pitch`` and ``pitch_range`` 0-100 (50 = the voice's default), ``volume`` 0-200. Deterministic:
    the same arguments give the same samples, whatever was synthesised before. Thread-safe (calls are serialised);
    reseeds the C library's ``rand()``.
    """
    if not text.strip():
        raise ValueError("synthesize() needs non-empty text")
    if not 80 <= rate <= 450:
        raise ValueError(f"rate must be 80-450 words per minute, got {rate}")
    for name, value, hi in (("pitch", pitch, 100), ("pitch_range", pitch_range, 100), ("volume", volume, 200)):
        if not 0 <= value <= hi:
            raise ValueError(f"{name} must be 0-{hi}, got {value}")
    with _lock, _Session() as session:
        session.set_voice(voice, rate, pitch, pitch_range, volume)
        pcm, events = session.synth(text)
        lexical = session.stressed_phonemes(text)
        native = session.rate
    audio = pcm.astype(np.float32) / 32768.0  # (N,) at the native rate
    if sample_rate != native:
        audio = soxr.resample(audio, native, sample_rate, quality="HQ").astype(np.float32)
    phones, words, speech_end = _timings(events, text, native, len(audio) / sample_rate)
    phones = _mark_stress(phones, lexical)
    return Synthesis(audio=audio, sample_rate=sample_rate, phones=phones, words=words, speech_end=speech_end)


def _timings(
    events: list[tuple[int, int, int, int, str]], text: str, native: int, duration: float
) -> tuple[list[Phone], list[Word], float]:
    """Phoneme and word events -> phones (pauses dropped), words, end of speech; times in s."""
    marks = [(sample / native, name) for kind, _, _, sample, name in events if kind == _EVENT_PHONEME]
    marks.sort(key=lambda m: m[0])  # already in order; stable sort guards against equal-sample reordering
    onsets = [min(t, duration) for t, _ in marks] + [duration]
    phones = [
        Phone(symbol=name, start=onsets[i], end=max(onsets[i + 1], onsets[i]))
        for i, (_, name) in enumerate(marks)
        if name and name not in PAUSES
    ]
    speech_end = phones[-1].end if phones else 0.0
    word_events = sorted(
        (sample / native, pos, length) for kind, pos, length, sample, _ in events if kind == _EVENT_WORD and length > 0
    )
    pause_onsets = [t for t, name in marks if name in PAUSES]
    words = []
    for i, (start, pos, length) in enumerate(word_events):
        nxt = word_events[i + 1][0] if i + 1 < len(word_events) else duration
        nxt = min([nxt] + [t for t in pause_onsets if t > start])
        words.append(Word(text=text[pos - 1 : pos - 1 + length], start=min(start, duration), end=min(nxt, duration)))
    return phones, words, speech_end


def _mark_stress(phones: list[Phone], lexical: list[tuple[str, bool]]) -> list[Phone]:
    """Copy the primary-stress flags of espeak's phonemisation onto the event phones (sequence alignment)."""
    matcher = difflib.SequenceMatcher(a=[p.symbol for p in phones], b=[s for s, _ in lexical], autojunk=False)
    stressed = [False] * len(phones)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            stressed[block.a + k] = lexical[block.b + k][1]
    unmatched = len(phones) - sum(b.size for b in matcher.get_matching_blocks())
    if unmatched > max(2, len(phones) // 10):
        log.warning("stress alignment left %d of %d phones unmatched", unmatched, len(phones))
    return [Phone(p.symbol, p.start, p.end, stressed=s) for p, s in zip(phones, stressed, strict=True)]
