import asyncio

from langchain_core.embeddings import Embeddings

from core.models import EmbeddingCache, make_chat_model
from core.settings import load_settings


class Counting(Embeddings):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.extend(texts)
        return [[float(len(t))] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        self.calls.append(text)
        return [float(len(text))]

    async def aembed_query(self, text: str) -> list[float]:
        await asyncio.sleep(0.01)
        return self.embed_query(text)


async def test_query_cache_embeds_each_distinct_query_once_even_concurrently() -> None:
    inner = Counting()
    cache = EmbeddingCache(inner, size=2)
    vectors = await asyncio.gather(*(cache.aembed_query(q) for q in ["aa", "aa", "bbb", "aa"]))
    assert vectors == [[2.0], [2.0], [3.0], [2.0]]
    assert sorted(inner.calls) == ["aa", "bbb"]
    await cache.aembed_query("aa")  # a cache hit: "bbb" is now the least recently used
    await cache.aembed_query("c")  # evicts it
    await cache.aembed_query("bbb")
    assert inner.calls.count("bbb") == 2
    cache.clear()
    await cache.aembed_query("aa")
    assert inner.calls.count("aa") == 2


async def test_query_cache_failure_reaches_waiters_and_is_not_cached() -> None:
    class Failing(Counting):
        async def aembed_query(self, text: str) -> list[float]:
            await asyncio.sleep(0.01)
            raise ConnectionError("down")

    cache = EmbeddingCache(Failing())
    results = await asyncio.gather(cache.aembed_query("q"), cache.aembed_query("q"), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert not cache._vectors


def test_chat_model_only_when_configured() -> None:
    assert make_chat_model(load_settings()) is None
    assert make_chat_model(load_settings(openai_base_url="http://127.0.0.1:1/v1")) is not None
    assert make_chat_model(load_settings(openai_base_url="http://127.0.0.1:1/v1", chat_provider="extractive")) is None
