"""Step 4, fuse: reciprocal rank fusion of every ranked hit list into the numbered sources."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Sequence

from langchain_core.runnables import Runnable, RunnableLambda

from chains.extractive import unit
from chains.lexical import bm25_rank
from chains.options import Searcher
from chains.state import Fused, FusedHit, Hit, Source, State, elapsed_ms
from chains.text import (
    WORD,
    acronyms,
    asked_words,
    exact_terms,
    keywords,
    names,
    spelled_out,
    stem,
    stems_of,
    without_inflection,
    words,
)
from core.filters import all_of, field_in
from core.schema import PK

RRF_K = 60
# The full-text list's weight beside each dense list's 1.0: at 1.0 it outvoted the dense lists on everyday
# questions (git-doc, the PostgreSQL manual); at 0.35 the pipeline beats one dense search on every development
# corpus and keeps its large lead on exact terms (README: Evaluation).
FULL_TEXT_WEIGHT = 0.35
MAX_NAMES_CHECKED = 4
# An exact term of the question (a version, an identifier) held by at most this many chunks is rare enough
# that a full-text hit holding it is kept below the score floor (`rare_term_hits`).
RARE_TERM_CHUNKS = 10
# A second abstention signal, for hits that clear the score floor without clearly matching: how much of the
# question the documents know at all. Its content words weigh by rarity in the documents (IDF, a word they
# never contain weighs most); when the best hit is below SUPPORT_CEILING and the words they contain carry
# less than `min_support` of that weight, the question is about something else ("the best hiking trails in
# Patagonia" over a database manual). A third, below the same ceiling: when no retrieved passage holds
# `min_coverage` of that weight, the passages share a word or two with the question but answer something
# else ("vacation days for new employees" over the git manual, whose words "days", "new" and "employees" are
# scattered over unrelated pages). Both fitted on the three development corpora (README: Evaluation).
SUPPORT_CEILING = 0.45
MAX_SUPPORT_WORDS = 8
# Word rarity means something only in a collection with a vocabulary of its own: in a few small documents
# most everyday words are missing ("who handles its warranty claims?"), so the signal waits for this many chunks.
MIN_SUPPORT_CHUNKS = 500


def cased(word: str, typed: str) -> list[str]:
    """A lower-case word as typed, in lower case, capitalised and in upper case."""
    return list(dict.fromkeys([typed, word, word.capitalize(), word.upper()]))


def spellings_of(word: str, typed: str) -> list[str]:
    """How a question's word may appear in a chunk: `cased`, and its stem ("handles" -> "handle", which also
    finds "handled")."""
    stems = [s for s in [without_inflection(word)] if s != word]
    return list(dict.fromkeys([*cased(word, typed), *stems, *(s.capitalize() for s in stems)]))


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
    ranked: list[list[Hit]],
    document_votes: list[list[Hit]] | None = None,
    k: int = RRF_K,
    weights: list[float] | None = None,
) -> list[FusedHit]:
    """Fuse ranked chunk lists: sum of 1/(k + rank), de-duplicated by chunk id, best first.

    `document_votes` are ranked lists whose hits stand for their whole document (e.g. searches
    over each document's opening): each adds 1/(k + rank) to every fused chunk of that document,
    and brings its own chunk in as a candidate when no chunk list found it.
    """
    fused: dict[str, FusedHit] = {}
    for q, hits in enumerate(ranked):
        weight = weights[q] if weights else 1.0
        seen: set[str] = set()
        for rank, hit in enumerate(hits, start=1):
            if hit.id not in seen:
                seen.add(hit.id)
                _add(fused, hit, weight / (k + rank), q)
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


def select(
    fused: list[FusedHit], k: int, threshold: float | None, per_source: int = 0, keep: frozenset[str] = frozenset()
) -> list[FusedHit]:
    """Drop hits below the similarity threshold (unscored hits and the ids in `keep` stay) and keep the top k.

    With `per_source` > 0, a source's chunks beyond that many wait until every other hit
    has had its place, so the top k spans more documents without ever returning fewer hits.
    """
    kept = [h for h in fused if threshold is None or h.similarity is None or h.similarity >= threshold or h.id in keep]
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


def to_source(number: int, hit: FusedHit) -> Source:
    meta = hit.document.metadata
    page = meta.get("page")
    return Source(
        number=number,
        id=hit.id,
        source=str(meta.get("source", "?")),
        title=str(meta.get("title", "")),
        headings=str(meta.get("headings", "")),
        page=int(page) if isinstance(page, int | float) else None,
        score=None if hit.similarity is None else round(float(hit.similarity), 4),
        rrf=round(hit.rrf, 5),
        text=hit.document.page_content,
        file_type=str(meta.get("file_type", "")),
        doc_hash=str(meta.get("doc_hash", "")),
    )


async def measure(searcher: Searcher, hits: list[FusedHit], question: str, expr: str | None) -> None:
    """Give hits only the full-text index found the dense similarity to the question, so the same
    threshold applies to every hit (a question sharing one common word with a chunk is not a match)."""
    ids = [h.id for h in hits]
    found = await searcher.search_dense(question, len(ids), all_of(expr, field_in(PK, ids)))
    scores = {str(d.metadata.get("pk")): float(s) for d, s in found}
    # An approximate index can miss a chunk even within a filter (HNSW among many identical vectors): such a
    # hit is measured directly, never dropped for want of a score.
    missed = [h for h in hits if h.id not in scores]
    if missed:
        query = unit(await searcher.embeddings.aembed_query(question))
        vectors = await searcher.embeddings.aembed_documents([h.document.page_content for h in missed])
        for hit, vector in zip(missed, vectors, strict=True):
            scores[hit.id] = float(unit(vector) @ query)
    for hit in hits:
        hit.similarity = scores[hit.id]


def holds_term(text: str, term: str) -> bool:
    """`term` in `text` as a whole word, as typed ("20.04" is not in "120.04" or "20.045")."""
    return re.search(rf"(?<![\w.]){re.escape(term)}(?![\w]|\.\w)", text) is not None


async def rare_term_hits(searcher: Searcher, question: str, under: list[FusedHit], expr: str | None) -> frozenset[str]:
    """Of the full-text hits `under` the score floor, those holding one of the question's exact terms (a
    version, an identifier, a CamelCase name) that few chunks contain: such a hit is evidence whatever its
    dense similarity (a CSV row "version: 20.04 LTS; ...; eol: 2025-05-29" scores 0.14-0.28 against "when
    does Ubuntu 20.04 reach end of life?"), so the floor does not drop it."""
    terms = exact_terms(question)[:MAX_NAMES_CHECKED]
    if not under or not terms:
        return frozenset()
    counts = await asyncio.gather(*(searcher.containing([t], expr) for t in terms))
    rare = [t for t, n in zip(terms, counts, strict=True) if n is not None and 0 < n <= RARE_TERM_CHUNKS]
    return frozenset(h.id for h in under if any(holds_term(h.document.page_content, t) for t in rare))


async def unknown_names(searcher: Searcher, question: str, expr: str | None) -> list[str]:
    """The names in the question (identifiers, CamelCase, acronyms) that no chunk the viewer may see contains,
    in any of their usual spellings: the documents cannot answer a question about what they never mention."""
    unknown = []
    for name in names(question)[:MAX_NAMES_CHECKED]:
        if await searcher.containing(cased(name.lower(), name), expr) == 0:  # None: cannot tell
            unknown.append(name)
    return unknown


def support_terms(text: str) -> list[str]:
    """The content words of `text` the word checks weigh (at most MAX_SUPPORT_WORDS)."""
    return keywords(text)[:MAX_SUPPORT_WORDS]


async def word_weights(searcher: Searcher, texts: Sequence[str], expr: str | None) -> dict[str, tuple[float, int]]:
    """The `support_terms` of every text (each counted once), each with its weight by rarity in the chunks the
    viewer may see (IDF; a word no chunk contains weighs most) and how many chunks contain it; {} when the
    collection cannot tell or is too small for rarity to mean anything (MIN_SUPPORT_CHUNKS)."""
    terms = list(dict.fromkeys(t for text in texts for t in support_terms(text)))
    if not terms:
        return {}
    typed: dict[str, str] = {}
    for w in (w for text in texts for w in WORD.findall(text)):
        typed.setdefault(w.lower(), w)  # as the first text spells it
    counts = await asyncio.gather(
        searcher.containing([], expr),
        *(searcher.containing(spellings_of(w, typed.get(w, w)), expr) for w in terms),
    )
    total, frequencies = counts[0], counts[1:]
    if total is None or total < MIN_SUPPORT_CHUNKS or any(f is None for f in frequencies):
        return {}
    return {w: (math.log((total + 1) / ((f or 0) + 1)), f or 0) for w, f in zip(terms, frequencies, strict=True)}


def weights_of(text: str, counted: dict[str, tuple[float, int]]) -> dict[str, tuple[float, int]]:
    """The part of `word_weights` that weighs `text`'s own support terms."""
    return {w: counted[w] for w in support_terms(text) if w in counted}


def unsupported(weights: dict[str, tuple[float, int]], question: str, min_support: float) -> list[str]:
    """The question's words no visible chunk contains, when the words the chunks do contain carry less than
    `min_support` of the question's weight; [] when the documents know enough of it."""
    if not weights or min_support <= 0:
        return []
    typed = {w.lower(): w for w in WORD.findall(question)}
    known = sum(weight for weight, found in weights.values() if found)
    absent = [typed.get(w, w) for w, (_, found) in weights.items() if not found]
    return absent if absent and known < min_support * sum(weight for weight, _ in weights.values()) else []


def coverage(
    weights: dict[str, tuple[float, int]], passage: str, asked: dict[str, frozenset[str]] | None = None
) -> float:
    """The share of the question's word weight that one passage holds (by stem, or as an acronym: "eol"
    holds "end of life"; a compound such as `core.autocrlf` or `24.04` verbatim)."""
    total = sum(weight for weight, _ in weights.values())
    if total <= 0:
        return 1.0
    stems = stems_of(passage) | spelled_out(set(words(passage)), asked or {})
    lower = passage.lower()
    held = sum(weight for w, (weight, _) in weights.items() if stem(w) in stems or (not w.isalnum() and w in lower))
    return held / total


async def unsupported_words(searcher: Searcher, question: str, expr: str | None, min_support: float) -> list[str]:
    """`unsupported` over the visible chunks (see `word_weights`)."""
    if min_support <= 0:
        return []
    return unsupported(await word_weights(searcher, [question], expr), question, min_support)


def make_fuse(searcher: Searcher) -> Runnable[State, Fused]:
    """Step 4, fuse: one ranking from every list (RRF), measured, thresholded, numbered."""

    async def fuse(state: State) -> Fused:
        started = time.perf_counter()
        options, retrieved, standalone = state["options"], state["retrieved"], state["condensed"].standalone
        threshold = options.threshold if options.mode == "similarity" else None
        ranked = retrieved.chunks + retrieved.full_text
        weights = [1.0] * len(retrieved.chunks) + [FULL_TEXT_WEIGHT] * len(retrieved.full_text)
        keyword_ranking: list[str] = []
        if options.keyword_rank:  # one more ranking of the same candidates, by the question's terms
            candidates = [h for hits in retrieved.chunks + retrieved.full_text + retrieved.openings for h in hits]
            keyword_list = bm25_rank(standalone, candidates)
            ranked.append(keyword_list)
            weights.append(1.0)
            keyword_ranking = [h.id for h in keyword_list[: options.fetch_k]]
        fused = reciprocal_rank_fusion(ranked, retrieved.openings, weights=weights)
        if retrieved.full_text and threshold is not None:
            unmeasured = [h for h in fused if h.similarity is None]  # any of them may be chosen
            if unmeasured:
                await measure(searcher, unmeasured, standalone, state["expr"])
        ranking = [
            {
                "id": h.id,
                "source": h.document.metadata.get("source"),
                "rrf": round(h.rrf, 5),
                "score": None if h.similarity is None else round(h.similarity, 4),
                "queries": h.queries,
            }
            for h in fused[: options.fetch_k]
        ]
        rare = frozenset[str]()
        if retrieved.full_text and threshold is not None:  # only a full-text hit under the floor needs the evidence
            found = {h.id for hits in retrieved.full_text for h in hits}
            under = [h for h in fused if h.id in found and h.similarity is not None and h.similarity < threshold]
            rare = await rare_term_hits(searcher, standalone, under, state["expr"])
        chosen = select(fused, options.k, threshold, options.per_source, rare)
        # A question naming something the documents never mention is not answered from other passages.
        unknown = await unknown_names(searcher, state["question"], state["expr"]) if chosen else []
        best = max((h.similarity for h in chosen if h.similarity is not None), default=None)
        uncovered = False
        if chosen and not unknown and threshold is not None and best is not None and best < SUPPORT_CEILING:
            # A follow-up's passages are judged with the words it took from earlier turns too: one count per word.
            judged = asked_words(standalone)
            counted = await word_weights(searcher, [state["question"], judged], state["expr"])
            asked = weights_of(state["question"], counted)
            unknown = unsupported(asked, state["question"], options.min_support)
            if not unknown and asked and options.min_coverage > 0:
                judged_weights, spelled = weights_of(judged, counted), acronyms(judged)
                held = max(coverage(judged_weights, h.document.page_content, spelled) for h in chosen)
                uncovered = held < options.min_coverage
        sources = [] if unknown or uncovered else [to_source(n, h) for n, h in enumerate(chosen, start=1)]
        return Fused(sources, ranking, keyword_ranking, elapsed_ms(started), unknown)

    return RunnableLambda(fuse).with_config(run_name="fuse")
