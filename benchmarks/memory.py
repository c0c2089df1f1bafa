"""5. Memory (RSS) of a process holding the knowledge base open, at 10k and 100k chunks.

Each size is measured in a fresh process: open the collection, answer one search, read VmRSS.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, rss_mb, table


async def _measure(data: Path, size: int) -> dict[str, float]:
    from benchmarks.corpus import bench_settings
    from core.models import make_embeddings
    from core.runtime import open_knowledge_base

    settings = bench_settings(data, size)
    before = rss_mb()
    embeddings = make_embeddings(settings)
    model = rss_mb()
    async with open_knowledge_base(settings, embeddings) as kb:
        count = await kb.count()
        await kb.store.asimilarity_search_with_score("how are files opened", k=20)
        opened = rss_mb()
    return {"chunks": count, "python_mb": before, "model_mb": model - before, "with_kb_mb": opened}


def run(data: Path, sizes: tuple[int, ...]) -> dict[int, Any]:
    out = {}
    for size in sizes:
        code = (
            f"import asyncio, json; from benchmarks.memory import _measure; from pathlib import Path; "
            f"print(json.dumps(asyncio.run(_measure(Path({str(data)!r}), {size}))))"
        )
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
        out[size] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def report(r: dict[int, Any]) -> str:
    rows = [
        [f"{x['chunks']:,}", f"{x['python_mb']:.0f} MB", f"{x['model_mb']:.0f} MB", f"**{x['with_kb_mb']:,.0f} MB**"]
        for x in r.values()
    ]
    return table(
        ["chunks", "interpreter + libraries", "+ embedding model", "process RSS with the collection open"], rows
    )
