"""Loader for the InterAct release layout (HF ``leohocs/interact``), which the synthetic corpus also writes.

Layout (one file per performance, ``<date>_<actor>_<scenario>.<ext>``; both actors of a scene share date and
scenario, and ``actors.db``'s ``sessions`` table pairs them)::

    ROOT/bvhs/20231119_001_051.bvh          body, BVH
    ROOT/face_arkit/20231119_001_051.npy    face, (N, 51) float ARKit weights, columns named by ``face_columns``
    ROOT/wav/20231119_001_051.wav           the actor's own microphone
    ROOT/scenarios.db                       scenarios(id, relationship_id, primary_emotion_id, character_setup,
                                            scenario), relationships(id, name), emotions(id, name)
    ROOT/actors.db                          actors(actor_id, gender), sessions(date, male_id, female_id)

Optional folders the synthetic corpus adds (the real release's label files are not documented; see README):
``actions/<stem>.npy`` (N,) int8 per-frame {sit, walk, stand}, ``phones/<stem>.json`` phoneme timings, and
``lip_acc/`` (single-speaker clean sentences: ``wav/``, ``face_arkit/``, ``phones/``, ``lip_acc_sentences.txt``).
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runtime.formats.arkit import ARKIT_NAMES, select

log = logging.getLogger(__name__)

# The release ships 51 ARKit columns; we assume the 52 minus tongueOut, in Apple order (configurable).
DEFAULT_FACE_COLUMNS: tuple[str, ...] = tuple(n for n in ARKIT_NAMES if n != "tongueOut")
STEM = re.compile(r"^(?P<date>\d{8})_(?P<actor>[0-9A-Za-z]+)_(?P<scenario>[0-9A-Za-z]+)$")


class LayoutError(ValueError):
    """The folder does not follow the InterAct release layout; the message names the file and the problem."""


@dataclass(frozen=True)
class Performance:
    """One actor's side of one scene."""

    stem: str  # <date>_<actor>_<scenario>
    actor: str
    bvh: Path | None
    face: Path | None
    wav: Path | None
    actions: Path | None = None
    phones: Path | None = None


@dataclass(frozen=True)
class Sequence:
    """A two-person scene: person A (the session's ``male_id``) and person B (``female_id``)."""

    date: str
    scenario: str
    a: Performance
    b: Performance
    meta: dict = field(default_factory=dict)  # scenario text, relationship, emotion, genders

    @property
    def name(self) -> str:
        return f"{self.date}_{self.scenario}"

    @property
    def people(self) -> tuple[Performance, Performance]:
        return (self.a, self.b)


class InterActRelease:
    def __init__(self, root: str | Path, face_columns: tuple[str, ...] = DEFAULT_FACE_COLUMNS) -> None:
        self.root = Path(root)
        self.face_columns = tuple(face_columns)
        if not self.root.is_dir():
            raise LayoutError(f"{self.root}: not a folder")
        for db in ("scenarios.db", "actors.db"):
            if not (self.root / db).is_file():
                raise LayoutError(f"{self.root / db}: missing (the release layout has scenarios.db and actors.db)")
        self.sequences = self._pair()

    # -- metadata ------------------------------------------------------------------------------------------
    def _query(self, db: str, sql: str) -> list[tuple]:
        path = self.root / db
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
                return con.execute(sql).fetchall()
        except sqlite3.Error as e:
            raise LayoutError(f"{path}: {e}") from e

    def _scenarios(self) -> dict[str, dict]:
        rows = self._query(
            "scenarios.db",
            "SELECT s.id, r.name, e.name, s.character_setup, s.scenario FROM scenarios s "
            "LEFT JOIN relationships r ON r.id = s.relationship_id "
            "LEFT JOIN emotions e ON e.id = s.primary_emotion_id",
        )
        return {
            str(r[0]).zfill(3): {"relationship": r[1], "emotion": r[2], "character_setup": r[3], "scenario": r[4]}
            for r in rows
        }

    # -- pairing -------------------------------------------------------------------------------------------
    def _performances(self) -> dict[tuple[str, str, str], Performance]:
        found: dict[tuple[str, str, str], dict[str, Path]] = {}
        for folder, key, ext in (
            ("bvhs", "bvh", ".bvh"),
            ("face_arkit", "face", ".npy"),
            ("wav", "wav", ".wav"),
            ("actions", "actions", ".npy"),
            ("phones", "phones", ".json"),
        ):
            for path in sorted((self.root / folder).glob(f"*{ext}")):
                m = STEM.match(path.stem)
                if m is None:
                    log.warning("%s: name is not <date>_<actor>_<scenario>; skipped", path)
                    continue
                found.setdefault((m["date"], m["actor"], m["scenario"]), {})[key] = path
        return {
            k: Performance(f"{k[0]}_{k[1]}_{k[2]}", k[1], v.get("bvh"), v.get("face"), v.get("wav"),
                           v.get("actions"), v.get("phones"))
            for k, v in found.items()
        }  # fmt: skip

    def _pair(self) -> list[Sequence]:
        perfs = self._performances()
        sessions = self._query("actors.db", "SELECT date, male_id, female_id FROM sessions")
        genders = dict(self._query("actors.db", "SELECT actor_id, gender FROM actors"))
        scenarios = self._scenarios()
        out = []
        for date, male, female in sessions:
            date, male, female = str(date), str(male).zfill(3), str(female).zfill(3)
            scen_ids = sorted({s for (d, a, s) in perfs if d == date and a in (male, female)})
            for scen in scen_ids:
                a, b = perfs.get((date, male, scen)), perfs.get((date, female, scen))
                if a is None or b is None:
                    log.warning("%s_%s: only one actor of the session has files; not paired", date, scen)
                    continue
                meta = dict(scenarios.get(scen.zfill(3), {}), gender_a=genders.get(male), gender_b=genders.get(female))
                out.append(Sequence(date, scen, a, b, meta))
        return out

    # -- split ---------------------------------------------------------------------------------------------
    def split(self, test_fraction: float = 0.14) -> tuple[list[Sequence], list[Sequence]]:
        """Deterministic train/test split by sequence (hash of the scene name; paper B.1: 208 / 33 = 14 %)."""

        def u(seq: Sequence) -> float:
            return int(hashlib.sha256(seq.name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

        test = [s for s in self.sequences if u(s) < test_fraction]
        train = [s for s in self.sequences if u(s) >= test_fraction]
        return train, test

    # -- reading -------------------------------------------------------------------------------------------
    def read_face(self, perf: Performance) -> np.ndarray:
        """(N, 52) Apple-order ARKit weights (columns absent from the file are 0)."""
        if perf.face is None:
            raise LayoutError(f"{perf.stem}: no face_arkit file")
        values = np.load(perf.face)
        if values.ndim != 2 or values.shape[1] != len(self.face_columns):
            raise LayoutError(
                f"{perf.face}: expected (N, {len(self.face_columns)}) face weights, got {values.shape}; "
                "pass face_columns naming every column"
            )
        return select(values, self.face_columns)

    def read_actions(self, perf: Performance) -> np.ndarray | None:
        return None if perf.actions is None else np.load(perf.actions).astype(np.int64)
