"""2. Retrieval under concurrency: users each asking a question searched as 4 queries, on a large collection.

(a) LangChain's MultiQueryRetriever (its rewrites supplied, so only retrieval is timed), (b) naive
concurrent `asimilarity_search_with_score` with reciprocal rank fusion, (c) ours: the same calls through
the coalescing store and query embedder. Every way embeds its queries with the same local model, and
every question is new (no cache hits).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from langchain_core.runnables import RunnableLambda

from benchmarks.common import pct, plain_store, table
from chains.fusion import reciprocal_rank_fusion
from chains.state import Hit
from core.batching import BatchedMilvus
from core.models import EmbeddingCache
from core.runtime import open_knowledge_base
from core.settings import Settings

K = 20


def fuse(results: list[list[tuple[Any, float]]]) -> list[str]:
    ranked = [[Hit(str(d.metadata["pk"]), d, s) for d, s in pairs] for pairs in results]
    return [h.id for h in reciprocal_rank_fusion(ranked)[:5]]


async def load(ask: Any, questions: list[list[str]], users: int, rounds: int) -> dict[str, float]:
    """`users` ask `rounds` questions each, one after another; all users at once."""
    latencies: list[float] = []

    async def user(u: int) -> None:
        for r in range(rounds):
            queries = questions[u * rounds + r]
            started = time.perf_counter()
            await ask(queries)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(user(u) for u in range(users)))
    wall = time.perf_counter() - started
    return {"p50": pct(latencies, 0.5), "p95": pct(latencies, 0.95), "qps": len(latencies) / wall}


async def measure(settings: Settings, questions: list[list[str]], levels: tuple[int, ...], rounds: int) -> dict:
    from langchain_classic.retrievers.multi_query import MultiQueryRetriever

    out: dict[str, dict[int, dict[str, float]]] = {"multiquery": {}, "naive": {}, "ours": {}}
    async with open_knowledge_base(settings) as kb:
        assert isinstance(kb.store, BatchedMilvus) and isinstance(kb.embeddings, EmbeddingCache)
        plain = plain_store(kb)
        rewrites = {q[0]: q[1:] for q in questions}
        multi = MultiQueryRetriever(
            retriever=plain.as_retriever(search_kwargs={"k": K}),
            llm_chain=RunnableLambda(lambda x: rewrites[x["question"]]),
            include_original=True,
        )

        async def ask_multiquery(queries: list[str]) -> Any:
            return await multi.ainvoke(queries[0])

        async def ask_naive(queries: list[str]) -> Any:
            return fuse(await asyncio.gather(*(plain.asimilarity_search_with_score(q, k=K) for q in queries)))

        async def ask_ours(queries: list[str]) -> Any:
            return fuse(await asyncio.gather(*(kb.store.asimilarity_search_with_score(q, k=K) for q in queries)))

        # Same answers: the coalesced path returns exactly what the single calls return.
        for queries in questions[:5]:
            assert await ask_naive(queries) == await ask_ours(queries)
        await ask_multiquery(questions[0])  # warm up every path once
        offset = 5
        for users in levels:
            for name, ask in (("multiquery", ask_multiquery), ("naive", ask_naive), ("ours", ask_ours)):
                batch = questions[offset : offset + users * rounds]
                offset += users * rounds
                kb.embeddings.clear()
                out[name][users] = await load(ask, batch, users, rounds)
        await plain.aclient.close()
        plain.client.close()
    return out


def run(settings: Settings, levels: tuple[int, ...] = (1, 10, 50), rounds: int = 4) -> dict[str, Any]:
    from benchmarks.corpus import questions

    need = 5 + 3 * sum(levels) * rounds
    return asyncio.run(measure(settings, questions(need), levels, rounds))


def report(results: dict[str, Any], chunks: int) -> str:
    names = {"multiquery": "(a) MultiQueryRetriever", "naive": "(b) naive concurrent searches", "ours": "(c) ours"}
    rows = []
    for users in results["ours"]:
        for key, label in names.items():
            r = results[key][users]
            rows.append([users, label, f"{r['p50'] * 1000:,.0f} ms", f"{r['p95'] * 1000:,.0f} ms", f"{r['qps']:.1f}"])
    top = max(results["ours"])
    ratio = results["ours"][top]["qps"] / results["naive"][top]["qps"]
    alone = results["ours"][min(results["ours"])]
    at10 = results["ours"].get(10, results["ours"][top])
    lines = [
        table(["users", "way", "p50", "p95", "questions/s"], rows),
        "",
        f"On {chunks:,} chunks. At {top} users ours answers **{ratio:.1f}x** the questions/s of naive concurrent "
        f"searches (target ≥ 5x: {'met' if ratio >= 5 else '**not met**'}). At 10 users its p95 is "
        f"{at10['p95'] * 1000:,.0f} ms: **{at10['p95'] / alone['p95']:.1f}x** one user's p95 "
        f"({alone['p95'] * 1000:,.0f} ms) and {at10['p95'] / alone['p50']:.1f}x one user's median "
        f"({alone['p50'] * 1000:,.0f} ms); target ≤ 2x: "
        f"{'met' if at10['p95'] <= 2 * alone['p95'] else '**not met**'} against the p95, "
        f"{'met' if at10['p95'] <= 2 * alone['p50'] else '**not met**'} against the median.",
    ]
    return "\n".join(lines)
