"""Shared test fixtures: where the real external files live, and a skip when they are absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXTERNAL = REPO.parent / "shared" / "external"


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
