"""Crash safety: SIGKILL the ingest mid-run, again and again; nothing reported indexed is lost or doubled."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from langchain_core.embeddings import Embeddings

from core.runtime import open_knowledge_base
from core.settings import Settings, load_settings
from core.store import KnowledgeBase, field_eq, field_in
from ingest import FileInput, Ingestor, collect_files
from ingest.pipeline import COMPLETED, REINDEXED
from tests.servers import ROOT, app_env

TRIALS = int(os.environ.get("CRASH_TRIALS", "10"))
FILES = 24
REPORT = Path(os.environ.get("CRASH_REPORT", "crash-report.json"))


def make_corpus(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(FILES):
        lines = [f"# Site {i} handbook", ""]
        lines += [
            f"Rule {j} of site {i}: visitors sign in at gate {i * 7 + j} before {8 + j % 9}:00." for j in range(60)
        ]
        (folder / f"site-{i:02d}.md").write_text("\n".join(lines), encoding="utf-8")


async def audit(kb: KnowledgeBase) -> dict[str, int]:
    """Count duplicates and documents whose chunks are incomplete."""
    rows = await kb.query("chunk >= 0", ["pk", "source", "version", "chunk_count"])
    pks = Counter(r["pk"] for r in rows)
    per_version = Counter((r["source"], r["version"]) for r in rows)
    expected = {(r["source"], r["version"]): r["chunk_count"] for r in rows}
    incomplete = sum(1 for key, n in per_version.items() if n != expected[key])
    return {"rows": len(rows), "duplicates": sum(n - 1 for n in pks.values()), "incomplete": incomplete}


def run_until_killed(env: dict[str, str], corpus: Path, kill_after: int) -> list[tuple[str, int]]:
    """Start `python -m ingest`, SIGKILL it once `kill_after` files were reported indexed."""
    cmd = [sys.executable, "-m", "ingest", str(corpus)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    reported: list[tuple[str, int]] = []
    assert proc.stdout is not None
    deadline = time.time() + 300
    for line in proc.stdout:
        if ": indexed (" in line:
            name, _, rest = line.partition(": indexed (")
            reported.append((name.strip(), int(rest.split()[0])))
        if len(reported) >= kill_after or time.time() > deadline:
            break
    time.sleep(random.Random(kill_after).random() * 0.3)  # land anywhere: between files or mid-write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return reported


async def check_trial(
    settings: Settings, embeddings: Embeddings, reported: list[tuple[str, int]], corpus: Path, figures: dict[str, int]
) -> None:
    """After the kill: nothing reported is lost; recovery leaves no pending, partial or doubled document."""
    async with open_knowledge_base(settings, embeddings) as kb:
        # Before any repair: every file reported indexed is there in full.
        for name, chunks in reported:
            if await kb.count(field_eq("source", name)) != chunks:
                figures["lost"] += 1
        ingestor = Ingestor(kb)
        figures["pending_at_restart"] += len(await ingestor.registry.entries("pending"))
        for result in await ingestor.recover():
            key = (
                "completed_by_recovery"
                if result.status == "indexed" and not result.seconds
                else "reindexed_by_recovery"
            )
            figures[key] += 1
        assert await ingestor.registry.entries("pending") == []
        found = await audit(kb)
        figures["duplicates"] += found["duplicates"]
        figures["incomplete_after_recovery"] += found["incomplete"]
        # The next run finishes the job: every file in full, once.
        results = await ingestor.ingest(collect_files([corpus]))
        assert {r.status for r in results} <= {"indexed", "unchanged"}
        final = await audit(kb)
        assert final["duplicates"] == 0 and final["incomplete"] == 0
        assert final["rows"] == sum(r.chunks for r in results)


def test_sigkill_during_ingest_loses_nothing_reported(tmp_path: Path, embeddings: Embeddings) -> None:
    corpus = tmp_path / "corpus"
    make_corpus(corpus)
    rng = random.Random(7)
    figures = {"trials": 0, "reported_indexed": 0, "lost": 0, "duplicates": 0, "incomplete_after_recovery": 0}
    figures |= {"pending_at_restart": 0, "completed_by_recovery": 0, "reindexed_by_recovery": 0}
    for trial in range(TRIALS):
        data = tmp_path / f"trial-{trial}"
        data.mkdir()
        env = app_env(data)
        reported = run_until_killed(env, corpus, kill_after=rng.randint(2, FILES - 2))
        settings = load_settings(
            milvus_uri=env["RAG_MILVUS_URI"], files_dir=env["RAG_FILES_DIR"], database_url=env["RAG_DATABASE_URL"]
        )

        asyncio.run(check_trial(settings, embeddings, reported, corpus, figures))
        figures["trials"] += 1
        figures["reported_indexed"] += len(reported)
    REPORT.write_text(json.dumps(figures, indent=2))
    print("\ncrash trials:", json.dumps(figures))
    assert figures["lost"] == 0 and figures["duplicates"] == 0 and figures["incomplete_after_recovery"] == 0
    assert figures["reported_indexed"] >= TRIALS * 2


async def test_recovery_settles_half_written_and_fully_written_pending_documents(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    """The two states a crash can leave behind, made on purpose."""
    corpus = tmp_path / "corpus"
    make_corpus(corpus)
    ingestor = Ingestor(kb)
    results = await ingestor.ingest(collect_files([corpus])[:2])
    assert [r.status for r in results] == ["indexed", "indexed"]
    half, whole = await ingestor.registry.entries("indexed")
    # A crash mid-write: the registry says pending and only some chunks made it.
    await ingestor.registry.settle(half, "pending")
    rows = await kb.query(field_eq("source", half.source), ["pk", "chunk"])
    await kb.delete(field_in("pk", [r["pk"] for r in rows if r["chunk"] % 2]))
    # A later upload of the same name that fails must not erase what recovery needs to know.
    broken = tmp_path / "broken.md"
    broken.write_bytes(bytes(range(256)) * 8)
    [failed] = await ingestor.ingest([FileInput(broken, half.source)])
    assert failed.status == "failed" and (await ingestor.registry.get(half.doc_key)).state == "pending"  # type: ignore[union-attr]
    # A crash after the write but before the registry said so.
    await ingestor.registry.settle(whole, "pending")
    recovered = {r.source: r for r in await ingestor.recover()}
    assert recovered[half.source].reason == REINDEXED and recovered[half.source].chunks == half.chunks
    assert recovered[whole.source].reason == COMPLETED
    assert await kb.count(field_eq("source", half.source)) == half.chunks
    assert await ingestor.registry.entries("pending") == []
    assert (await audit(kb))["duplicates"] == 0


def test_sigterm_stops_the_ingest_gracefully(tmp_path: Path, embeddings: Embeddings) -> None:
    corpus = tmp_path / "corpus"
    make_corpus(corpus)
    env = app_env(tmp_path)
    cmd = [sys.executable, "-m", "ingest", str(corpus)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    reported = []
    for line in proc.stdout:
        if ": indexed (" in line:
            reported.append(line.split(":")[0])
        if len(reported) >= 3:
            break
    proc.send_signal(signal.SIGTERM)
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Stopped" in err and "Traceback" not in err
    reported += [line.split(":")[0] for line in rest.splitlines() if ": indexed (" in line]
    settings = load_settings(
        milvus_uri=env["RAG_MILVUS_URI"], files_dir=env["RAG_FILES_DIR"], database_url=env["RAG_DATABASE_URL"]
    )

    async def check() -> None:
        async with open_knowledge_base(settings, embeddings) as kb:
            assert {r["source"] for r in await kb.query("chunk == 0", ["source"])} >= set(reported)
            await Ingestor(kb).recover()  # as the next start does: a write cut by the signal is settled
            found = await audit(kb)
            assert found["duplicates"] == 0 and found["incomplete"] == 0

    asyncio.run(check())
