"""The answer pipeline: condense | rewrite | retrieve | fuse | answer, in LCEL with named steps."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough, RunnableSerializable

from chains.extractive import extractive_answer
from chains.fusion import FusedHit, Hit, reciprocal_rank_fusion, select
from chains.lexical import bm25_rank
from chains.prompts import ANSWER, CONDENSE, REWRITE
from chains.rewrite import offline_rewrites, parse_rewrites
from chains.text import declarative, keywords
from core.access import TEAM_ONLY, Viewer, visible_to
from core.models import describe_model_failure
from core.settings import Settings
from core.store import PK, KnowledgeBase, all_of, field_eq, field_in

log = logging.getLogger(__name__)
FOLLOW_UP_LEADS = ("and ", "what about", "how about", "also", "but ", "then ", "so ", "why not", "what if")
FOLLOW_UP_WORDS = {"it", "its", "this", "that", "these", "those", "they", "them", "there", "one"}


@dataclass(frozen=True)
class SearchOptions:
    """Per-question retrieval knobs (defaults from settings; the UI may override them)."""

    k: int
    fetch_k: int
    rewrites: int
    mode: Literal["similarity", "mmr"]
    threshold: float | None
    mmr_lambda: float
    openings: bool = True
    per_source: int = 0
    keyword_rank: bool = True
    hybrid: bool = False  # also search the BM25 full-text index, when the collection has one

    @classmethod
    def from_settings(cls, s: Settings) -> SearchOptions:
        return cls(
            k=s.k,
            fetch_k=s.fetch_k,
            rewrites=s.rewrites,
            mode=s.search_mode,
            threshold=s.score_threshold,
            mmr_lambda=s.mmr_lambda,
            openings=s.search_openings,
            per_source=s.max_chunks_per_source,
            keyword_rank=s.keyword_rank,
            hybrid=s.hybrid_search,
        )

    def clamped(self) -> SearchOptions:
        """The same options forced into safe ranges (values may come from a client)."""
        k = min(max(int(self.k), 1), 50)
        mode: Literal["similarity", "mmr"] = "mmr" if self.mode == "mmr" else "similarity"
        threshold = None if self.threshold is None else min(max(float(self.threshold), -1.0), 1.0)
        return replace(
            self,
            k=k,
            fetch_k=min(max(int(self.fetch_k), k), 200),
            rewrites=min(max(int(self.rewrites), 0), 8),
            mode=mode,
            threshold=threshold,
            mmr_lambda=min(max(float(self.mmr_lambda), 0.0), 1.0),
            openings=bool(self.openings),
            per_source=min(max(int(self.per_source), 0), 50),
            keyword_rank=bool(self.keyword_rank),
            hybrid=bool(self.hybrid),
        )


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


def to_messages(history: list[tuple[str, str]]) -> list[BaseMessage]:
    """(role, text) pairs to chat messages."""
    return [HumanMessage(t) if r in ("user", "human") else AIMessage(t) for r, t in history]


def offline_condense(question: str, history: list[BaseMessage]) -> str:
    """Without a model: carry the previous question's keywords into a follow-up."""
    previous = next((m.content for m in reversed(history) if isinstance(m, HumanMessage)), None)
    if not isinstance(previous, str) or not previous.strip():
        return question
    q = question.strip().lower()
    short = len(keywords(question)) <= 4
    refers_back = bool(FOLLOW_UP_WORDS & set(q.rstrip("?").split())) or q.startswith(FOLLOW_UP_LEADS)
    if not (short or refers_back):
        return question
    return f"{question.strip()} (context: {declarative(previous)})"


def fallback(reason: str) -> str:
    """The opening of an extractive answer given because the chat model failed."""
    return f"*{reason}* So here are the most relevant passages from your documents instead:\n\n"


def _timed(trace: Trace, name: str, started: float) -> None:
    trace.timings_ms[name] = round((time.perf_counter() - started) * 1000, 1)


