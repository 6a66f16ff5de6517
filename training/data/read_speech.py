"""Read-speech datasets in the LJSpeech layout (audio files + ``transcript.csv``/``metadata.csv`` of
``id|text|normalized text``), aligned with :mod:`training.data.align`, and how much of their speech the phones cover.

    python -m training.data.read_speech ../shared/external/dc-tts-read-speech [--limit N]

prints per file the duration, the phones and their coverage of the energetic frames, or why the file failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from training.data.align import AlignmentError, align, align_file
from training.data.dialogue import Phone

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------- datasets

_TRANSCRIPT_FILES = ("transcript.csv", "metadata.csv")
_AUDIO_SUFFIXES = (".flac", ".wav")
_NO_TRANSCRIPT = "no transcript: id {id!r} has no line in the dataset's transcript table"


def read_transcripts(csv_path: Path) -> dict[str, str]:
    """LJSpeech-style ``id|text|normalized text`` lines -> {id: normalized text (or text when that is empty)}."""
    out = {}
    for line in csv_path.read_text(encoding="utf-8").splitlines():
        fields = line.split("|")
        if len(fields) >= 2 and fields[0].strip():
            text = fields[2] if len(fields) >= 3 and fields[2].strip() else fields[1]
            out[fields[0].strip()] = text.strip()
    return out


def dataset_items(root: str | Path) -> list[tuple[Path, str | None]]:
    """Audio files of a dataset folder (recursively, sorted) with their transcripts (None when it lists none).

    The transcript table is ``transcript.csv`` or ``metadata.csv`` in ``root`` (LJSpeech layout, id = file stem).
    """
    root = Path(root)
    table = next((root / n for n in _TRANSCRIPT_FILES if (root / n).is_file()), None)
    if table is None:
        raise FileNotFoundError(f"no {' or '.join(_TRANSCRIPT_FILES)} in {root}")
    texts = read_transcripts(table)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in _AUDIO_SUFFIXES and p.is_file())
    return [(p, texts.get(p.stem)) for p in files]


def align_dataset(root: str | Path) -> Iterator[tuple[Path, list[Phone]]]:
    """(file, phones) for every file of a dataset folder that aligns; failures are logged (warning) and skipped."""
    for path, text in dataset_items(root):
        try:
            if text is None:
                raise AlignmentError(str(path), _NO_TRANSCRIPT.format(id=path.stem))
            yield path, align_file(path, text)
        except AlignmentError as exc:
            log.warning("skipping %s", exc)


# ---------------------------------------------------------------------------------------------- quality


def energetic_frames(
    audio: np.ndarray, sample_rate: int, hop: float = 0.01, below_peak: float = 25.0, above_floor: float = 10.0
) -> np.ndarray:
    """(F,) bool: which ``hop``-second frames carry speech energy.

    A frame is energetic when its RMS level (dB) is within ``below_peak`` dB of the loud speech (95th percentile of
    the frame levels) and at least ``above_floor`` dB above the noise floor (10th percentile).
    """
    x = np.asarray(audio, np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    n = max(int(round(hop * sample_rate)), 1)
    frames = len(x) // n
    if frames == 0:
        return np.zeros(0, bool)
    db = 10 * np.log10(np.mean(x[: frames * n].reshape(frames, n) ** 2, axis=1) + 1e-12)
    peak, floor = np.percentile(db, 95), np.percentile(db, 10)
    return db >= max(peak - below_peak, floor + above_floor)


def coverage(phones: list[Phone], audio: np.ndarray, sample_rate: int, hop: float = 0.01) -> float:
    """Fraction of the energetic frames (:func:`energetic_frames`) whose centre lies inside a phone span; nan if
    the audio has none."""
    mask = energetic_frames(audio, sample_rate, hop)
    if not mask.any():
        return float("nan")
    centres = (np.arange(len(mask)) + 0.5) * hop  # s
    inside = np.zeros(len(mask), bool)
    for p in phones:
        inside |= (centres >= p.start) & (centres < p.end)
    return float((inside & mask).sum() / mask.sum())


# ---------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """Align every file of one dataset folder and print per file: duration, phones, coverage, or the failure."""
    parser = argparse.ArgumentParser(
        prog="python -m training.data.read_speech",
        description="Force-align a read-speech dataset (LJSpeech layout: audio files + transcript.csv/metadata.csv "
        "with id|text|normalized text) with PocketSphinx and report duration, phones and coverage per file.",
    )
    parser.add_argument("root", type=Path, help="dataset folder, e.g. ../shared/external/dc-tts-read-speech")
    parser.add_argument("--limit", type=int, default=0, help="align only the first N files (0: all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import soundfile as sf

    items = dataset_items(args.root)
    if args.limit:
        items = items[: args.limit]
    t0 = time.perf_counter()
    total_s = aligned_s = 0.0
    n_phones = 0
    covered = energetic = 0.0
    failures: list[AlignmentError] = []
    for path, text in items:
        name = str(path.relative_to(args.root))
        try:
            audio, rate = sf.read(str(path), dtype="float32", always_2d=False)
        except (RuntimeError, OSError) as exc:
            failures.append(AlignmentError(name, f"cannot read audio ({exc})"))
            print(f"{name}  FAILED: {failures[-1].reason}")
            continue
        duration = len(audio) / rate
        total_s += duration
        try:
            if text is None:
                raise AlignmentError(name, _NO_TRANSCRIPT.format(id=path.stem))
            phones = align(audio, rate, text, source=name)
        except AlignmentError as exc:
            failures.append(exc)
            print(f"{name}  {duration:6.2f} s  FAILED: {exc.reason}")
            continue
        mask = energetic_frames(audio, rate)
        cov = coverage(phones, audio, rate)
        covered += cov * mask.sum()
        energetic += mask.sum()
        aligned_s += duration
        n_phones += len(phones)
        print(f"{name}  {duration:6.2f} s  {len(phones):4d} phones  coverage {cov:.3f}")
    ok = len(items) - len(failures)
    mean_cov = covered / energetic if energetic else float("nan")
    print(
        f"total: {len(items)} files, {ok} aligned, {len(failures)} failed; {total_s:.1f} s audio, {aligned_s:.1f} s "
        f"aligned; {n_phones} phones; coverage {mean_cov:.3f} of the energetic frames of aligned files; "
        f"{time.perf_counter() - t0:.1f} s"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
