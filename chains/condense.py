"""Step 1, condense: a follow-up becomes a standalone question (the chat model, or keywords carried over)."""

from __future__ import annotations

import asyncio
import time

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import Runnable, RunnableLambda

from chains.options import Searcher
from chains.prompts import CONDENSE
from chains.state import Condensed, State, elapsed_ms, model_warning
from chains.text import declarative, keywords, with_context

FOLLOW_UP_LEADS = ("and ", "what about", "how about", "also", "but ", "then ", "so ", "why not", "what if")
FOLLOW_UP_WORDS = {"it", "its", "it's", "this", "that", "these", "those", "they", "them", "their", "there", "one"}
# Offline, context is added by evidence (cosine of the best hit): a question that refers back ("its",
# "and ...") keeps the context unless alone it finds clearly better passages; one that is merely short
# gets context only when alone it finds nothing above the score floor, and the context finds better.
REFERRING_SLACK = 0.1
SHORT_MARGIN = 0.02


def refers_back(question: str) -> bool:
    """Whether a question points at something said before ("its default", "and for tar?")."""
    q = question.strip().lower()
    return bool(FOLLOW_UP_WORDS & set(q.rstrip("?!. ").replace(",", " ").split())) or q.startswith(FOLLOW_UP_LEADS)


def may_follow_up(question: str) -> bool:
    """Whether a question could need earlier turns at all: it refers back, or it is too short to stand alone.
    A command never does."""
    q = question.strip()
    if not q or q.startswith("/"):
        return False
    return refers_back(q) or len(keywords(question)) <= 2


def previous_question(history: list[BaseMessage]) -> str | None:
    previous = next((m.content for m in reversed(history) if isinstance(m, HumanMessage)), None)
    return previous if isinstance(previous, str) and previous.strip() else None


def offline_condense(question: str, history: list[BaseMessage]) -> str:
    """Without a model: the question with the previous question's terms as context."""
    previous = previous_question(history)
    if previous is None:
        return question
    return with_context(question, declarative(previous))


async def confidence(searcher: Searcher, text: str, expr: str | None) -> float:
    """How well `text` finds a chunk: the best cosine similarity of a dense search (-1: nothing)."""
    hits = await searcher.search_dense(text, 3, expr)
    return max((float(score) for _, score in hits), default=-1.0)


def make_condense(chat_model: BaseChatModel | None, timeout: float, searcher: Searcher) -> Runnable[State, Condensed]:
    prompt = None if chat_model is None else CONDENSE | chat_model.with_config(tags=["condense"]) | StrOutputParser()

    async def by_evidence(question: str, history: list[BaseMessage], expr: str | None, floor: float) -> str:
        """Offline: the question with the previous one's terms, when the evidence says it needs them (see
        REFERRING_SLACK); a topic switch finds its own documents best alone."""
        candidate = offline_condense(question, history)
        if candidate == question:
            return question
        alone, with_context = await asyncio.gather(
            confidence(searcher, question, expr), confidence(searcher, candidate, expr)
        )
        if refers_back(question):
            return candidate if with_context >= alone - REFERRING_SLACK else question
        return candidate if alone < floor and with_context >= alone + SHORT_MARGIN else question

    async def condense(state: State) -> Condensed:
        started = time.perf_counter()
        question, history = state["question"], state["history"]
        warning = None
        if not history or not may_follow_up(question):  # a complete new question never gets context
            result = question
        elif prompt is not None:
            try:
                result = (await prompt.ainvoke({"question": question, "history": history})).strip() or question
            except Exception as exc:  # the model is down: carry on without it
                warning = model_warning("condense", exc, timeout)
                result = await by_evidence(question, history, state["expr"], state["options"].threshold or 0.0)
        else:
            result = await by_evidence(question, history, state["expr"], state["options"].threshold or 0.0)
        return Condensed(result, elapsed_ms(started), warning)

    return RunnableLambda(condense).with_config(run_name="condense")
