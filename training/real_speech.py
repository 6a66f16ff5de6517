"""The face on real speech nobody here synthesised: the "real speech" table of ``python -m training.evaluate``.

Three sources from ``../shared/external`` (its README gives licences and roles), each streamed through the engine at
the given settings, one voice as person A and near-silence as B:

- ``beat-speech/`` (BEAT, CC BY-NC: evaluation only): spontaneous monologue. Speaker (A) and listener (B) statistics
  of a living face, measured as on real captures (``training.metrics.liveliness``): blinks per minute, blink peak
  and width, browInnerUp std, gaze shifts per minute, head pitch std and nods per minute, lively channels; with the
  living-face layer on (the default) and off (the model alone), next to the same figures of the real iPhone takes
  (``training/configs/face_reference.json``, ``python -m training.analyze``).
- ``facegood-mandarin/`` held-out pair(s) (``training.data.facegood``): per-channel correlation of A's mapped mouth
  channels with the artist's curves (lag 0).
- held-out aligned English (``training.data.real``: dc-tts every 5th file, LJSpeech): lip error over the viseme
  channels against phoneme-driven targets (the synthetic corpus's own rule) and bilabial closure.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from runtime.constants import FPS, SAMPLE_RATE
from runtime.engine.frames import Frames, PersonFrames
from runtime.engine.settings import SessionSettings
from runtime.engine.stream import Engine
from runtime.formats.arkit import INDEX
from runtime.formats.wav import read_audio

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
EXTERNAL = REPO.parent / "shared" / "external"
REFERENCE = REPO / "training" / "configs" / "face_reference.json"
CHUNK = SAMPLE_RATE // 10  # 100 ms per push, as a microphone client
NOISE_FLOOR = 1e-4  # B's "silence": a quiet room, not digital zeros
PARTS = ("beat", "facegood", "english")
LIVE_COLUMNS = ("blinks/min", "blink peak", "blink width ms", "browInnerUp std", "gaze shifts/min",
                "head pitch std deg", "nods/min", "lively channels")  # fmt: skip


def stream(model, settings: SessionSettings, a: np.ndarray, b: np.ndarray | None = None) -> Frames:
    """A's voice (and B's, or a quiet room) through a fresh engine, 100 ms at a time."""
    b = (np.random.default_rng(0).standard_normal(len(a)) * NOISE_FLOOR).astype(np.float32) if b is None else b
    engine = Engine(model, settings)
    out = []
    for i in range(0, max(len(a), len(b)), CHUNK):
        engine.push_audio(0, a[i : i + CHUNK])
        engine.push_audio(1, b[i : i + CHUNK])
        while (f := engine.step()) is not None:
            out.append(f)
    if (f := engine.flush()) is not None:
        out.append(f)
    return Frames.concat(out)


def mono(path: Path, max_seconds: float | None) -> np.ndarray:
    samples = read_audio(path).channels[0]
    return samples[: int(max_seconds * SAMPLE_RATE)] if max_seconds else samples


def live_figures(person: PersonFrames) -> dict:
    """The living-face figures of one streamed person, measured as the real takes are."""
    from training.metrics.liveliness import analyze_take

    deg = np.degrees(person.rotations.astype(np.float64))
    s = analyze_take(person.blendshapes, FPS, head_deg=deg[:, :3], eye_deg=deg[:, 3:9])
    head = s.head
    return {"blinks/min": s.blinks.per_min, "blink peak": s.blinks.peak_median,
            "blink width ms": s.blinks.duration_ms_median, "browInnerUp std": s.brows.inner_up_std,
            "gaze shifts/min": s.gaze.per_min, "head pitch std deg": head.pitch_std_deg if head else 0.0,
            "nods/min": head.nods_per_min if head else 0.0, "lively channels": s.liveliness.n_lively}  # fmt: skip


def beat_rows(model, settings: SessionSettings, max_seconds: float | None, files: list[Path] | None = None) -> list:
    """Speaker and listener on BEAT's real monologues, layer on and off, pooled over the files (mean of figures)."""
    files = files or sorted((EXTERNAL / "beat-speech").glob("*.wav"))
    rows = []
    for alive in (True, False):
        s = replace(settings, alive=alive)
        per_role: dict[str, list[dict]] = {"speaker": [], "listener": []}
        for path in files:
            frames = stream(model, s, mono(path, max_seconds))
            per_role["speaker"].append(live_figures(frames.people[0]))
            per_role["listener"].append(live_figures(frames.people[1]))
        for role, figs in per_role.items():
            mean = {k: float(np.mean([f[k] for f in figs if f[k] is not None] or [np.nan])) for k in LIVE_COLUMNS}
            rows.append({"row": f"{role}, layer {'on' if alive else 'off'}", "files": len(files), **mean})
    return rows


def reference_row(path: Path = REFERENCE) -> dict:
    """The same figures of the real iPhone takes: the medians of ``face_reference.json``'s summary."""
    summary = json.loads(path.read_text())["summary"]

    def med(key: str) -> float | None:
        return summary[key]["median"] if isinstance(summary.get(key), dict) else None

    return {"row": "real iPhone takes (median of 10; idle faces, no speech)", "files": 10,
            "blinks/min": med("blinks.per_min"), "blink peak": med("blinks.peak_median"),
            "blink width ms": med("blinks.duration_ms_median"), "browInnerUp std": med("brows.inner_up_std"),
            "gaze shifts/min": med("gaze.per_min"), "head pitch std deg": None, "nods/min": None,
            "lively channels": med("liveliness.n_lively")}  # fmt: skip


