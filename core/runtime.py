"""Build the shared resources once and close them on the way out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from langchain_core.embeddings import Embeddings

from core.database import open_database
from core.models import EmbeddingCache, embedding_info, make_embeddings
from core.settings import Settings
from core.store import KnowledgeBase


def quiet_libraries() -> None:
    """Keep third-party chatter (progress bars, client warnings) out of user output."""
    # grpc._server: Milvus Lite's in-process server logs a traceback for a probe pymilvus makes.
    for name in (
        "pymilvus",
        "httpx",
        "sentence_transformers",
        "transformers",
        "langchain_milvus",
        "grpc._server",
        "pypdf",
    ):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


@asynccontextmanager
async def open_knowledge_base(settings: Settings, embeddings: Embeddings | None = None) -> AsyncIterator[KnowledgeBase]:
    """The knowledge base for these settings (the Milvus collection and the app database that keeps its
    document registry), closed and flushed on exit."""
    quiet_libraries()
    embeddings = EmbeddingCache(embeddings or make_embeddings(settings))
    async with open_database(settings.database) as engine:
        kb = await KnowledgeBase.open(settings, embeddings, embedding_info(settings, embeddings.inner), engine)
        try:
            yield kb
        finally:
            await kb.close()
