"""The answer pipeline in LCEL: condense | rewrite | retrieve | fuse | answer, each step a module of its own."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable, RunnablePassthrough, RunnableSerializable

from chains.answer import make_answer
from chains.condense import make_condense
from chains.fusion import make_fuse
from chains.options import Searcher, SearchOptions
from chains.retrieve import make_retrieve
from chains.rewrite import make_rewrite
from chains.state import (
    AnswerChunk,
    Done,
    Question,
    RagResult,
    Source,
    SourcesReady,
    State,
    StreamEvent,
    Token,
    trace_of,
)
from core.access import TEAM_ONLY, Viewer, visible_to
from core.filters import all_of
from core.settings import Settings


def to_messages(history: list[tuple[str, str]]) -> list[BaseMessage]:
    """(role, text) pairs to chat messages."""
    return [HumanMessage(t) if r in ("user", "human") else AIMessage(t) for r, t in history]


def finalize_async_generators() -> None:
    """Give this thread's event loop its async generator hooks back, when something took them away.

    asyncio installs them in `run_forever`, and its finalizer closes an abandoned async generator with
    `aclose()` in a task. `chainlit run` applies nest_asyncio, whose `run_until_complete` drives the loop
    without `run_forever`, so none are installed: the garbage collector then closes an abandoned generator
    without a loop, and one that awaits while closing (LangChain's streams do, in `except`/`finally`)
    prints "async generator ignored GeneratorExit". LangChain abandons inner generators of its own when a
    stream is cancelled (Stop), so they need the loop's finalizer.
    """
    if sys.get_asyncgen_hooks().finalizer is not None:
        return
    loop = asyncio.get_running_loop()
    firstiter = getattr(loop, "_asyncgen_firstiter_hook", None)
    finalizer = getattr(loop, "_asyncgen_finalizer_hook", None)
    if firstiter is not None and finalizer is not None:  # asyncio's own loop (uvloop installs its hooks)
        sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=finalizer)


def _over_dict(step: Runnable[State, Any]) -> Runnable[dict[str, Any], Any]:
    """A step as `assign` types it (a State is the dict it is given)."""
    return cast(Runnable[dict[str, Any], Any], step)


class RagChain:
    """The pipeline over one knowledge base (any `Searcher`) and an optional chat model."""

    def __init__(self, kb: Searcher, chat_model: BaseChatModel | None, settings: Settings) -> None:
        self.kb = kb
        self.chat_model = chat_model
        self.settings = settings
        timeout = settings.request_timeout
        self.retrieval: RunnableSerializable[Any, Any] = (
            RunnablePassthrough.assign(condensed=_over_dict(make_condense(chat_model, timeout, kb)))
            .assign(rewritten=_over_dict(make_rewrite(chat_model, timeout)))
            .assign(retrieved=_over_dict(make_retrieve(kb)))
            .assign(fused=_over_dict(make_fuse(kb)))
        )
        answer = _over_dict(make_answer(kb.embeddings, chat_model, timeout))
        self.runnable = self.retrieval.assign(answer=answer).with_config(run_name="rag")

    def _input(
        self,
        question: str,
        history: list[BaseMessage] | None,
        options: SearchOptions | None,
        viewer: Viewer,
        expr: str | None,
    ) -> Question:
        turns = self.settings.history_turns * 2
        return {
            "question": question,
            "history": (history or [])[-turns:] if turns else [],
            "options": (options or SearchOptions.from_settings(self.settings)).clamped(),
            # Access is part of every search expression: nothing the viewer may not see is ever retrieved.
            "expr": all_of(visible_to(viewer), expr),
        }

    async def astream(
        self,
        question: str,
        history: list[BaseMessage] | None = None,
        options: SearchOptions | None = None,
        viewer: Viewer = TEAM_ONLY,
        expr: str | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """`SourcesReady` once retrieval is done, then the answer's `Token`s, then `Done` with the whole trace.

        Closing this stream (`aclose()`, as `contextlib.aclosing` does when the consumer is cancelled)
        closes the pipeline's stream and the chat model's request with it.
        """
        finalize_async_generators()
        state = cast(State, dict(self._input(question, history, options, viewer, expr)))
        answer = AnswerChunk()
        async with aclosing(cast(AsyncGenerator[dict[str, Any], None], self.runnable.astream(state))) as chunks:
            async for chunk in chunks:
                for key, value in chunk.items():
                    if key == "answer":
                        answer = answer + value
                        if value.text:
                            yield Token(value.text)
                    elif key not in state:
                        state[key] = value  # type: ignore[literal-required]
                        if key == "fused":
                            yield SourcesReady(value.sources, trace_of(state))
        state["answer"] = answer
        yield Done(trace_of(state))

    async def aretrieve(
        self,
        question: str,
        options: SearchOptions | None = None,
        viewer: Viewer = TEAM_ONLY,
        expr: str | None = None,
    ) -> list[Source]:
        """Only the retrieval half: the numbered sources an answer would use."""
        state = await self.retrieval.ainvoke(self._input(question, None, options, viewer, expr))
        return list(state["fused"].sources)

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
        result = RagResult("", [], trace_of({"question": question}))  # type: ignore[typeddict-item]
        async for event in self.astream(question, history, options, viewer, expr):
            if isinstance(event, Token):
                tokens.append(event.text)
            elif isinstance(event, SourcesReady):
                sources = event.sources
            else:
                result = RagResult("".join(tokens), sources, event.trace)
        return result
