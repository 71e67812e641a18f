from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from localserver import LocalServer

# Shared test material lives beside the project checkout, not inside it.
CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


@pytest.fixture
def corpora() -> Path:
    if not CORPORA.is_dir():
        pytest.skip("../shared/corpora is absent")
    return CORPORA


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A real HTTP server on 127.0.0.1, empty until a test adds routes."""
    local = LocalServer().start()
    try:
        yield local
    finally:
        local.stop()
