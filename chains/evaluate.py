"""Retrieval evaluation: recall@k and MRR for the pipeline and a single-query baseline."""

from __future__ import annotations

import json
import time
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


async def evaluate(chain: RagChain, cases: list[dict[str, Any]], k: int) -> dict[str, Any]:
    """Run every question through the pipeline and the baseline on the same collection."""
    options = replace(SearchOptions.from_settings(chain.settings), k=k).clamped()
    store = chain.kb.store
    rows = []
    times = {"pipeline": 0.0, "baseline": 0.0}
    cache = store.embedding_func if isinstance(store.embedding_func, EmbeddingCache) else None
    labelled = [c for c in cases if c["sources"]]  # exported thumbs-down cases wait for their sources
    if not labelled:
        raise KnowledgeBaseError('no case names its expected "sources" yet: fill them in, then run again')
    for case in labelled:
        if cache is not None:  # each side pays for its own query embeddings
            cache.clear()
        started = time.perf_counter()
        pipeline = [s.source for s in await chain.aretrieve(case["question"], options)]
        times["pipeline"] += time.perf_counter() - started
        if cache is not None:
            cache.clear()
        started = time.perf_counter()
        baseline = [
            str(d.metadata.get("source"))
            for d, _ in await store.asimilarity_search_with_score(case["question"], k=k, expr=visible_to(TEAM_ONLY))
        ]
        times["baseline"] += time.perf_counter() - started
        rows.append(
            {
                "question": case["question"],
                "expected": case["sources"],
                "pipeline_rank": first_hit_rank(pipeline, case["sources"]),
                "baseline_rank": first_hit_rank(baseline, case["sources"]),
            }
        )
    n = len(rows)
    return {
        "k": k,
        "questions": n,
        "unlabelled": len(cases) - n,
        "collection": chain.settings.collection,
        "options": {
            "rewrites": options.rewrites,
            "mode": options.mode,
            "threshold": options.threshold,
            "chat_model": chain.chat_model is not None,
        },
        "pipeline": {
            **metrics([r["pipeline_rank"] for r in rows]),
            "ms_per_question": round(times["pipeline"] * 1000 / n, 1),
        },
        "baseline": {
            **metrics([r["baseline_rank"] for r in rows]),
            "ms_per_question": round(times["baseline"] * 1000 / n, 1),
        },
        "cases": rows,
    }


def format_report(report: dict[str, Any]) -> str:
    """A side-by-side table for people."""
    k = report["k"]
    p, b = report["pipeline"], report["baseline"]
    lines = [
        f"{report['questions']} questions, collection '{report['collection']}', k={k}, options {report['options']}",
        "",
        f"{'':<34}{'recall@' + str(k):>10}{'MRR':>8}{'ms/question':>13}",
        f"{'pipeline (rewrites + RRF)':<34}{p['recall']:>10.3f}{p['mrr']:>8.3f}{p['ms_per_question']:>13.1f}",
        f"{'baseline (single-query similarity)':<34}{b['recall']:>10.3f}{b['mrr']:>8.3f}{b['ms_per_question']:>13.1f}",
    ]
    if report.get("unlabelled"):
        lines += ["", f'{report["unlabelled"]} cases without expected sources were skipped: fill in their "sources".']
    missed = [r["question"] for r in report["cases"] if r["pipeline_rank"] is None]
    if missed:
        lines += ["", f"Pipeline misses ({len(missed)}):", *(f"  - {q}" for q in missed)]
    return "\n".join(lines)