def facegood_rows(model, settings: SessionSettings, max_seconds: float | None) -> list:
    """Per mapped channel, Pearson r of A's streamed weights with FACEGOOD's held-out curves (lag 0)."""
    from training.data.facegood import EVAL_IDS, load_pair

    rows = []
    for pair_id in EVAL_IDS:
        pair = load_pair(pair_id)
        audio = pair.audio[: int(max_seconds * SAMPLE_RATE)] if max_seconds else pair.audio
        w = stream(model, settings, audio).people[0].blendshapes
        gt = pair.weights[: len(w)]
        w = w[: len(gt)]
        for c in np.flatnonzero(pair.mask):
            r = np.corrcoef(w[:, c], gt[:, c])[0, 1] if w[:, c].std() > 0 and gt[:, c].std() > 0 else 0.0
            rows.append({"pair": pair_id, "channel": _name(c), "r": float(r), "seconds": len(gt) / FPS})
    return rows


def _name(c: int) -> str:
    return next(k for k, v in INDEX.items() if v == c)


def english_rows(model, settings: SessionSettings, max_files: int | None = None) -> list:
    """Lip error over the viseme channels, bilabial closure and lips shut while open on held-out real English,
    against phoneme-driven targets."""
    from training.data.align import AlignmentError, align
    from training.data.faces import bilabial_closure_rate
    from training.data.real import ENGLISH_HELD_OUT_ONLY, ENGLISH_TRAIN, english_items, english_mask, english_target
    from training.metrics.face import shut_while_open

    channels = np.flatnonzero(english_mask())
    rows = []
    for name in (ENGLISH_TRAIN, *ENGLISH_HELD_OUT_ONLY):
        errors, closures, seconds, failed, shut, opened = [], [], 0.0, 0, 0, 0
        for path, transcript in english_items(name, held_out=True)[:max_files]:
            audio = mono(path, None)
            try:
                phones = align(audio, SAMPLE_RATE, transcript, source=str(path))
            except AlignmentError as e:  # per file: say so and go on
                log.warning("%s: not aligned (%s); skipped", path.name, e)
                failed += 1
                continue
            w = stream(model, settings, audio).people[0].blendshapes
            gt = english_target(audio, phones, len(w))
            errors.append(float(np.abs(w[:, channels] - gt[:, channels]).max(axis=1).mean()))
            closures.append(bilabial_closure_rate(w, phones))
            s, o = shut_while_open(w, gt)
            shut, opened = shut + s, opened + o
            seconds += len(w) / FPS
        rows.append({"set": name, "files": len(errors), "not aligned": failed, "seconds": seconds,
                     "lip error": float(np.mean(errors)) if errors else None,
                     "bilabial closure": float(np.nanmean(closures)) if closures else None,
                     "shut while open": shut / opened if opened else None})  # fmt: skip
    return rows


def real_speech_report(model, settings: SessionSettings, max_seconds: float | None = 60.0,
                       parts: tuple[str, ...] = PARTS,
                       progress: Callable[[str], None] = log.info) -> dict:  # fmt: skip
    """Every real-speech row this machine has the data for; absent sources are named, not failed."""
    if not EXTERNAL.is_dir():
        return {"skipped": f"{EXTERNAL} is absent"}
    report: dict = {"settings": {k: getattr(settings, k) for k in ("block", "lookahead", "context", "steps", "seed")}}
    if "beat" in parts:
        progress("real speech: beat-speech (speaker and listener, layer on and off)")
        report["living_face"] = [*beat_rows(model, settings, max_seconds), reference_row()]
    if "facegood" in parts:
        progress("real speech: FACEGOOD held-out mouth curves")
        report["facegood"] = facegood_rows(model, settings, max_seconds)
    if "english" in parts:
        progress("real speech: held-out aligned English")
        report["english"] = english_rows(model, settings)
    return report


def markdown(report: dict) -> str:
    """The real-speech tables."""
    if "skipped" in report:
        return f"Real speech: skipped ({report['skipped']}).\n"

    def fmt(v) -> str:
        return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.3g}"

    lines = []
    if "living_face" in report:
        lines += ["| beat-speech | " + " | ".join(LIVE_COLUMNS) + " |", "|---" * (len(LIVE_COLUMNS) + 1) + "|"]
        lines += [
            f"| {r['row']} | " + " | ".join(fmt(r[k]) for k in LIVE_COLUMNS) + " |" for r in report["living_face"]
        ]
        lines.append("")
    if report.get("facegood"):
        rows = report["facegood"]
        lines += ["| FACEGOOD held-out channel | r |", "|---|---|"]
        lines += [f"| {r['channel']} ({r['pair']}) | {fmt(r['r'])} |" for r in rows]
        lines += [f"| mean of {len(rows)} | {fmt(float(np.mean([r['r'] for r in rows])))} |", ""]
    if report.get("english"):
        lines += ["| held-out English | files (not aligned) | seconds | lip error (visemes) | bilabial closure | "
                  "shut while open |", "|---|---|---|---|---|---|"]  # fmt: skip
        lines += [f"| {r['set']} | {r['files']} ({r['not aligned']}) | {fmt(r['seconds'])} | {fmt(r['lip error'])} | "
                  f"{fmt(r['bilabial closure'])} | {fmt(r.get('shut while open'))} |"
                  for r in report["english"]]  # fmt: skip
        lines.append("")
    return "\n".join(lines)
