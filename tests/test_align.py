"""Forced alignment of real speech (PocketSphinx) -> espeak-ng phones that visemes.py knows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.data.align import (
    ARPABET_TO_ESPEAK,
    VOWELS,
    AlignmentError,
    MissingWordsError,
    align,
    arpabet_to_espeak,
    transcript_words,
)
from training.data.read_speech import coverage, energetic_frames
from training.data.visemes import _SYMBOLS, is_bilabial

# The 39 phones of CMUdict / PocketSphinx's en-us model.
ARPABET = """AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z
ZH""".split()

# 3.4 s of the amateur voice; four bilabials: Be, Part, scheMe, Book.
CLIP = "dc-tts-read-speech/flac/LJ001-0174.flac"
TEXT = "should be a part of the whole scheme of the book."


def test_table_covers_all_39_arpabet_phones_with_symbols_visemes_knows():
    assert len(ARPABET) == 39 and set(ARPABET_TO_ESPEAK) == set(ARPABET)
    assert VOWELS < set(ARPABET) and len(VOWELS) == 15
    for phone in ARPABET:
        for digit in ("", "0", "1", "2"):
            symbol = arpabet_to_espeak(phone + digit)
            assert symbol in _SYMBOLS, f"{phone}{digit} -> {symbol!r}, which visemes.py does not know"
    assert [arpabet_to_espeak(p) for p in ("P", "B", "M")] == ["p", "b", "m"]
    assert all(is_bilabial(arpabet_to_espeak(p)) == (p in ("P", "B", "M")) for p in ARPABET)
    assert (arpabet_to_espeak("AH0"), arpabet_to_espeak("AH1"), arpabet_to_espeak("AH2")) == ("@", "V", "@")
    assert (arpabet_to_espeak("ER", stressed=False), arpabet_to_espeak("ER", stressed=True)) == ("3", "3:")
    assert arpabet_to_espeak("AY1") == "aI" and arpabet_to_espeak("DH") == "D"
    with pytest.raises(KeyError):
        arpabet_to_espeak("AX")


def test_transcript_words():
    assert transcript_words('The "forty-two line Bible," Caf\u00e9\u2019s don\'t \u2014 ok.') == [
        "the", "forty", "two", "line", "bible", "cafe's", "don't", "ok",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def clip() -> tuple[np.ndarray, int]:
    ext = Path(__file__).resolve().parents[1].parent / "shared" / "external"
    if not (ext / CLIP).is_file():
        pytest.skip(f"real external files not present at {ext} (a user's fresh clone)")
    pytest.importorskip("pocketsphinx", reason="pocketsphinx (train extra) is needed for forced alignment")
    import soundfile as sf

    audio, rate = sf.read(str(ext / CLIP), dtype="float32")
    return audio, rate


@pytest.fixture(scope="module")
def phones(clip):
    return align(*clip, TEXT, source=CLIP)


def test_phones_are_ordered_disjoint_inside_the_audio_and_known(clip, phones):
    audio, rate = clip
    assert len(phones) >= 25
    for p in phones:
        assert 0.0 <= p.start < p.end <= len(audio) / rate + 1e-9
        assert p.symbol in _SYMBOLS, p.symbol
    for a, b in zip(phones, phones[1:], strict=False):
        assert a.end <= b.start + 1e-9


def test_phones_cover_the_speech(clip, phones):
    audio, rate = clip
    loud = np.flatnonzero(energetic_frames(audio, rate)) * 0.01  # s, frame starts
    assert abs(phones[0].start - loud[0]) < 0.5 and abs(phones[-1].end - (loud[-1] + 0.01)) < 0.5
    assert coverage(phones, audio, rate) > 0.9


def test_bilabial_words_give_bilabial_phones_at_closures(clip, phones):
    audio, rate = clip
    labials = [p for p in phones if is_bilabial(p.symbol)]
    assert [p.symbol for p in labials] == ["b", "p", "m", "b"]  # Be, Part, scheMe, Book
    x = audio.astype(np.float64)

    def level(t0: float, t1: float) -> float:
        seg = x[int(t0 * rate) : int(t1 * rate)]
        return 10 * np.log10(np.mean(seg**2) + 1e-12)

    for p in labials:
        if p.symbol in ("p", "b"):  # start is the release: the closure before it is quieter than what follows
            assert level(p.start - 0.04, p.start) < level(p.start, p.start + 0.06) - 3.0, p


def test_stress_only_on_vowels(phones):
    vowels = {arpabet_to_espeak(v, s) for v in VOWELS for s in (False, True)}
    stressed = [p.symbol for p in phones if p.stressed]
    assert all(s in vowels for s in stressed)
    try:
        from training.data.espeak import phonemize

        phonemize("a")
    except (OSError, RuntimeError):
        return  # no libespeak-ng here: no stress source
    assert 2 <= len(stressed) <= 8, stressed  # "part", "whole", "scheme", "book" carry the stress


def test_failures_are_alignment_errors_naming_the_file(clip):
    with pytest.raises(MissingWordsError, match="qwxzzy") as missing:
        align(*clip, "should be a qwxzzy of the book", source="clip.flac")
    assert missing.value.words == ["qwxzzy"] and missing.value.source == "clip.flac"
    with pytest.raises(AlignmentError, match="clip.flac"):  # not what was said
        align(*clip, "printing then for our purpose may be considered as the art of making books", source="clip.flac")
    with pytest.raises(AlignmentError, match="empty transcript"):
        align(*clip, " ... ", source="clip.flac")


def test_dataset_helper_yields_aligned_files_and_skips_failures(clip, tmp_path, caplog):
    import soundfile as sf

    from training.data.read_speech import align_dataset

    audio, rate = clip
    sf.write(tmp_path / "a.flac", audio, rate)
    sf.write(tmp_path / "b.flac", (audio * 32767).astype(np.int16)[:, None].repeat(2, axis=1), rate)  # stereo
    sf.write(tmp_path / "c.flac", audio, rate)
    (tmp_path / "metadata.csv").write_text(f"a|{TEXT}|{TEXT}\nb|Should be...|{TEXT}\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="training.data.align"):
        out = list(align_dataset(tmp_path))
    assert [p.name for p, _ in out] == ["a.flac", "b.flac"]
    assert [p.symbol for p in out[0][1]] == [p.symbol for p in out[1][1]]
    assert "c.flac" in caplog.text and "no transcript" in caplog.text
