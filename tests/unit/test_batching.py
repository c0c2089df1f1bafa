"""The coalescer: concurrent single calls become batched calls, with each caller's own result."""

from __future__ import annotations

import asyncio

import pytest

from core.batching import Coalescer


class Recorder:
    def __init__(self, fail_on: str | None = None, delay: float = 0.01) -> None:
        self.batches: list[tuple[str, list[str]]] = []
        self.fail_on = fail_on
        self.delay = delay

    async def __call__(self, key: str, items: list[str]) -> list[str]:
        self.batches.append((key, list(items)))
        await asyncio.sleep(self.delay)
        if self.fail_on in items:
            raise ValueError(f"cannot do {self.fail_on}")
        return [f"{key}:{item.upper()}" for item in items]


async def test_concurrent_calls_share_one_batch_per_key_and_get_their_own_results() -> None:
    run = Recorder()
    coalescer: Coalescer[str, str, str] = Coalescer(run)
    calls = [("a", f"x{i}") for i in range(10)] + [("b", f"y{i}") for i in range(5)]
    results = await asyncio.gather(*(coalescer.submit(key, item) for key, item in calls))
    assert results == [f"{key}:{item.upper()}" for key, item in calls]
    assert sorted((key, len(items)) for key, items in run.batches) == [("a", 10), ("b", 5)]
    assert coalescer.stats.calls == 2 and coalescer.stats.items == 15 and coalescer._queues == {}


async def test_a_lone_call_waits_for_nothing_and_later_arrivals_form_the_next_batch() -> None:
    run = Recorder(delay=0.05)
    coalescer: Coalescer[str, str, str] = Coalescer(run, max_batch=3)
    first = asyncio.create_task(coalescer.submit("k", "first"))
    await asyncio.sleep(0.01)  # the first batch is running now
    rest = await asyncio.gather(*(coalescer.submit("k", f"n{i}") for i in range(7)))
    assert await first == "k:FIRST" and rest == [f"k:N{i}" for i in range(7)]
    assert [items for _, items in run.batches] == [["first"], ["n0", "n1", "n2"], ["n3", "n4", "n5"], ["n6"]]


async def test_a_failing_batch_fails_its_callers_only() -> None:
    run = Recorder(fail_on="bad", delay=0.05)
    coalescer: Coalescer[str, str, str] = Coalescer(run)
    ok = asyncio.create_task(coalescer.submit("k", "ok"))
    await asyncio.sleep(0.01)
    doomed = [asyncio.create_task(coalescer.submit("k", item)) for item in ("bad", "also")]
    assert await ok == "k:OK"
    for task in doomed:
        with pytest.raises(ValueError, match="cannot do bad"):
            await task
    assert await coalescer.submit("k", "after") == "k:AFTER"  # the queue keeps working


async def test_a_cancelled_caller_is_dropped_and_the_others_are_answered() -> None:
    run = Recorder(delay=0.05)
    coalescer: Coalescer[str, str, str] = Coalescer(run)
    first = asyncio.create_task(coalescer.submit("k", "first"))
    await asyncio.sleep(0.01)
    gone = asyncio.create_task(coalescer.submit("k", "gone"))
    kept = asyncio.create_task(coalescer.submit("k", "kept"))
    await asyncio.sleep(0)
    gone.cancel()
    assert await first == "k:FIRST" and await kept == "k:KEPT"
    assert [items for _, items in run.batches] == [["first"], ["kept"]]


async def test_in_flight_calls_are_bounded_per_key() -> None:
    running, peak = 0, 0

    async def run(key: str, items: list[int]) -> list[int]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return items

    coalescer: Coalescer[str, int, int] = Coalescer(run, max_batch=2, max_inflight=2)
    assert await asyncio.gather(*(coalescer.submit("k", i) for i in range(20))) == list(range(20))
    assert peak == 2
