"""A failing model server (429, 500, a hang, a cut stream): retries, time limits, plain words, no lost answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from chains import RagChain
from core.models import make_chat_model
from core.store import KnowledgeBase
from tests.integration.openai_server import ScriptedModel, serve

QUESTION = "Who handles warranty claims for the turbine?"


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    yield ScriptedModel()


def chain_for(kb: KnowledgeBase, base_url: str, timeout: float = 5.0) -> RagChain:
    settings = kb.settings.model_copy(
        update={"openai_base_url": base_url, "chat_model": "local-test", "request_timeout": timeout}
    )
    return RagChain(kb, make_chat_model(settings), settings)


async def test_rate_limits_are_retried_with_backoff(filled: KnowledgeBase, model: ScriptedModel) -> None:
    with serve(model) as url:
        model.failures = ["429", "429"]  # the first rewrite request twice, then it succeeds
        result = await chain_for(filled, url).ainvoke(QUESTION)
    assert "Orion support desk" in result.answer and not result.trace.warnings
    assert len(model.requests) == 4  # rewrite x3 (two refused), answer x1


async def test_a_server_error_falls_back_to_the_passages_with_a_plain_note(
    filled: KnowledgeBase, model: ScriptedModel
) -> None:
    model.always = "500"
    with serve(model) as url:
        history = [HumanMessage("How often is the turbine serviced?"), AIMessage("Every 1200 hours [1].")]
        result = await chain_for(filled, url).ainvoke("and its warranty?", history)
    assert result.answer.startswith("*The model server returned an error (HTTP 500).*")
    assert "Orion support desk" in result.answer and "[" in result.answer  # cited passages, not nothing
    assert "turbine-manual.pdf" in {s.source for s in result.sources}
    assert [w.split(":")[0] for w in result.trace.warnings] == ["condense"]  # then no more waiting for it
    assert "Traceback" not in result.answer and "scripted failure" not in result.answer
    assert len(model.requests) == 3  # one call, retried twice; rewrite and answer did not try again


async def test_a_hanging_server_is_given_up_after_the_time_limit(filled: KnowledgeBase, model: ScriptedModel) -> None:
    model.always = "hang"
    with serve(model) as url:
        result = await chain_for(filled, url, timeout=0.5).ainvoke(QUESTION)
    assert result.answer.startswith("*The model server did not answer within 0.5 s.*")
    assert "Orion support desk" in result.answer


async def test_a_cut_stream_keeps_the_partial_answer_and_says_so(filled: KnowledgeBase, model: ScriptedModel) -> None:
    model.answer_repeats = 5
    with serve(model) as url:
        chain = chain_for(filled, url)
        model.failures = [None, "cut"]  # the rewrite succeeds, the answer is cut
        result = await chain.ainvoke(QUESTION)
    assert result.trace.partial
    assert result.answer.startswith("Warranty claims go to")
    assert result.answer.endswith("*(This answer is incomplete: The connection to the model server broke off.)*")
    assert result.sources  # the sources of what did arrive are still listed
