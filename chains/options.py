"""Per-question retrieval options, and what the chain needs from a knowledge base to search."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from core.settings import MAX_K, MAX_REWRITES, Settings

FETCH_K = 20  # hits fetched per query before fusion
MAX_FETCH_K = 200
MMR_LAMBDA = 0.5  # MMR's balance of relevance (1) and diversity (0)


@dataclass(frozen=True)
class SearchOptions:
    """Per-question retrieval knobs (defaults from settings; the UI may override them)."""

    k: int
    fetch_k: int = FETCH_K
    rewrites: int = 1
    mode: Literal["similarity", "mmr"] = "similarity"
    threshold: float | None = None
    mmr_lambda: float = MMR_LAMBDA
    # Off by default: each cost retrieval on at least one development corpus (README: Evaluation).
    openings: bool = False
    per_source: int = 0
    keyword_rank: bool = False
    hybrid: bool = False  # also search the BM25 full-text index, when the collection has one
    min_support: float = 0.0  # share of the question's word weight the documents must know (chains.fusion)
    min_coverage: float = 0.0  # share of it one retrieved passage must hold (chains.fusion)

    @classmethod
    def from_settings(cls, s: Settings) -> SearchOptions:
        return cls(
            k=s.k,
            fetch_k=max(FETCH_K, s.k),
            rewrites=s.rewrites,
            mode=s.search_mode,
            threshold=s.score_threshold,
            hybrid=s.hybrid_search,
            min_support=s.min_support,
            min_coverage=s.min_coverage,
        )

    def clamped(self) -> SearchOptions:
        """The same options forced into safe ranges (values may come from a client)."""
        k = min(max(int(self.k), 1), MAX_K)
        mode: Literal["similarity", "mmr"] = "mmr" if self.mode == "mmr" else "similarity"
        threshold = None if self.threshold is None else min(max(float(self.threshold), -1.0), 1.0)
        return replace(
            self,
            k=k,
            fetch_k=min(max(int(self.fetch_k), k), MAX_FETCH_K),
            rewrites=min(max(int(self.rewrites), 0), MAX_REWRITES),
            mode=mode,
            threshold=threshold,
            mmr_lambda=min(max(float(self.mmr_lambda), 0.0), 1.0),
            openings=bool(self.openings),
            per_source=min(max(int(self.per_source), 0), MAX_K),
            keyword_rank=bool(self.keyword_rank),
            hybrid=bool(self.hybrid),
            min_support=min(max(float(self.min_support), 0.0), 1.0),
            min_coverage=min(max(float(self.min_coverage), 0.0), 1.0),
        )


class Searcher(Protocol):
    """What the chain needs from a knowledge base (core.store.KnowledgeBase implements it)."""

    embeddings: Embeddings

    @property
    def has_full_text(self) -> bool: ...

    async def search_dense(self, query: str, k: int, expr: str | None) -> list[tuple[Document, float]]: ...

    async def search_mmr(
        self, query: str, k: int, fetch_k: int, lambda_mult: float, expr: str | None
    ) -> list[Document]: ...

    async def search_full_text(self, query: str, k: int, expr: str | None) -> list[tuple[Document, float]]: ...

    async def containing(self, spellings: Sequence[str], expr: str | None) -> int | None:
        """How many chunks matching `expr` contain any of `spellings` verbatim; with no spellings, how many
        chunks match `expr` (None: cannot tell)."""
        ...
