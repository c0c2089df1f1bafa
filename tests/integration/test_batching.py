"""Coalesced searches return exactly what single searches return, in far fewer Milvus calls."""

from __future__ import annotations

import asyncio

from langchain_milvus import Milvus

from core.access import LOCAL, visible_to
from core.batching import BatchedMilvus, LeanMilvus
from core.filters import all_of, field_eq
from core.models import EmbeddingCache
from core.store import KnowledgeBase

EVERY_MILVUS = True  # tests using the knowledge base run on each Milvus backend (conftest)

QUERIES = [
    "When are production deployments frozen?",
    "Who handles warranty claims for the turbine?",
    "How many days per week can employees work remotely?",
    "How do I reset a forgotten VPN password?",
    "What does the Q3 roadmap prioritise?",
    "turbine",
    "remote work policy",
    "password",
]


def plain_store(kb: KnowledgeBase) -> Milvus:
    """The same collection through langchain-milvus's own store: one Milvus call per search."""
    plain, _, _ = KnowledgeBase._open_sync(kb.settings, kb.embeddings, kb.info, batched=False)
    assert type(plain) is LeanMilvus  # langchain-milvus's own searches; it only hides the index-only BM25 field
    return plain


def same(a: list, b: list) -> bool:
    return [(d.metadata["pk"], round(s, 5)) for d, s in a] == [(d.metadata["pk"], round(s, 5)) for d, s in b]


async def test_concurrent_searches_are_coalesced_with_identical_results(filled: KnowledgeBase) -> None:
    store = filled.store
    assert isinstance(store, BatchedMilvus)
    plain = plain_store(filled)
    exprs = [None, visible_to(LOCAL), all_of(visible_to(LOCAL), field_eq("chunk", 0))]
    expected = [await plain.asimilarity_search_with_score(q, k=6, expr=e) for e in exprs for q in QUERIES]
    before = store.searches.stats.calls
    got = await asyncio.gather(*(store.asimilarity_search_with_score(q, k=6, expr=e) for e in exprs for q in QUERIES))
    assert all(same(a, b) for a, b in zip(got, expected, strict=True))
    assert any(expected)  # the comparison is about real hits
    # One call per (filter, limit) group, not one per query.
    assert store.searches.stats.calls - before == len(exprs)
    await plain.aclient.close()
    plain.client.close()


async def test_mmr_through_the_batched_store_matches_the_plain_store(filled: KnowledgeBase) -> None:
    plain = plain_store(filled)
    expected = [await plain.amax_marginal_relevance_search(q, k=4, fetch_k=12) for q in QUERIES]
    got = await asyncio.gather(*(filled.store.amax_marginal_relevance_search(q, k=4, fetch_k=12) for q in QUERIES))
    assert [[d.metadata["pk"] for d in docs] for docs in got] == [[d.metadata["pk"] for d in docs] for docs in expected]
    await plain.aclient.close()
    plain.client.close()


async def test_concurrent_queries_are_embedded_in_one_model_call(filled: KnowledgeBase) -> None:
    cache = filled.embeddings
    assert isinstance(cache, EmbeddingCache)
    cache.clear()
    before = cache.queries.coalescer.stats.calls
    vectors = await asyncio.gather(*(cache.aembed_query(q) for q in QUERIES))
    assert cache.queries.coalescer.stats.calls - before <= 2  # the first alone, or all together
    for q, v in zip(QUERIES, vectors, strict=True):
        single = cache.inner.embed_query(q)
        assert sum(a * b for a, b in zip(v, single, strict=True)) > 0.99999
