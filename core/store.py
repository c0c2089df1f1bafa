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
from langchain_milvus import BM25BuiltInFunction, Milvus
from pymilvus import DataType, FunctionType, MilvusClient, MilvusException
from pymilvus.exceptions import DataNotMatchException, DataTypeNotMatchException, ParamError, PrimaryKeyException
from sqlalchemy.ext.asyncio import AsyncEngine

from core.batching import BatchedMilvus, LeanMilvus
from core.errors import EmbeddingMismatch, StoreRefused, StoreUnavailable
from core.models import EmbeddingCache, EmbeddingInfo
from core.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_DELAYS = (0.2, 0.4, 0.8, 1.6, None)
OPEN_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)  # connecting at start-up: about 15 s before giving up

PK, TEXT, VECTOR, SPARSE = "pk", "text", "vector", "sparse"
METRIC = "COSINE"  # similarity: higher is better
INDEX = {"index_type": "HNSW", "metric_type": METRIC, "params": {"M": 16, "efConstruction": 200}}
# Full text: Milvus computes a BM25 sparse vector from every chunk's text (Milvus >= 2.5, Milvus Lite 3).
FULL_TEXT_INDEX = {"index_type": "SPARSE_INVERTED_INDEX", "metric_type": "BM25"}
FULL_TEXT_SEARCH = {"metric_type": "BM25", "params": {}}  # Milvus Lite rejects langchain-milvus's default params
# Milvus Lite knows only the standard tokenizer with lowercase and stop filters (no stemming, no "_english_"
# list), so the stop words are spelled out: a question's "what is the" must not match every chunk.
# fmt: off
STOP_WORDS = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "of",
    "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will",
    "with", "what", "which", "who", "whom", "how", "why", "when", "where", "do", "does", "did", "can", "could",
    "should", "would", "i", "me", "my", "we", "our", "you", "your", "he", "she", "his", "her", "its", "them", "from",
    "has", "have", "had", "been", "being", "am", "so", "than", "too", "very", "just", "about", "any", "some", "all",
    "it's", "i'm",
]
# fmt: on
ANALYZER = {"tokenizer": "standard", "filter": ["lowercase", {"type": "stop", "stop_words": STOP_WORDS}]}
FULL_TEXT_FUNCTION = "text_bm25"
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


def _full_text_function() -> BM25BuiltInFunction:
    return BM25BuiltInFunction(
        input_field_names=TEXT, output_field_names=SPARSE, analyzer_params=ANALYZER, function_name=FULL_TEXT_FUNCTION
    )


def _server_lacks_full_text(client: MilvusClient) -> str | None:
    """Why this Milvus cannot index full text, when its version says so (None: it may)."""
    try:
        version = str(client.get_server_version())
    except MilvusException:
        return None
    found = re.match(r"v?(\d+)\.(\d+)", version)
    if found and (int(found[1]), int(found[2])) < (2, 5):
        return f"Milvus {version.lstrip('v')} has no full-text (BM25) search; it needs Milvus 2.5 or later"
    return None


def _has_full_text(desc: dict[str, Any]) -> bool:
    """Whether a collection carries the BM25 field computed from its text."""
    functions = desc.get("functions") or []
    return any(
        f.get("type") == FunctionType.BM25 and SPARSE in (f.get("output_field_names") or []) for f in functions
    ) and SPARSE in {f.get("name") for f in desc.get("fields", [])}


