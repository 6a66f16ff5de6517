"""Synthetic two-person dialogues with known ground truth: espeak-ng voices, turn-taking, close-talk microphones.

``generate_dialogue`` lays out turns (pauses of 0.2-1.5 s, occasional overlaps, listener backchannels), speaks
them with two different espeak-ng voices and mixes each person's close-talk track as a real headset would hear it:
own voice + the partner's voice bleeding in at -25..-30 dB + pink room noise at -50..-60 dBFS. Every phoneme,
word and stressed vowel is known exactly (libespeak-ng's events). ``lip_sentences`` makes the clean
single-speaker clips of the lip-accurate subset (DESIGN section 3). Deterministic for a given rng.

Frame ``i`` is the instant ``i / FPS``; ``activity[i]`` says whether an utterance covers it and ``loudness[i]`` is
the RMS of the clean voice over the 1/FPS window centred on it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.signal import lfilter

from runtime.constants import FPS, SAMPLE_RATE
from training.data import sentences
from training.data.dialogue import Dialogue, Phone, SpeechTrack, Utterance
from training.data.espeak import Synthesis, Word, synthesize


@dataclass(frozen=True)
class Voice:
    """An espeak-ng speaker: voice + variant and its prosody settings."""

    name: str  # espeak voice and variant, e.g. "en-us+f3"
    rate: int  # words per minute
    pitch: int  # 0-100, 50 = the variant's own pitch
    pitch_range: int  # 0-100, intonation range (0 = monotone)
    female: bool


VOICES: tuple[Voice, ...] = (
    Voice("en-us+m1", 165, 45, 55, False),
    Voice("en-us+m3", 150, 40, 60, False),
    Voice("en+m2", 175, 50, 50, False),
    Voice("en-us+m7", 140, 35, 45, False),
    Voice("en-gb-x-rp+m4", 185, 50, 65, False),
    Voice("en+m5", 160, 40, 55, False),
    Voice("en-us+f1", 170, 55, 60, True),
    Voice("en-us+f3", 180, 60, 70, True),
    Voice("en+f2", 160, 50, 55, True),
    Voice("en-us+f4", 190, 55, 65, True),
    Voice("en-gb-x-rp+f5", 150, 60, 50, True),
    Voice("en-us+f2", 200, 50, 60, True),
)  # fmt: skip

BLEED_DB = (-30.0, -25.0)  # partner's voice in my microphone, relative to the partner's own level
NOISE_DBFS = (-60.0, -50.0)  # RMS of the room noise
VOICE_DBFS = (-22.0, -17.0)  # RMS of a speaker's utterances (each one +-1 dB around the speaker's level)
GAP_S = (0.2, 1.5)  # silence between turns
P_OVERLAP = 0.15  # a turn starts before the other speaker has finished
P_CONTINUE = 0.15  # the same speaker takes another turn after a pause
P_BACKCHANNEL = 0.5  # per turn longer than 2 s: the listener says "yeah", "umm hmm"


@dataclass(frozen=True)
class _Said:
    """One synthesised utterance placed on the timeline."""

    speaker: int
    start: float  # s
    text: str
    synthesis: Synthesis
    gain: float  # linear gain applied to the synthesised audio
    backchannel: bool

    @property
    def end(self) -> float:
        return self.start + self.synthesis.duration


def random_voices(rng: np.random.Generator) -> tuple[Voice, Voice]:
    """Two distinct voices (mostly of different sex), each with its rate and pitch jittered a little."""
    first = VOICES[int(rng.integers(len(VOICES)))]
    pool = [v for v in VOICES if v.name != first.name and (v.female != first.female or rng.random() < 0.3)]
    pool = pool or [v for v in VOICES if v.name != first.name]
    second = pool[int(rng.integers(len(pool)))]
    return _jitter(first, rng), _jitter(second, rng)


def _jitter(voice: Voice, rng: np.random.Generator) -> Voice:
    return replace(
        voice,
        rate=int(np.clip(voice.rate + rng.integers(-12, 13), 130, 200)),
        pitch=int(np.clip(voice.pitch + rng.integers(-6, 7), 0, 100)),
        pitch_range=int(np.clip(voice.pitch_range + rng.integers(-10, 11), 0, 100)),
    )


def _speak(text: str, voice: Voice, rng: np.random.Generator) -> Synthesis:
    rate = int(np.clip(voice.rate * rng.uniform(0.92, 1.08), 80, 450))  # each utterance a little faster or slower
    return synthesize(text, voice.name, rate=rate, pitch=voice.pitch, pitch_range=voice.pitch_range)


def _level(synthesis: Synthesis, dbfs: float) -> float:
    """Gain that brings the RMS of ``synthesis`` to ``dbfs``, without letting its peak pass 0.95."""
    audio = synthesis.audio
    rms = float(np.sqrt(np.mean(audio**2))) if len(audio) else 0.0
    if rms <= 0.0:
        return 0.0
    peak = float(np.max(np.abs(audio)))
    return min(10 ** (dbfs / 20) / rms, 0.95 / peak)


def generate_dialogue(
    rng: np.random.Generator, duration_s: float, voices: tuple[Voice, Voice] | None = None
) -> Dialogue:
    """A two-person conversation of exactly ``duration_s`` seconds (both tracks), deterministic for ``rng``."""
    if duration_s < 2.0:
        raise ValueError(f"duration_s must be at least 2 s for a dialogue, got {duration_s}")
    voices = voices or random_voices(rng)
    if len(voices) != 2:
        raise ValueError(f"voices must be a pair (person A, person B), got {len(voices)}")
    levels = [rng.uniform(*VOICE_DBFS) for _ in range(2)]
    said: list[_Said] = []
    last_end = [0.0, 0.0]  # s, end of each speaker's latest utterance
    speaker = int(rng.integers(2))
    t = rng.uniform(0.2, 1.0)
    tail = 0.3  # s of silence kept at the end so the last mouth closes
    while t < duration_s - tail - 0.5:
        text = sentences.turn(rng)
        synthesis = _speak(text, voices[speaker], rng)
        if t + synthesis.duration > duration_s - tail:
            text = sentences.sentence(rng)  # one more, shorter try
            synthesis = _speak(text, voices[speaker], rng)
            if t + synthesis.duration > duration_s - tail:
                break
        turn = _Said(speaker, t, text, synthesis, _level(synthesis, levels[speaker] + rng.normal(0, 1)), False)
        said.append(turn)
        last_end[speaker] = turn.end
        listener = 1 - speaker
        if synthesis.duration > 2.0 and rng.random() < P_BACKCHANNEL:
            said.extend(_backchannel(rng, turn, voices[listener], levels[listener], last_end, duration_s - tail))
        if rng.random() < P_CONTINUE:
            t = turn.end + rng.uniform(0.4, 1.0)
            continue
        if rng.random() < P_OVERLAP:
            gap = -rng.uniform(0.15, max(0.2, min(0.8, synthesis.duration / 3)))
        else:
            gap = rng.uniform(*GAP_S)
        t = max(turn.end + gap, last_end[listener] + 0.2)
        speaker = listener
    return _mix(said, voices, duration_s, rng)


def _backchannel(
    rng: np.random.Generator, turn: _Said, voice: Voice, dbfs: float, last_end: list[float], limit: float
) -> list[_Said]:
    """A listener response timed just after one of the speaker's stressed vowels, mid-turn."""
    stresses = [turn.start + p.start for p in turn.synthesis.phones if p.stressed]
    candidates = [s for s in stresses if turn.start + 0.8 < s < turn.end - 0.8]
    if not candidates:
        return []
    start = candidates[int(rng.integers(len(candidates)))] + rng.uniform(0.1, 0.4)
    listener = 1 - turn.speaker
    if start < last_end[listener] + 0.3:
        return []
    text = sentences.backchannel(rng)
    synthesis = _speak(text, voice, rng)
    if start + synthesis.duration > limit:
        return []
    last_end[listener] = start + synthesis.duration
    gain = _level(synthesis, dbfs - 3.0 + rng.normal(0, 1))  # backchannels are softer
    return [_Said(listener, start, text, synthesis, gain, True)]


