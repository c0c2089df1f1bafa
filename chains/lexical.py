"""Keyword ranking (BM25) of the retrieved candidates: exact terms the dense model blurs."""

from __future__ import annotations

import math
from collections import Counter

from chains.state import Hit
from chains.text import keywords, words

K1, B = 1.2, 0.75


def bm25_rank(question: str, candidates: list[Hit]) -> list[Hit]:
    """Candidates that share terms with the question, best BM25 score first (IDF over the pool)."""
    pool = {h.id: h for h in candidates}
    terms = keywords(question)
    if not pool or not terms:
        return []
    tokens = {i: words(h.document.page_content) for i, h in pool.items()}
    n = len(tokens)
    avg_len = sum(len(t) for t in tokens.values()) / n or 1.0
    df = Counter(w for t in tokens.values() for w in set(t))
    scores: dict[str, float] = {}
    for i, toks in tokens.items():
        tf = Counter(toks)
        score = 0.0
        for term in terms:
            if term in tf:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                score += idf * tf[term] * (K1 + 1) / (tf[term] + K1 * (1 - B + B * len(toks) / avg_len))
        if score > 0:
            scores[i] = score
    return [pool[i] for i in sorted(scores, key=lambda i: (-scores[i], i))]
