"""Evaluate a face or body checkpoint on the held-out sequences of the corpus it was trained on (paper 5, DESIGN 10).

    python -m training.evaluate --model face --checkpoint runs/face/face.pt
        [--baseline-checkpoint runs/face_lip/face_lip.pt runs/face_reg/face_reg.pt] [--steps 4] [--out runs/eval]
    python -m training.evaluate --model body --checkpoint runs/body/body.pt
        [--baseline-checkpoint runs/body_single/body_single.pt] [--samples 5] [--max-seconds 60] [--limit 4]

Test clips: ``InterActRelease.split`` of ``meta["data"]["corpus"]`` at ``--test-fraction``, else the fraction the
checkpoint's meta records, else the ``DataConfig`` default (the split training used). Rows:

- face: ground truth; the model streaming (``runtime.engine.stream.Engine`` over both microphones, block B, lookahead L,
  context C, K steps; bodies = the real ones, so facing flags are the real ones); the model offline (one pass per
  whole clip, real facing flags); every ``--baseline-checkpoint`` offline; mean face; audio-energy jaw.
- body: ground truth; the model streaming (actions as per-frame controls) and offline (``--samples`` samples per
  whole clip); baseline checkpoints offline (e.g. ``body_single``); mean pose; random real clip (training split).
- ``--bundle DIR`` adds an exported bundle streamed through ``runtime.model.Model`` (ONNX Runtime).

Writes ``eval_<model>.md`` (table) and ``eval_<model>.json`` (numbers, command, machine, checkpoint sha256s, metric
definitions) to ``--out``. Metric definitions: ``training.metrics.face`` / ``training.metrics.body``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from runtime.constants import ACTIONS, FPS
from runtime.engine.settings import BODY_NOISE, FACE_NOISE, SessionSettings
from training.checkpoint import load_weights
from training.clips import Clip, load_clips
from training.config import DataConfig
from training.data.actions import rest_hip_height
from training.data.windows import Corpus, SeqArrays
from training.metrics import adapter as ad
from training.metrics import body as bm
from training.metrics import face as fm
from training.metrics import motion as mo
from training.metrics.scores import BodyContext, BodyScores
from training.real_body import markdown as body_real_markdown
from training.real_body import real_body_report
from training.real_speech import PARTS as REAL_PARTS
from training.real_speech import markdown as real_markdown
from training.real_speech import real_speech_report
from training.reporting import cpu_model, json_safe

log = logging.getLogger("training.evaluate")

FACE_COLUMNS = {"lip_error": "lip error", "fdd": "FDD", "bilabial_closure": "bilabial closure",
                "shut_while_open": "shut while open", "listener_reaction": "listener reaction",
                "rtf": "RTF"}  # fmt: skip
BODY_COLUMNS = {"fid_g": "FID_g", "fid_k": "FID_k", "div_g": "Div_g", "div_k": "Div_k", "div_sample": "Div_sample",
                "beat_consistency": "BC", "foot_skating": "foot skating (cm/s)", "jerk": "jerk (m/s³)",
                "action_agreement": "action agreement", "distance_w1": "distance W1 (m)",
                "facing_w1": "facing W1 (°)", "wrists_speed": "wrist speed (h/s)", "wrists_speaking": "speaking",
                "wrists_listening": "listening", "energy_ratio": "energy ratio", "strokes_per_min": "strokes/min",
                "hand_speed_w1": "hand-speed W1", "rtf": "RTF"}  # fmt: skip
BASELINE_KINDS = {"face": ("face",), "body": ("body", "body_single")}


def _style_names(model, clip: Clip) -> tuple[str, str]:
    names = model.bundle.styles
    return tuple(names[i] if i < len(names) else "" for i in clip.seq.style)  # type: ignore[return-value]


def _rng(seed: int, clip: int, sample: int) -> np.random.Generator:
    return np.random.default_rng([seed, clip, sample])


# ----------------------------------------------------------------------------------------------------------------
# Face


def evaluate_face(model: ad.CheckpointModel, baselines: list[ad.CheckpointModel], clips: list[Clip],
                  settings: SessionSettings, args: argparse.Namespace, bundle=None) -> list[dict]:  # fmt: skip
    s, k = settings, settings.steps

    def streamed(m) -> Callable[[int, Clip], np.ndarray]:
        return lambda i, c: ad.stream_faces(m, c.audio, c.seq.body,
                                         replace(s, styles=_style_names(m, c), placement=c.placement))  # fmt: skip

    def offline(m: ad.CheckpointModel) -> Callable[[int, Clip], np.ndarray]:
        return lambda i, c: ad.offline_faces(m, c.seq.mel, c.seq.style, c.seq.facing, k, _rng(args.seed, i, 0))

    sources: list[tuple[str, str, Callable[[int, Clip], np.ndarray]]] = [
        ("ground truth", "reference", lambda i, c: c.seq.face),
        *_learned_rows(model, baselines, bundle, s, streamed, offline),
    ]
    sources += [("mean face", "baseline", lambda i, c: ad.mean_face(model, c.n)),
                ("audio-energy jaw", "baseline", lambda i, c: ad.energy_jaw(model, c.seq.mel))]  # fmt: skip
    rows = []
    for name, mode, make in sources:
        t0 = time.perf_counter()
        weights = [make(i, c) for i, c in enumerate(clips)]
        seconds = time.perf_counter() - t0
        items = [(w[p], c.seq.face[p], c.phones[p] if c.phones else None, c.active[p], c.active[1 - p])
                 for c, w in zip(clips, weights, strict=True) for p in (0, 1)]  # fmt: skip
        rows.append(_row(name, mode, fm.pooled_scores(items), seconds, clips))
        log.info("%s: %.1f s", name, seconds)
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Body


def evaluate_body(model: ad.CheckpointModel, baselines: list[ad.CheckpointModel], clips: list[Clip],
                  train: list[SeqArrays], settings: SessionSettings, args: argparse.Namespace, bundle=None
                  ) -> list[dict]:  # fmt: skip
    s, k, n = settings, settings.steps, args.samples
    sk, layout = model.poser.skeleton, model.poser.layout
    truth = [bm.pair_from_features(model.poser, c.seq.body, c.placement) for c in clips]
    speeds = np.concatenate([bm.joint_speed(m.local) for pair in truth for m in pair])  # (frames, J)
    ctx = BodyContext([tuple(bm.speech_onsets(c.audio[p], active=c.active[p]) for p in (0, 1)) for c in clips],
                      speeds.mean(axis=0), bm.upper_body_joints(sk, layout), bm.foot_joints(sk, layout),
                      rest_hip_height(sk), [c.active for c in clips], mo.group_joints(sk.names),
                      mo.body_height(sk))  # fmt: skip
    gt = BodyScores(ctx)
    for i, (c, pair) in enumerate(zip(clips, truth, strict=True)):
        gt.add(i, c.seq.actions, [pair])

    def streamed(m) -> Callable[[int, Clip], list[bm.Pair]]:
        def make(i: int, c: Clip) -> list[bm.Pair]:
            first = tuple(ACTIONS[int(x)] for x in c.seq.actions[:, 0])
            base = replace(s, actions=first, placement=c.placement, styles=_style_names(m, c))
            runs = [ad.stream_bodies(m, c.audio, c.seq.actions, replace(base, seed=args.seed + j))
                    for j in range(args.stream_samples)]  # fmt: skip
            return [bm.pair_from_posed(m.poser, r) for r in runs]

        return make

    def offline(m: ad.CheckpointModel) -> Callable[[int, Clip], list[bm.Pair]]:
        def make(i: int, c: Clip) -> list[bm.Pair]:
            feats = [ad.offline_bodies(m, c.seq.mel, c.seq.actions, c.seq.placement[0, 0], k, _rng(args.seed, i, j))
                     for j in range(n)]  # fmt: skip
            return [bm.pair_from_features(m.poser, f, c.placement) for f in feats]

        return make

    sources: list[tuple[str, str, Callable[[int, Clip], list[bm.Pair]] | None]] = [
        ("ground truth", "reference", None),
        *_learned_rows(model, baselines, bundle, s, streamed, offline),
    ]
    sources += [("mean pose", "baseline", lambda i, c: [bm.pair_from_features(model.poser, ad.mean_pose(model, c.n),
                                                                              c.placement)] * n),
                ("random real clip", "baseline",
                 lambda i, c: [bm.pair_from_features(model.poser, *ad.random_real(train, c.n, _rng(args.seed, i, j)))
                               for j in range(n)])]  # fmt: skip
    rows = []
    for name, mode, make in sources:
        t0 = time.perf_counter()
        scores = gt if make is None else BodyScores(ctx)
        for i, c in enumerate(clips if make is not None else []):
            scores.add(i, c.seq.actions, make(i, c))
        seconds = time.perf_counter() - t0
        rows.append(_row(name, mode, scores.result(gt, args.seed), seconds, clips))
        log.info("%s: %.1f s", name, seconds)
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Report


def _row(name: str, mode: str, metrics: dict, seconds: float, clips: list[Clip]) -> dict:
    audio = sum(c.n for c in clips) / FPS
    rtf = seconds / audio if mode in ("streaming", "offline") else float("nan")
    return {"name": name, "mode": mode, **metrics, "seconds": round(seconds, 2), "rtf": rtf}


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return str(v) if isinstance(v, int) else f"{v:.4g}"


def _learned_rows(model, baselines, bundle, s: SessionSettings, streamed: Callable, offline: Callable) -> list:
    """(name, mode, source) of the model streamed and offline, each baseline checkpoint offline (K steps, or one
    pass for a regression model), and the bundle streamed."""
    k = s.steps
    rows = [(f"{model.bundle.name} streaming (B{s.block} L{s.lookahead} C{s.context} K{k})", "streaming",
             streamed(model)), (f"{model.bundle.name} offline (K{k})", "offline", offline(model))]  # fmt: skip
    for m in baselines:
        steps = "one pass" if any(t.exp.train.regression for t in m.tasks.values()) else f"K{k}"
        rows.append((f"{m.bundle.name} offline ({steps})", "offline", offline(m)))
    if bundle is not None:
        rows.append((f"bundle {bundle.bundle.name} streaming (K{k})", "streaming", streamed(bundle)))
    return rows


def markdown(report: dict) -> str:
    columns = FACE_COLUMNS if report["model"] == "face" else BODY_COLUMNS
    m, s = report["machine"], report["settings"]
    lines = [
        f"# {report['model']} evaluation", "",
        f"- command: `{report['command']}`",
        f"- machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads)",
        f"- test clips: {len(report['clips'])} held-out sequences of `{report['corpus']}` (test fraction "
        f"{report['test_fraction']}), {report['audio_seconds'] / 60:.1f} min",
        f"- streaming: block {s['block']}, lookahead {s['lookahead']}, context {s['context']}, K {s['steps']}"
        + (f", body smoothing {s['body_smooth']}, seam {s['body_seam']}, noise {s['body_noise']}, voice guidance "
           f"{s['body_guidance']}" if report["model"] == "body" else f", face noise {s['face_noise']}") + "; "
        f"samples: offline {report['samples']}, streaming {report['stream_samples']}",
        *[f"- {c['role']}: `{c['path']}` ({c['kind']}, {c['train_steps']} steps) sha256 `{c['sha256']}`"
          for c in report["checkpoints"]],
        "", "| row | " + " | ".join(columns.values()) + " |", "|---" * (len(columns) + 1) + "|",
    ]  # fmt: skip
    for row in report["rows"]:
        lines.append(f"| {row['name']} | " + " | ".join(_fmt(row.get(k)) for k in columns) + " |")
    if report.get("real_speech"):
        real = real_markdown if report["model"] == "face" else body_real_markdown
        lines += ["", "## Real speech", "", real(report["real_speech"])]
    lines += ["", "Definitions (training/metrics):", ""]
    lines += [f"- {k}: {v}" for k, v in report["definitions"].items()]
    return "\n".join(lines) + "\n"


def machine() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "platform": platform.platform()}  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Command line


def _settings(args: argparse.Namespace, defaults: dict) -> SessionSettings:
    names = ("block", "lookahead", "context", "steps", "face_known", "body_smooth", "body_seam", "body_noise",
             "face_noise")  # fmt: skip
    picked = {k: getattr(args, k) for k in names}
    return SessionSettings.from_bundle(defaults, **picked, seed=args.seed, degrade=False).validate()


def _load(path: Path, kinds: tuple[str, ...], role: str) -> dict:
    ckpt = load_weights(path)
    if ckpt["kind"] not in kinds:
        raise ValueError(f"{path}: a {ckpt['kind']!r} checkpoint cannot be the {role} here (expected {kinds})")
    ckpt["path"] = str(path)
    return ckpt


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("face", "body"), required=True)
    ap.add_argument("--checkpoint", type=Path, required=True, help="weights-only checkpoint (face or body kind)")
    ap.add_argument("--baseline-checkpoint", type=Path, nargs="*", default=[], help="more checkpoints, run offline")
    ap.add_argument("--bundle", type=Path, help="also stream an exported bundle (its defaults set B/L/C/K)")
    for name, what in (("steps", "DDIM steps K"), ("block", "frames per step B"), ("lookahead", "frames L"),
                       ("context", "frames C"), ("face_known", "known committed face frames (-1: all C)")):  # fmt: skip
        flag = f"--{name.replace('_', '-')}"
        ap.add_argument(flag, type=int, help=f"{what} (default: the bundle's, else SessionSettings')")
    ap.add_argument("--body-smooth", type=float, help="frames of body smoothing, 0 = off (default: SessionSettings')")
    ap.add_argument("--body-seam", type=float, help="body seam rate per frame, 0 = off (default: SessionSettings')")
    ap.add_argument(
        "--body-guidance",
        type=float,
        help="override the upper body's voice guidance (1 = off; default: the checkpoint's)",
    )
    ap.add_argument(
        "--body-noise", choices=BODY_NOISE, help="body networks drawing noise per window (default: SessionSettings')"
    )
    ap.add_argument("--face-noise", choices=FACE_NOISE, help="faces: noise tied to frames or one draw per session")
    ap.add_argument("--samples", type=int, default=5, help="body: samples per clip offline (Div_sample needs >= 2)")
    ap.add_argument("--stream-samples", type=int, default=1, help="body: samples per clip streamed")
    ap.add_argument("--max-seconds", type=float, help="evaluate at most this much of each clip")
    ap.add_argument("--limit", type=int, help="evaluate at most this many clips")
    ap.add_argument("--corpus", help="override the checkpoint's corpus path")
    ap.add_argument("--cache", default=DataConfig.cache, help="feature cache folder")
    ap.add_argument("--test-fraction", type=float, help="override the held-out fraction")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: no spinning on a shared CPU)")
    ap.add_argument("--out", type=Path, default=Path("runs/eval"))
    ap.add_argument("--real-speech", nargs="*", choices=REAL_PARTS, help="also the real-speech tables on "
                    "../shared/external (the bundle if given, else the checkpoint); face: no value = all parts; body: "
                    "BEAT speaker/listener and the real capture")  # fmt: skip
    ap.add_argument("--skip-synthetic", action="store_true", help="only the real-speech tables (no corpus needed)")
    args = ap.parse_args(argv)
    for name in ("samples", "stream_samples", "limit", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.max_seconds is not None and args.max_seconds < 5 * bm.BC_TRIM:
        ap.error(f"--max-seconds must be >= {5 * bm.BC_TRIM:g} (beat consistency trims {bm.BC_TRIM:g} s per end)")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    try:  # numpy's BLAS threads too (sqrtm of the FID): spinning threads on a shared 2-core CPU cost 10x
        from threadpoolctl import threadpool_limits  # comes with librosa (scikit-learn)
    except ImportError:
        return evaluate(args, argv)
    with threadpool_limits(args.threads):
        return evaluate(args, argv)


def evaluate(args: argparse.Namespace, argv: list[str] | None) -> dict:
    """Run the evaluation ``args`` describe; writes the report files and returns the report."""
    t0 = time.perf_counter()
    ckpt = _load(args.checkpoint, (args.model,), "model")
    if args.body_guidance is not None and "body_upper" in ckpt["model_config"]:
        ckpt["model_config"]["body_upper"]["guidance"] = args.body_guidance
    others = [_load(p, BASELINE_KINDS[args.model], "baseline") for p in args.baseline_checkpoint]
    data = ckpt["meta"].get("data") or {}
    corpus_path = args.corpus or data.get("corpus")
    for o in others:
        if (o["meta"].get("data") or {}).get("corpus") != data.get("corpus"):
            log.warning("%s was trained on %s, the model on %s", o["path"], o["meta"].get("data"), data)
    fraction = (
        args.test_fraction if args.test_fraction is not None else data.get("test_fraction", DataConfig.test_fraction)
    )
    model = ad.CheckpointModel([ckpt], name=args.checkpoint.stem)
    baselines = [ad.CheckpointModel([o], name=Path(o["path"]).stem) for o in others]
    bundle = None
    if args.bundle is not None:
        from runtime.model.model import Model

        bundle = Model.load(args.bundle)
    settings = _settings(args, bundle.bundle.defaults if bundle is not None else {})
    real = None
    if args.real_speech is not None and args.model == "face":
        real = real_speech_report(bundle or model, settings, args.max_seconds, tuple(args.real_speech) or REAL_PARTS)
    elif args.real_speech is not None:
        real = real_body_report(bundle or model, settings, args.max_seconds)
    clips, rows = [], []
    if not args.skip_synthetic:
        corpus = Corpus(corpus_path, args.cache)
        train, test = corpus.rel.split(fraction)
        names = sorted(s.name for s in test)[: args.limit]
        if not names:
            raise ValueError(f"{corpus_path}: no held-out sequences at test fraction {fraction}")
        clips = load_clips(corpus, names, args.max_seconds)
        log.info(
            "evaluating %s on %d clips (%.1f min)", args.checkpoint, len(clips), sum(c.n for c in clips) / FPS / 60
        )
        if args.model == "face":
            rows = evaluate_face(model, baselines, clips, settings, args, bundle)
        else:
            train_arrays = corpus.sequences([s.name for s in train])
            rows = evaluate_body(model, baselines, clips, train_arrays, settings, args, bundle)
    report = {
        "model": args.model,
        "command": shlex.join([Path(sys.executable).name, "-m", "training.evaluate", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "checkpoints": [{"role": role, "path": c["path"], "kind": c["kind"], "sha256": c["sha256"],
                         "train_steps": (c["meta"].get("train") or {}).get("steps")}
                        for role, c in [("model", ckpt)] + [("baseline", o) for o in others]],
        "bundle": None if bundle is None else {"path": str(args.bundle), "name": bundle.bundle.name},
        "corpus": str(corpus_path), "test_fraction": fraction,
        "clips": [{"name": c.seq.name, "frames": c.n} for c in clips],
        "audio_seconds": sum(c.n for c in clips) / FPS,
        "settings": {**{k: getattr(settings, k) for k in ("block", "lookahead", "context", "steps", "seed",
                                                          "body_smooth", "body_seam", "body_noise", "face_noise")},
                     "body_guidance": ckpt["model_config"].get("body_upper", {}).get("guidance", 1.0)},
        "samples": args.samples if args.model == "body" else 1,
        "stream_samples": args.stream_samples if args.model == "body" else 1,
        "rows": rows,
        "real_speech": real,
        "definitions": fm.DEFINITIONS if args.model == "face" else bm.DEFINITIONS | mo.DEFINITIONS,
        "elapsed_seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip
    report = json_safe(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"eval_{args.model}.json").write_text(json.dumps(report, indent=1))
    (args.out / f"eval_{args.model}.md").write_text(markdown(report))
    if real is not None:
        print((real_markdown if args.model == "face" else body_real_markdown)(json_safe(real)))
    log.info("wrote %s and %s", args.out / f"eval_{args.model}.md", args.out / f"eval_{args.model}.json")
    return report


if __name__ == "__main__":
    main()
