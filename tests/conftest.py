"""Shared test fixtures: where the real external files live, and a skip when they are absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXTERNAL = REPO.parent / "shared" / "external"
SESSION_SECONDS = 2.0  # engine_session's length


@pytest.fixture
def external() -> Path:
    """``../shared/external``: real files nobody here made. Skips the test on a clone without it."""
    if not EXTERNAL.is_dir():
        pytest.skip(f"real external files not present at {EXTERNAL} (a user's fresh clone)")
    return EXTERNAL


@pytest.fixture(scope="session")
def untrained_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle of random networks with the real graphs, names and shapes (export.untrained), built once."""
    from export.untrained import make_untrained_bundle

    return make_untrained_bundle(tmp_path_factory.mktemp("untrained"))


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1.5-minute synthetic corpus in the InterAct layout (two scenes, four lip sentences), built once."""
    from training.data.synthesize import synthesize

    corpus = tmp_path_factory.mktemp("tiny") / "corpus"
    synthesize(corpus, minutes=1.5, seed=1, workers=1, lip_sentences_n=4)
    return corpus


def run_session(bundle: Path, audio: list, placement=(0.0, 1.4, 3.14159)) -> tuple:
    """(info, frames, audio) of a real engine session fed 40 ms chunks of both speakers' 16 kHz audio, flushed."""
    from runtime.engine.frames import Frames
    from runtime.engine.settings import SessionSettings
    from runtime.engine.stream import Engine
    from runtime.model.model import Model

    engine = Engine(Model.load(bundle), SessionSettings(placement=placement), "test-session")
    parts = []
    for i in range(0, len(audio[0]), 640):  # 40 ms chunks, as a microphone delivers them
        for p in (0, 1):
            engine.push_audio(p, audio[p][i : i + 640])
        while (f := engine.step()) is not None:
            parts.append(f)
    parts.append(engine.flush())
    return engine.info, Frames.concat([p for p in parts if p is not None]), audio


@pytest.fixture(scope="session")
def engine_session(untrained_bundle: Path) -> tuple:
    """A real 2 s session of the untrained bundle (B placed off-axis and turned) with its input audio."""
    import numpy as np

    rng = np.random.default_rng(1)
    audio = [(rng.standard_normal(int(SESSION_SECONDS * 16000)) * s).astype(np.float32) for s in (0.1, 0.02)]
    return run_session(untrained_bundle, audio, placement=(0.3, 1.4, 3.0))


@pytest.fixture(scope="session")
def default_session() -> tuple:
    """4 s of the shipped demo dialogue through the shipped default bundle."""
    from runtime.formats.wav import read_audio

    demo = REPO / "runtime" / "assets" / "demo"
    audio = [read_audio(demo / f"{n}.wav", 16000).channels[0][: 4 * 16000] for n in "ab"]
    return run_session(REPO / "runtime" / "assets" / "default", audio)
