"""The README's two figures, drawn from a model bundle streamed through the real engine.

    python -m training.figures --bundle runtime/assets/default --corpus data/corpus --out docs

- ``real_speech.png``: ``dev00.wav`` of pyannote-audio's test data (``--speech``; 30 s of a real two-person
  meeting, mono, in no training corpus), split into two microphones by the speaker turns listed in the README next
  to it (A's turns on A's channel, silence elsewhere; overlapping turns on both), streamed through the engine. Per
  person: their channel's waveform (grey), the generated jawOpen, eyeBlink, browInnerUp and mouthSmile (the
  living-face layer on, as streamed by default), their turns shaded. Skipped with a
  log line when the recording is absent.
- ``body_strip.png``: the first held-out sequence of the corpus (by name; ``InterActRelease.split`` at the test
  fraction the bundle's body model was trained with), its first ``--seconds``, at 6 evenly spaced moments. Top row:
  the corpus motion. Bottom row: the engine's, streamed from the same two microphones and per-frame action labels
  (as ``training.evaluate`` streams bodies). Both are posed and drawn as the recording contact sheet draws them.
- ``body_speed.png``: mean wrist speed over time (body heights/s, ``training.metrics.motion``; 0.3 s smoothing), speech
  shaded. Top: ``--beat`` (real spontaneous speech, BEAT, evaluation only) as A's microphone and a quiet room as B's,
  speaker and listener. Bottom: the body strip's held-out clip, person A, the corpus motion and the engine's.
"""

from __future__ import annotations

import argparse
import logging
import re
import time
from pathlib import Path

import numpy as np

from runtime.constants import ACTIONS, FPS, SAMPLE_RATE, SPEAKERS
from runtime.engine.settings import SessionSettings
from runtime.formats.arkit import INDEX, N_BLENDSHAPES
from runtime.formats.wav import read_audio
from runtime.model.model import DEFAULT_BUNDLE, Model
from runtime.sinks import contact_sheet as cs
from training.clips import load_clips
from training.config import DataConfig
from training.data.windows import Corpus
from training.metrics import body as bm
from training.metrics import motion as mo
from training.metrics.adapter import run_engine
from training.real_speech import NOISE_FLOOR, mono

log = logging.getLogger("training.figures")

SPEECH = Path("../shared/external/pyannote-dialogue/dev00.wav")
BEAT = Path("../shared/external/beat-speech/2_scott_0_14_14.wav")
SPEED_SMOOTH = 0.3  # s: std of the Gaussian over the wrist speed curves
TURN_ROW = re.compile(r"\|\s*(\S+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|\s*(\S+)\s*\|")  # | file | start | dur | who |
HOP = 160  # samples per column of the waveform envelope (10 ms)
FACE = {"jawOpen": "tab:green", "eyeBlink": "tab:red", "browInnerUp": "tab:brown",
        "mouthSmile": "tab:pink"}  # curve -> colour (A and B are blue and orange)  # fmt: skip


