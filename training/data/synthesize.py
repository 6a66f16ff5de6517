"""Write a synthetic two-person corpus in the InterAct release layout (read by ``training.data.interact``).

    python -m training.data.synthesize --out data/corpus --minutes 60 --seed 0 [--workers 2]

Actors (gender, espeak voice, face style, height) are paired in sessions, one (male, female) pair per date as in
the release; each scene is a generated dialogue with a scenario (relationship and primary emotion from the paper's
tables 6-7). Per performance: ``bvhs/`` (30 fps, cm), ``face_arkit/`` ((N, 51) float32: the 52 ARKit names minus
tongueOut, see ``interact.DEFAULT_FACE_COLUMNS``), ``wav/`` (16 kHz PCM16 close-talk microphone: own voice, the
partner's bleed, room noise), and ground truth the release does not document: ``actions/`` (N,) int8 labels and
``phones/`` (phoneme and utterance timings, JSON). ``lip_acc/`` holds clean close-talk sentences of one actor
(the lip-accurate subset). Deterministic for a seed; scenes are generated in parallel worker processes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from runtime.constants import SAMPLE_RATE
from runtime.formats.arkit import ARKIT_NAMES
from runtime.formats.bvh import write_bvh
from runtime.formats.wav import write_wav
from training.data.bodies import generate_pair
from training.data.dialogue import Dialogue
from training.data.faces import EMOTIONS, FaceStyle, generate_face
from training.data.interact import DEFAULT_FACE_COLUMNS
from training.data.speech import VOICES, Voice, generate_dialogue, lip_sentences

log = logging.getLogger(__name__)

GENERATOR_VERSION = 2  # 2: livelier speakers' arms (training.data.gestures, issue 13)
RELATIONSHIPS = (
    "Siblings", "Parent / Child", "Grandparent / Child", "Cousins", "In-Laws", "Romantic Partner",
    "Friends With Similar Hobbies", "Childhood Friends", "Commuting Buddies", "Sports Teammates",
    "Interest Group Members", "Churchmates", "Co-workers", "Business Partners", "Boss / Subordinate",
    "Mentor / Mentee", "Classmates", "Senior Student / Junior Student", "School Bully / Classmate",
    "Teacher / Student", "Principal / Student", "Doctor / Patient", "Professional Waiter (Waitress) / Diner",
)  # paper table 7  # fmt: skip
SCENE_SECONDS = (40, 90)  # length of one scene
LIP_ACTOR = 0  # index of the actor who records the lip-accurate sentences (the release: actor 006 only)
_FACE_COLUMNS = [ARKIT_NAMES.index(n) for n in DEFAULT_FACE_COLUMNS]


@dataclass(frozen=True)
class Actor:
    actor_id: str  # "001"
    gender: str  # "male" | "female"
    voice: Voice
    style: FaceStyle
    height_cm: float


@dataclass(frozen=True)
class Scene:
    date: str  # YYYYMMDD of the session
    scenario: str  # "001"
    actors: tuple[Actor, Actor]  # (male, female) = person A, person B
    emotion: str
    seconds: int
    seed: int


def make_actors(rng: np.random.Generator, n: int) -> list[Actor]:
    males = [v for v in VOICES if not v.female]
    females = [v for v in VOICES if v.female]
    actors = []
    for i in range(n):
        female = i % 2 == 1
        pool = females if female else males
        voice = pool[(i // 2) % len(pool)]
        height = rng.uniform(155, 175) if female else rng.uniform(165, 190)
        actors.append(Actor(f"{i + 1:03d}", "female" if female else "male", voice, FaceStyle.sample(rng),
                            float(height)))  # fmt: skip
    return actors


def plan_scenes(seed: int, minutes: float, n_actors: int) -> tuple[list[Actor], list[Scene]]:
    rng = np.random.default_rng(seed)
    actors = make_actors(rng, n_actors)
    pairs = [(actors[i], actors[i + 1]) for i in range(0, n_actors - 1, 2)]
    pairs += [(actors[i], actors[(i + 3) % n_actors]) for i in range(0, n_actors, 2)]  # mixed pairings too
    scenes, total, k = [], 0.0, 0
    while total < minutes * 60:
        pair = pairs[k % len(pairs)]
        date = f"2026{1 + (k % len(pairs)) // 28:02d}{1 + (k % len(pairs)) % 28:02d}"
        seconds = int(rng.integers(SCENE_SECONDS[0], SCENE_SECONDS[1] + 1))
        emotion = str(rng.choice(EMOTIONS))
        scenes.append(Scene(date, f"{k + 1:03d}", pair, emotion, seconds, int(rng.integers(2**31))))
        total += seconds
        k += 1
    return actors, scenes


def _stem(date: str, actor: Actor, scenario: str) -> str:
    return f"{date}_{actor.actor_id}_{scenario}"


def _phones_json(dialogue: Dialogue, speaker: int) -> dict:
    track = dialogue.tracks[speaker]
    return {
        "voice": track.voice,
        "phones": [[p.symbol, round(p.start, 4), round(p.end, 4), p.stressed] for p in track.phones],
        "utterances": [[u.text, round(u.start, 4), round(u.end, 4), u.backchannel] for u in track.utterances],
        "duration": dialogue.duration,
    }


def write_scene(scene: Scene, out: Path) -> dict:
    """Generate and write both performances of one scene; returns a summary."""
    rng = np.random.default_rng(scene.seed)
    r_speech, r_face_a, r_face_b, r_body = rng.spawn(4)
    dialogue = generate_dialogue(r_speech, scene.seconds, voices=(scene.actors[0].voice, scene.actors[1].voice))
    pair = generate_pair(dialogue, r_body, heights_cm=(scene.actors[0].height_cm, scene.actors[1].height_cm))
    for p, (actor, r_face) in enumerate(zip(scene.actors, (r_face_a, r_face_b), strict=True)):
        stem = _stem(scene.date, actor, scene.scenario)
        face = generate_face(dialogue, p, scene.emotion, r_face, actor.style)
        np.save(out / "face_arkit" / f"{stem}.npy", face[:, _FACE_COLUMNS].astype(np.float32))
        write_bvh(out / "bvhs" / f"{stem}.bvh", pair.people[p].clip)
        write_wav(out / "wav" / f"{stem}.wav", dialogue.tracks[p].audio, SAMPLE_RATE)
        np.save(out / "actions" / f"{stem}.npy", pair.people[p].actions.astype(np.int8))
        (out / "phones" / f"{stem}.json").write_text(json.dumps(_phones_json(dialogue, p)))
    return {"scenario": scene.scenario, "seconds": scene.seconds, "placement": list(pair.placement.relative()),
            "episodes": [e[0] for e in pair.episodes]}  # fmt: skip


def write_lip_subset(actor: Actor, n: int, seed: int, out: Path) -> int:
    """Clean close-talk sentences of one actor: the lip-accurate fine-tuning set (paper 4.1, B.2)."""
    rng = np.random.default_rng(seed)
    folder = out / "lip_acc"
    for sub in ("wav", "face_arkit", "phones"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    clips = lip_sentences(n, rng, voices=(actor.voice,))
    lines = []
    for i, clip in enumerate(clips):
        stem = f"lip_{actor.actor_id}_{i + 1:04d}"
        face = generate_face(clip, 0, "neutral", rng, actor.style)
        np.save(folder / "face_arkit" / f"{stem}.npy", face[:, _FACE_COLUMNS].astype(np.float32))
        write_wav(folder / "wav" / f"{stem}.wav", clip.tracks[0].audio, SAMPLE_RATE)
        (folder / "phones" / f"{stem}.json").write_text(json.dumps(_phones_json(clip, 0)))
        lines.append(f"{stem}\t{' '.join(u.text for u in clip.tracks[0].utterances)}")
    (folder / "lip_acc_sentences.txt").write_text("\n".join(lines) + "\n")
    (folder / "actor.txt").write_text(actor.actor_id + "\n")
    return len(clips)


def write_databases(out: Path, actors: list[Actor], scenes: list[Scene]) -> None:
    for db in ("scenarios.db", "actors.db"):
        (out / db).unlink(missing_ok=True)
    with sqlite3.connect(out / "scenarios.db") as con:
        con.execute("CREATE TABLE relationships (id INTEGER PRIMARY KEY, name TEXT)")
        con.execute("CREATE TABLE emotions (id INTEGER PRIMARY KEY, name TEXT)")
        con.execute("CREATE TABLE scenarios (id INTEGER PRIMARY KEY, relationship_id INTEGER, "
                    "primary_emotion_id INTEGER, character_setup TEXT, scenario TEXT)")  # fmt: skip
        con.executemany("INSERT INTO relationships VALUES (?, ?)", list(enumerate(RELATIONSHIPS, 1)))
        con.executemany("INSERT INTO emotions VALUES (?, ?)", list(enumerate(EMOTIONS, 1)))
        for s in scenes:
            rel = 1 + int(s.scenario) % len(RELATIONSHIPS)
            setup = f"{RELATIONSHIPS[rel - 1]}: actor {s.actors[0].actor_id} and actor {s.actors[1].actor_id}"
            text = f"A synthetic conversation in the mood of {s.emotion}, {s.seconds} s long."
            con.execute("INSERT INTO scenarios VALUES (?, ?, ?, ?, ?)",
                        (int(s.scenario), rel, 1 + EMOTIONS.index(s.emotion), setup, text))  # fmt: skip
    with sqlite3.connect(out / "actors.db") as con:
        con.execute("CREATE TABLE actors (actor_id TEXT PRIMARY KEY, gender TEXT)")
        con.execute("CREATE TABLE sessions (date TEXT, male_id TEXT, female_id TEXT)")
        con.executemany("INSERT INTO actors VALUES (?, ?)", [(a.actor_id, a.gender) for a in actors])
        sessions = sorted({(s.date, s.actors[0].actor_id, s.actors[1].actor_id) for s in scenes})
        con.executemany("INSERT INTO sessions VALUES (?, ?, ?)", sessions)


def synthesize(out: Path, minutes: float, seed: int, workers: int = 2, n_actors: int = 8, lip_sentences_n: int = 0
               ) -> dict:  # fmt: skip
    """Write the whole corpus; returns its summary (also saved as ``corpus.json``)."""
    t0 = time.time()
    actors, scenes = plan_scenes(seed, minutes, n_actors)
    for sub in ("bvhs", "face_arkit", "wav", "actions", "phones"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    write_databases(out, actors, scenes)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            summaries = list(pool.map(write_scene, scenes, [out] * len(scenes)))
    else:
        summaries = [write_scene(s, out) for s in scenes]
    n_lip = lip_sentences_n if lip_sentences_n else max(20, int(minutes * 4))
    n_lip = write_lip_subset(actors[LIP_ACTOR], n_lip, seed + 1, out)
    summary = {
        "generator_version": GENERATOR_VERSION, "seed": seed, "minutes": minutes, "scenes": len(scenes),
        "seconds": sum(s.seconds for s in scenes), "lip_sentences": n_lip, "lip_actor": actors[LIP_ACTOR].actor_id,
        "actors": [dict(asdict(a), voice=a.voice.name, style=asdict(a.style)) for a in actors],
        "scene_summaries": summaries, "generation_seconds": round(time.time() - t0, 1),
    }  # fmt: skip
    (out / "corpus.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=60.0, help="minutes of two-person scenes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="parallel processes")
    ap.add_argument("--actors", type=int, default=8)
    ap.add_argument("--lip-sentences", type=int, default=0, help="lip-accurate sentences (default: 4 per minute)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    s = synthesize(args.out, args.minutes, args.seed, args.workers, args.actors, args.lip_sentences)
    log.info("wrote %s: %d scenes, %.1f min, %d lip sentences in %.1f s", args.out, s["scenes"], s["seconds"] / 60,
             s["lip_sentences"], s["generation_seconds"])  # fmt: skip


if __name__ == "__main__":
    main()
