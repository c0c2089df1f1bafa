"""Stand-ins for what a unit test cannot run: a deterministic embedding and an in-memory searcher.

Ranking quality is never asserted with these (the integration tests use the real model and Milvus);
they make the pipeline's plumbing testable in milliseconds.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from chains.text import words

DIMENSIONS = 256


class HashEmbeddings(Embeddings):
    """A bag of words hashed into a fixed vector: texts sharing words are similar, nothing else is."""

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * DIMENSIONS
        for word in words(text):
            vector[int(hashlib.blake2b(word.encode(), digest_size=4).hexdigest(), 16) % DIMENSIONS] += 1.0
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        return [x / norm for x in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)


_PK_IN = re.compile(r"pk in \[([^\]]*)\]")


class MemorySearcher:
    """The chains' `Searcher` over a list of documents (metadata: pk, source, chunk, ...).

    Of Milvus's filter language it honours only what the pipeline itself adds (`chunk == 0` for document
    openings, `pk in [...]` for measuring): access rules are Milvus's to enforce and are tested there.
    """

    def __init__(self, documents: list[Document], full_text: bool = True) -> None:
        self.embeddings = HashEmbeddings()
        self.documents = documents
        self.vectors = self.embeddings.embed_documents([d.page_content for d in documents])
        self._full_text = full_text
        self.calls: list[tuple[str, str]] = []  # (kind, query), for assertions on what was searched

    @property
    def has_full_text(self) -> bool:
        return self._full_text

    def _allowed(self, doc: Document, expr: str | None) -> bool:
        if expr and "chunk == 0" in expr and doc.metadata.get("chunk") != 0:
            return False
        if expr and (found := _PK_IN.search(expr)):
            return f'"{doc.metadata.get("pk")}"' in found.group(1)
        return True

    async def search_dense(self, query: str, k: int, expr: str | None) -> list[tuple[Document, float]]:
        self.calls.append(("dense", query))
        q = self.embeddings.embed_query(query)
        scored = [
            (d, sum(a * b for a, b in zip(q, v, strict=True)))
            for d, v in zip(self.documents, self.vectors, strict=True)
            if self._allowed(d, expr)
        ]
        return sorted(scored, key=lambda pair: -pair[1])[:k]

    async def search_mmr(
        self, query: str, k: int, fetch_k: int, lambda_mult: float, expr: str | None
    ) -> list[Document]:
        return [d for d, _ in await self.search_dense(query, k, expr)]

    async def search_full_text(self, query: str, k: int, expr: str | None) -> list[tuple[Document, float]]:
        self.calls.append(("full text", query))
        terms = set(words(query))
        scored = [(d, float(len(terms & set(words(d.page_content))))) for d in self.documents if self._allowed(d, expr)]
        return sorted([p for p in scored if p[1] > 0], key=lambda pair: -pair[1])[:k]

    async def containing(self, spellings: Sequence[str], expr: str | None) -> int | None:
        allowed = [d for d in self.documents if self._allowed(d, expr)]
        return sum(any(s in d.page_content for s in spellings) for d in allowed) if spellings else len(allowed)


def chunk(pk: str, source: str, text: str, number: int = 0, **meta: object) -> Document:
    """A chunk as the knowledge base stores it."""
    return Document(page_content=text, metadata={"pk": pk, "source": source, "chunk": number, **meta})
