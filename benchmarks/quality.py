"""Section 5: quality against speed, so the default K / L is read off a measured curve (DESIGN 5: "default chosen
from measured quality/latency").

For every setting, the bundle (ONNX Runtime, the serving path) streams the held-out clips of the corpus it was
trained on through ``training.metrics.adapter.run_engine`` (the real ``Engine``; actions as per-frame controls), and
is scored with the evaluation module's own definitions:

- lip error (``training.metrics.face.lip_frame_errors``, frame-weighted over clips and people; weight units): the
  faces of the deployed pipeline, whose facing flags come from the generated bodies (``training.evaluate`` scores
  faces with the real bodies instead);
- FID_g (``training.metrics.body``: heading-frame joint positions in cm, audio2photoreal's Frechet distance) of the
  generated bodies against the ground truth of the same clips.

Needs the training extra (torch) and the corpus; otherwise the section is skipped with a note. With an untrained
bundle the numbers are computed but meaningless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, Setting
from runtime.constants import ACTIONS
from runtime.model.model import Model

log = logging.getLogger(__name__)

TOLERANCE = 0.10  # a setting is "as good as the best" when both scores are within 10 % of the best ones
RTF_BUDGET = 0.5  # the default must leave half the CPU free (benchmarks/README.md)


def find_corpus(model: Model, override: Path | None) -> tuple[Path | None, float | None, str]:
    """(corpus folder, held-out fraction, note): ``--corpus``, else the corpus the bundle's checkpoints record,
    else the repository's default corpus (``training.config.DataConfig.corpus``) with a note saying so."""
    from training.config import DataConfig

    data = [c.get("data") or {} for c in (model.bundle.manifest["provenance"].get("checkpoints") or {}).values()]
    fraction = next((float(d["test_fraction"]) for d in data if "test_fraction" in d), DataConfig.test_fraction)
    if override is not None:
        return (override, fraction, "--corpus") if override.is_dir() else (None, None, f"--corpus {override}: missing")
    for d in data:
        path = Path(str(d.get("corpus", "")))
        path = path if path.is_absolute() else REPO / path
        if d.get("corpus") and path.is_dir():
            return path, fraction, "the corpus the bundle was trained on"
    fallback = REPO / DataConfig.corpus
    if fallback.is_dir():
        return fallback, fraction, f"the bundle records no corpus on this machine; using {DataConfig.corpus}"
    return None, None, "no corpus: the bundle's is absent here and so is the repository's data/corpus"


def run_quality(model: Model, settings: list[Setting], corpus_override: Path | None, n_clips: int, seconds: float,
                latency_of: Callable[[Setting], float]) -> dict:  # fmt: skip
    try:
        from training.clips import load_clips
        from training.metrics import adapter as ad
        from training.metrics import body as bm
        from training.metrics import face as fm
    except ImportError as e:
        return {"available": False, "note": f"needs the training extra (pip install -e '.[train]'): {e}"}
    corpus_path, fraction, note = find_corpus(model, corpus_override)
    if corpus_path is None:
        return {"available": False, "note": note}
    from training.config import DataConfig
    from training.data.windows import Corpus

    cache = Path(DataConfig.cache)
    corpus = Corpus(corpus_path, cache if cache.is_absolute() else REPO / cache)
    _, test = corpus.rel.split(fraction)
    names = sorted(s.name for s in test)[:n_clips]
    if not names:
        return {"available": False, "note": f"{corpus_path}: no held-out sequences at test fraction {fraction}"}
    clips = load_clips(corpus, names, seconds)
    width = len(model.poser.lower_cols) + len(model.poser.upper_cols)
    if clips[0].seq.body.shape[-1] != width:
        return {"available": False, "note": f"{corpus_path}: body features of width {clips[0].seq.body.shape[-1]}, "
                f"the bundle's skeleton has {width}; not the corpus it was trained on"}  # fmt: skip
    gt = None
    for c in clips:
        for m in bm.pair_from_features(model.poser, c.seq.body, c.placement):
            gt = gt or bm.Moments(m.pose_vectors().shape[1])
            gt.add(m.pose_vectors())
    styles = model.bundle.styles

    def style(i: int) -> str:
        name = corpus.styles[i] if 0 <= i < len(corpus.styles) else ""
        return name if name in styles else ""

    points = []
    with _one_blas_thread():
        for s in settings:
            t0 = time.perf_counter()
            gen, lip, frames = bm.Moments(gt.sum.shape[0]), 0.0, 0
            for c in clips:
                first = tuple(ACTIONS[int(x)] for x in c.seq.actions[:, 0])
                names = (style(int(c.seq.style[0])), style(int(c.seq.style[1])))
                base = replace(s.session(), actions=first, placement=c.placement, styles=names)
                out, _ = ad.run_engine(model, c.audio, base, actions=c.seq.actions)
                people = [(out.people[p].joint_rotations[: c.n], out.people[p].root_position[: c.n]) for p in (0, 1)]
                for p in (0, 1):
                    errors = fm.lip_frame_errors(out.people[p].blendshapes[: c.n], c.seq.face[p])
                    lip, frames = lip + float(errors.sum()), frames + len(errors)
                for m in bm.pair_from_posed(model.poser, people):
                    gen.add(m.pose_vectors())
            try:
                fid = bm.fid(gen, gt)
            except ValueError as e:
                log.warning("FID_g undefined at %s: %s", s.label, e)
                fid = float("nan")
            point = {**s.to_dict(), "label": s.label, "lip_error": lip / max(1, frames), "fid_g": fid,
                     "latency_ms": latency_of(s), "seconds": time.perf_counter() - t0}  # fmt: skip
            log.info("quality %s: lip error %.4f, FID_g %.1f, latency %.0f ms", s.label, point["lip_error"], fid,
                     point["latency_ms"])  # fmt: skip
            points.append(point)
    return {"available": True, "note": note, "corpus": str(corpus_path), "test_fraction": fraction,
            "clips": [{"name": c.seq.name, "frames": c.n} for c in clips],
            "audio_seconds": sum(c.n for c in clips) / 30.0, "points": points,
            "definitions": {"lip_error": fm.DEFINITIONS["lip_error"], "fid_g": bm.DEFINITIONS["fid_g"]}}  # fmt: skip


def _one_blas_thread():
    """numpy's BLAS on one thread (the FID's sqrtm): spinning BLAS threads on a shared 2-core CPU cost 10x."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(1)


def suggest_default(points: list[dict], rtf_of: Callable[[dict], float | None]) -> dict | None:
    """The lowest-latency setting whose lip error and FID_g are both within ``TOLERANCE`` of the best measured and
    whose RTF is within ``RTF_BUDGET``; ties go to fewer steps. None without usable points."""
    ok = [p for p in points if np.isfinite(p["lip_error"]) and np.isfinite(p["fid_g"])]
    if not ok:
        return None
    best_lip, best_fid = min(p["lip_error"] for p in ok), min(p["fid_g"] for p in ok)
    good = [p for p in ok if p["lip_error"] <= (1 + TOLERANCE) * best_lip and p["fid_g"] <= (1 + TOLERANCE) * best_fid
            and (rtf_of(p) or 0.0) <= RTF_BUDGET]  # fmt: skip
    if not good:
        return None
    pick = min(good, key=lambda p: (p["latency_ms"], p["steps"]))
    return {k: pick[k] for k in ("steps", "block", "lookahead", "context", "label", "lip_error", "fid_g", "latency_ms")}
