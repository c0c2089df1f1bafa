"""Coalescing: concurrent single-item calls become one call with many items.

One search with N query vectors costs Milvus a fraction of N single searches, and one embedding call
with N texts costs a local model a fraction of N calls. Callers keep their one-item async API; the
`Coalescer` gathers whatever arrives while an earlier batch is running ("natural batching"), so a lone
caller waits for nothing, and under load the batches grow by themselves, up to `max_batch`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from langchain_core.embeddings import Embeddings
from langchain_milvus import Milvus

K = TypeVar("K", bound=Hashable)
MAX_PARALLEL_SEARCHES = 2  # Milvus search calls in flight per process (each carries many query vectors)
In = TypeVar("In")
Out = TypeVar("Out")


@dataclass
class _Queue(Generic[In, Out]):
    items: list[tuple[In, asyncio.Future[Out]]] = field(default_factory=list)
    running: int = 0


@dataclass
class BatchStats:
    """How much coalescing happened (for benchmarks and the trace)."""

    calls: int = 0
    items: int = 0
    largest: int = 0


class Coalescer(Generic[K, In, Out]):
    """Runs `run(key, items)` for items submitted concurrently under the same key.

    At most `max_inflight` calls run at once per key; items that arrive meanwhile wait and go together
    in the next call. `run` must return one result per item, in order; if it raises, every item of that
    batch gets the exception.
    """

    def __init__(
        self,
        run: Callable[[K, list[In]], Awaitable[Sequence[Out]]],
        max_batch: int = 64,
        max_inflight: int = 1,
    ) -> None:
        self._run = run
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self._queues: dict[K, _Queue[In, Out]] = {}
        self._drains: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks
        self.stats = BatchStats()

    async def submit(self, key: K, item: In) -> Out:
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        queue = self._queues.setdefault(key, _Queue())
        queue.items.append((item, future))
        if queue.running < self.max_inflight:
            queue.running += 1
            drain = asyncio.get_running_loop().create_task(self._drain(key, queue))
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        return await future

    async def _drain(self, key: K, queue: _Queue[In, Out]) -> None:
        try:
            await asyncio.sleep(0)  # let the callers started in the same breath join this batch
            while queue.items:
                batch, queue.items = queue.items[: self.max_batch], queue.items[self.max_batch :]
                batch = [(item, fut) for item, fut in batch if not fut.cancelled()]
                if not batch:
                    continue
                self.stats.calls += 1
                self.stats.items += len(batch)
                self.stats.largest = max(self.stats.largest, len(batch))
                try:
                    results = await self._run(key, [item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"batch of {len(batch)} returned {len(results)} results")
                except BaseException as exc:  # every waiter gets the failure; none waits forever
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
        finally:
            queue.running -= 1
            if not queue.items and not queue.running:
                self._queues.pop(key, None)


class QueryBatcher:
    """Concurrent `aembed_query` calls of one model become one `aembed_documents` call."""

    def __init__(self, model: Embeddings, max_batch: int = 64) -> None:
        self.model = model
        self.coalescer: Coalescer[None, str, list[float]] = Coalescer(self._embed, max_batch=max_batch)

    async def _embed(self, _: None, texts: list[str]) -> list[list[float]]:
        unique = list(dict.fromkeys(texts))
        if len(unique) == 1:
            vectors = {unique[0]: await self.model.aembed_query(unique[0])}
        else:
            vectors = dict(zip(unique, await self.model.aembed_documents(unique), strict=True))
        return [vectors[t] for t in texts]

    async def embed(self, text: str) -> list[float]:
        return await self.coalescer.submit(None, text)


def _freeze(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class LeanMilvus(Milvus):
    """langchain-milvus's store that never reads back vector fields with its hits.

    A full-text collection holds a dense and a sparse (BM25) vector per chunk; langchain-milvus leaves
    out only the field a store searches, so each store would fetch the other one with every hit.
    """

    def __init__(self, *args: Any, hidden_fields: tuple[str, ...] = (), **kwargs: Any) -> None:
        self.hidden_fields = hidden_fields
        super().__init__(*args, **kwargs)

    def _remove_forbidden_fields(self, fields: list[str]) -> list[str]:
        return [f for f in super()._remove_forbidden_fields(fields) if f not in self.hidden_fields]


class BatchedMilvus(LeanMilvus):
    """langchain-milvus's store whose concurrent single-query searches share one Milvus call.

    `asimilarity_search_with_score` and `amax_marginal_relevance_search` both search through
    `_acollection_search` with one vector (or, on a full-text store, one query text). Calls with the
    same limit, filter, search parameters and output fields are coalesced into one
    `search(data=[q1, q2, ...])`, whose per-query results are exactly what the single calls would
    have returned.
    """

    def __init__(
        self, *args: Any, max_parallel_searches: int = MAX_PARALLEL_SEARCHES, max_batch: int = 64, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        # One call in flight per (filter, limit) group; all groups together at most `max_parallel_searches`.
        self.searches: Coalescer[str, tuple[list[float] | str, dict[str, Any]], list[Any]] = Coalescer(
            self._search_many, max_batch=max_batch
        )
        self._slots = asyncio.Semaphore(max_parallel_searches)

    async def _acollection_search(
        self,
        embedding_or_text: list[float] | dict[int, float] | str,
        k: int = 4,
        param: dict | None = None,
        expr: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the overridden signature
        **kwargs: Any,
    ) -> list[list[Any]] | None:
        if self.col is None or isinstance(embedding_or_text, dict):  # a sparse vector: not batched
            return await super()._acollection_search(embedding_or_text, k, param, expr, timeout, **kwargs)
        if param is None:
            param = self._as_list(self.search_params)[0]
        call = {"limit": k, "search_params": param, "filter": expr, "timeout": self.timeout or timeout, **kwargs}
        return [await self.searches.submit(_freeze(call), (embedding_or_text, call))]

    async def _search_many(self, _: str, items: list[tuple[list[float] | str, dict[str, Any]]]) -> list[list[Any]]:
        async with self._slots:
            result = await self.aclient.search(
                self.collection_name,
                data=[vector for vector, _ in items],
                anns_field=self._vector_field,
                output_fields=self._get_output_fields(),
                **items[0][1],  # the same for every item: it is the batch's key
            )
        return [list(hits) for hits in result]
