"""Shared fixtures: no developer .env, state in temp dirs, one real embedding model per session."""

from __future__ import annotations

import os
import uuid
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


# Each backend a deployment may use: Milvus Lite in-process (the default), `milvus-lite server` as its
# own process, and a genuine Milvus 2.3.5 standalone (PyPI `milvus`).
MILVUS_BACKENDS = ("lite", "lite-server", "milvus-2.3")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """In modules that set `EVERY_MILVUS = True`, every test that uses the knowledge base runs on each backend."""
    if "backend" in metafunc.fixturenames and getattr(metafunc.module, "EVERY_MILVUS", False):
        metafunc.parametrize("backend", MILVUS_BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def lite_server_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.servers import milvus_lite_server

    with milvus_lite_server(tmp_path_factory.mktemp("milvus-lite-server")) as server:
        yield server.uri


@pytest.fixture(scope="session")
def milvus_server_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.servers import milvus_server

    with milvus_server(tmp_path_factory.mktemp("milvus-2.3")) as uri:
        yield uri


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """Which Milvus the test's knowledge base lives in (Milvus Lite in-process unless parametrized)."""
    return str(getattr(request, "param", "lite"))


@pytest.fixture
def settings(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Settings]:
    if backend == "lite":
        uri, collection = str(tmp_path / "milvus.db"), "test_kb"
    else:  # a shared server: a collection of the test's own, dropped afterwards
        uri = request.getfixturevalue("lite_server_uri" if backend == "lite-server" else "milvus_server_uri")
        collection = f"test_kb_{uuid.uuid4().hex[:12]}"
    yield load_settings(milvus_uri=uri, collection=collection, chunk_size=400, chunk_overlap=40)
    if backend != "lite":
        from pymilvus import MilvusClient

        client = MilvusClient(uri=uri)
        client.drop_collection(collection)
        client.close()


@pytest.fixture
async def kb(settings: Settings, embeddings: Embeddings) -> AsyncIterator[KnowledgeBase]:
    from core.runtime import open_knowledge_base

    async with open_knowledge_base(settings, embeddings) as base:
        yield base
