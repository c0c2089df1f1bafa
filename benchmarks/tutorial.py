"""1. The langchain-milvus async tutorial's experiment, reproduced side by side with our pipeline.

For n items each: add n documents, search n queries, delete n documents, three ways:
- sync: a loop of single calls (`add_documents`, `similarity_search`, `delete`), as the tutorial's baseline;
- tutorial async: `asyncio.gather` of single-item `aadd_documents` / `asimilarity_search` / `adelete`;
- ours: what the app does: one batched embed + insert + flush, concurrent searches coalesced by the store
  (one embedding request, one Milvus call), and one delete by expression.
Embeddings come from a local OpenAI-compatible server that waits a fixed time per request (a remote
provider's round trip), and from the local ONNX model.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from benchmarks.common import model_server, plain_store, table
from core.filters import field_in
from core.models import EmbeddingCache
from core.runtime import open_knowledge_base
from core.settings import Settings, load_settings
from core.store import KnowledgeBase

TUTORIAL = {"add": (65.60, 2.77), "search": (54.22, 3.72), "delete": (29.21, 0.61)}  # 100 ops: sync, async


def corpus(n: int, tag: str) -> tuple[list[Document], list[str], list[str]]:
    topics = ["turbine", "warranty", "vpn", "roadmap", "remote work", "deployment", "invoice", "badge"]
    docs, ids, queries = [], [], []
    for i in range(n):
        topic = topics[i % len(topics)]
        text = f"Note {i} about the {topic}: item {i} is handled by team {i % 7} in building {i % 11}."
        meta = {"source": f"{tag}-{i}.md", "chunk": 0, "scope": "team", "owner": "", "title": f"Note {i}"}
        docs.append(Document(page_content=text, metadata=meta))
        ids.append(f"{tag}-{i}")
        queries.append(f"Who handles item {i} of the {topic}?")
    return docs, ids, queries


async def sync_way(store: Any, docs: list[Document], ids: list[str], queries: list[str]) -> dict[str, float]:
    def run() -> dict[str, float]:
        times = {}
        started = time.perf_counter()
        for doc, i in zip(docs, ids, strict=True):
            store.add_documents([doc], ids=[i])
        times["add"] = time.perf_counter() - started
        started = time.perf_counter()
        for q in queries:
            store.similarity_search(q, k=4)
        times["search"] = time.perf_counter() - started
        started = time.perf_counter()
        for i in ids:
            store.delete(ids=[i])
        times["delete"] = time.perf_counter() - started
        return times

    return await asyncio.to_thread(run)


async def tutorial_way(store: Any, docs: list[Document], ids: list[str], queries: list[str]) -> dict[str, float]:
    times = {}
    started = time.perf_counter()
    await asyncio.gather(*(store.aadd_documents([d], ids=[i]) for d, i in zip(docs, ids, strict=True)))
    times["add"] = time.perf_counter() - started
    started = time.perf_counter()
    await asyncio.gather(*(store.asimilarity_search(q, k=4) for q in queries))
    times["search"] = time.perf_counter() - started
    started = time.perf_counter()
    await asyncio.gather(*(store.adelete(ids=[i]) for i in ids))
    times["delete"] = time.perf_counter() - started
    return times


async def our_way(kb: KnowledgeBase, docs: list[Document], ids: list[str], queries: list[str]) -> dict[str, float]:
    times = {}
    started = time.perf_counter()
    await kb.prepare(docs)
    async with kb.write_lock:
        await kb.add(docs, ids)
    await kb.flush()
    times["add"] = time.perf_counter() - started
    if isinstance(kb.embeddings, EmbeddingCache):
        kb.embeddings.clear()
    started = time.perf_counter()
    results = await asyncio.gather(*(kb.store.asimilarity_search_with_score(q, k=4) for q in queries))
    times["search"] = time.perf_counter() - started
    assert all(results)
    started = time.perf_counter()
    deleted = await kb.delete(field_in("pk", ids))
    times["delete"] = time.perf_counter() - started
    assert deleted == len(ids), deleted
    return times


async def one_setting(settings: Settings, n: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for way in ("sync", "tutorial", "ours"):
        tag = f"{way}{n}"
        docs, ids, queries = corpus(n, tag)
        async with open_knowledge_base(settings.model_copy(update={"collection": f"bench_{tag}"})) as kb:
            if way == "ours":
                out[way] = await our_way(kb, docs, ids, queries)
            else:
                store = plain_store(kb)
                try:
                    fn = sync_way if way == "sync" else tutorial_way
                    out[way] = await fn(store, docs, ids, queries)
                finally:
                    await store.aclient.close()
                    store.client.close()
    return out


def run(data: Path, sizes: tuple[int, ...] = (10, 100), latency: float = 0.1) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with model_server(embed_latency_s=latency) as slow, model_server(embed_latency_s=0.0) as instant:
        setups = {
            f"remote ({latency * 1000:.0f} ms per request)": {"openai_base_url": slow},
            "remote (0 ms: local work only)": {"openai_base_url": instant},
            "local ONNX model": {},
        }
        for label, extra in setups.items():
            model = {"embedding_provider": "openai", "embedding_model": "stub-embed"} if extra else {}
            for n in sizes:
                folder = data / f"tutorial-{len(results)}"
                settings = load_settings(
                    milvus_uri=str(folder / "kb.db"),
                    database_url=f"sqlite:///{folder}/app.db",
                    files_dir=str(folder / "files"),
                    **model,
                    **extra,
                )
                results[f"{label}|{n}"] = asyncio.run(one_setting(settings, n))
    results["latency"] = latency
    return results


def report(results: dict[str, Any]) -> str:
    latency = results["latency"]
    rows = []
    for key, times in results.items():
        if key == "latency":
            continue
        label, n = key.split("|")
        for op in ("add", "search", "delete"):
            s, t, o = times["sync"][op], times["tutorial"][op], times["ours"][op]
            rows.append([label, n, op, f"{s:.2f} s", f"{t:.2f} s", f"**{o:.3f} s**", f"{s / o:.0f}x", f"{t / o:.1f}x"])
    lines = [
        table(
            [
                "embeddings",
                "n",
                "operation",
                "sync loop",
                "tutorial async (gather)",
                "ours",
                "sync / ours",
                "tutorial / ours",
            ],
            rows,
        )
    ]
    # The target: ours within two round trips of the injected latency plus the local work.
    slow = next(k for k in results if k.startswith("remote (") and k.endswith("|100") and "0 ms:" not in k)
    local = next(k for k in results if "0 ms:" in k and k.endswith("|100"))
    checks = []
    for op in ("add", "search", "delete"):
        ours, work = results[slow]["ours"][op], results[local]["ours"][op]
        bound = work + 2 * latency
        ratio = results[slow]["sync"][op] / ours
        tut = TUTORIAL[op][0] / TUTORIAL[op][1]
        checks.append(
            [
                op,
                f"{ours:.3f} s",
                f"{bound:.3f} s",
                "yes" if ours <= bound else "**no**",
                f"{ratio:.0f}x",
                f"{tut:.0f}x",
                "yes" if ratio >= tut else "**no**",
            ]
        )
    lines.append("")
    lines.append(f"Targets at n = 100 with {latency * 1000:.0f} ms per embedding request:")
    lines.append("")
    lines.append(
        table(
            [
                "operation",
                "ours",
                "local work + 2 round trips",
                "within",
                "sync / ours",
                "tutorial's sync / async",
                "at least the tutorial's",
            ],
            checks,
        )
    )
    return "\n".join(lines)
