"""4. The app itself: concurrent chat clients over Chainlit's socket protocol against the real server,
answering through a local OpenAI-compatible model server with a fixed time to first token.

Each user keeps one chat session and asks questions one after another, as people do. Before the first
answer token the model is called in turn for the condense step (follow-ups only: not for a session's
first question), the rewrite (its whole reply comes after the fixed delay) and the answer (its first token
after the fixed delay). Overhead = time to first token seen by the client - the model's share
(2 or 3 x the fixed delay).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from benchmarks.common import model_server, pct, rss_mb, table
from tests.load.client import ChatClient
from tests.load.soak import QUESTIONS, seed_documents
from tests.servers import chainlit_process


async def clients(url: str, users: int, rounds: int, model_ttft: float = 0.0) -> dict[str, Any]:
    first: list[float] = []
    overhead: list[float] = []
    errors: list[str] = []

    async def user(n: int) -> None:
        client = ChatClient(url)
        await client.connect()
        for r in range(rounds):
            reply = await client.ask(QUESTIONS[(n + r) % len(QUESTIONS)])
            if reply.errors or reply.first_token_s is None:
                errors.append(reply.text[:200] or str(reply.errors))
            else:
                first.append(reply.first_token_s)
                overhead.append(reply.first_token_s - (2 if r == 0 else 3) * model_ttft)
        await client.close()

    started = time.perf_counter()
    await asyncio.gather(*(user(n) for n in range(users)))
    return {"first_token": first, "overhead": overhead, "errors": errors, "seconds": time.perf_counter() - started}


def run(data: Path, levels: tuple[int, ...] = (1, 20), rounds: int = 5, model_ttft: float = 0.25) -> dict[str, Any]:
    """The app twice, one after the other on the same documents: dense search only (as before hybrid
    search was the default), then hybrid (dense + BM25, the default)."""
    out: dict[str, Any] = {"model_ttft": model_ttft, "modes": {}}
    for mode, hybrid in (("dense", "false"), ("hybrid", "true")):
        out["modes"][mode] = _run_app(data / mode, levels, rounds, model_ttft, RAG_HYBRID_SEARCH=hybrid)
    return out


def _run_app(data: Path, levels: tuple[int, ...], rounds: int, model_ttft: float, **env: str) -> dict[str, Any]:
    data.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"levels": {}}
    with (
        model_server(first_token_s=model_ttft) as url,
        chainlit_process(data, OPENAI_BASE_URL=url, **env) as (app, proc),
    ):

        async def seed() -> None:
            seeder = ChatClient(app)
            await seeder.connect()
            refs = [await seeder.upload(p) for p in seed_documents(data / "seed")]
            await seeder.ask("", refs)
            await seeder.close()
            await clients(app, 2, 1)  # warm up

        asyncio.run(seed())
        for users in levels:
            r = asyncio.run(clients(app, users, rounds, model_ttft))
            ft, over = r["first_token"], r["overhead"]
            out["levels"][users] = {
                "questions": len(ft),
                "errors": len(r["errors"]),
                "ttft_p50": pct(ft, 0.5),
                "ttft_p95": pct(ft, 0.95),
                "overhead_p50": pct(over, 0.5),
                "overhead_p95": pct(over, 0.95),
                "questions_s": len(ft) / r["seconds"],
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
                    mode,
                    users,
                    x["questions"],
                    x["errors"],
                    f"{x['ttft_p50'] * 1000:,.0f} ms",
                    f"{x['ttft_p95'] * 1000:,.0f} ms",
                    f"{x['overhead_p50'] * 1000:,.0f} ms",
                    f"**{x['overhead_p95'] * 1000:,.0f} ms**",
                    f"{x['questions_s']:.1f}",
                ]
            )
    hybrid = r["modes"]["hybrid"]
    top = max(hybrid["levels"])
    over = hybrid["levels"][top]["overhead_p95"]
    rss = ", ".join(f"{mode} {m['rss_mb']:,.0f} MB" for mode, m in r["modes"].items())
    return "\n".join(
        [
            f"Model server: {ttft * 1000:.0f} ms to the first token of every call (so {2 * ttft * 1000:.0f} ms of "
            "model time before the first answer token). The app runs twice on the same documents: dense search "
            "only, then hybrid (dense + BM25, the default).",
            "",
            table(
                [
                    "search",
                    "users",
                    "questions",
                    "errors",
                    "first token p50",
                    "p95",
                    "app overhead p50",
                    "overhead p95",
                    "questions/s",
                ],
                rows,
            ),
            "",
            f"Target: overhead ≤ 100 ms p95 at {top} users (hybrid, the default): "
            f"{'met' if over <= 0.1 else '**not met**'}. Server RSS after each run: {rss}.",
        ]
    )
