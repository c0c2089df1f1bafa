"""The offline answerer: the most relevant sentences of the sources, cited, streamed."""

from __future__ import annotations

import asyncio
import math
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, replace

import numpy as np
from langchain_core.embeddings import Embeddings

from chains.text import (
    LEADING_MARKERS,
    acronyms,
    asked_words,
    keywords,
    sentences,
    spelled_out,
    stem,
    stems_of,
    words,
)
from core.markdown import escape_markdown

INTRO = (
    "No chat model is configured, so here are the most relevant passages from your documents "
    "(extracted, not generated):\n\n"
)
TRY_AGAIN = "Try other words, or upload documents that cover it."
NOTHING_FOUND = f"I could not find anything about this in the knowledge base. {TRY_AGAIN}"


def nothing_about(unknown: Sequence[str]) -> str:
    """The plain answer when the documents cannot answer, naming what they never mention."""
    if not unknown:
        return NOTHING_FOUND
    named = ", ".join(f"“{escape_markdown(n)}”" for n in unknown)
    return f"The documents never mention {named}, so I cannot answer this from them. {TRY_AGAIN}"


MAX_SENTENCES = 5
MAX_PER_SOURCE = 3
AFTER_BEST = 2  # sentences shown after the best one (what a definition says next: its default, its unit)
# When the best sentence lacks some of the question's own words ("default" in "What's the default
# max_wal_size?"), the first of this many sentences after it that holds one is shown too: a definition's
# default, unit or range often comes a few sentences later ("... The default is 1 GB.").
LOOK_AHEAD = 5
NEIGHBOUR_CHARS = 600  # a neighbouring sentence longer than this is left out of a passage
OWN_WORDS = 0.5  # weight of the share of the question's own words a sentence contains (IDF-weighted)
CONTEXT_WORDS = 0.15  # the same for words a follow-up took from earlier turns
# A sentence is about what the sentences before it name: "The default is 128MB" follows "shared_buffers
# (integer) Sets the amount of memory ...". The question's words a sentence lacks but the BEFORE_SENTENCES
# before it hold count at this share of their weight.
BEFORE_SENTENCES = 2
BEFORE_WORDS = 0.4
# A table row's vector says little ("version: 10; codename: Buster; eol: 2022-09-10"): its words count
# this many times as much as a sentence's.
TABLE_LEXICAL = 2.0
# A question after an amount ("how many", "the default", "what range") prefers a sentence holding a number.
NUMBER_BONUS = 0.1
QUANTITY = re.compile(
    r"\b(?:how\s+(?:many|much|long|big|large|often|old|high|low)|default|maximum|minimum|max|min|limit|range|"
    r"size|port|version|what\s+year)\b",
    re.IGNORECASE,
)
HAS_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?")
RELATIVE_CUT = 0.5  # a sentence must score at least this share of the best one
# Sentence vectors kept between answers (float32, 1.5 KB each at 384 dimensions: about 30 MB).
SENTENCE_CACHE = 20_000


class SentenceVectors:
    """Vectors of source sentences by their text (LRU): the passages that answer one question answer the next
    ones too, so each sentence is embedded once, not for every answer."""

    def __init__(self, embeddings: Embeddings, size: int = SENTENCE_CACHE) -> None:
        self.embeddings = embeddings
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()

    async def of(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-length row per text, embedding only the texts not seen lately."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            for text, vector in zip(missing, await self.embeddings.aembed_documents(missing), strict=True):
                self._vectors[text] = unit(vector)
        rows = []
        for text in texts:
            self._vectors.move_to_end(text)
            rows.append(self._vectors[text])
        while len(self._vectors) > self.size:
            self._vectors.popitem(last=False)
        return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)


def unit(vector: Sequence[float]) -> np.ndarray:
    """`vector` as float32 of length 1 (cosine similarity is then a dot product)."""
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return array / norm if norm else array


@dataclass
class Candidate:
    number: int
    position: int
    text: str
    header: str = ""  # the chunk's title and headings: what the sentence is about (a CSV row's file, say)
    following: str = ""  # the next sentence of the chunk, shown with a fragment ("work_mem (integer)")
    also: tuple[int, ...] = ()  # other sources holding the same sentence: cited with it
    before: str = ""  # the sentences before it in its chunk: what it is about ("work_mem (integer)")

    @property
    def shown(self) -> str:
        """The sentence as the answer shows it: a fragment keeps the sentence after it."""
        if self.following and (len(self.text) < 60 or self.text.endswith(":")):
            return f"{self.text} {self.following}"
        return self.text


def split_header(chunk_text: str) -> tuple[str, str]:
    """A chunk's title/headings line (or "") and its text."""
    head, sep, rest = chunk_text.partition("\n\n")
    return (head, rest) if sep and "\n" not in head else ("", chunk_text)


