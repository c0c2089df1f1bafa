"""Soak: simulated users mixing questions and uploads over Chainlit's socket protocol against the real app.

    .venv/bin/python -m tests.load.soak --users 30 --seconds 120 [--report soak.json]

Counts unhandled errors, checks that every upload reported indexed is in the knowledge base afterwards,
and samples the server's memory (RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.load.client import ChatClient
from tests.servers import chainlit_process

QUESTIONS = [
    "When are production deployments frozen?",
    "Who handles warranty claims for the turbine?",
    "How many days per week can employees work remotely?",
    "How do I reset a forgotten VPN password?",
    "What does the Q3 roadmap prioritise?",
]
KNOWN_NOISE = ("Method not implemented", "too_many_pings", "swigfaiss")


def seed_documents(folder: Path) -> list[Path]:
    from tests.fixtures.documents import make_good_set

    return list(make_good_set(folder).values())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def user(url: str, number: int, until: float, folder: Path, stats: dict[str, Any]) -> None:
    rng = random.Random(number)
    client = ChatClient(url)
    try:
        await client.connect()
        n = 0
        while time.monotonic() < until:
            n += 1
            if rng.random() < 0.25:  # upload a new document with a fact only it holds
                name = f"user{number:02d}-note{n:03d}.md"
                path = folder / name
                path.write_text(f"# Note {n} of user {number}\n\nLocker {number * 1000 + n} holds the spare keys.\n")
                ref = await client.upload(path)
                reply = await client.ask("", [ref])
                stats["uploads"] += 1
                if f"{name}: indexed" in reply.text:
                    chunks = int(reply.text.split(f"{name}: indexed (")[1].split()[0])
                    stats["indexed"].append((name, chunks))
                elif not reply.errors:
                    stats["errors"].append(f"upload of {name}: {reply.text[:200]}")
            else:
                reply = await client.ask(rng.choice(QUESTIONS))
                stats["questions"] += 1
                stats["latency"].append(reply.seconds)
                if reply.first_token_s is not None:
                    stats["first_token"].append(reply.first_token_s)
                if "Sources:" not in reply.text and "could not find anything" not in reply.text:
                    stats["errors"].append(f"no answer: {reply.text[:200]}")
            stats["errors"].extend(reply.errors)
    except Exception as exc:  # a dropped socket or a protocol failure counts as an error
        stats["errors"].append(f"user {number}: {type(exc).__name__}: {exc}")
    finally:
        await client.close()


async def run_users(url: str, users: int, seconds: float, folder: Path, pid: int) -> dict[str, Any]:
    stats: dict[str, Any] = {"questions": 0, "uploads": 0, "indexed": [], "errors": [], "latency": []}
    stats |= {"first_token": [], "rss_mb": []}
    until = time.monotonic() + seconds

    async def sample() -> None:
        while time.monotonic() < until:
            stats["rss_mb"].append(round(rss_mb(pid), 1))
            await asyncio.sleep(2)

    sampler = asyncio.create_task(sample())
    await asyncio.gather(*(user(url, i, until, folder, stats) for i in range(users)))
    await sampler
    return stats


async def count_sources(settings_env: dict[str, str], names: list[str]) -> dict[str, int]:
    from core.filters import field_eq
    from core.runtime import open_knowledge_base
    from core.settings import load_settings

    settings = load_settings(
        milvus_uri=settings_env["RAG_MILVUS_URI"],
        files_dir=settings_env["RAG_FILES_DIR"],
        database_url=settings_env["RAG_DATABASE_URL"],
    )
    async with open_knowledge_base(settings) as kb:
        return {name: await kb.count(field_eq("source", name)) for name in names}


def soak(users: int, seconds: float, data: Path) -> dict[str, Any]:
    """Start the app in `data`, seed it, run the users, stop it, and check what it said it stored."""
    from tests.servers import app_env

    folder = data / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    with chainlit_process(data) as (url, proc):

        async def seed_and_run() -> dict[str, Any]:
            seeder = ChatClient(url)
            await seeder.connect()
            refs = [await seeder.upload(p) for p in seed_documents(data / "seed")]
            await seeder.ask("", refs)
            await seeder.close()
            return await run_users(url, users, seconds, folder, proc.pid)

        stats = asyncio.run(seed_and_run())
    log = (data / "server.log").read_text(errors="replace")
    lines = log.splitlines()
    log_errors = []
    for i, line in enumerate(lines):
        if " - ERROR - " in line or line.startswith("Traceback"):
            block = "\n".join(lines[i : i + 40])
            if not any(noise in block for noise in KNOWN_NOISE):
                log_errors.append(block)
    names = [name for name, _ in stats["indexed"]]
    found = asyncio.run(count_sources(app_env(data), names))
    lost = [name for name, chunks in stats["indexed"] if found.get(name) != chunks]
    lat, ftt, rss = sorted(stats["latency"]), sorted(stats["first_token"]), stats["rss_mb"]

    def pct(values: list[float], q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))], 2) if values else 0.0

    quarter = max(len(rss) // 4, 1)
    return {
        "users": users,
        "seconds": seconds,
        "questions": stats["questions"],
        "uploads": stats["uploads"],
        "uploads_indexed": len(stats["indexed"]),
        "unhandled_errors": len(stats["errors"]) + len(log_errors),
        "error_samples": (stats["errors"] + log_errors)[:10],
        "lost_documents": len(lost),
        "answer_s_p50": pct(lat, 0.5),
        "answer_s_p95": pct(lat, 0.95),
        "first_token_s_p50": pct(ftt, 0.5),
        "rss_mb_first_quarter": round(statistics.median(rss[:quarter]), 1) if rss else 0,
        "rss_mb_last_quarter": round(statistics.median(rss[-quarter:]), 1) if rss else 0,
        "rss_mb_max": max(rss) if rss else 0,
        # One sample a minute (the sampler runs every 2 s): growth that flattens is warm-up and data,
        # growth that keeps its slope is a leak.
        "rss_mb_each_minute": rss[::30],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.load.soak", description=__doc__)
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        report = soak(args.users, args.seconds, Path(tmp))
    text = json.dumps(report, indent=2)
    print(text)
    if args.report:
        args.report.write_text(text + "\n")


if __name__ == "__main__":
    main()
