"""Training windows: per-sequence feature arrays (cached), normalisation statistics, random batches.

A corpus in the InterAct layout is turned once into arrays per sequence (``data/cache/<corpus>/``): log-mel of
both microphones, ARKit weights, ``runtime.motion`` body features, global root tracks, facing flags, relative
placement and action labels; then batches are cut from memory. Everything a batch holds is normalised with the
training split's statistics, which travel with the checkpoint and the bundle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from runtime.constants import ACTIONS, DEFAULT_ACTION, LOG_FLOOR, N_MELS
from runtime.engine.audio import log_mel
from runtime.formats.arkit import select
from runtime.formats.bvh import read_bvh
from runtime.formats.wav import read_audio
from runtime.motion.posing import Poser, pair_geometry
from runtime.motion.root import MotionLayout, clip_to_features, integrate_root, root_start
from runtime.motion.skeleton import Skeleton
from training.config import Experiment
from training.data.actions import label_clip
from training.data.interact import InterActRelease, Sequence

log = logging.getLogger(__name__)

CACHE_VERSION = 2
REAL_VERSION = 4  # bump when training.data.real changes what it builds
REAL_PREFIX = {"english": "en_", "facegood": "facegood_"}  # real source -> its sequences' name prefix
STD_FLOOR = {"mel": 1e-2, "face": 1e-2, "lower": 1e-3, "upper": 1e-3}  # keep near-constant channels finite


@dataclass
class SeqArrays:
    name: str
    mel: np.ndarray  # (2, F, 80) raw log-mel, A then B
    face: np.ndarray  # (2, F, 52)
    body: np.ndarray | None  # (2, F, D) per-person motion features (None for the lip subset)
    actions: np.ndarray  # (2, F) int64
    facing: np.ndarray  # (2, F) float32
    placement: np.ndarray  # (2, F, 4): [0] B seen from A, [1] A seen from B
    style: np.ndarray  # (2,) int64
    mask: np.ndarray | None = None  # (52,) face channels the source supervises (None: all); real voices, see real.py

    @property
    def n_frames(self) -> int:
        return self.mel.shape[1]


def _mel(path: Path) -> np.ndarray:
    return log_mel(read_audio(path).channels[0])


def _sequence_arrays(rel: InterActRelease, seq: Sequence, layout: MotionLayout, styles: dict[str, int]) -> SeqArrays:
    mel, face, body, actions, tracks = [], [], [], [], []
    for perf in seq.people:
        clip = read_bvh(perf.bvh).to_metres()
        feats = clip_to_features(clip, layout)
        pos, yaw = integrate_root(feats[:, :4], *root_start(clip, layout))
        labels = rel.read_actions(perf)
        mel.append(_mel(perf.wav))
        face.append(rel.read_face(perf))
        body.append(feats.astype(np.float32))
        actions.append(labels if labels is not None else label_clip(clip).astype(np.int64))
        tracks.append((pos, yaw))
    n = min(len(x) for x in mel + face + body + actions)
    geo_ab = pair_geometry(tracks[0][0][:n], tracks[0][1][:n], tracks[1][0][:n], tracks[1][1][:n])
    geo_ba = pair_geometry(tracks[1][0][:n], tracks[1][1][:n], tracks[0][0][:n], tracks[0][1][:n])
    return SeqArrays(
        seq.name,
        np.stack([m[:n] for m in mel]),
        np.stack([f[:n] for f in face]),
        np.stack([b[:n] for b in body]),
        np.stack([a[:n] for a in actions]).astype(np.int64),
        geo_ab["facing"].astype(np.float32),
        np.stack([geo_ab["placement"], geo_ba["placement"]]),
        np.array([styles.get(p.actor, len(styles)) for p in seq.people], np.int64),
    )


def single_speaker(name: str, mel: np.ndarray, face: np.ndarray, style: int, mask: np.ndarray | None = None):
    """A one-speaker sequence (A's log-mel and face); B is a quiet room with a face of zeros, never a target."""
    n = min(len(face), len(mel))
    silence = np.full((n, N_MELS), np.log(LOG_FLOOR), np.float32)
    return SeqArrays(
        name, np.stack([mel[:n], silence]), np.stack([face[:n], np.zeros_like(face[:n])]), None,
        np.full((2, n), ACTIONS.index(DEFAULT_ACTION), np.int64), np.ones((2, n), np.float32),
        np.zeros((2, n, 4), np.float32), np.array([style, style], np.int64),
        None if mask is None else mask.astype(np.float32),
    )  # fmt: skip


def _lip_arrays(folder: Path, face_columns: tuple[str, ...], style: int) -> list[SeqArrays]:
    faces = sorted((folder / "face_arkit").glob("*.npy"))
    return [single_speaker(f.stem, _mel(folder / "wav" / f"{f.stem}.wav"), select(np.load(f), face_columns), style)
            for f in faces]  # fmt: skip


def _save(path: Path, s: SeqArrays) -> None:
    """Written to a private file, then renamed: DDP ranks building the same cache never read a half-written one."""
    arrays = {k: v for k, v in s.__dict__.items() if isinstance(v, np.ndarray)}  # body and mask may be None
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _load(path: Path) -> SeqArrays:
    with np.load(path) as z:
        return SeqArrays(path.stem, z["mel"], z["face"], z["body"] if "body" in z else None, z["actions"],
                         z["facing"], z["placement"], z["style"], z["mask"] if "mask" in z else None)  # fmt: skip


def _reference_layout(rel: InterActRelease) -> tuple[MotionLayout, dict]:
    first = next(s for s in rel.sequences)
    skeleton = read_bvh(first.a.bvh).to_metres().skeleton
    return MotionLayout.from_skeleton(skeleton), skeleton.to_dict()


class Corpus:
    """Every sequence of a corpus as arrays, built once into the cache folder and reused."""

    def __init__(self, corpus: str | Path, cache: str | Path) -> None:
        self.root = Path(corpus)
        self.rel = InterActRelease(self.root)
        summary = self.root / "corpus.json"
        key = hashlib.sha256(
            (str(self.root.resolve()) + (summary.read_text() if summary.exists() else "") + str(CACHE_VERSION)).encode()
        ).hexdigest()[:12]
        self.cache = Path(cache) / f"{self.root.name}-{key}"
        self.summary = json.loads(summary.read_text()) if summary.exists() else {}
        self.layout, self.skeleton = _reference_layout(self.rel)
        actors = sorted({p.actor for s in self.rel.sequences for p in s.people})
        self.styles = [f"actor_{a}" for a in actors]
        self.style_index = {a: i for i, a in enumerate(actors)}

    def sequences(self, names: list[str]) -> list[SeqArrays]:
        self.cache.mkdir(parents=True, exist_ok=True)
        out = []
        by_name = {s.name: s for s in self.rel.sequences}
        for name in names:
            path = self.cache / f"{name}.npz"
            if not path.exists():
                _save(path, _sequence_arrays(self.rel, by_name[name], self.layout, self.style_index))
            out.append(_load(path))
        return out

    def lip_subset(self) -> list[SeqArrays]:
        folder = self.root / "lip_acc"
        if not (folder / "face_arkit").is_dir():
            raise FileNotFoundError(f"{folder}: no lip-accurate subset in this corpus")
        actor = (folder / "actor.txt").read_text().strip() if (folder / "actor.txt").exists() else ""
        return _lip_arrays(folder, self.rel.face_columns, self.style_index.get(actor, len(self.styles)))

    def real_subset(self) -> list[SeqArrays]:
        """Real voices (``training.data.real``), aligned and featurised once into the cache; no actor style."""
        folder = self.cache / f"real-v{REAL_VERSION}"
        done = folder / "sequences.txt"
        if not done.exists():
            from training.data.real import real_sequences

            folder.mkdir(parents=True, exist_ok=True)
            seqs = real_sequences(style=len(self.styles))
            for s in seqs:
                _save(folder / f"{s.name}.npz", s)
            tmp = done.with_name(f".{done.name}.{os.getpid()}")
            tmp.write_text("".join(f"{s.name}\n" for s in seqs))
            os.replace(tmp, done)
        return [_load(folder / f"{name}.npz") for name in done.read_text().split()]


def compute_stats(seqs: list[SeqArrays], poser: Poser | None) -> dict[str, dict[str, np.ndarray]]:
    """Per-channel mean/std over the training sequences (both people pooled, so A's and B's columns match)."""

    def stats(x: np.ndarray, name: str) -> dict[str, np.ndarray]:
        x = x.astype(np.float64)
        return {"mean": x.mean(0).astype(np.float32), "std": np.maximum(x.std(0), STD_FLOOR[name]).astype(np.float32)}

    out = {
        "mel": stats(np.concatenate([s.mel.reshape(-1, N_MELS) for s in seqs]), "mel"),
        "face": stats(np.concatenate([s.face.reshape(-1, s.face.shape[-1]) for s in seqs]), "face"),
    }
    bodies = [s.body for s in seqs if s.body is not None]
    if bodies and poser is not None:
        person = np.concatenate([b.reshape(-1, b.shape[-1]) for b in bodies])
        for name, cols in (("lower", poser.lower_cols), ("upper", poser.upper_cols)):
            st = stats(person[:, cols], name)
            out[name] = {k: np.concatenate([v, v]) for k, v in st.items()}  # A's columns, then B's
    return out


class WindowSource:
    """Random (or fixed) normalised batches of one split for the experiment's model kind."""

    def __init__(self, exp: Experiment, split: str, stats: dict | None = None) -> None:
        self.exp = exp
        self.corpus = Corpus(exp.data.corpus, exp.data.cache)
        self.poser = Poser(Skeleton.from_dict(self.corpus.skeleton), self.corpus.layout)
        train, test = self.corpus.rel.split(exp.data.test_fraction)
        chosen = train if split == "train" else test
        if exp.data.subset == "real":  # real voices train; the dialogue test split validates (the anchor's domain)
            sources = exp.data.real_sources
            unknown = sorted(set(sources) - set(REAL_PREFIX))
            if unknown:
                raise ValueError(f"data.real_sources: unknown source(s) {unknown}; known: {sorted(REAL_PREFIX)}")
            real = [s for s in self.corpus.real_subset() if s.name.startswith(tuple(REAL_PREFIX[k] for k in sources))]
            self.seqs = real if split == "train" else self.corpus.sequences([s.name for s in test])
            base = stats or compute_stats(self.corpus.sequences([s.name for s in train]), self.poser)
        elif exp.data.subset == "lip":
            lip = self.corpus.lip_subset()
            cut = max(1, int(len(lip) * exp.data.test_fraction))
            self.seqs = lip[cut:] if split == "train" else lip[:cut]
            base = stats or compute_stats(self.corpus.sequences([s.name for s in train]), self.poser)
        else:
            self.seqs = self.corpus.sequences([s.name for s in chosen])
            base = stats
        if not self.seqs:
            raise ValueError(f"{exp.data.corpus}: the {split} split of subset {exp.data.subset!r} is empty")
        self.stats = base or compute_stats(self.seqs, self.poser)
        self.t = {k: {m: torch.from_numpy(v[m]) for m in ("mean", "std")} for k, v in self.stats.items()}
        nl, nu = len(self.poser.lower_cols), len(self.poser.upper_cols)
        self.dims = {"face": self.seqs[0].face.shape[-1], "lower": 2 * nl, "upper": 2 * nu}
        self.n_styles = len(self.corpus.styles)
        lengths = np.array([s.n_frames * self._source_weight(s.name) for s in self.seqs], np.float64)
        self.weights = lengths / lengths.sum()

    def _source_weight(self, name: str) -> float:
        """Sampling weight per frame: a real source's from ``data.real_sources``, 1 for the corpus's sequences."""
        if self.exp.data.subset != "real":
            return 1.0
        sources = self.exp.data.real_sources.items()
        return float(next((w for k, w in sources if name.startswith(REAL_PREFIX[k])), 1.0))

    def meta(self) -> dict:
        listed = {k: {m: v[m].tolist() for m in ("mean", "std")} for k, v in self.stats.items()}
        return {"stats": listed, "skeleton": self.corpus.skeleton, "layout": self.corpus.layout.to_dict(),
                "styles": self.corpus.styles,
                "data": self._data_meta()}  # fmt: skip

    def _data_meta(self) -> dict:
        generator = {k: self.corpus.summary.get(k) for k in ("generator_version", "seed", "minutes")}
        d = self.exp.data
        return {"corpus": str(self.corpus.root), "cache": d.cache, "test_fraction": d.test_fraction,
                "subset": d.subset, "sequences": len(self.seqs),
                "frames": int(sum(s.n_frames for s in self.seqs)), "generator": generator}  # fmt: skip

    def _norm(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return (x - self.t[name]["mean"]) / self.t[name]["std"]

    def batch(self, batch_size: int, length: int, gen: torch.Generator, augment: Callable | None = None) -> dict:
        picks = torch.multinomial(torch.from_numpy(self.weights), batch_size, replacement=True, generator=gen)
        items = []
        for i in picks.tolist():
            s = self.seqs[i]
            n = min(length, s.n_frames)
            start = int(torch.randint(0, s.n_frames - n + 1, (1,), generator=gen))
            person = int(torch.randint(0, 2, (1,), generator=gen))
            if s.body is None:  # lip-accurate sentence: only A was captured (B is a silent placeholder face of zeros)
                person = 0
            items.append((s, start, person))
        n = min(length, min(s.n_frames for s, _, _ in items))
        ctx = int(torch.randint(0, min(self.exp.train.max_context, n - 1) + 1, (1,), generator=gen))
        return self._make(items, n, ctx, augment)

    def fixed_batches(self, count: int, length: int, gen: torch.Generator) -> list[dict]:
        return [self.batch(self.exp.train.batch_size, length, gen) for _ in range(count)]

    def _make(self, items: list[tuple[SeqArrays, int, int]], n: int, ctx: int, augment: Callable | None) -> dict:
        def cut(get: Callable) -> torch.Tensor:
            return torch.from_numpy(np.stack([get(s, a, p)[a : a + n] if get(s, a, p).ndim else get(s, a, p)
                                              for s, a, p in items]))  # fmt: skip

        mask = torch.zeros(len(items), n, 1)
        mask[:, :ctx] = 1.0
        if self.exp.model == "face":
            mel_self, mel_partner = cut(lambda s, a, p: s.mel[p]), cut(lambda s, a, p: s.mel[1 - p])
            if augment is not None:
                mel_self, mel_partner = augment(mel_self), augment(mel_partner)
            ones = np.ones(self.dims["face"], np.float32)
            loss_mask = torch.from_numpy(np.stack([ones if s.mask is None else s.mask for s, _, _ in items]))[:, None]
            # unsupervised channels of a real voice sit at the corpus mean (0 once normalised): no loss, no cue
            return {"x0": self._norm("face", cut(lambda s, a, p: s.face[p])) * loss_mask, "loss_mask": loss_mask,
                    "mel_self": self._norm("mel", mel_self), "mel_partner": self._norm("mel", mel_partner),
                    "style": torch.from_numpy(np.array([s.style[p] for s, _, p in items])),
                    "facing": cut(lambda s, a, p: s.facing[p])[..., None], "context_mask": mask}  # fmt: skip
        # Body: p = 1 swaps the two people (and the placement's point of view): both orders are valid pairs.
        mel_a, mel_b = cut(lambda s, a, p: s.mel[p]), cut(lambda s, a, p: s.mel[1 - p])
        if augment is not None:
            mel_a, mel_b = augment(mel_a), augment(mel_b)
        lowers, uppers = [], []
        for s, a, p in items:
            lo, up = self.poser.join(s.body[p][a : a + n], s.body[1 - p][a : a + n])
            lowers.append(lo)
            uppers.append(up)
        actions = cut(lambda s, a, p: np.stack([s.actions[p], s.actions[1 - p]], axis=-1))
        placement = torch.from_numpy(np.stack([s.placement[p][a] for s, a, p in items]))
        return {"lower": self._norm("lower", torch.from_numpy(np.stack(lowers))),
                "upper": self._norm("upper", torch.from_numpy(np.stack(uppers))),
                "mel_a": self._norm("mel", mel_a), "mel_b": self._norm("mel", mel_b), "actions": actions,
                "placement": placement, "context_mask": mask}  # fmt: skip
