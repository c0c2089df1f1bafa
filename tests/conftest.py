"""Shared fixtures: no developer .env, state in temp dirs, one real embedding model per session."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from langchain_core.embeddings import Embeddings

from core.settings import Settings, load_settings
from core.store import KnowledgeBase

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run every test in its own folder, with no RAG_/OPENAI_ variables and no .env."""
    for name in list(os.environ):
        if name.startswith(("RAG_", "OPENAI_")) or name in ("MILVUS_URI", "DATABASE_URL", "CHAINLIT_AUTH_SECRET"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture(scope="session")
def embeddings() -> Embeddings:
    """The real local model, loaded once."""
    from core.models import make_embeddings

    return make_embeddings(load_settings())


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(milvus_uri=str(tmp_path / "milvus.db"), collection="test_kb", chunk_size=400, chunk_overlap=40)


@pytest.fixture
async def kb(settings: Settings, embeddings: Embeddings) -> AsyncIterator[KnowledgeBase]:
    from core.runtime import open_knowledge_base

    async with open_knowledge_base(settings, embeddings) as base:
        yield base
