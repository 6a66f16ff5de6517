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
