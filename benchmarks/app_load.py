"""4. The app itself: concurrent chat clients over Chainlit's socket protocol against the real server,
answering through a local OpenAI-compatible model server with a fixed time to first token, and then on the
offline default (no model server: extracted sentences) over a knowledge base of more than 10,000 chunks.

Each user keeps one chat session and asks questions one after another, as people do. Before the first
answer token the model is called in turn for the condense step (only for a follow-up that may refer back,
never for a session's first question), the rewrite (its whole reply comes after the fixed delay) and the
answer (its first token after the fixed delay). Overhead = time to first token seen by the client - the
model's share (2 or 3 x the fixed delay); offline there is no model share, so overhead is the time to first token.
CPU per question is the app's CPU time (its process and every process under it, Milvus Lite's server
included) during a run, divided by the questions answered.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from benchmarks import corpus
from benchmarks.common import cpu_seconds, model_server, pct, rss_mb, table
from chains.condense import may_follow_up
from tests.load.client import ChatClient
from tests.load.soak import QUESTIONS, seed_documents
from tests.servers import chainlit_process


async def clients(
    url: str, users: int, rounds: int, model_ttft: float = 0.0, questions: list[str] = QUESTIONS
) -> dict[str, Any]:
    first: list[float] = []
    overhead: list[float] = []
    errors: list[str] = []

    async def user(n: int) -> None:
        client = ChatClient(url)
        await client.connect()
        for r in range(rounds):
            question = questions[(n * rounds + r) % len(questions)]
            reply = await client.ask(question)
            if reply.errors or reply.first_token_s is None:
                errors.append(reply.text[:200] or str(reply.errors))
            else:
                first.append(reply.first_token_s)
                # The model is asked to condense only a follow-up that may refer back (chains.condense).
                calls = 3 if r > 0 and may_follow_up(question) else 2
                overhead.append(reply.first_token_s - calls * model_ttft)
        await client.close()

    started = time.perf_counter()
    await asyncio.gather(*(user(n) for n in range(users)))
    return {"first_token": first, "overhead": overhead, "errors": errors, "seconds": time.perf_counter() - started}


def run(
    data: Path,
    bench: Path,
    levels: tuple[int, ...] = (1, 20),
    rounds: int = 5,
    model_ttft: float = 0.25,
    offline_size: int = 10_000,
) -> dict[str, Any]:
    """The app three times, one after the other: with the model server on the same small documents, dense
    search only (as before hybrid search was the default), then hybrid (dense + BM25, the default); then
    offline (hybrid, no model server) on a copy of the benchmarks' `offline_size`-chunk collection plus the
    same documents, asked their questions and questions about the collection's text in turn."""
    out: dict[str, Any] = {"model_ttft": model_ttft, "offline_size": offline_size, "modes": {}}
    for mode, hybrid in (("dense", "false"), ("hybrid", "true")):
        out["modes"][mode] = _run_app(data / mode, levels, rounds, model_ttft, QUESTIONS, RAG_HYBRID_SEARCH=hybrid)
    source = corpus.bench_settings(bench, offline_size)
    offline = data / "offline"
    shutil.copytree(Path(source.milvus_uri).parent, offline)  # the benchmarks' own collection stays as built
    asked = [q for pair in zip(QUESTIONS, (q[0] for q in corpus.questions(len(QUESTIONS))), strict=True) for q in pair]
    out["modes"]["offline"] = _run_app(
        offline, levels, rounds, 0.0, asked, RAG_MILVUS_URI=str(offline / "kb.db"), RAG_COLLECTION=source.collection
    )
    return out