def _create_collection(client: MilvusClient, name: str, info: EmbeddingInfo, full_text: bool) -> None:
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field(PK, DataType.VARCHAR, is_primary=True, max_length=128)
    text_options: dict[str, Any] = {"enable_analyzer": True, "analyzer_params": ANALYZER} if full_text else {}
    schema.add_field(TEXT, DataType.VARCHAR, max_length=65_535, **text_options)
    schema.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=info.dim)
    # Access fields are real columns: every chunk must have them, and filters on them are typed.
    schema.add_field("scope", DataType.VARCHAR, max_length=16)
    schema.add_field("owner", DataType.VARCHAR, max_length=256)
    index = client.prepare_index_params()
    index.add_index(field_name=VECTOR, **INDEX)
    if full_text:
        schema.add_field(SPARSE, DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(_full_text_function().function)
        index.add_index(field_name=SPARSE, **FULL_TEXT_INDEX)
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
    client.alter_collection_properties(name, properties={MODEL_PROPERTY: info.name})


def _drop_if_empty(client: MilvusClient, name: str) -> None:
    """Remove a collection this process just created and could not finish (never one holding data)."""
    with contextlib.suppress(MilvusException):
        if client.has_collection(name) and int(client.get_collection_stats(name).get("row_count", 0)) == 0:
            client.drop_collection(name)


def _create_new(client: MilvusClient, name: str, info: EmbeddingInfo) -> str | None:
    """Create the collection, with full text where the backend has it; returns why not (None: it has)."""
    lacking = _server_lacks_full_text(client)
    if lacking is None:
        try:
            _create_collection(client, name, info, full_text=True)
        except MilvusException as exc:  # an engine without functions or sparse vectors: dense only
            if "exist" in str(exc).lower():
                raise  # another process created it meanwhile
            lacking = f"this Milvus could not create a full-text (BM25) index: {exc.message}"
            _drop_if_empty(client, name)  # Milvus 2.3 creates the collection, then refuses the index
        else:
            if _has_full_text(client.describe_collection(name)):
                return None
            # Accepted but silently dropped (a server that predates functions): start again without it.
            lacking = "this Milvus accepted but did not keep the full-text (BM25) index"
            _drop_if_empty(client, name)
    _create_collection(client, name, info, full_text=False)
    return lacking


def _ensure_collection(client: MilvusClient, name: str, info: EmbeddingInfo) -> str | None:
    """Open or create the collection; returns why full-text search is unavailable (None when it is)."""
    if not client.has_collection(name):
        try:
            return _create_new(client, name, info)
        except MilvusException:
            if not client.has_collection(name):
                raise
            # Another replica created it at the same moment: use theirs, checked like any existing one.
    desc = client.describe_collection(name)
    _check_embedding(desc, name, info)
    if _has_full_text(desc):
        return None
    return (
        f"the collection '{name}' has no full-text index (it was created before hybrid search existed, "
        "or on a Milvus without BM25); `python -m ingest.manage copy --to-collection NEW_NAME` indexes its "
        "documents into a new collection that has it"
    )


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
        self.identity = f"{_connection_args(settings)['uri']}#{settings.collection}"
        # Milvus Lite loses rows after concurrent writes to one collection: one writer at a time.
        self.write_lock = asyncio.Lock()
        self._healing = asyncio.Lock()

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
                    raise StoreUnavailable(f"Could not open the {_where(settings)}: {exc}") from exc
                log.warning("Milvus is not answering yet (%s); trying again in %.0f s", exc.message, delay)
                await asyncio.sleep(delay)
            except Exception as exc:
                raise StoreUnavailable(f"Could not open the {_where(settings)}: {exc}") from exc
        if note and settings.hybrid_search:
            log.warning("Hybrid search is on (RAG_HYBRID_SEARCH), but %s. Searching dense vectors only.", note)
        return cls(settings, embeddings, info, store, engine, full_text, note)

    @staticmethod
    def _open_sync(
        settings: Settings, embeddings: Embeddings, info: EmbeddingInfo
    ) -> tuple[Milvus, Milvus | None, str | None]:
        """The dense store, the full-text store (or None) and why there is none."""
        args = _connection_args(settings)
        client = MilvusClient(**args)
        name = settings.collection
        try:
            note = _ensure_collection(client, name, info)
        finally:
            client.close()
        store_class = BatchedMilvus if settings.batch_searches else LeanMilvus
        batching: dict[str, Any] = {"max_parallel_searches": settings.max_parallel_searches}
        common: dict[str, Any] = {
            **(batching if settings.batch_searches else {}),
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
                builtin_function=_full_text_function(),
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
            if _refusal(exc):  # the database is there and said no: trying again would not change that
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


# Invalid input, as pymilvus checks it or the server answers it (ILLEGAL_* codes; 1100 "invalid parameter").
_REFUSED_TYPES = (ParamError, DataNotMatchException, DataTypeNotMatchException, PrimaryKeyException)
_REFUSED_CODES = {*range(5, 14), 1100}


def _refusal(exc: MilvusException) -> bool:
    return isinstance(exc, _REFUSED_TYPES) or exc.code in _REFUSED_CODES


def _check_embedding(desc: dict[str, Any], name: str, info: EmbeddingInfo) -> None:
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
