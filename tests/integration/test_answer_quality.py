"""Answers people can trust, on the real model and a real Milvus Lite: repeated content, abstention,
follow-ups and topic switches."""

from __future__ import annotations

from pathlib import Path

from langchain_core.messages import AIMessage, HumanMessage

from chains import RagChain
from chains.scoring import judge, parse_case
from core.filters import field_eq
from core.store import KnowledgeBase
from ingest import FileInput, Ingestor

QUESTIONS = {
    "Who handles warranty claims for the turbine?": "turbine-manual.pdf",
    "How many days a week can I work from home?": "remote-work.docx",
    "I forgot my VPN password, what do I do?": "it-help.html",
    "When are production deployments frozen?": "release.md",
}


async def test_a_file_of_identical_chunks_is_stored_once_and_blinds_nothing(
    filled: KnowledgeBase, tmp_path: Path
) -> None:
    """236 identical 1,000-character chunks used to crowd every other vector out of the HNSW search."""
    repeated = tmp_path / "filler.txt"
    repeated.write_text("x" * 200_000, encoding="utf-8")
    [result] = await Ingestor(filled).ingest([FileInput(repeated, "filler.txt")])
    assert result.status == "indexed" and result.chunks <= 2  # the full piece, and the shorter last one
    assert await filled.count(field_eq("source", "filler.txt")) == result.chunks
    chain = RagChain(filled, None, filled.settings)
    for question, expected in QUESTIONS.items():
        result_ = await chain.ainvoke(question)
        assert result_.sources and result_.sources[0].source == expected, question


async def test_a_question_about_what_no_document_mentions_is_answered_plainly_with_nothing(
    filled: KnowledgeBase,
) -> None:
    chain = RagChain(filled, None, filled.settings)
    # Close passages exist (the VPN page), but none mentions the thing asked about: nothing is cited.
    result = await chain.ainvoke("How do I reset my VPN password from PowerShell?")
    assert result.sources == [] and "never mention “PowerShell”" in result.answer
    assert judge(parse_case({"question": "q", "unanswerable": True}), result.answer, []).abstained
    # Names the documents do contain are no reason to refuse.
    assert (await chain.ainvoke("What does the VPN reset page say?")).sources


async def test_follow_ups_get_context_and_topic_switches_do_not(filled: KnowledgeBase) -> None:
    chain = RagChain(filled, None, filled.settings)
    history = [HumanMessage("How often is the Zephyr turbine serviced?"), AIMessage("Every 1200 hours.")]
    follow_up = await chain.ainvoke("and who handles its warranty claims?", history)
    assert "Zephyr turbine" in follow_up.trace.standalone
    assert follow_up.sources[0].source == "turbine-manual.pdf"
    for switch, expected in (("Can I work from home?", "remote-work.docx"), ("VPN password?", "it-help.html")):
        result = await chain.ainvoke(switch, history)
        assert result.trace.standalone == switch and result.sources[0].source == expected, switch
