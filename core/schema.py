"""The collection's schema: fields, indexes, the full-text analyzer; created once, checked on every open."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from langchain_milvus import BM25BuiltInFunction
from pymilvus import DataType, FunctionType, MilvusClient, MilvusException

from core.errors import EmbeddingMismatch
from core.models import EmbeddingInfo
from core.stopwords import STOP_WORDS

PK, TEXT, VECTOR, SPARSE = "pk", "text", "vector", "sparse"
METRIC = "COSINE"  # similarity: higher is better
INDEX = {"index_type": "HNSW", "metric_type": METRIC, "params": {"M": 16, "efConstruction": 200}}
# Full text: Milvus computes a BM25 sparse vector from every chunk's text (Milvus >= 2.5, Milvus Lite 3).
FULL_TEXT_INDEX = {"index_type": "SPARSE_INVERTED_INDEX", "metric_type": "BM25"}
FULL_TEXT_SEARCH = {"metric_type": "BM25", "params": {}}  # Milvus Lite rejects langchain-milvus's default params
ANALYZER = {"tokenizer": "standard", "filter": ["lowercase", {"type": "stop", "stop_words": list(STOP_WORDS)}]}
FULL_TEXT_FUNCTION = "text_bm25"
MODEL_PROPERTY = "kb.embedding_model"


def full_text_function() -> BM25BuiltInFunction:
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
        schema.add_function(full_text_function().function)
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


def ensure_collection(client: MilvusClient, name: str, info: EmbeddingInfo) -> str | None:
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
