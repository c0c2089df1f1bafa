"""What every benchmark needs: timing, percentiles, loop lag, the machine, and servers started aside."""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process and every process under it (Milvus Lite's server,
    parsing workers), from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        times[child] = (int(fields[11]) + int(fields[12])) / tick
    tree, grew = {pid}, True
    while grew:
        below = {c for c, p in parents.items() if p in tree} - tree
        tree |= below
        grew = bool(below)
    return sum(times.get(p, 0.0) for p in tree)


def rss_mb(pid: int | None = None) -> float:
    for line in Path(f"/proc/{pid or os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class LoopLag:
    """Samples how late a 10 ms sleep wakes up: the time a blocked event loop makes everyone wait."""

    interval: float = 0.01
    samples: list[float] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.samples.append(max(0.0, time.perf_counter() - started - self.interval))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> dict[str, float]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        return {
            "p50_ms": pct(self.samples, 0.5) * 1000,
            "p99_ms": pct(self.samples, 0.99) * 1000,
            "max_ms": max(self.samples, default=0.0) * 1000,
        }


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("pymilvus", "milvus-lite", "langchain-milvus", "onnxruntime", "torch", "chainlit")
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GB RAM, no GPU; Python {platform.python_version()} "
        f"on {platform.system()} {platform.release()}; {versions}"
    )


def free_port() -> int:
    from tests.servers import free_port as port

    return port()


@contextmanager
def model_server(first_token_s: float = 0.0, embed_latency_s: float = 0.0) -> Iterator[str]:
    """The local OpenAI-compatible server in its own process (so it never shares our GIL); yields /v1 URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "tests.integration.openai_server", "--port", str(port)]
    cmd += ["--first-token-s", str(first_token_s), "--embed-latency-s", str(embed_latency_s)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
            except urllib.error.HTTPError:
                break  # it answers (404 for /)
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("the model server did not start") from None
                time.sleep(0.1)
            else:
                break
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def table(header: list[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def plain_store(kb: Any) -> Any:
    """langchain-milvus's own store on the same collection, with the bare model (no cache, no batching)."""
    from core.models import EmbeddingCache
    from core.store import KnowledgeBase

    embeddings = kb.embeddings.inner if isinstance(kb.embeddings, EmbeddingCache) else kb.embeddings
    return KnowledgeBase._open_sync(kb.settings, embeddings, kb.info, batched=False)[0]
