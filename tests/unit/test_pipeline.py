"""The answer pipeline's plumbing in milliseconds: fake chat models and an in-memory searcher."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from chains import Done, RagChain, SearchOptions, SourcesReady, Token
from chains.condense import may_follow_up, offline_condense
from chains.extractive import INTRO, NOTHING_FOUND
from core.settings import load_settings
from tests.fakes import MemorySearcher, chunk

DOCS = [
    chunk("t0", "turbine.md", "Zephyr turbine service manual.", 0),
    chunk("t1", "turbine.md", "The Zephyr turbine must be serviced every 1200 operating hours by an engineer.", 1),
    chunk("t2", "turbine.md", "Warranty claims for the Zephyr turbine are handled by the Orion support desk.", 2),
    chunk("k0", "kitchen.md", "The office kitchen is cleaned daily at 18:30 by the Bright Facilities team.", 0),
]
SETTINGS = load_settings(milvus_uri="unused.db", score_threshold=0.0)


def chain(model: Any = None, **searcher: Any) -> tuple[RagChain, MemorySearcher]:
    kb = MemorySearcher(DOCS, **searcher)
    return RagChain(kb, model, SETTINGS), kb


def options(**changes: Any) -> SearchOptions:
    from dataclasses import replace

    return replace(SearchOptions.from_settings(SETTINGS), **changes)


async def test_offline_answer_streams_after_its_sources_and_ends_with_the_whole_trace() -> None:
    rag, _ = chain()
    events = [e async for e in rag.astream("Who handles warranty claims for the Zephyr turbine?")]
    assert isinstance(events[0], SourcesReady) and isinstance(events[-1], Done)
    tokens = [e.text for e in events if isinstance(e, Token)]
    assert len(tokens) > 10 and "".join(tokens).startswith(INTRO)
    assert "Orion support desk" in "".join(tokens)
    assert events[0].sources[0].source == "turbine.md"
    trace = events[-1].trace
    assert list(trace.timings_ms) == ["condense", "rewrite", "retrieve", "fuse", "answer"]
    assert trace.rewrites[0] == "Who handles warranty claims for the Zephyr turbine?" and len(trace.rewrites) > 1
    assert {s.scope for s in trace.searches} == {"chunks", "full text"}  # hybrid is the default
    assert trace.fused and not trace.warnings


async def test_with_a_chat_model_the_follow_up_is_condensed_rewritten_and_answered_by_it() -> None:
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage("Who handles warranty claims for the Zephyr turbine?"),
                AIMessage("Zephyr turbine warranty claims\nturbine warranty support desk"),
                AIMessage("Warranty claims go to the Orion support desk [2]."),
            ]
        )
    )
    rag, kb = chain(model)
    history: list[BaseMessage] = [HumanMessage("Tell me about the turbine"), AIMessage("It is serviced often.")]
    result = await rag.ainvoke("and the warranty?", history, options(hybrid=True, rewrites=2))
    assert result.answer == "Warranty claims go to the Orion support desk [2]."
    assert result.trace.standalone == "Who handles warranty claims for the Zephyr turbine?"
    assert result.trace.rewrites[1:] == ["Zephyr turbine warranty claims", "turbine warranty support desk"]
    assert [q for kind, q in kb.calls if kind == "full text"] == [result.trace.standalone]  # one list, the question
    assert any(s.source == "turbine.md" for s in result.sources) and not result.trace.warnings


class BrokenModel(GenericFakeChatModel):
    """A chat model whose server is down (or, with `after` tokens, breaks off mid-answer)."""

    after: int = -1

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        raise ConnectionError("model server down")

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: Any = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kw: Any,
    ) -> Iterator[ChatGenerationChunk]:
        raise ConnectionError("model server down")

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: Any = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kw: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        from langchain_core.messages import AIMessageChunk

        for i in range(max(self.after, 0)):
            yield ChatGenerationChunk(message=AIMessageChunk(content=f"word{i} "))
        raise ConnectionError("model server down")


async def test_a_failing_model_is_asked_once_and_the_answer_falls_back_to_extracted_sentences() -> None:
    rag, _ = chain(BrokenModel(messages=iter([])))
    history: list[BaseMessage] = [HumanMessage("Tell me about the Zephyr turbine"), AIMessage("ok")]
    result = await rag.ainvoke("and who handles its warranty claims?", history)
    assert [w.split(":")[0] for w in result.trace.warnings] == ["condense"]  # rewrite did not wait for it again
    assert "So here are the most relevant passages" in result.answer and "Orion support desk" in result.answer


async def test_an_answer_cut_off_midstream_keeps_what_arrived_and_says_so() -> None:
    model = BrokenModel(messages=iter([]), after=3)
    rag, _ = chain(model)
    result = await rag.ainvoke("Who handles warranty claims for the Zephyr turbine?", None, options(rewrites=0))
    assert result.answer.startswith("word0 word1 word2") and "This answer is incomplete" in result.answer
    assert result.trace.partial and result.trace.warnings[0].startswith("answer:")


async def test_nothing_above_the_threshold_is_said_plainly_and_retrieval_runs_alone() -> None:
    rag, _ = chain()
    strict = options(threshold=0.99)
    assert await rag.aretrieve("What is the capital of Peru?", strict) == []
    result = await rag.ainvoke("What is the capital of Peru?", None, strict)
    assert result.answer == NOTHING_FOUND and result.sources == []


def test_only_a_question_that_cannot_stand_alone_may_get_context() -> None:
    assert may_follow_up("and its warranty?") and may_follow_up("how do I turn it off?") and may_follow_up("Why?")
    assert not may_follow_up("Who cleans the office kitchen every evening at the headquarters building?")
    assert not may_follow_up("/docs") and not may_follow_up("/delete it.md") and not may_follow_up("")
    history: list[BaseMessage] = [HumanMessage("How often is the Zephyr turbine serviced?"), AIMessage("...")]
    assert "Zephyr turbine" in offline_condense("and its warranty?", history)


async def test_offline_follow_ups_get_context_only_when_it_finds_their_documents_better() -> None:
    rag, searcher = chain()
    history: list[BaseMessage] = [HumanMessage("Zephyr servicing interval hours?"), AIMessage("...")]
    follow_up = await rag.ainvoke("and who takes its warranty claims?", history)
    assert "Zephyr servicing" in follow_up.trace.standalone and follow_up.sources[0].source == "turbine.md"
    # A short topic switch finds its own document best alone: no context glued on, the other document found.
    switch = await rag.ainvoke("office kitchen?", history)
    assert switch.trace.standalone == "office kitchen?" and switch.sources[0].source == "kitchen.md"
    # A complete new question is never searched twice to decide.
    searcher.calls.clear()
    complete = "Who cleans the office kitchen every evening?"
    assert (await rag.ainvoke(complete, history)).trace.standalone == complete
    assert ("dense", f"{complete} (context: Zephyr servicing interval hours)") not in searcher.calls
