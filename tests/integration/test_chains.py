"""The answer pipeline over a real Milvus Lite, real embeddings and real files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage

from chains import Done, RagChain, SearchOptions, SourcesReady, Token
from chains.evaluate import evaluate
from chains.extractive import INTRO, NOTHING_FOUND
from chains.scoring import load_dataset
from core.errors import EmbeddingMismatch
from core.filters import field_eq
from core.models import EmbeddingInfo, make_chat_model
from core.settings import Settings, load_settings
from core.store import KnowledgeBase
from tests.integration.openai_server import ScriptedModel, serve

EVERY_MILVUS = True  # tests using the knowledge base run on each Milvus backend (conftest)


async def test_offline_answer_streams_with_citations_to_the_right_file_and_page(filled: KnowledgeBase) -> None:
    chain = RagChain(filled, None, filled.settings)
    events = [e async for e in chain.astream("Who handles warranty claims for the turbine?")]
    tokens = [e.text for e in events if isinstance(e, Token)]
    assert len(tokens) > 10  # streamed, not one blob
    sources = next(e.sources for e in events if isinstance(e, SourcesReady))
    assert isinstance(events[-1], Done) and events[-1].trace.timings_ms.keys() >= {"retrieve", "answer"}
    answer = "".join(tokens)
    assert answer.startswith(INTRO)
    assert "Orion support desk" in answer
    cited = {int(n) for n in __import__("re").findall(r"\[(\d+)\]", answer)}
    orion = next(s for s in sources if "Orion" in s.text)
    assert orion.source == "turbine-manual.pdf" and orion.page == 3
    assert orion.number in cited
    assert cited <= {s.number for s in sources}


async def test_trace_has_rewrites_hits_fusion_and_timings(filled: KnowledgeBase) -> None:
    chain = RagChain(filled, None, filled.settings)
    # Every signal on (openings and keyword ranking are off by default: README, Evaluation).
    every = replace(SearchOptions.from_settings(filled.settings), rewrites=3, openings=True, keyword_rank=True)
    result = await chain.ainvoke("How many days per week can employees work remotely?", options=every)
    t = result.trace
    assert t.rewrites[0] == "How many days per week can employees work remotely?" and len(t.rewrites) > 1
    full_text = filled.full_text is not None  # hybrid search is on by default where the backend has BM25
    assert len(t.searches) == 2 * len(t.rewrites) + full_text and all(s.hits for s in t.searches)
    assert {s.scope for s in t.searches} == {"chunks", "openings"} | ({"full text"} if full_text else set())
    openings = [h for s in t.searches if s.scope == "openings" for h in s.hits]
    assert openings and all(h["id"] for h in openings)
    assert t.keyword_ranking and set(t.keyword_ranking) <= {h["id"] for s in t.searches for h in s.hits}
    assert t.fused and set(t.timings_ms) >= {"condense", "rewrite", "retrieve", "fuse", "answer"}
    assert result.sources[0].source == "remote-work.docx"
    assert json.loads(json.dumps(result.to_dict(), default=str))["rewrites"] == t.rewrites


async def test_mmr_mode_and_threshold(filled: KnowledgeBase) -> None:
    chain = RagChain(filled, None, filled.settings)
    opts = SearchOptions(k=3, fetch_k=10, rewrites=2, mode="mmr", threshold=0.99, mmr_lambda=0.5)
    sources = await chain.aretrieve("When are production deployments frozen?", opts)
    assert sources and sources[0].source == "release.md" and sources[0].score is None
    strict = SearchOptions(k=3, fetch_k=10, rewrites=0, mode="similarity", threshold=0.99, mmr_lambda=0.5)
    assert await chain.aretrieve("When are production deployments frozen?", strict) == []


async def test_unknown_topic_says_nothing_found(filled: KnowledgeBase) -> None:
    chain = RagChain(filled, None, filled.settings)
    opts = SearchOptions(k=3, fetch_k=10, rewrites=1, mode="similarity", threshold=0.6, mmr_lambda=0.5)
    result = await chain.ainvoke("xylophone tuning frequencies of glaciers", options=opts)
    assert result.sources == [] and result.answer == NOTHING_FOUND


async def test_offline_follow_up_uses_previous_turn(filled: KnowledgeBase) -> None:
    chain = RagChain(filled, None, filled.settings)
    history = [HumanMessage("How often must the Zephyr turbine be serviced?"), AIMessage("Every 1200 hours [1].")]
    result = await chain.ainvoke("and who handles its warranty?", history)
    assert "Zephyr turbine" in result.trace.standalone
    assert any(s.source == "turbine-manual.pdf" and s.page == 3 for s in result.sources[:3])


async def test_fake_chat_model_drives_condense_rewrite_and_answer(filled: KnowledgeBase) -> None:
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage("What is the warranty process for the Zephyr turbine?"),
                AIMessage("1. Zephyr warranty claims\n2. turbine support desk Oslo"),
                AIMessage("Claims go to the Orion desk [1]."),
            ]
        )
    )
    chain = RagChain(filled, model, filled.settings)
    history = [HumanMessage("Tell me about the turbine"), AIMessage("It is serviced every 1200 hours.")]
    two = replace(SearchOptions.from_settings(filled.settings), rewrites=2)
    result = await chain.ainvoke("and the warranty?", history, two)
    assert result.trace.standalone == "What is the warranty process for the Zephyr turbine?"
    assert result.trace.rewrites == [
        "What is the warranty process for the Zephyr turbine?",
        "Zephyr warranty claims",
        "turbine support desk Oslo",
    ]
    assert result.answer == "Claims go to the Orion desk [1]."
    assert result.sources[0].source == "turbine-manual.pdf"


async def test_generative_path_streams_from_a_local_openai_compatible_server(filled: KnowledgeBase) -> None:
    model = ScriptedModel()
    with serve(model) as base_url:
        settings = load_settings(
            milvus_uri=filled.settings.milvus_uri, collection=filled.settings.collection, openai_base_url=base_url
        )
        chat = make_chat_model(settings)
        assert chat is not None
        chain = RagChain(filled, chat, settings)
        history = [HumanMessage("Tell me about the turbine"), AIMessage("It is serviced every 1200 hours.")]
        tokens = [e.text async for e in chain.astream("and the warranty?", history) if isinstance(e, Token)]
    assert len(tokens) > 5
    assert "".join(tokens).startswith("Warranty claims go to the Orion support desk")
    answer_request = model.requests[-1]
    assert answer_request["stream"] is True
    system = answer_request["messages"][0]["content"]
    assert "[1] turbine-manual.pdf (page 3)" in system or "[1] turbine-manual.pdf" in system
    assert [m["content"] for m in answer_request["messages"][1:3]] == [
        "Tell me about the turbine",
        "It is serviced every 1200 hours.",
    ]
    assert len(model.requests) == 3  # condense, rewrite, answer


async def test_evaluate_reports_pipeline_and_baseline(filled: KnowledgeBase, tmp_path: Path) -> None:
    dataset = tmp_path / "dev.jsonl"
    dataset.write_text(
        "\n".join(
            json.dumps(c)
            for c in [
                {"question": "who do I contact about a turbine warranty", "sources": ["turbine-manual.pdf"]},
                {"question": "can I work from home", "sources": ["remote-work.docx"]},
                {"question": "forgot my vpn password", "sources": ["it-help.html"]},
            ]
        ),
        encoding="utf-8",
    )
    chain = RagChain(filled, None, filled.settings)
    report = await evaluate(chain, load_dataset(dataset), k=3)
    assert report["questions"] == 3
    assert report["pipeline"]["recall"] == 1.0 and report["baseline"]["recall"] == 1.0
    assert 0 < report["pipeline"]["mrr"] <= 1


async def test_a_different_embedding_model_is_refused(filled: KnowledgeBase, embeddings: Embeddings) -> None:
    other = load_settings(milvus_uri=filled.settings.milvus_uri, collection=filled.settings.collection)
    with pytest.raises(EmbeddingMismatch) as err:
        await KnowledgeBase.open(other, embeddings, EmbeddingInfo("openai:text-embedding-3-small", 1536), filled.engine)
    assert "RAG_COLLECTION" in str(err.value) and "local:all-MiniLM-L6-v2" in str(err.value)


ADVERSARIAL = [
    'a" or source != "',
    "a' or source != '",
    'x\\" or 1==1 or \\"',
    "../etc/passwd",
    'q"]) or (["',
    "naïve 文件.pdf",
    "tab\there",
    "line\nbreak",
    'back\\slash"',
]


async def test_filters_with_hostile_values_match_exactly(kb: KnowledgeBase) -> None:
    docs = [
        Document(page_content=f"text {i}", metadata={"source": s, "scope": "team", "owner": s})
        for i, s in enumerate(ADVERSARIAL)
    ]
    await kb.add(docs, [f"id{i}" for i in range(len(docs))])
    for s in ADVERSARIAL:
        rows = await kb.query(field_eq("source", s), ["source"])
        assert [r["source"] for r in rows] == [s]
    assert await kb.count(field_eq("source", "nothing")) == 0


@hyp_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(max_size=40))
def test_property_any_string_filters_exactly(settings: Settings, embeddings: Embeddings, value: str) -> None:
    """No value can change a filter's meaning: it matches its own row and nothing else."""
    import asyncio

    from core.runtime import open_knowledge_base

    async def check() -> None:
        async with open_knowledge_base(settings, embeddings) as base:
            if await base.count() == 0:
                await base.add(
                    [Document(page_content="decoy", metadata={"source": "decoy", "scope": "team", "owner": ""})],
                    ["decoy"],
                )
            pk = "p" + str(abs(hash(value)))
            await base.add(
                [
                    Document(
                        page_content="v", metadata={"source": value.replace("\0", ""), "scope": "team", "owner": ""}
                    )
                ],
                [pk],
            )
            rows = await base.query(field_eq("source", value.replace("\0", "")), ["pk"])
            assert pk in {r["pk"] for r in rows} and "decoy" not in {r["pk"] for r in rows}
            await base.delete(field_eq("pk", pk))

    asyncio.run(check())


