"""The offline answer's CPU: sentence vectors embedded for every answer (before) vs kept by content (now).

    .venv/bin/python -m benchmarks.extractive [--answers 60]

Passages are real chunks of Debian's git documentation (git-doc), five per answer as retrieval hands them
over; the questions are the development set's. Two workloads, each run through the same `extractive_answer`:
distinct passages for every answer (a cache cannot help: the cost of a cold answer), and a team asking
about the same documents (each answer's passages drawn from the 25 chunks of five pages: the cache's case).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import time
from pathlib import Path

from benchmarks.common import ROOT, machine, table
from chains.extractive import SentenceVectors, extractive_answer
from core.models import make_embeddings
from core.settings import load_settings
from ingest.chunks import ChunkSpec, Owner, split
from ingest.loaders import parse

GIT_DOC = Path("/usr/share/doc/git/html")


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def chunks_of(pages: list[Path]) -> list[list[str]]:
    spec = ChunkSpec(1000, 150, 10_000)
    out = []
    for page in pages:
        parsed = parse(page.read_bytes(), page.name)
        docs = split(parsed, Owner(page.name, "team", ""), "bench", spec)
        out.append([d.page_content for d in docs][:5])
    return [c for c in out if len(c) == 5]


def workloads(answers: int) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """The questions, distinct passages per answer, and passages drawn from five shared pages."""
    questions = [json.loads(line)["question"] for line in (ROOT / "eval" / "git-doc-dev.jsonl").open()]
    pages = sorted(GIT_DOC.glob("git-*.html"))
    rng = random.Random(7)
    distinct = chunks_of(rng.sample(pages, answers))
    shared_pool = [c for page in chunks_of(rng.sample(pages, 5)) for c in page]
    return questions, distinct, [rng.sample(shared_pool, 5) for _ in range(len(distinct))]


async def run(answers: int) -> dict[str, dict[str, float]]:
    questions, distinct, shared = workloads(answers)
    model = make_embeddings(load_settings())
    await asyncio.to_thread(model.embed_documents, ["warm up the model"])
    results: dict[str, dict[str, float]] = {}
    for workload, passages in (("distinct passages", distinct), ("same documents", shared)):
        for variant in ("before: embed every answer", "now: vectors kept by content"):
            kept = SentenceVectors(model)
            started, cpu = time.perf_counter(), cpu_s()
            for i, texts in enumerate(passages):
                vectors = kept if variant.startswith("now") else SentenceVectors(model)
                numbered = list(enumerate(texts, start=1))
                async for _ in extractive_answer(questions[i % len(questions)], numbered, vectors):
                    pass
            wall, used = time.perf_counter() - started, cpu_s() - cpu
            results[f"{workload} | {variant}"] = {
                "answers": len(passages),
                "cpu_ms_per_answer": round(used / len(passages) * 1000, 1),
                "wall_ms_per_answer": round(wall / len(passages) * 1000, 1),
            }
    return results


def report(results: dict[str, dict[str, float]]) -> str:
    rows = []
    for name, r in results.items():
        workload, variant = name.split(" | ")
        rows.append([workload, variant, r["answers"], r["cpu_ms_per_answer"], r["wall_ms_per_answer"]])
    header = ["workload", "sentence vectors", "answers", "CPU ms / answer", "wall ms / answer"]
    return f"Machine: {machine()}\n\n" + table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.extractive", description=__doc__)
    parser.add_argument("--answers", type=int, default=60)
    args = parser.parse_args()
    print(report(asyncio.run(run(args.answers))))


if __name__ == "__main__":
    main()