def _figure(height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(cs.WIDTH_IN, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def bundle_settings(model: Model, **overrides) -> SessionSettings:
    """The bundle's default block, lookahead, context, steps and face_known; fixed-size blocks (no degrading)."""
    d = model.bundle.defaults
    keys = ("block", "lookahead", "context", "steps", "face_known")
    return SessionSettings(**{k: int(d[k]) for k in keys if k in d}, degrade=False, **overrides).validate()


def read_turns(readme: Path, recording: str) -> list[tuple[float, float, str]]:
    """(start s, stop s, speaker) of ``recording``'s rows in the README's "file | start | dur | speaker" table."""
    turns = [(float(m[2]), float(m[2]) + float(m[3]), m[4])
             for m in map(TURN_ROW.fullmatch, readme.read_text().splitlines()) if m and m[1] == recording]  # fmt: skip
    if len({who for *_, who in turns}) != 2:
        raise ValueError(f"{readme}: expected '| {recording} | start | dur | speaker |' rows of two speakers, "
                         f"found {len(turns)} rows: {turns}")  # fmt: skip
    return turns


def real_speech(model: Model, wav: Path, out: Path) -> None:
    turns = read_turns(wav.parent / "README.md", wav.stem)
    names = list(dict.fromkeys(who for *_, who in turns))  # A = who speaks first
    mix = read_audio(wav).channels[0]  # (N,) float32 16 kHz
    t = np.arange(len(mix)) / SAMPLE_RATE
    channels = [np.where(np.any([(t >= a) & (t < b) for a, b, who in turns if who == name], axis=0), mix, 0.0)
                .astype(np.float32) for name in names]  # fmt: skip
    settings = bundle_settings(model)
    frames, seconds = run_engine(model, (channels[0], channels[1]), settings)
    log.info("real speech: %.1f s of audio streamed in %.1f s", len(mix) / SAMPLE_RATE, seconds)
    fig = _figure(6.4)
    grid = fig.add_gridspec(2, 1, hspace=0.35, left=0.05, right=0.98, top=0.86, bottom=0.09)
    scale = 0.45 / max(float(np.abs(mix).max()), 1e-6)  # one scale for both channels: loudness compares
    cols = len(mix) // HOP
    env_t = (np.arange(cols) + 0.5) * HOP / SAMPLE_RATE
    for p, name in enumerate(names):
        ax = fig.add_subplot(grid[p])
        env = channels[p][: cols * HOP].reshape(cols, HOP)
        ax.fill_between(env_t, 0.5 + scale * env.min(1), 0.5 + scale * env.max(1), color="0.8", lw=0,
                        label="their channel")  # fmt: skip
        for k, (a, b) in enumerate((a, b) for a, b, who in turns if who == name):
            ax.axvspan(a, b, color=cs.COLOURS[p], alpha=0.12, lw=0, label="their turns" if k == 0 else None)
        for label, colour in FACE.items():
            w = frames.people[p].blendshapes
            y = w[:, INDEX[label]] if label in INDEX else cs.curve(w, label)
            ax.plot(frames.time, y, color=colour, lw=1.2, label=label)
        ax.set_title(f"person {SPEAKERS[p]} = {name}: generated face", fontsize=10, loc="left")
        ax.set(xlim=(0.0, len(mix) / SAMPLE_RATE), ylim=(0.0, 1.0), ylabel="weight")
        ax.legend(loc="upper right", fontsize=8, ncol=6)
    ax.set_xlabel("time (s)")
    fig.suptitle(f"{wav.name} (pyannote-audio test data): real two-person speech the model never saw, split into two"
                 f" microphones by its annotated turns\nbundle {model.bundle.name}, streamed with block "
                 f"{settings.block}, lookahead {settings.lookahead}, {settings.steps} steps", fontsize=12)  # fmt: skip
    fig.savefig(out / "real_speech.png", format="png")
    log.info("wrote %s", out / "real_speech.png")


def body_strip(model: Model, corpus_path: Path, cache: Path, fraction: float, seconds: float, out: Path) -> tuple:
    """Draws the strip; returns (clip, ground truth, streamed) per person (joint rotations, root positions)."""
    corpus = Corpus(corpus_path, cache)
    names = sorted(s.name for s in corpus.rel.split(fraction)[1])
    if not names:
        raise ValueError(f"{corpus_path}: no held-out sequences at test fraction {fraction}")
    clip = load_clips(corpus, names[:1], seconds)[0]
    n, body, poser = clip.n, clip.seq.body, model.poser
    if body is None or body.shape[-1] != poser.n_person:
        raise ValueError(f"{corpus_path}: {clip.seq.name} has no body features of the bundle's layout "
                         f"({poser.n_person} per person)")  # fmt: skip
    truth = []  # per person (joint rotations (F, J, 4), root positions (F, 3)), posed as the engine poses
    for p, state in enumerate(poser.initial_states(clip.placement)):
        xz, yaw, _ = poser.integrate(body[p], state)
        posed = poser.pose(body[p], xz, yaw, np.zeros((n, N_BLENDSHAPES), np.float32))
        truth.append((posed.joint_rotations, posed.root_position))
    styles = tuple(model.bundle.styles[i] if i < len(model.bundle.styles) else "" for i in clip.seq.style)
    first = tuple(ACTIONS[int(a)] for a in clip.seq.actions[:, 0])
    settings = bundle_settings(model, actions=first, placement=clip.placement, styles=styles)
    frames, elapsed = run_engine(model, clip.audio, settings, actions=clip.seq.actions)
    log.info("body strip: %s, %.1f s streamed in %.1f s", clip.seq.name, n / FPS, elapsed)
    made = [(person.joint_rotations[:n], person.root_position[:n]) for person in frames.people]
    rows = [
        ("corpus (ground truth)", truth, clip.seq.actions),
        (f"generated ({model.bundle.name})", made, np.stack([person.action[:n] for person in frames.people])),
    ]
    moments = np.unique(np.round(np.linspace(0, n - 1, cs.N_MOMENTS)).astype(int))
    views = [cs.side_views(poser.skeleton, people, moments) for _, people, _ in rows]
    centres, width, bottom, top = cs.view_box(views[0] + views[1])  # one scale for both rows
    row_h = cs.pose_height(len(moments), width, bottom, top, shortest=1.0) + 0.6  # + row and panel titles (inches)
    fig = _figure(0.6 + 2 * row_h)  # 0.6 in for the figure's title
    head, *subs = fig.subfigures(3, 1, height_ratios=(0.6, row_h, row_h))
    head.suptitle(f"held-out clip {clip.seq.name}, first {n / FPS:.1f} s: the corpus motion and bundle "
                  f"{model.bundle.name} streamed from the same audio and action labels (A blue, B orange)",
                  fontsize=12, y=0.6)  # fmt: skip
    for r, (sub, (label, _, actions)) in enumerate(zip(subs, rows, strict=True)):
        sub.suptitle(label, x=0.05, ha="left", fontsize=11, y=0.99)
        grid = sub.add_gridspec(1, len(moments), wspace=0.05, left=0.05, right=0.98, top=1 - 0.45 / row_h,
                                bottom=0.05 / row_h)  # fmt: skip
        for k, m in enumerate(moments):
            ax = sub.add_subplot(grid[0, k])
            cs.draw_pair(ax, poser.skeleton, views[r][k], centres[r * len(moments) + k], width, bottom, top)
            ax.set_title(f"{m / FPS:.1f} s  A {ACTIONS[actions[0, m]]}, B {ACTIONS[actions[1, m]]}", fontsize=9)
    fig.savefig(out / "body_strip.png", format="png")
    log.info("wrote %s", out / "body_strip.png")
    return clip, truth, made


def _wrist_speed(model: Model, people: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    from scipy.ndimage import gaussian_filter1d

    sk = model.poser.skeleton
    groups, height = mo.group_joints(sk.names), mo.body_height(sk)
    pair = bm.pair_from_posed(model.poser, people)
    return [gaussian_filter1d(mo.group_speeds(m.local, groups, height)["wrists"], SPEED_SMOOTH * FPS) for m in pair]


def _shade(ax, active: np.ndarray, colour: str, label: str) -> None:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    for k, (a, b) in enumerate(zip(edges[::2], edges[1::2], strict=True)):
        ax.axvspan(a / FPS, b / FPS, color=colour, alpha=0.12, lw=0, label=label if k == 0 else None)


def body_speed(model: Model, beat: Path, strip, out: Path, seconds: float = 40.0) -> None:
    fig = _figure(6.4)
    grid = fig.add_gridspec(2, 1, hspace=0.4, left=0.06, right=0.98, top=0.88, bottom=0.09)
    ax = fig.add_subplot(grid[0])
    if beat.is_file():
        a = mono(beat, seconds)
        b = (np.random.default_rng(0).standard_normal(len(a)) * NOISE_FLOOR).astype(np.float32)
        frames, _ = run_engine(model, (a, b), bundle_settings(model))
        speeds = _wrist_speed(model, [(p.joint_rotations, p.root_position) for p in frames.people])
        _shade(ax, frames.people[0].speaking, cs.COLOURS[0], "A speaks")
        for p, label in ((0, "A, speaking BEAT audio"), (1, "B, listening (quiet room)")):
            ax.plot(frames.time, speeds[p], color=cs.COLOURS[p], lw=1.3, label=label)
        ax.set_title(f"{beat.name} (BEAT, real spontaneous speech, evaluation only): generated wrist speed",
                     fontsize=10, loc="left")  # fmt: skip
    ax = fig.add_subplot(grid[1])
    clip, truth, made = strip
    for people, label, style in ((truth, "corpus (ground truth)", "k-"), (made, "generated", "-")):
        ax.plot(np.arange(clip.n) / FPS, _wrist_speed(model, people)[0], style, lw=1.3, label=f"A: {label}")
    _shade(ax, clip.active[0][: clip.n], cs.COLOURS[0], "A speaks")
    ax.set_title(f"held-out synthetic clip {clip.seq.name}: person A", fontsize=10, loc="left")
    ax.set_xlabel("time (s)")
    for ax in fig.axes:
        ax.set(ylabel="wrist speed (h/s)", ylim=(0, None))
        ax.legend(loc="upper right", fontsize=8, ncol=3)
    fig.suptitle(f"Mean wrist speed in body heights per second, speech shaded; bundle {model.bundle.name}",
                 fontsize=12)  # fmt: skip
    fig.savefig(out / "body_speed.png", format="png")
    log.info("wrote %s", out / "body_speed.png")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=Path(DEFAULT_BUNDLE))
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    ap.add_argument("--cache", type=Path, default=Path(DataConfig.cache), help="feature cache folder")
    ap.add_argument("--test-fraction", type=float, help="default: the one the bundle's body model was trained with")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the body strip's clip")
    ap.add_argument("--speech", type=Path, default=SPEECH, help="real two-person mix with a README of its turns")
    ap.add_argument("--beat", type=Path, default=BEAT, help="real speech for the body speed figure (skipped if absent)")
    ap.add_argument("--out", type=Path, default=Path("docs"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    t0 = time.perf_counter()
    model = Model.load(args.bundle)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.speech.is_file():
        real_speech(model, args.speech, args.out)
    else:
        log.info("%s is absent: real_speech.png skipped", args.speech)
    data = (model.bundle.manifest["provenance"].get("checkpoints") or {}).get("body", {}).get("data") or {}
    if data.get("corpus") and Path(data["corpus"]).resolve() != args.corpus.resolve():
        log.warning("the bundle's body model was trained on %s, not %s", data["corpus"], args.corpus)
    fraction = args.test_fraction if args.test_fraction is not None else data.get("test_fraction")
    if fraction is None:
        fraction = DataConfig.test_fraction
        log.info("the bundle records no test fraction: using the default %g", fraction)
    strip = body_strip(model, args.corpus, args.cache, float(fraction), args.seconds, args.out)
    body_speed(model, args.beat, strip, args.out)
    log.info("done in %.1f s", time.perf_counter() - t0)


if __name__ == "__main__":
    main()