def body(chunk_text: str) -> str:
    """A chunk's text without the title/headings line it was indexed with."""
    return split_header(chunk_text)[1]


def split_sources(numbered_texts: Sequence[tuple[int, str]]) -> dict[int, tuple[str, list[str]]]:
    """Each source's title/headings line and the sentences of its text, by source number."""
    split = {}
    for number, text in numbered_texts:
        header, passage = split_header(text)
        split[number] = (header, sentences(passage))
    return split


def candidates(
    numbered_texts: Sequence[tuple[int, str]], split: dict[int, tuple[str, list[str]]] | None = None
) -> list[Candidate]:
    """Sentences long enough to stand alone (or to lead into the next one), from every source (`split`:
    the sources already split by `split_sources`)."""
    found = []
    for number, (header, parts) in (split if split is not None else split_sources(numbered_texts)).items():
        for position, sentence in enumerate(parts):
            if 12 <= len(sentence) <= 600 and len(keywords(sentence)) >= 2:
                following = parts[position + 1] if position + 1 < len(parts) else ""
                before = " ".join(parts[max(0, position - BEFORE_SENTENCES) : position])
                found.append(Candidate(number, position, sentence, header, following[:600], before=before))
    return found


def as_list_item(sentence: str) -> str:
    """A sentence made safe as a Markdown list item: no bullet of its own, no heading, no code fence, and no
    link, image or HTML from the document."""
    text = escape_markdown(LEADING_MARKERS.sub("", sentence.strip()).replace("```", ""))
    if text[:1] in ("#", ">", "=", "|"):
        text = "\\" + text
    return text


def pick(
    question: str,
    found: list[Candidate],
    vectors: Sequence[Sequence[float]] | np.ndarray,
    qvec: Sequence[float],
    focus: str | None = None,
    tables: Collection[int] = (),
) -> list[Candidate]:
    """Best sentences by meaning and by the question's words (rare words count more), best first.

    `focus` is what the person typed when `question` is a follow-up completed with earlier context: its
    own words ("and what is its default?") weigh more than the context's ("work_mem").
    """
    typed = focus if focus is not None else question
    # Words compare by stem ("stands" answers "stand"); a short option (`-j`) is a term of its own.
    own = stems_of(typed)
    context = {stem(w) for w in keywords(asked_words(question))} - own
    wants_number = bool(QUANTITY.search(typed))
    spelled = acronyms(asked_words(question))  # "eol" in a row holds "end of life"
    words_of_candidate = [
        stems_of(c.shown) | {stem(w) for w in keywords(c.header)} | spelled_out(set(words(c.shown)), spelled)
        for c in found
    ]
    n = len(found)

    # Rarer words among the candidates weigh more (IDF), computed once per answer.
    weight = {w: math.log(1 + n / (1 + sum(w in ws for ws in words_of_candidate))) for w in own | context}

    def overlap(terms: set[str], present: set[str]) -> float:
        total = sum(weight[w] for w in terms)
        return sum(weight[w] for w in terms & present) / total if total else 0.0

    rows = np.stack([unit(v) for v in vectors]) if len(vectors) else np.zeros((0, len(qvec)), dtype=np.float32)
    similarities = rows @ unit(qvec) if len(found) else []
    scored = []
    for cand, similarity, present in zip(found, similarities, words_of_candidate, strict=True):
        rank_bonus = 0.02 * max(0, 5 - cand.number)
        lexical = OWN_WORDS * overlap(own, present) + CONTEXT_WORDS * overlap(context, present)
        if cand.number in tables:
            lexical *= TABLE_LEXICAL
        if wants_number and HAS_NUMBER.search(cand.shown):
            lexical += NUMBER_BONUS
        inherited = stems_of(cand.before) - present
        lexical += BEFORE_WORDS * (OWN_WORDS * overlap(own, inherited) + CONTEXT_WORDS * overlap(context, inherited))
        scored.append((float(similarity) + lexical + rank_bonus, cand))
    scored.sort(key=lambda pair: -pair[0])
    if scored:
        best = scored[0][0]
        scored = [pair for pair in scored if pair[0] >= best * RELATIVE_CUT]
    chosen: list[Candidate] = []
    per_source: dict[int, int] = {}
    seen: dict[str, int] = {}  # a sentence two pages share (a man page and its alias) is shown once, citing both
    for _, cand in scored:
        said = " ".join(keywords(cand.text))
        if said in seen:
            first = chosen[seen[said]]
            if cand.number != first.number and cand.number not in first.also:
                chosen[seen[said]] = replace(first, also=(*first.also, cand.number))
            continue
        if per_source.get(cand.number, 0) >= MAX_PER_SOURCE:
            continue
        seen[said] = len(chosen)
        chosen.append(cand)
        per_source[cand.number] = per_source.get(cand.number, 0) + 1
        if len(chosen) == MAX_SENTENCES:
            break
    return chosen