def _run_app(
    data: Path, levels: tuple[int, ...], rounds: int, model_ttft: float, questions: list[str], **env: str
) -> dict[str, Any]:
    data.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"levels": {}}
    with (
        model_server(first_token_s=model_ttft) if model_ttft else nullcontext("") as url,
        chainlit_process(data, **({"OPENAI_BASE_URL": url} if url else {}), **env) as (app, proc),
    ):

        async def seed() -> None:
            seeder = ChatClient(app)
            await seeder.connect()
            refs = [await seeder.upload(p) for p in seed_documents(data / "seed")]
            await seeder.ask("", refs)
            await seeder.close()
            await clients(app, 2, 1, questions=questions)  # warm up

        asyncio.run(seed())
        for users in levels:
            cpu = cpu_seconds(proc.pid)
            r = asyncio.run(clients(app, users, rounds, model_ttft, questions))
            cpu = cpu_seconds(proc.pid) - cpu
            ft, over = r["first_token"], r["overhead"]
            out["levels"][users] = {
                "questions": len(ft),
                "errors": len(r["errors"]),
                "ttft_p50": pct(ft, 0.5),
                "ttft_p95": pct(ft, 0.95),
                "overhead_p50": pct(over, 0.5),
                "overhead_p95": pct(over, 0.95),
                "questions_s": len(ft) / r["seconds"],
                "cpu_per_question": cpu / max(len(ft), 1),
            }
        out["rss_mb"] = rss_mb(proc.pid)
    return out


def report(r: dict[str, Any]) -> str:
    ttft = r["model_ttft"]
    rows = []
    for mode, m in r["modes"].items():
        for users, x in m["levels"].items():
            rows.append(
                [
                    "offline" if mode == "offline" else f"{mode}, model server",
                    users,
                    x["questions"],
                    x["errors"],
                    f"{x['ttft_p50'] * 1000:,.0f} ms",
                    f"{x['ttft_p95'] * 1000:,.0f} ms",
                    f"{x['overhead_p50'] * 1000:,.0f} ms",
                    f"**{x['overhead_p95'] * 1000:,.0f} ms**",
                    f"{x['questions_s']:.1f}",
                    f"{x['cpu_per_question'] * 1000:,.0f} ms" if "cpu_per_question" in x else "-",
                ]
            )
    hybrid = r["modes"]["hybrid"]
    top = max(hybrid["levels"])
    at_top = hybrid["levels"][top]
    over, cpu = at_top["overhead_p95"], at_top.get("cpu_per_question", 0.0)
    rss = ", ".join(f"{mode} {m['rss_mb']:,.0f} MB" for mode, m in r["modes"].items())
    lines = [
        f"Target with the model server (hybrid, the default), at {top} users: overhead ≤ 100 ms p95 "
        f"({over * 1000:,.0f} ms: {'met' if over <= 0.1 else '**not met**'}) and CPU ≤ 60 ms per question "
        f"({cpu * 1000:,.0f} ms: {'met' if cpu <= 0.06 else '**not met**'})."
    ]
    offline = r["modes"].get("offline")
    if offline:
        x = offline["levels"][max(offline["levels"])]
        rate, ttft95 = x["questions_s"], x["ttft_p95"]
        lines.append(
            f"Target offline, at {max(offline['levels'])} users on {r.get('offline_size', 10_000):,} chunks: "
            f"≥ 5 answers/s ({rate:.1f}: {'met' if rate >= 5 else '**not met**'}) and time to first token "
            f"p95 ≤ 2 s ({ttft95:.2f} s: {'met' if ttft95 <= 2 else '**not met**'})."
        )
    lines.append(f"Server RSS after each run: {rss}.")
    head = (
        f"Model server: {ttft * 1000:.0f} ms to the first token of every call (so {2 * ttft * 1000:.0f} ms of "
        "model time before the first answer token). The app runs with it twice on the same documents: dense "
        "search only, then hybrid (dense + BM25, the default); then offline (no model server) on "
        f"{r.get('offline_size', 10_000):,} chunks more."
    )
    return "\n".join(
        [
            head,
            "",
            table(
                [
                    "answers",
                    "users",
                    "questions",
                    "errors",
                    "first token p50",
                    "p95",
                    "app overhead p50",
                    "overhead p95",
                    "questions/s",
                    "CPU / question",
                ],
                rows,
            ),
            "",
            *(f"- {line}" for line in lines),
        ]
    )
