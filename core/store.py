"""The vector store: one Milvus collection shared by ingest and chains."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_milvus import Milvus
from pymilvus import MilvusClient, MilvusException
from sqlalchemy.ext.asyncio import AsyncEngine

from core.batching import BatchedMilvus, LeanMilvus
from core.connection import OPEN_RETRY_DELAYS, RETRY_DELAYS, connection_args, is_refusal, where
from core.errors import EmbeddingMismatch, StoreRefused, StoreUnavailable
from core.filters import all_of, field_eq, quote
from core.models import EMBED_BATCH_SIZE, EmbeddingCache, EmbeddingInfo
from core.schema import (
    FULL_TEXT_INDEX,
    FULL_TEXT_SEARCH,
    INDEX,
    METRIC,
    PK,
    SPARSE,
    TEXT,
    VECTOR,
    ensure_collection,
    full_text_function,
)
from core.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


class KnowledgeBase:
    """One collection: the LangChain stores for reads and writes, plus admin calls.

    `store` searches and writes the dense vectors. `full_text` (None when the backend or the collection
    lacks it) searches Milvus's built-in BM25 index of the same chunks; `full_text_note` says why not.
    """

    def __init__(
        self,
        settings: Settings,
        embeddings: Embeddings,
        info: EmbeddingInfo,
        store: Milvus,
        engine: AsyncEngine,
        full_text: Milvus | None = None,
        full_text_note: str | None = None,
    ) -> None:
        self.settings = settings
        self.embeddings = embeddings
        self.info = info
        self.store = store
        self.full_text = full_text
        self.full_text_note = full_text_note
        self.engine = engine  # the app database, where the document registry lives
        self.name = settings.collection
        self.identity = f"{connection_args(settings)['uri']}#{settings.collection}"
        # Milvus Lite loses rows after concurrent writes to one collection: one writer at a time.
        self.write_lock = asyncio.Lock()
        self.add_batch = EMBED_BATCH_SIZE  # chunks embedded and written per `aadd_documents` call
        self._healing = asyncio.Lock()
        # Bumped before and after every write and delete through this process: what was read before is out of date.
        self.generation = 0

    @classmethod
    async def open(
        cls, settings: Settings, embeddings: Embeddings, info: EmbeddingInfo, engine: AsyncEngine
    ) -> KnowledgeBase:
        """Connect, create the collection if needed, refuse a different embedding model."""
        for delay in (*OPEN_RETRY_DELAYS, None):
            try:
                store, full_text, note = await asyncio.to_thread(cls._open_sync, settings, embeddings, info)
                break
            except (EmbeddingMismatch, StoreUnavailable):
                raise
            except MilvusException as exc:  # a server still starting, or one busy for a moment: wait a little
                if delay is None or "connect" not in str(exc).lower():
                    raise StoreUnavailable(f"Could not open the {where(settings)}: {exc}") from exc
                log.warning("Milvus is not answering yet (%s); trying again in %.0f s", exc.message, delay)
                await asyncio.sleep(delay)
            except Exception as exc:
                raise StoreUnavailable(f"Could not open the {where(settings)}: {exc}") from exc
        if note and settings.hybrid_search:
            log.warning("Hybrid search is on (RAG_HYBRID_SEARCH), but %s. Searching dense vectors only.", note)
        return cls(settings, embeddings, info, store, engine, full_text, note)

    @staticmethod
    def _open_sync(
        settings: Settings, embeddings: Embeddings, info: EmbeddingInfo, batched: bool = True
    ) -> tuple[Milvus, Milvus | None, str | None]:
        """The dense store, the full-text store (or None) and why there is none.

        `batched` coalesces concurrent searches into multi-vector Milvus calls (core/batching.py);
        False makes one call per search, the baseline the benchmarks and tests compare against.
        """
        args = connection_args(settings)
        client = MilvusClient(**args)
        name = settings.collection
        try:
            note = ensure_collection(client, name, info)
        finally:
            client.close()
        store_class = BatchedMilvus if batched else LeanMilvus
        common: dict[str, Any] = {
            "collection_name": name,
            "connection_args": args,
            "consistency_level": "Strong",
            "auto_id": False,
            "primary_field": PK,
            "text_field": TEXT,
            "enable_dynamic_field": True,
            "hidden_fields": (VECTOR, SPARSE),
        }
        store = store_class(
            embedding_function=embeddings,
            index_params=INDEX,
            search_params={"metric_type": METRIC, "params": {"ef": 128}},
            vector_field=VECTOR,
            **common,
        )
        full_text = None
        if note is None:
            full_text = store_class(
                embedding_function=None,
                builtin_function=full_text_function(),
                index_params=FULL_TEXT_INDEX,
                search_params=FULL_TEXT_SEARCH,
                vector_field=SPARSE,
                **common,
            )
        return store, full_text, note

    async def close(self) -> None:
        """Flush and close both clients (a graceful close keeps Milvus Lite durable)."""
        try:
            await self.flush()
        finally:
            for store in (self.store, self.full_text):
                if store is None:
                    continue
                await asyncio.to_thread(store.client.close)
                if store._async_milvus_client is not None:
                    await store.aclient.close()

    async def guarded(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run one Milvus call; an outage becomes StoreUnavailable, and the app recovers without a restart.

        After a failure, callers retry one at a time: concurrent reconnects would tear down each other's
        channel. A server that restarted has its collection released: it is loaded again.
        """
        try:
            return await call()
        except MilvusException as exc:
            if is_refusal(exc):  # the database is there and said no: trying again would not change that
                raise StoreRefused(f"the knowledge base refused the data: {exc.message}") from exc
            failure = exc
        async with self._healing:
            for delay in RETRY_DELAYS:
                if "released" in str(failure) or "not loaded" in str(failure):
                    with contextlib.suppress(MilvusException):
                        await self.store.aclient.load_collection(self.name)
                try:
                    return await call()
                except MilvusException as exc:
                    failure = exc
                if delay is None:
                    break
                await asyncio.sleep(delay)
        log.warning("Milvus call failed: %s", failure)
        raise StoreUnavailable(
            f"The knowledge base ({where(self.settings)}) is not reachable right now, so nothing can be "
            "searched or stored. It recovers by itself once the database is back; please try again shortly."
        ) from failure

    # --- searching (the chains' Searcher) ------------------------------------------------------------
    @property
    def has_full_text(self) -> bool:
        return self.full_text is not None

    async def search_dense(self, query: str, k: int, expr: str | None) -> list[tuple[Document, float]]:
        """Chunks by cosine similarity to `query` (higher is better)."""
        return await self.guarded(lambda: self.store.asimilarity_search_with_score(query, k=k, expr=expr))

    async def search_mmr(
        self, query: str, k: int, fetch_k: int, lambda_mult: float, expr: str | None
    ) -> list[Document]:
        return await self.guarded(
            lambda: self.store.amax_marginal_relevance_search(
                query, k=k, fetch_k=fetch_k, lambda_mult=lambda_mult, expr=expr
            )
        )

    async def search_full_text(self, query: str, k: int, expr: str | None) -> list[tuple[Document, float]]:
        """Chunks by Milvus's BM25 score for `query` (only when `has_full_text`)."""
        full_text = self.full_text
        if full_text is None:
            return []
        return await self.guarded(lambda: full_text.asimilarity_search_with_score(query, k=k, expr=expr))

    async def containing(self, spellings: Sequence[str], expr: str | None) -> int | None:
        """How many chunks matching `expr` contain any of `spellings` verbatim (each escaped); with no
        spellings, how many chunks match `expr` (None: this Milvus cannot tell)."""
        like = " or ".join(f"text like {quote('%' + s + '%')}" for s in spellings)
        try:
            return await self.count(all_of(expr, f"({like})" if like else None))
        except (StoreRefused, StoreUnavailable):
            return None

    async def flush(self) -> None:
        """Seal new rows so searches use the index instead of a slow scan."""
        await self.guarded(lambda: asyncio.to_thread(self.store.client.flush, self.name))

    async def count(self, expr: str | None = None) -> int:
        """Number of chunks matching `expr` (all chunks when None)."""
        res = await self.guarded(
            lambda: self.store.aclient.query(self.name, filter=expr or "", output_fields=["count(*)"])
        )
        return int(res[0]["count(*)"]) if res else 0

    async def summary(self, expr: str | None = None) -> tuple[int, int]:
        """(documents, chunks) matching `expr`; every document has exactly one chunk 0."""
        return await self.count(all_of(field_eq("chunk", 0), expr)), await self.count(expr)

    async def query(self, expr: str, fields: list[str], limit: int = 16_384) -> list[dict[str, Any]]:
        """Rows matching `expr`, with the given fields (dynamic metadata included)."""
        rows = await self.guarded(
            lambda: self.store.aclient.query(self.name, filter=expr, output_fields=fields, limit=limit)
        )
        return list(rows)

    async def delete(self, expr: str) -> int:
        """Delete the chunks matching `expr`; returns how many were deleted."""
        self.generation += 1
        try:
            res = await self.guarded(lambda: self.store.aclient.delete(self.name, filter=expr))
        finally:
            self.generation += 1
        if isinstance(res, dict):
            return int(res.get("delete_count", 0))
        return len(res)

    async def prepare(self, documents: list[Document]) -> None:
        """Embed chunks ahead of `add`, outside the write lock (when the model is wrapped in a cache)."""
        if isinstance(self.embeddings, EmbeddingCache):
            await self.embeddings.prepare([d.page_content for d in documents])

    def discard(self, documents: list[Document]) -> None:
        """Drop prepared vectors of chunks that will not be written."""
        if isinstance(self.embeddings, EmbeddingCache):
            self.embeddings.discard([d.page_content for d in documents])

    async def add(self, documents: list[Document], ids: list[str]) -> None:
        """Write chunks through LangChain's `aadd_documents` in batches (callers hold `write_lock`)."""
        size = self.add_batch
        self.generation += 1
        for start in range(0, len(documents), size):
            batch, batch_ids = documents[start : start + size], ids[start : start + size]
            await self.guarded(functools.partial(self.store.aadd_documents, batch, ids=batch_ids))
        self.generation += 1  # again once written: a read made meanwhile saw only part of it