class RagChain:
    """Builds and runs the LCEL pipeline over one knowledge base."""

    def __init__(self, kb: KnowledgeBase, chat_model: BaseChatModel | None, settings: Settings) -> None:
        self.kb = kb
        self.chat_model = chat_model
        self.settings = settings
        self.retrieval = self._build_retrieval()
        self.runnable = self.retrieval.assign(
            answer=RunnableLambda(self._answer).with_config(run_name="answer")
        ).with_config(run_name="rag")  # type: ignore[arg-type]

    # --- steps -------------------------------------------------------------------------------
    async def _condense(self, state: dict[str, Any]) -> str:
        started = time.perf_counter()
        question: str = state["question"]
        history: list[BaseMessage] = state["history"]
        if not history:
            result = question
        elif self.chat_model is not None:
            chain = CONDENSE | self.chat_model.with_config(tags=["condense"]) | StrOutputParser()
            try:
                result = (await chain.ainvoke({"question": question, "history": history})).strip() or question
            except Exception as exc:  # the model is down: carry on without it
                self._warn(state, "condense", exc)
                result = offline_condense(question, history)
        else:
            result = offline_condense(question, history)
        state["trace"].standalone = result
        _timed(state["trace"], "condense", started)
        return result

    async def _rewrite(self, state: dict[str, Any]) -> list[str]:
        started = time.perf_counter()
        question: str = state["standalone"]
        n = state["options"].rewrites
        if n == 0:
            queries = [question]
        elif self.chat_model is not None and not state["trace"].warnings:
            chain = REWRITE | self.chat_model.with_config(tags=["rewrite"]) | StrOutputParser()
            try:
                queries = parse_rewrites(question, await chain.ainvoke({"question": question, "n": n}), n)
            except Exception as exc:
                self._warn(state, "rewrite", exc)
                queries = offline_rewrites(question, n)
        else:
            queries = offline_rewrites(question, n)
        state["trace"].rewrites = queries
        _timed(state["trace"], "rewrite", started)
        return queries

    async def _search(
        self, query: str, options: SearchOptions, expr: str | None, openings: bool = False
    ) -> tuple[QueryHits, list[Hit]]:
        if openings:
            expr = all_of(expr, field_eq("chunk", 0))
        # Each query is its own LangChain call; the store coalesces concurrent ones (this question's
        # rewrites and other users' questions) into one embedding call and one Milvus search.
        started = time.perf_counter()
        store = self.kb.store
        if options.mode == "mmr" and not openings:
            docs = await self.kb.guarded(
                lambda: store.amax_marginal_relevance_search(
                    query,
                    k=options.fetch_k,
                    fetch_k=max(options.fetch_k * 2, 20),
                    lambda_mult=options.mmr_lambda,
                    expr=expr,
                )
            )
            pairs: list[tuple[Any, float | None]] = [(d, None) for d in docs]
        else:
            found = await self.kb.guarded(
                lambda: store.asimilarity_search_with_score(query, k=options.fetch_k, expr=expr)
            )
            pairs = list(found)
        return self._hits(query, pairs, started, "openings" if openings else "chunks")

    async def _search_full_text(
        self, query: str, options: SearchOptions, expr: str | None
    ) -> tuple[QueryHits, list[Hit]]:
        """Milvus's BM25 index of the same chunks: exact terms (names, codes, flags) the dense model blurs."""
        started = time.perf_counter()
        full_text = self.kb.full_text
        assert full_text is not None
        found = await self.kb.guarded(
            lambda: full_text.asimilarity_search_with_score(query, k=options.fetch_k, expr=expr)
        )
        # BM25 scores are not similarities: the hits carry none, and `_fuse` measures them against the question.
        queried, hits = self._hits(query, [(d, None) for d, _ in found], started, "full text")
        for line, (_, score) in zip(queried.hits, found, strict=True):
            line["score"] = round(abs(float(score)), 4)  # Milvus Lite reports BM25 negated
        return queried, hits

    @staticmethod
    def _hits(
        query: str, pairs: list[tuple[Any, float | None]], started: float, scope: str
    ) -> tuple[QueryHits, list[Hit]]:
        hits = [Hit(str(d.metadata.get("pk")), d, s) for d, s in pairs]
        summary = [
            {
                "id": h.id,
                "source": h.document.metadata.get("source"),
                "page": h.document.metadata.get("page"),
                "score": None if h.score is None else round(float(h.score), 4),
            }
            for h in hits
        ]
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        return QueryHits(query, summary, elapsed, scope), hits

    async def _retrieve(self, state: dict[str, Any]) -> dict[str, list[list[Hit]]]:
        started = time.perf_counter()
        options: SearchOptions = state["options"]
        expr = state.get("expr")
        # Every query searches all chunks and, as a document-level signal, each document's opening;
        # in hybrid mode the question also searches the full-text index. All of them at once.
        scopes = (False, True) if options.openings else (False,)
        searches = [self._search(q, options, expr, o) for q in state["queries"] for o in scopes]
        if options.hybrid and self.kb.full_text is not None:
            # One full-text list, for the question itself: rewrites share its words, and a BM25 list per
            # rewrite outvoted the dense lists (dev set: MRR 0.676 with one per rewrite, 0.722 with one).
            searches.append(self._search_full_text(state["queries"][0], options, expr))
        results = await asyncio.gather(*searches)
        state["trace"].searches = [r[0] for r in results]
        _timed(state["trace"], "retrieve", started)
        return {
            scope: [hits for trace, hits in results if trace.scope == scope]
            for scope in ("chunks", "openings", "full text")
        }

    async def _measure(self, hits: list[FusedHit], question: str, expr: str | None) -> None:
        """Give hits only the full-text index found the dense similarity to the question, so the same
        threshold applies to every hit (a question sharing one common word with a chunk is not a match)."""
        ids = [h.id for h in hits]
        found = await self.kb.guarded(
            lambda: self.kb.store.asimilarity_search_with_score(
                question, k=len(ids), expr=all_of(expr, field_in(PK, ids))
            )
        )
        scores = {str(d.metadata.get("pk")): float(s) for d, s in found}
        for hit in hits:
            hit.similarity = scores.get(hit.id, -1.0)  # not found: below any threshold

    async def _fuse(self, state: dict[str, Any]) -> list[Source]:
        started = time.perf_counter()
        options: SearchOptions = state["options"]
        threshold = options.threshold if options.mode == "similarity" else None
        chunk_lists, opening_lists = state["hits"]["chunks"], state["hits"]["openings"]
        text_lists = state["hits"]["full text"]
        ranked = chunk_lists + text_lists
        if options.keyword_rank:  # one more ranking of the same candidates, by the question's terms
            candidates = [h for hits in chunk_lists + text_lists + opening_lists for h in hits]
            keyword_list = bm25_rank(state["standalone"], candidates)
            ranked.append(keyword_list)
            state["trace"].keyword_ranking = [h.id for h in keyword_list[: options.fetch_k]]
        fused = reciprocal_rank_fusion(ranked, opening_lists)
        if text_lists and threshold is not None:
            unmeasured = [h for h in fused[: options.fetch_k * 2] if h.similarity is None]
            if unmeasured:
                await self._measure(unmeasured, state["standalone"], state.get("expr"))
        state["trace"].fused = [
            {
                "id": h.id,
                "source": h.document.metadata.get("source"),
                "rrf": round(h.rrf, 5),
                "score": None if h.similarity is None else round(h.similarity, 4),
                "queries": h.queries,
            }
            for h in fused[: options.fetch_k]
        ]
        sources = [
            _to_source(n, h) for n, h in enumerate(select(fused, options.k, threshold, options.per_source), start=1)
        ]
        _timed(state["trace"], "fuse", started)
        return sources

    def _warn(self, state: dict[str, Any], step: str, exc: BaseException, midstream: bool = False) -> str:
        reason = describe_model_failure(exc, self.settings.request_timeout, midstream)
        log.warning("chat model failed in %s: %s (%s)", step, reason, type(exc).__name__)
        state["trace"].warnings.append(f"{step}: {reason}")
        return reason

    async def _answer(self, state: dict[str, Any]) -> AsyncIterator[str]:
        started = time.perf_counter()
        sources: list[Source] = state["sources"]
        numbered = [(s.number, s.text) for s in sources]
        if self.chat_model is None or not sources:
            async for token in extractive_answer(state["standalone"], numbered, self.kb.embeddings):
                yield token
        elif state["trace"].warnings:  # the model already failed for this question: do not wait for it again
            reason = state["trace"].warnings[-1].split(": ", 1)[1]
            async for token in extractive_answer(state["standalone"], numbered, self.kb.embeddings, fallback(reason)):
                yield token
        else:
            context = "\n\n".join(
                f"[{s.number}] {s.source}{f' (page {s.page})' if s.page else ''}\n{s.text}" for s in sources
            )
            chain = ANSWER | self.chat_model.with_config(tags=["answer"]) | StrOutputParser()
            stream = chain.astream({"context": context, "history": state["history"], "question": state["standalone"]})
            produced = False
            try:
                async for token in stream:
                    produced = produced or bool(token)
                    yield token
            except Exception as exc:
                reason = self._warn(state, "answer", exc, midstream=produced)
                if produced:  # keep what arrived, and say plainly that it is incomplete
                    state["trace"].partial = True
                    yield f"\n\n*(This answer is incomplete: {reason})*"
                else:
                    stream = extractive_answer(state["standalone"], numbered, self.kb.embeddings, fallback(reason))
                    async for token in stream:
                        yield token
        _timed(state["trace"], "answer", started)

    # --- composition -------------------------------------------------------------------------
    def _build_retrieval(self) -> RunnableSerializable[dict[str, Any], dict[str, Any]]:
        def step(fn: Callable[[dict[str, Any]], Awaitable[Any]], name: str) -> Runnable[Any, Any]:
            return RunnableLambda(fn).with_config(run_name=name)  # type: ignore[arg-type]

        return (
            RunnablePassthrough.assign(standalone=step(self._condense, "condense"))
            .assign(queries=step(self._rewrite, "rewrite"))
            .assign(hits=step(self._retrieve, "retrieve"))
            .assign(sources=step(self._fuse, "fuse"))
        )

    def _input(
        self,
        question: str,
        history: list[BaseMessage] | None,
        options: SearchOptions | None,
        viewer: Viewer,
        expr: str | None,
    ) -> dict[str, Any]:
        turns = self.settings.history_turns * 2
        return {
            "question": question,
            "history": (history or [])[-turns:] if turns else [],
            "options": (options or SearchOptions.from_settings(self.settings)).clamped(),
            # Access is part of every search expression: nothing the viewer may not see is ever retrieved.
            "expr": all_of(visible_to(viewer), expr),
            "trace": Trace(question),
        }

    async def astream(
        self,
        question: str,
        history: list[BaseMessage] | None = None,
        options: SearchOptions | None = None,
        viewer: Viewer = TEAM_ONLY,
        expr: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield `{"sources": [...], "trace": Trace}` once retrieval is done, then `{"token": str}`s."""
        state = self._input(question, history, options, viewer, expr)
        announced = False
        async for chunk in self.runnable.astream(state):
            if "sources" in chunk and not announced:
                announced = True
                yield {"sources": chunk["sources"], "trace": state["trace"]}
            if "answer" in chunk:
                yield {"token": chunk["answer"]}

    async def aretrieve(
        self,
        question: str,
        options: SearchOptions | None = None,
        viewer: Viewer = TEAM_ONLY,
        expr: str | None = None,
    ) -> list[Source]:
        """Only the retrieval half: the numbered sources an answer would use."""
        state = await self.retrieval.ainvoke(self._input(question, None, options, viewer, expr))
        return list(state["sources"])

    async def ainvoke(
        self,
        question: str,
        history: list[BaseMessage] | None = None,
        options: SearchOptions | None = None,
        viewer: Viewer = TEAM_ONLY,
        expr: str | None = None,
    ) -> RagResult:
        """Run the whole pipeline and collect the answer."""
        tokens: list[str] = []
        sources: list[Source] = []
        trace = Trace(question)
        async for event in self.astream(question, history, options, viewer, expr):
            if "token" in event:
                tokens.append(event["token"])
            else:
                sources, trace = event["sources"], event["trace"]
        return RagResult("".join(tokens), sources, trace)


def _to_source(number: int, hit: FusedHit) -> Source:
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