def _mix(said: list[_Said], voices: tuple[Voice, Voice], duration: float, rng: np.random.Generator) -> Dialogue:
    n_samples = int(round(duration * SAMPLE_RATE))
    n_frames = int(round(duration * FPS))
    clean = np.zeros((2, n_samples), np.float32)  # (speaker, N) each person's own dry voice
    for s in sorted(said, key=lambda s: s.start):
        i = int(round(s.start * SAMPLE_RATE))
        audio = s.synthesis.audio[: n_samples - i] * s.gain
        clean[s.speaker, i : i + len(audio)] += audio
    tracks = []
    for me in (0, 1):
        mine = sorted((s for s in said if s.speaker == me), key=lambda s: s.start)
        mic = clean[me] + _bleed(clean[1 - me], rng) + _pink_noise(n_samples, rng)
        tracks.append(
            SpeechTrack(
                audio=np.clip(mic, -1.0, 1.0).astype(np.float32),
                phones=_phones(mine),
                utterances=[Utterance(s.text, s.start, s.end, s.backchannel) for s in mine],
                activity=_activity(mine, n_frames),
                loudness=frame_rms(clean[me], n_frames),
                stresses=np.array([p.start for p in _phones(mine) if p.stressed], dtype=np.float64),
                voice=voices[me].name,
                extras={"clean": clean[me], "voice": voices[me], "words": _words(mine)},
            )
        )
    return Dialogue(duration=n_samples / SAMPLE_RATE, tracks=(tracks[0], tracks[1]))


