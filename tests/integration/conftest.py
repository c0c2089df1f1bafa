"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from core.store import KnowledgeBase
from ingest import Ingestor, collect_files
from tests.fixtures.documents import make_good_set


@pytest.fixture
async def filled(kb: KnowledgeBase, tmp_path: Path) -> AsyncIterator[KnowledgeBase]:
    make_good_set(tmp_path / "docs")
    results = await Ingestor(kb).ingest(collect_files([tmp_path / "docs"]))
    assert all(r.status == "indexed" for r in results)
    yield kb


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """One throw-away PostgreSQL server for the run (started on first use); tests leave it empty."""
    from tests.servers import postgres_server

    with postgres_server() as url:
        yield url
