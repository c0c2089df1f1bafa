"""The vector store: one Milvus collection shared by ingest and chains."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_milvus import Milvus
from pymilvus import DataType, MilvusClient, MilvusException
from sqlalchemy.ext.asyncio import AsyncEngine

from core.batching import BatchedMilvus
from core.errors import EmbeddingMismatch, StoreUnavailable
from core.models import EmbeddingCache, EmbeddingInfo
from core.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_DELAYS = (0.2, 0.4, 0.8, 1.6, None)

PK, TEXT, VECTOR = "pk", "text", "vector"
METRIC = "COSINE"  # similarity: higher is better
INDEX = {"index_type": "HNSW", "metric_type": METRIC, "params": {"M": 16, "efConstruction": 200}}
MODEL_PROPERTY = "kb.embedding_model"
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": ""}


def quote(value: str) -> str:
    """A Milvus string literal that always means exactly `value`."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in value) + '"'


def field_eq(field: str, value: str | int) -> str:
    """`field == value`, with the field name checked and the value escaped."""
    if not IDENTIFIER.match(field):
        raise ValueError(f"not a field name: {field!r}")
    literal = str(int(value)) if isinstance(value, int) else quote(value)
    return f"{field} == {literal}"


def field_in(field: str, values: Iterable[str]) -> str:
    """`field in [...]`, every value escaped."""
    if not IDENTIFIER.match(field):
        raise ValueError(f"not a field name: {field!r}")
    return f"{field} in [{', '.join(quote(v) for v in values)}]"


def all_of(*exprs: str | None) -> str | None:
    """Join filter expressions with `and` (None when there are none)."""
    parts = [f"({e})" for e in exprs if e]
    return " and ".join(parts) or None


def _connection_args(settings: Settings) -> dict[str, Any]:
    args: dict[str, Any] = {"uri": settings.milvus_uri}
    if settings.is_milvus_lite:
        Path(settings.milvus_uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
        args["uri"] = str(Path(settings.milvus_uri).expanduser().resolve())
    if settings.milvus_token:
        args["token"] = settings.milvus_token.get_secret_value()
    return args


def _where(settings: Settings) -> str:
    return "Milvus Lite file " + settings.milvus_uri if settings.is_milvus_lite else "Milvus at " + settings.milvus_uri


class KnowledgeBase:
    """One collection: the LangChain store for reads and writes, plus admin calls."""

    def __init__(
        self, settings: Settings, embeddings: Embeddings, info: EmbeddingInfo, store: Milvus, engine: AsyncEngine
    ) -> None:
        self.settings = settings
        self.embeddings = embeddings
        self.info = info
        self.store = store
        self.engine = engine  # the app database, where the document registry lives
        self.name = settings.collection
        self.identity = f"{_connection_args(settings)['uri']}#{settings.collection}"
        # Milvus Lite loses rows after concurrent writes to one collection: one writer at a time.
        self.write_lock = asyncio.Lock()
        self._healing = asyncio.Lock()

    @classmethod
    async def open(
        cls, settings: Settings, embeddings: Embeddings, info: EmbeddingInfo, engine: AsyncEngine
    ) -> KnowledgeBase:
        """Connect, create the collection if needed, refuse a different embedding model."""
        try:
            store = await asyncio.to_thread(cls._open_sync, settings, embeddings, info)
        except (EmbeddingMismatch, StoreUnavailable):
            raise
        except Exception as exc:
            raise StoreUnavailable(f"Could not open the {_where(settings)}: {exc}") from exc
        return cls(settings, embeddings, info, store, engine)

    @staticmethod
    def _open_sync(settings: Settings, embeddings: Embeddings, info: EmbeddingInfo) -> Milvus:
        args = _connection_args(settings)
        client = MilvusClient(**args)
        name = settings.collection
        try:
            if client.has_collection(name):
                _check_embedding(client, name, info)
            else:
                schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
                schema.add_field(PK, DataType.VARCHAR, is_primary=True, max_length=128)
                schema.add_field(TEXT, DataType.VARCHAR, max_length=65_535)
                schema.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=info.dim)
                # Access fields are real columns: every chunk must have them, and filters on them are typed.
                schema.add_field("scope", DataType.VARCHAR, max_length=16)
                schema.add_field("owner", DataType.VARCHAR, max_length=256)
                index = client.prepare_index_params()
                index.add_index(field_name=VECTOR, **INDEX)
                client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
                client.alter_collection_properties(name, properties={MODEL_PROPERTY: info.name})
        finally:
            client.close()
        batching: dict[str, Any] = {"max_parallel_searches": settings.max_parallel_searches}
        store_class = BatchedMilvus if settings.batch_searches else Milvus
        return store_class(  # type: ignore[no-any-return]
            **(batching if settings.batch_searches else {}),
            embedding_function=embeddings,
            collection_name=name,
            connection_args=args,
            consistency_level="Strong",
            index_params=INDEX,
            search_params={"metric_type": METRIC, "params": {"ef": 128}},
            auto_id=False,
            primary_field=PK,
            text_field=TEXT,
            vector_field=VECTOR,
            enable_dynamic_field=True,
        )

    async def close(self) -> None:
        """Flush and close both clients (a graceful close keeps Milvus Lite durable)."""
        try:
            await self.flush()
        finally:
            await asyncio.to_thread(self.store.client.close)
            if self.store._async_milvus_client is not None:
                await self.store.aclient.close()

    async def guarded(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run one Milvus call; an outage becomes StoreUnavailable, and the app recovers without a restart.

        After a failure, callers retry one at a time: concurrent reconnects would tear down each other's
        channel. A server that restarted has its collection released: it is loaded again.
        """
        try:
            return await call()
        except MilvusException as exc:
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
            f"The knowledge base ({_where(self.settings)}) is not reachable right now, so nothing can be "
            "searched or stored. It recovers by itself once the database is back; please try again shortly."
        ) from failure

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
        res = await self.guarded(lambda: self.store.aclient.delete(self.name, filter=expr))
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
        size = self.settings.embed_batch_size
        for start in range(0, len(documents), size):
            batch, batch_ids = documents[start : start + size], ids[start : start + size]
            await self.guarded(functools.partial(self.store.aadd_documents, batch, ids=batch_ids))


def _check_embedding(client: MilvusClient, name: str, info: EmbeddingInfo) -> None:
    desc = client.describe_collection(name)
    fields = {f.get("name") for f in desc.get("fields", [])}
    if not {"scope", "owner"} <= fields:
        raise EmbeddingMismatch(
            f"The collection '{name}' was created by an older version without access scopes, so its documents "
            "cannot be kept private. Choose a new RAG_COLLECTION and index your documents into it again."
        )
    dim = next((int(f["params"]["dim"]) for f in desc.get("fields", []) if f.get("name") == VECTOR), None)
    built_with = (desc.get("properties") or {}).get(MODEL_PROPERTY)
    if (built_with and built_with != info.name) or (dim is not None and dim != info.dim):
        raise EmbeddingMismatch(
            f"The collection '{name}' was built with {built_with or 'another model'} ({dim} dimensions), "
            f"but the app is set to embed with {info.name} ({info.dim} dimensions). "
            "Set RAG_EMBEDDING_PROVIDER / RAG_EMBEDDING_MODEL back to the model it was built with, "
            "or choose a new RAG_COLLECTION and index your documents into it again."
        )