def in_context(
    chosen: Sequence[Candidate],
    parts_of: dict[int, list[str]],
    tables: Collection[int] = (),
    wanted: Collection[str] = (),
) -> list[tuple[int, str]]:
    """Each chosen sentence with the sentence before and after it in its chunk (the fact a question asks for
    is often a neighbour of the sentence that matches it best), best first, as (source number, passage).
    Windows of one chunk that overlap or touch become one passage, so nothing is shown twice. A table row
    (a source numbered in `tables`) is a record: it is shown alone. `wanted` are the question's own words
    (`stems_of`): what the best sentence lacks of them may come a few sentences later (LOOK_AHEAD)."""
    windows: list[tuple[int, int, int]] = []  # (source number, first sentence, last sentence)
    fixed: dict[int, str] = {}  # index in `windows` -> a passage shown as it is
    for cand in chosen:
        parts = parts_of.get(cand.number, [])
        if cand.number in tables or cand.position >= len(parts) or parts[cand.position] != cand.text:
            fixed[len(windows)] = cand.text if cand.number in tables else cand.shown  # a row, a chunk quoted whole
            windows.append((cand.number, -1, -1))
            continue
        first, last = cand.position, cand.position
        if first > 0 and len(parts[first - 1]) <= NEIGHBOUR_CHARS:
            first -= 1
        for _ in range(AFTER_BEST if not windows else 1):
            if last + 1 < len(parts) and len(parts[last + 1]) <= NEIGHBOUR_CHARS:
                last += 1
        missing = set(wanted) - stems_of(cand.shown) - stems_of(cand.header) if not windows else set()
        if missing and not any(missing & stems_of(p) for p in parts[cand.position + 1 : last + 1]):
            ahead = range(last + 1, min(len(parts), cand.position + 1 + LOOK_AHEAD))
            later = next((j for j in ahead if missing & stems_of(parts[j]) and len(parts[j]) <= NEIGHBOUR_CHARS), None)
            if later is not None:
                windows.append((cand.number, first, last))
                first = last = later
        for i, (number, lo, hi) in enumerate(windows):
            if number == cand.number and i not in fixed and first <= hi + 1 and last >= lo - 1:
                windows[i] = (number, min(lo, first), max(hi, last))
                break
        else:
            windows.append((cand.number, first, last))
    return [
        (number, fixed[i] if i in fixed else " ".join(parts_of[number][lo : hi + 1]))
        for i, (number, lo, hi) in enumerate(windows)
    ]


def citations(number: int, passage: str, chosen: Sequence[Candidate]) -> str:
    """`[n]` for a passage's source, and for every other source holding a chosen sentence it shows."""
    also = (n for c in chosen if c.number == number and c.text in passage for n in c.also)
    return "".join(f"[{n}]" for n in dict.fromkeys((number, *also)))


async def extractive_answer(
    question: str,
    numbered_texts: Sequence[tuple[int, str]],
    vectors: SentenceVectors,
    intro: str = INTRO,
    focus: str | None = None,
    tables: Collection[int] = (),
) -> AsyncIterator[str]:
    """Stream an answer made of cited source sentences, each with its neighbours, word by word, after
    `intro`. The sources numbered in `tables` hold table rows: a row is a record, shown alone."""
    if not numbered_texts:
        text = NOTHING_FOUND
    else:
        split = split_sources(numbered_texts)
        found = candidates(numbered_texts, split)
        if not found:  # short chunks: quote them whole
            found = [Candidate(n, 0, body(t).strip()[:500]) for n, t in numbered_texts[:MAX_SENTENCES]]
        rows = await vectors.of([c.text for c in found])
        qvec = await vectors.embeddings.aembed_query(question)  # the search embedded it already: cached
        chosen = pick(question, found, rows, qvec, focus, tables)
        wanted = stems_of(focus if focus is not None else question)
        passages = in_context(chosen, {n: parts for n, (_, parts) in split.items()}, tables, wanted)
        text = intro + "\n".join(
            f"- {as_list_item(passage)} {citations(number, passage, chosen)}" for number, passage in passages
        )
    async for piece in words_of(text):
        yield piece


async def words_of(text: str) -> AsyncIterator[str]:
    """Stream `text` word by word, letting other sessions run between bursts."""
    for i, piece in enumerate(text.split(" ")):
        yield piece if i == 0 else " " + piece
        if i % 8 == 7:
            await asyncio.sleep(0)
