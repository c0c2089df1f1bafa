"""Retrieval evaluation: recall@k and MRR for the pipeline and a single-query baseline."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from chains.pipeline import RagChain, SearchOptions
from core.access import TEAM_ONLY, visible_to
from core.errors import KnowledgeBaseError
from core.models import EmbeddingCache


def load_dataset(path: Path) -> list[dict[str, Any]]:
    """Read `{"question": ..., "sources": [...]}` lines, with a plain error for bad lines."""
    cases = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
            assert isinstance(case["question"], str) and isinstance(case["sources"], list)
        except (json.JSONDecodeError, KeyError, AssertionError, TypeError) as exc:
            raise KnowledgeBaseError(f'{path}:{n}: expected {{"question": str, "sources": [str, ...]}}') from exc
        cases.append(case)
    if not cases:
        raise KnowledgeBaseError(f"{path} holds no questions")
    return cases


def matches(retrieved: str, expected: list[str]) -> bool:
    """A retrieved source counts when it equals an expected one or ends with its path."""
    return any(retrieved == e or retrieved.endswith("/" + e.lstrip("/")) for e in expected)


def first_hit_rank(retrieved: list[str], expected: list[str]) -> int | None:
    """1-based rank of the first retrieved chunk from an expected source."""
    return next((i for i, src in enumerate(retrieved, start=1) if matches(src, expected)), None)


def metrics(ranks: list[int | None]) -> dict[str, float]:
    """Recall (any hit in the top k) and mean reciprocal rank."""
    n = len(ranks) or 1
    return {
        "recall": round(sum(r is not None for r in ranks) / n, 4),
        "mrr": round(sum(1.0 / r for r in ranks if r is not None) / n, 4),
    }


Search = Callable[[str], Awaitable[list[str]]]  # a question -> the sources of the top k, in order

LABELS = {
    "pipeline": "pipeline (rewrites + RRF)",
    "hybrid": "pipeline, hybrid (+ BM25 index)",
    "baseline": "baseline (single-query similarity)",
    "full_text": "baseline (single-query BM25)",
}


def systems(chain: RagChain, options: SearchOptions, compare_hybrid: bool) -> dict[str, Search]:
    """What is evaluated: the pipeline as configured and a single-query dense search; with
    `compare_hybrid` (on a collection with the full-text index), the pipeline dense-only and hybrid,
    and a single BM25 search too."""
    k = options.k
    store, full_text = chain.kb.store, chain.kb.full_text
    expr = visible_to(TEAM_ONLY)

    def pipeline(opts: SearchOptions) -> Search:
        async def run(question: str) -> list[str]:
            return [s.source for s in await chain.aretrieve(question, opts)]

        return run

    async def baseline(question: str) -> list[str]:
        return [
            str(d.metadata.get("source"))
            for d, _ in await store.asimilarity_search_with_score(question, k=k, expr=expr)
        ]

    if not compare_hybrid or full_text is None:
        return {"pipeline": pipeline(options), "baseline": baseline}

    async def bm25(question: str) -> list[str]:
        hits = await full_text.asimilarity_search_with_score(question, k=k, expr=expr)
        return [str(d.metadata.get("source")) for d, _ in hits]

    return {
        "pipeline": pipeline(replace(options, hybrid=False)),
        "hybrid": pipeline(replace(options, hybrid=True)),
        "baseline": baseline,
        "full_text": bm25,
    }


async def evaluate(
    chain: RagChain, cases: list[dict[str, Any]], k: int, compare_hybrid: bool = False
) -> dict[str, Any]:
    """Run every question through each system (`systems`) on the same collection."""
    options = replace(SearchOptions.from_settings(chain.settings), k=k).clamped()
    runs = systems(chain, options, compare_hybrid)
    rows = []
    times = dict.fromkeys(runs, 0.0)
    cache = chain.kb.store.embedding_func if isinstance(chain.kb.store.embedding_func, EmbeddingCache) else None
    labelled = [c for c in cases if c["sources"]]  # exported thumbs-down cases wait for their sources
    if not labelled:
        raise KnowledgeBaseError('no case names its expected "sources" yet: fill them in, then run again')
    for case in labelled:
        row: dict[str, Any] = {"question": case["question"], "expected": case["sources"]}
        for name, search in runs.items():
            if cache is not None:  # each system pays for its own query embeddings
                cache.clear()
            started = time.perf_counter()
            retrieved = await search(case["question"])
            times[name] += time.perf_counter() - started
            row[f"{name}_rank"] = first_hit_rank(retrieved, case["sources"])
        rows.append(row)
    n = len(rows)
    report: dict[str, Any] = {
        "k": k,
        "questions": n,
        "unlabelled": len(cases) - n,
        "collection": chain.settings.collection,
        "options": {
            "rewrites": options.rewrites,
            "mode": options.mode,
            "threshold": options.threshold,
            "hybrid": options.hybrid if "hybrid" not in runs else "compared",
            "chat_model": chain.chat_model is not None,
        },
    }
    if compare_hybrid and chain.kb.full_text is None:
        report["full_text_missing"] = chain.kb.full_text_note
    for name in runs:
        report[name] = {
            **metrics([r[f"{name}_rank"] for r in rows]),
            "ms_per_question": round(times[name] * 1000 / n, 1),
        }
    report["cases"] = rows
    return report


def format_report(report: dict[str, Any]) -> str:
    """A side-by-side table for people."""
    k = report["k"]
    lines = [
        f"{report['questions']} questions, collection '{report['collection']}', k={k}, options {report['options']}",
        "",
        f"{'':<34}{'recall@' + str(k):>10}{'MRR':>8}{'ms/question':>13}",
    ]
    for name, label in LABELS.items():
        if name in report:
            r = report[name]
            lines.append(f"{label:<34}{r['recall']:>10.3f}{r['mrr']:>8.3f}{r['ms_per_question']:>13.1f}")
    if report.get("full_text_missing"):
        lines += ["", f"No hybrid comparison: {report['full_text_missing']}."]
    if report.get("unlabelled"):
        lines += ["", f'{report["unlabelled"]} cases without expected sources were skipped: fill in their "sources".']
    missed = [r["question"] for r in report["cases"] if r["pipeline_rank"] is None]
    if missed:
        lines += ["", f"Pipeline misses ({len(missed)}):", *(f"  - {q}" for q in missed)]
    return "\n".join(lines)
