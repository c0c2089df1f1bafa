"""Event-loop lag while a large document is ingested and questions are answered at the same time.

Lag is how late a 10 ms timer fires on the loop that serves every user. Compared: Milvus Lite's engine
in the app's process (the embedded default) and the same engine as a separate process.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from benchmarks.common import LoopLag, table
from chains.pipeline import RagChain
from core.runtime import open_knowledge_base
from core.settings import Settings, load_settings
from ingest import FileInput, Ingestor
from tests.load.soak import QUESTIONS


def large_document(folder: Path, paragraphs: int = 1500) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "handbook.md"
    topics = ["turbine", "warranty", "vpn", "roadmap", "remote work", "deployment", "invoice", "badge"]
    lines = ["# Operations handbook", ""]
    for i in range(paragraphs):
        t = topics[i % len(topics)]
        lines += [
            f"## Section {i}: {t}",
            "",
            f"Procedure {i} for the {t}: file a request with desk {i % 13}, "
            f"wait for approval from team {i % 7}, and record the outcome in register {i}. " * 3,
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


async def scenario(settings: Settings, seed: Path, big: Path, users: int, seconds: float) -> dict[str, Any]:
    from ingest import collect_files

    async with open_knowledge_base(settings) as kb:
        ingestor = Ingestor(kb)
        await ingestor.ingest(collect_files([seed]))
        chain = RagChain(kb, None, settings)
        lag = LoopLag()
        answered = 0
        until = time.monotonic() + seconds

        async def user(n: int) -> None:
            nonlocal answered
            i = n
            while time.monotonic() < until:
                await chain.ainvoke(QUESTIONS[i % len(QUESTIONS)] + f" ({i})", [])
                answered += 1
                i += users

        lag.start()
        started = time.perf_counter()
        ingest_task = asyncio.create_task(ingestor.ingest([FileInput(big, big.name)]))
        await asyncio.gather(*(user(n) for n in range(users)))
        results = await ingest_task
        figures = await lag.stop()
        return figures | {
            "answers": answered,
            "chunks": sum(r.chunks for r in results),
            "ingest_status": results[0].status,
            "seconds": time.perf_counter() - started,
        }


def run(data: Path, users: int = 10, seconds: float = 20) -> dict[str, Any]:
    from tests.fixtures.documents import make_good_set
    from tests.servers import milvus_lite_server

    seed = data / "seed"
    make_good_set(seed)
    big = large_document(data / "big")
    out: dict[str, Any] = {}
    for label in ("in-process", "separate process"):
        folder = data / label.replace(" ", "-")
        base = {"database_url": f"sqlite:///{folder}/app.db", "files_dir": str(folder / "files")}
        if label == "in-process":
            settings = load_settings(milvus_uri=str(folder / "kb.db"), **base)
            out[label] = asyncio.run(scenario(settings, seed, big, users, seconds))
        else:
            (folder / "engine").mkdir(parents=True)
            with milvus_lite_server(folder / "engine") as server:
                settings = load_settings(milvus_uri=server.uri, **base)
                out[label] = asyncio.run(scenario(settings, seed, big, users, seconds))
    out["users"] = users
    return out


def report(r: dict[str, Any]) -> str:
    rows = []
    for label in ("in-process", "separate process"):
        x = r[label]
        rows.append(
            [
                f"Milvus Lite engine {label}",
                f"{x['p50_ms']:.1f} ms",
                f"**{x['p99_ms']:.1f} ms**",
                f"{x['max_ms']:.0f} ms",
                x["answers"],
                f"{x['chunks']:,} ({x['ingest_status']})",
            ]
        )
    return "\n".join(
        [
            f"{r['users']} users asking questions back to back (offline answers) while a large Markdown handbook is "
            "ingested, all on one event loop:",
            "",
            table(["engine", "loop lag p50", "p99", "max", "answers", "handbook chunks"], rows),
        ]
    )
