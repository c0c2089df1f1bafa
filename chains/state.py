"""The pipeline's typed state: what goes in, what each step adds, what comes out and what is streamed."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage

from chains.options import SearchOptions
from core.models import describe_model_failure

log = logging.getLogger(__name__)


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


@dataclass
class Source:
    """A numbered source of an answer: what the [n] in the text points to."""

    number: int
    id: str
    source: str
    title: str
    headings: str
    page: int | None
    score: float | None
    rrf: float
    text: str
    file_type: str = ""
    doc_hash: str = ""

    @property
    def label(self) -> str:
        """`[2] handbook.pdf p.14`."""
        return f"[{self.number}] {self.source}" + (f" p.{self.page}" if self.page else "")


@dataclass
class QueryHits:
    """The hits of one search, for the trace."""

    query: str
    hits: list[dict[str, Any]]
    ms: float
    scope: str = "chunks"  # or "openings" (the first chunk of every document), or "full text" (BM25)


# --- what each step adds to the state ---------------------------------------------------------------
@dataclass(frozen=True)
class Condensed:
    standalone: str
    ms: float
    warning: str | None = None  # why the chat model could not be used


@dataclass(frozen=True)
class Rewritten:
    queries: list[str]
    ms: float
    warning: str | None = None


@dataclass(frozen=True)
class Retrieved:
    chunks: list[list[Hit]]
    openings: list[list[Hit]]
    full_text: list[list[Hit]]
    searches: list[QueryHits]
    ms: float


@dataclass(frozen=True)
class Fused:
    sources: list[Source]
    ranking: list[dict[str, Any]]
    keyword_ranking: list[str]
    ms: float
    unknown: list[str] = field(default_factory=list)  # names in the question no visible document contains


@dataclass
class AnswerChunk:
    """A piece of the streamed answer; the last one carries how answering went. Chunks add up."""

    text: str = ""
    warnings: tuple[str, ...] = ()
    partial: bool = False  # the generated answer was cut off
    ms: float | None = None

    def __add__(self, other: AnswerChunk) -> AnswerChunk:
        return AnswerChunk(
            self.text + other.text,
            self.warnings + other.warnings,
            self.partial or other.partial,
            other.ms if other.ms is not None else self.ms,
        )


class Question(TypedDict):
    """The pipeline's input."""

    question: str
    history: list[BaseMessage]
    options: SearchOptions
    expr: str | None  # the viewer's access rule and any caller filter, part of every search


class State(Question, total=False):
    """The input plus what the steps have added so far."""

    condensed: Condensed
    rewritten: Rewritten
    retrieved: Retrieved
    fused: Fused
    answer: AnswerChunk


# --- what comes out ---------------------------------------------------------------------------------
@dataclass
class Trace:
    """How an answer was found: the Chainlit steps and `--json` show this."""

    question: str
    standalone: str = ""
    rewrites: list[str] = field(default_factory=list)
    searches: list[QueryHits] = field(default_factory=list)
    fused: list[dict[str, Any]] = field(default_factory=list)
    keyword_ranking: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # model failures the answer worked around
    partial: bool = False  # the generated answer was cut off


def trace_of(state: State) -> Trace:
    """The trace of a (partly) run pipeline, from the steps' outputs."""
    trace = Trace(state["question"])
    timings: dict[str, float] = {}
    if condensed := state.get("condensed"):
        trace.standalone, timings["condense"] = condensed.standalone, condensed.ms
        trace.warnings += [f"condense: {condensed.warning}"] if condensed.warning else []
    if rewritten := state.get("rewritten"):
        trace.rewrites, timings["rewrite"] = rewritten.queries, rewritten.ms
        trace.warnings += [f"rewrite: {rewritten.warning}"] if rewritten.warning else []
    if retrieved := state.get("retrieved"):
        trace.searches, timings["retrieve"] = retrieved.searches, retrieved.ms
    if fused := state.get("fused"):
        trace.fused, trace.keyword_ranking, timings["fuse"] = fused.ranking, fused.keyword_ranking, fused.ms
    if answer := state.get("answer"):
        trace.warnings += [f"answer: {w}" for w in answer.warnings]
        trace.partial = answer.partial
        if answer.ms is not None:
            timings["answer"] = answer.ms
    trace.timings_ms = timings
    return trace


def elapsed_ms(started: float) -> float:
    """Milliseconds since `started` (a time.perf_counter() reading), as every step reports them."""
    return round((time.perf_counter() - started) * 1000, 1)


def model_warning(step: str, exc: BaseException, timeout: float, midstream: bool = False) -> str:
    """Why the chat model failed in `step`, in plain words (and logged)."""
    reason = describe_model_failure(exc, timeout, midstream)
    log.warning("chat model failed in %s: %s (%s)", step, reason, type(exc).__name__)
    return reason


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class SourcesReady:
    sources: list[Source]
    trace: Trace  # condense to fuse


@dataclass(frozen=True)
class Done:
    trace: Trace  # everything, answering included


StreamEvent = Token | SourcesReady | Done


@dataclass
class RagResult:
    """Everything a question produced."""

    answer: str
    sources: list[Source]
    trace: Trace

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "sources": [asdict(s) for s in self.sources],
            "rewrites": self.trace.rewrites,
            "trace": asdict(self.trace),
        }