def _phones(said: list[_Said]) -> list[Phone]:
    """Utterance phones on the dialogue clock; the last phone of an utterance ends with the utterance."""
    out = []
    for s in said:
        phones = s.synthesis.phones
        for k, p in enumerate(phones):
            end = s.end if k == len(phones) - 1 else s.start + p.end
            out.append(Phone(p.symbol, s.start + p.start, end, p.stressed))
    return out


def _words(said: list[_Said]) -> list[Word]:
    return [Word(w.text, s.start + w.start, s.start + w.end) for s in said for w in s.synthesis.words]


def _activity(said: list[_Said], n_frames: int) -> np.ndarray:
    """(F,) bool: frame time i/FPS inside an utterance [start, end)."""
    t = np.arange(n_frames) / FPS
    active = np.zeros(n_frames, bool)
    for s in said:
        active |= (t >= s.start) & (t < s.end)
    return active


def frame_rms(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """(N,) audio at SAMPLE_RATE -> (F,) float32 RMS over the 1/FPS window centred on each frame time i/FPS."""
    power = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    centre = np.arange(n_frames) * SAMPLE_RATE / FPS
    half = SAMPLE_RATE / FPS / 2
    lo = np.clip(np.round(centre - half).astype(int), 0, len(audio))
    hi = np.clip(np.round(centre + half).astype(int), 0, len(audio))
    n = np.maximum(hi - lo, 1)
    return np.sqrt(np.maximum(power[hi] - power[lo], 0.0) / n).astype(np.float32)


def _bleed(partner: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The partner's voice as my headset hears it: delayed 1.5-4 ms, dulled (one-pole low-pass), -25..-30 dB."""
    delay = int(rng.uniform(0.0015, 0.004) * SAMPLE_RATE)
    pole = rng.uniform(0.3, 0.6)
    dulled = lfilter([1.0 - pole], [1.0, -pole], partner).astype(np.float32)
    out = np.zeros_like(partner)
    out[delay:] = dulled[: len(partner) - delay]
    return out * np.float32(10 ** (rng.uniform(*BLEED_DB) / 20))


def _pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) float32 noise with a 1/f power spectrum (white noise shaped in the frequency domain), -50..-60 dBFS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    spectrum /= np.sqrt(np.maximum(f, 20.0))  # 1/f power, flat below 20 Hz
    noise = np.fft.irfft(spectrum, n)
    noise *= 10 ** (rng.uniform(*NOISE_DBFS) / 20) / (np.sqrt(np.mean(noise**2)) + 1e-12)
    return noise.astype(np.float32)


def lip_sentences(n: int, rng: np.random.Generator, voices: tuple[Voice, ...] = VOICES) -> list[Dialogue]:
    """``n`` clean close-talk clips for the lip-accurate subset: one voice, one or two sentences, no bleed, no noise.

    Each clip is a :class:`Dialogue` whose track 0 speaks (after 0.3-0.6 s of silence, followed by 0.4-0.7 s of
    silence so the mouth starts and ends at rest) and whose track 1 is silent.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    clips = []
    for _ in range(n):
        voice = _jitter(voices[int(rng.integers(len(voices)))], rng)
        text = " ".join(sentences.sentence(rng) for _ in range(int(rng.integers(1, 3))))
        synthesis = _speak(text, voice, rng)
        lead, trail = rng.uniform(0.3, 0.6), rng.uniform(0.4, 0.7)
        duration = lead + synthesis.duration + trail
        said = [_Said(0, lead, text, synthesis, _level(synthesis, rng.uniform(*VOICE_DBFS)), False)]
        clips.append(_clean_clip(said, voice, duration))
    return clips


def _clean_clip(said: list[_Said], voice: Voice, duration: float) -> Dialogue:
    n_samples = int(round(duration * SAMPLE_RATE))
    n_frames = int(round(duration * FPS))
    audio = np.zeros(n_samples, np.float32)
    for s in said:
        i = int(round(s.start * SAMPLE_RATE))
        chunk = s.synthesis.audio[: n_samples - i] * s.gain
        audio[i : i + len(chunk)] += chunk
    phones = _phones(said)
    speaker = SpeechTrack(
        audio=audio,
        phones=phones,
        utterances=[Utterance(s.text, s.start, s.end) for s in said],
        activity=_activity(said, n_frames),
        loudness=frame_rms(audio, n_frames),
        stresses=np.array([p.start for p in phones if p.stressed], dtype=np.float64),
        voice=voice.name,
        extras={"clean": audio, "voice": voice, "words": _words(said)},
    )
    silent = SpeechTrack(
        audio=np.zeros(n_samples, np.float32),
        phones=[],
        utterances=[],
        activity=np.zeros(n_frames, bool),
        loudness=np.zeros(n_frames, np.float32),
        stresses=np.zeros(0, np.float64),
    )
    return Dialogue(duration=n_samples / SAMPLE_RATE, tracks=(speaker, silent))
