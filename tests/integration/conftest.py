"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
