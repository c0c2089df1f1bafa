"""Step 5, answer: stream a cited answer from the chat model, or extracted sentences without one."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import cast

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import Runnable, RunnableLambda

from chains.extractive import SentenceVectors, extractive_answer, nothing_about, words_of
from chains.prompts import ANSWER
from chains.state import AnswerChunk, Source, State, elapsed_ms, model_warning


def fallback(reason: str) -> str:
    """The opening of an extractive answer given because the chat model failed."""
    return f"*{reason}* So here are the most relevant passages from your documents instead:\n\n"


def context_of(sources: list[Source]) -> str:
    return "\n\n".join(f"[{s.number}] {s.source}{f' (page {s.page})' if s.page else ''}\n{s.text}" for s in sources)


def make_answer(
    embeddings: Embeddings, chat_model: BaseChatModel | None, timeout: float
) -> Runnable[State, AnswerChunk]:
    prompt = None if chat_model is None else ANSWER | chat_model.with_config(tags=["answer"]) | StrOutputParser()
    vectors = SentenceVectors(embeddings)

    async def answer(state: State) -> AsyncIterator[AnswerChunk]:
        started = time.perf_counter()
        standalone, sources = state["condensed"].standalone, state["fused"].sources
        numbered = [(s.number, s.text) for s in sources]
        tables = {s.number for s in sources if s.file_type == "csv"}  # rows are records: shown alone
        focus = state["question"] if standalone != state["question"] else None  # a follow-up's own words
        earlier = state["rewritten"].warning or state["condensed"].warning
        if not sources:  # nothing retrieved answers it: said plainly, with or without a chat model
            async for token in words_of(nothing_about(state["fused"].unknown)):
                yield AnswerChunk(token)
        elif prompt is None:
            async for token in extractive_answer(standalone, numbered, vectors, focus=focus, tables=tables):
                yield AnswerChunk(token)
        elif earlier:  # the model already failed for this question: do not wait for it again
            async for token in extractive_answer(standalone, numbered, vectors, fallback(earlier), focus, tables):
                yield AnswerChunk(token)
        else:
            stream = cast(  # typed as an AsyncIterator, made by an async generator
                AsyncGenerator[str, None],
                prompt.astream({"context": context_of(sources), "history": state["history"], "question": standalone}),
            )
            produced = False
            try:
                async with aclosing(stream):  # closed with this step (Stop): the model's request ends too
                    async for token in stream:
                        produced = produced or bool(token)
                        yield AnswerChunk(token)
            except Exception as exc:
                reason = model_warning("answer", exc, timeout, midstream=produced)
                if produced:  # keep what arrived, and say plainly that it is incomplete
                    yield AnswerChunk(f"\n\n*(This answer is incomplete: {reason})*", (reason,), partial=True)
                else:
                    yield AnswerChunk(warnings=(reason,))
                    extracted = extractive_answer(standalone, numbered, vectors, fallback(reason), focus, tables)
                    async for token in extracted:
                        yield AnswerChunk(token)
        yield AnswerChunk(ms=elapsed_ms(started))

    return RunnableLambda(answer).with_config(run_name="answer")
