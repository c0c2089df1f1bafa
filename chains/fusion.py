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
    document_rrf: float = 0.0  # the part of `rrf` that came from document-level votes


def _source(hit: Hit | FusedHit) -> str:
    return str(hit.document.metadata.get("source"))


def _add(fused: dict[str, FusedHit], hit: Hit, points: float, query: int | None) -> FusedHit:
    entry = fused.setdefault(hit.id, FusedHit(hit.id, hit.document, 0.0, None))
    entry.rrf += points
    if query is not None:
        entry.queries.append(query)
    if hit.score is not None and (entry.similarity is None or hit.score > entry.similarity):
        entry.similarity = hit.score
    return entry


def reciprocal_rank_fusion(
    ranked: list[list[Hit]], document_votes: list[list[Hit]] | None = None, k: int = RRF_K
) -> list[FusedHit]:
    """Fuse ranked chunk lists: sum of 1/(k + rank), de-duplicated by chunk id, best first.

    `document_votes` are ranked lists whose hits stand for their whole document (e.g. searches
    over each document's opening): each adds 1/(k + rank) to every fused chunk of that document,
    and brings its own chunk in as a candidate when no chunk list found it.
    """
    fused: dict[str, FusedHit] = {}
    for q, hits in enumerate(ranked):
        seen: set[str] = set()
        for rank, hit in enumerate(hits, start=1):
            if hit.id not in seen:
                seen.add(hit.id)
                _add(fused, hit, 1.0 / (k + rank), q)
    votes: dict[str, float] = {}
    for hits in document_votes or []:
        seen = set()
        for rank, hit in enumerate(hits, start=1):
            if _source(hit) not in seen:
                seen.add(_source(hit))
                votes[_source(hit)] = votes.get(_source(hit), 0.0) + 1.0 / (k + rank)
                _add(fused, hit, 0.0, None)
    for entry in fused.values():
        entry.document_rrf = votes.get(_source(entry), 0.0)
        entry.rrf += entry.document_rrf
    return sorted(fused.values(), key=lambda h: (-h.rrf, -(h.similarity or 0.0), h.id))


def select(fused: list[FusedHit], k: int, threshold: float | None, per_source: int = 0) -> list[FusedHit]:
    """Drop hits below the similarity threshold (unscored hits are kept) and keep the top k.

    With `per_source` > 0, a source's chunks beyond that many wait until every other hit
    has had its place, so the top k spans more documents without ever returning fewer hits.
    """
    kept = [h for h in fused if threshold is None or h.similarity is None or h.similarity >= threshold]
    if per_source > 0:
        first: list[FusedHit] = []
        later: list[FusedHit] = []
        seen: dict[str, int] = {}
        for hit in kept:
            src = _source(hit)
            seen[src] = seen.get(src, 0) + 1
            (first if seen[src] <= per_source else later).append(hit)
        kept = first + later
    return kept[:k]