CODES = """# Controller fault codes

Fault E4471 means the coolant valve is stuck; replace gasket GK-88 before restarting.
Fault E5102 means the pitch motor overheated; let it cool for thirty minutes.
Fault E6230 means the anemometer lost its signal; check the cable at the nacelle.
"""


async def test_hybrid_search_adds_full_text_hits_where_the_backend_has_bm25(
    filled: KnowledgeBase, backend: str, tmp_path: Path
) -> None:
    from core.access import Viewer
    from ingest import FileInput, Ingestor

    (tmp_path / "codes.md").write_text(CODES, encoding="utf-8")
    (tmp_path / "plans.md").write_text("# Plans\n\nProject Quokkaplan starts in March.\n", encoding="utf-8")
    files = [
        FileInput(tmp_path / "codes.md", "codes.md"),
        FileInput(tmp_path / "plans.md", "plans.md", "private", "alice"),
    ]
    assert {r.status for r in await Ingestor(filled).ingest(files)} == {"indexed"}
    chain = RagChain(filled, None, filled.settings)
    hybrid = replace(SearchOptions.from_settings(filled.settings), hybrid=True)

    if backend == "milvus-2.3":  # no BM25 before Milvus 2.5: said plainly, and searches stay dense
        assert filled.full_text is None and "2.5" in (filled.full_text_note or "")
        result = await chain.ainvoke("what does fault E4471 mean", options=hybrid)
        assert {s.scope for s in result.trace.searches} == {"chunks"}
        assert result.sources
        return

    assert filled.full_text is not None and filled.full_text_note is None
    result = await chain.ainvoke("what does fault E4471 mean", options=hybrid)
    full_text = [s for s in result.trace.searches if s.scope == "full text"]
    assert len(full_text) == 1 and full_text[0].query == result.trace.rewrites[0]  # the question itself
    assert full_text[0].hits[0]["source"] == "codes.md"  # the exact code, found by its word
    assert all(h["score"] > 0 for s in full_text for h in s.hits)
    assert result.sources[0].source == "codes.md" and result.sources[0].score is not None
    assert "E4471" in result.answer

    # Full-text search applies the same access filter: Bob never sees Alice's private plan.
    bob = [s.source for s in await chain.aretrieve("Quokkaplan", hybrid, Viewer("bob"))]
    alice = [s.source for s in await chain.aretrieve("Quokkaplan", hybrid, Viewer("alice"))]
    assert "plans.md" not in bob and alice[0] == "plans.md"

    # A question that shares only a common word with the documents is still measured by meaning.
    strict = replace(hybrid, threshold=0.5)
    off_topic = await chain.ainvoke("fault lines of tectonic plates near Iceland", options=strict)
    assert any(s.hits for s in off_topic.trace.searches if s.scope == "full text")  # "fault" matched
    assert off_topic.sources == [] and off_topic.answer == NOTHING_FOUND
