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


# What `make test` leaves to `make test-all` (the README's Tests section says the same), and why.
SLOW_PLACES = {
    "tests/e2e/": "a real Chromium against the running app",
    "test_crash.py": "SIGKILL trials during ingest and uploads",
    "test_replicas.py": "several processes writing one knowledge base",
    "test_soak.py": "simulated users for 20 s",
    "test_llama_cpp.py": "a real llama.cpp model server (compiled by make test-all)",
    "test_dev_eval.py": "the git-doc evaluation corpus",
    "test_fuzz_ingest.py": "generated hostile files",
    "test_database_outage.py": "a Milvus server stopped and restarted",
    "test_replay.py": "a live app answering over its socket, then a chains eval process",
}
FAST_PARAMS = {"backend": "lite", "engine": "sqlite", "database": "sqlite"}  # other backends are slow


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = item.nodeid.split("::")[0]
        params = getattr(getattr(item, "callspec", None), "params", {})
        other_backend = any(params.get(name, fast) != fast for name, fast in FAST_PARAMS.items())
        if other_backend or any(place in path for place in SLOW_PLACES):
            item.add_marker(pytest.mark.slow)
