"""Step 3, retrieve: every query searched at once, over all chunks, each document's opening, and the
full-text index."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from langchain_core.documents import Document
from langchain_core.runnables import Runnable, RunnableLambda

from chains.options import Searcher, SearchOptions
from chains.state import Hit, QueryHits, Retrieved, State, elapsed_ms
from core.filters import all_of, field_eq


def hits_of(
    query: str, pairs: list[tuple[Document, float | None]], started: float, scope: str
) -> tuple[QueryHits, list[Hit]]:
    hits = [Hit(str(d.metadata.get("pk")), d, s) for d, s in pairs]
    summary = [
        {
            "id": h.id,
            "source": h.document.metadata.get("source"),
            "page": h.document.metadata.get("page"),
            "score": None if h.score is None else round(float(h.score), 4),
        }
        for h in hits
    ]
    elapsed = elapsed_ms(started)
    return QueryHits(query, summary, elapsed, scope), hits


async def search(
    searcher: Searcher, query: str, options: SearchOptions, expr: str | None, openings: bool = False
) -> tuple[QueryHits, list[Hit]]:
    """One dense (or MMR) search; with `openings`, over the first chunk of every document only."""
    if openings:
        expr = all_of(expr, field_eq("chunk", 0))
    # Each query is its own call; the store coalesces concurrent ones (this question's rewrites and other
    # users' questions) into one embedding call and one Milvus search.
    started = time.perf_counter()
    pairs: list[tuple[Document, float | None]]
    if options.mode == "mmr" and not openings:
        fetch = max(options.fetch_k * 2, 20)
        docs = await searcher.search_mmr(query, options.fetch_k, fetch, options.mmr_lambda, expr)
        pairs = [(d, None) for d in docs]
    else:
        pairs = list(await searcher.search_dense(query, options.fetch_k, expr))
    return hits_of(query, pairs, started, "openings" if openings else "chunks")


async def search_full_text(
    searcher: Searcher, query: str, options: SearchOptions, expr: str | None
) -> tuple[QueryHits, list[Hit]]:
    """Milvus's BM25 index of the same chunks: exact terms (names, codes, flags) the dense model blurs."""
    started = time.perf_counter()
    found = await searcher.search_full_text(query, options.fetch_k, expr)
    # BM25 scores are not similarities: the hits carry none, and fusion measures them against the question.
    queried, hits = hits_of(query, [(d, None) for d, _ in found], started, "full text")
    for line, (_, score) in zip(queried.hits, found, strict=True):
        line["score"] = round(abs(float(score)), 4)  # Milvus Lite reports BM25 negated
    return queried, hits


def make_retrieve(searcher: Searcher) -> Runnable[State, Retrieved]:
    async def retrieve(state: State) -> Retrieved:
        started = time.perf_counter()
        options, expr, queries = state["options"], state["expr"], state["rewritten"].queries
        # Every query searches all chunks and, as a document-level signal, each document's opening; in hybrid
        # mode the question also searches the full-text index. All of them at once.
        scopes = (False, True) if options.openings else (False,)
        searches: list[Any] = [search(searcher, q, options, expr, o) for q in queries for o in scopes]
        if options.hybrid and searcher.has_full_text:
            # One full-text list, for the question itself: rewrites share its words, and a BM25 list per
            # rewrite outvoted the dense lists (dev set: MRR 0.676 with one per rewrite, 0.722 with one).
            searches.append(search_full_text(searcher, queries[0], options, expr))
        results: list[tuple[QueryHits, list[Hit]]] = await asyncio.gather(*searches)
        lists = {
            scope: [hits for trace, hits in results if trace.scope == scope]
            for scope in ("chunks", "openings", "full text")
        }
        elapsed = elapsed_ms(started)
        return Retrieved(lists["chunks"], lists["openings"], lists["full text"], [r[0] for r in results], elapsed)

    return RunnableLambda(retrieve).with_config(run_name="retrieve")
