"""The offline answerer: the most relevant sentences of the sources, cited, streamed."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from langchain_core.embeddings import Embeddings

from chains.text import LEADING_MARKERS, keywords, sentences

INTRO = (
    "No chat model is configured, so here are the most relevant passages from your documents "
    "(extracted, not generated):\n\n"
)
NOTHING_FOUND = (
    "I could not find anything about this in the knowledge base. Try other words, or upload documents that cover it."
)
MAX_SENTENCES = 4
MAX_PER_SOURCE = 2
RELATIVE_CUT = 0.75  # a sentence must score at least this share of the best one


@dataclass
class Candidate:
    number: int
    position: int
    text: str


def body(chunk_text: str) -> str:
    """A chunk's text without the title/headings line it was indexed with."""
    head, sep, rest = chunk_text.partition("\n\n")
    return rest if sep and "\n" not in head else chunk_text


def candidates(numbered_texts: Sequence[tuple[int, str]]) -> list[Candidate]:
    """Sentences long enough to stand alone, from every source."""
    found = []
    for number, text in numbered_texts:
        for position, sentence in enumerate(sentences(body(text))):
            if 25 <= len(sentence) <= 600 and len(keywords(sentence)) >= 3:
                found.append(Candidate(number, position, sentence))
    return found


def as_list_item(sentence: str) -> str:
    """A sentence made safe as a Markdown list item: no bullet of its own, no heading, no code fence."""
    text = LEADING_MARKERS.sub("", sentence.strip()).replace("```", "")
    if text[:1] in ("#", ">", "=", "|"):
        text = "\\" + text
    return text


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    na = math.sqrt(sum(x * x for x in a)) or 1.0
    nb = math.sqrt(sum(y * y for y in b)) or 1.0
    return dot / (na * nb)


def pick(question: str, found: list[Candidate], vectors: list[list[float]], qvec: list[float]) -> list[Candidate]:
    """Best sentences by meaning and shared keywords, a few per source, in reading order per source."""
    qwords = set(keywords(question))
    scored = []
    for cand, vec in zip(found, vectors, strict=True):
        overlap = len(qwords & set(keywords(cand.text))) / (len(qwords) or 1)
        rank_bonus = 0.02 * max(0, 5 - cand.number)
        scored.append((_cosine(qvec, vec) + 0.3 * overlap + rank_bonus, cand))
    scored.sort(key=lambda pair: -pair[0])
    if scored:
        best = scored[0][0]
        scored = [pair for pair in scored if pair[0] >= best * RELATIVE_CUT]
    chosen: list[Candidate] = []
    per_source: dict[int, int] = {}
    for _, cand in scored:
        if per_source.get(cand.number, 0) >= MAX_PER_SOURCE:
            continue
        chosen.append(cand)
        per_source[cand.number] = per_source.get(cand.number, 0) + 1
        if len(chosen) == MAX_SENTENCES:
            break
    return sorted(chosen, key=lambda c: (c.number, c.position))


async def extractive_answer(
    question: str, numbered_texts: Sequence[tuple[int, str]], embeddings: Embeddings, intro: str = INTRO
) -> AsyncIterator[str]:
    """Stream an answer made of cited source sentences, word by word, after `intro`."""
    if not numbered_texts:
        text = NOTHING_FOUND
    else:
        found = candidates(numbered_texts)
        if not found:  # short chunks: quote them whole
            found = [Candidate(n, 0, body(t).strip()[:500]) for n, t in numbered_texts[:MAX_SENTENCES]]
        vectors = await embeddings.aembed_documents([c.text for c in found])
        qvec = await embeddings.aembed_query(question)
        chosen = pick(question, found, vectors, qvec)
        text = intro + "\n".join(f"- {as_list_item(c.text)} [{c.number}]" for c in chosen)
    for i, piece in enumerate(text.split(" ")):
        yield piece if i == 0 else " " + piece
        if i % 8 == 7:
            await asyncio.sleep(0)  # let other sessions run between bursts
