"""Build the shared resources once and close them on the way out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from langchain_core.embeddings import Embeddings

from core.database import open_database
from core.models import EmbeddingCache, embedding_info, make_embeddings
from core.privacy import data_paths, keep_private
from core.settings import Settings
from core.store import KnowledgeBase


def _not_a_probe(record: logging.LogRecord) -> bool:
    """Milvus Lite's in-process gRPC server logs a traceback at ERROR for every call it does not implement,
    and pymilvus probes one (AllocTimestamp) when it connects: that one is expected, anything else shows."""
    exc = record.exc_info[1] if record.exc_info else None
    return not (isinstance(exc, NotImplementedError) and "not implemented" in str(exc).lower())


def quiet_libraries() -> None:
    """Keep third-party chatter (progress bars, client warnings) out of user output."""
    # httpx2: the fork of httpx the OpenAI SDK uses, which logs every request to the model at INFO.
    for name in ("pymilvus", "httpx", "httpx2", "sentence_transformers", "transformers", "langchain_milvus", "pypdf"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # Milvus Lite imports faiss, whose loader reports at INFO each CPU build it tries (AVX512, AVX2, ...), and
    # `chainlit run` logs INFO from every library: only its warnings.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    grpc_server = logging.getLogger("grpc._server")
    if _not_a_probe not in grpc_server.filters:
        grpc_server.addFilter(_not_a_probe)
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
    keep_private(data_paths(settings))
    embeddings = EmbeddingCache(embeddings or make_embeddings(settings))
    async with open_database(settings.database) as engine:
        kb = await KnowledgeBase.open(settings, embeddings, embedding_info(settings, embeddings.inner), engine)
        try:
            yield kb
        finally:
            await kb.close()
