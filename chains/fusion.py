"""Reciprocal rank fusion of several ranked hit lists."""

from __future__ import annotations

from dataclasses import dataclass, field

from langchain_core.documents import Document

RRF_K = 60


@dataclass
class Hit:
    """One retrieved chunk for one query."""

    id: str
    document: Document
    score: float | None  # similarity (higher is better); None when the search gives none (MMR)


@dataclass
class FusedHit:
    """A chunk after fusion: its RRF score, its best similarity and the queries that found it."""

    id: str
    document: Document
    rrf: float
    similarity: float | None
    queries: list[int] = field(default_factory=list)


def reciprocal_rank_fusion(ranked: list[list[Hit]], k: int = RRF_K) -> list[FusedHit]:
    """Fuse ranked lists: sum of 1/(k + rank), de-duplicated by chunk id, best first."""
    fused: dict[str, FusedHit] = {}
    for q, hits in enumerate(ranked):
        seen: set[str] = set()
        for rank, hit in enumerate(hits, start=1):
            if hit.id in seen:
                continue
            seen.add(hit.id)
            entry = fused.setdefault(hit.id, FusedHit(hit.id, hit.document, 0.0, None))
            entry.rrf += 1.0 / (k + rank)
            entry.queries.append(q)
            if hit.score is not None and (entry.similarity is None or hit.score > entry.similarity):
                entry.similarity = hit.score
    return sorted(fused.values(), key=lambda h: (-h.rrf, -(h.similarity or 0.0), h.id))


def select(fused: list[FusedHit], k: int, threshold: float | None) -> list[FusedHit]:
    """Drop hits below the similarity threshold (unscored hits are kept), keep the top k."""
    kept = [h for h in fused if threshold is None or h.similarity is None or h.similarity >= threshold]
    return kept[:k]
