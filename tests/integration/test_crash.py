"""Crash safety: SIGKILL the ingest mid-run, again and again; nothing reported indexed is lost or doubled."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

from langchain_core.embeddings import Embeddings

from core.filters import field_eq, field_in
from core.runtime import open_knowledge_base
from core.settings import Settings, load_settings
from core.store import KnowledgeBase
from ingest import FileInput, Ingestor, Recovery, collect_files
from ingest.__main__ import STOP_GRACE_S
from ingest.recovery import COMPLETED, REINDEXED
from tests.servers import ROOT, app_env
from ui.session import UPLOAD_MARK

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
        for result in await Recovery(ingestor).recover():
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
    recovered = {r.source: r for r in await Recovery(ingestor).recover()}
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
    rest, err = proc.communicate(timeout=STOP_GRACE_S + 60)
    assert "Stopped" in err and "Traceback" not in err
    if proc.returncode == 1 and "Timeout (" in err:  # the exit watchdog fired: the stop still ended, and says why
        warnings.warn(f"the ingest's exit hung in a library thread; its stacks:\n{err[-6000:]}", stacklevel=1)
    else:
        assert proc.returncode == 130, err[-3000:]
    reported += [line.split(":")[0] for line in rest.splitlines() if ": indexed (" in line]
    settings = load_settings(
        milvus_uri=env["RAG_MILVUS_URI"], files_dir=env["RAG_FILES_DIR"], database_url=env["RAG_DATABASE_URL"]
    )

    async def check() -> None:
        async with open_knowledge_base(settings, embeddings) as kb:
            assert {r["source"] for r in await kb.query("chunk == 0", ["source"])} >= set(reported)
            await Recovery(Ingestor(kb)).recover()  # as the next start does: a write cut by the signal is settled
            found = await audit(kb)
            assert found["duplicates"] == 0 and found["incomplete"] == 0

    asyncio.run(check())


WEDGED = """
import asyncio, sys, threading, time
import ingest.__main__ as cli

async def work() -> int:
    print("working", flush=True)
    try:
        await asyncio.sleep(3600)
    finally:  # a library thread that never ends: interpreter exit would wait for it forever
        threading.Thread(target=time.sleep, args=(3600,), name="wedged").start()
    return 0

cli.STOP_GRACE_S = float(sys.argv[1])
sys.exit(asyncio.run(cli.graceful(work())))
"""


def test_a_stop_that_hangs_in_a_library_thread_still_exits_and_says_where(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WEDGED, "2"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "working\n"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert "Stopped" in err and "Timeout (0:00:02)!" in err
    assert "time.sleep" in err or "in run" in err  # the wedged thread's stack is shown
    assert proc.returncode != 0


# --- the app itself, killed while a chat upload is being indexed ------------------------------------
APP_TRIALS = int(os.environ.get("APP_CRASH_TRIALS", "3"))
APP_FILES = 20  # the default per-message limit


async def upload_and_kill(
    url: str, proc: subprocess.Popen[str], files: list[Path], kill_after: int, delay: float
) -> list[tuple[str, int]]:
    """Upload `files` in one chat message, SIGKILL the app once `kill_after` were reported indexed (plus
    `delay` seconds, to land between files or mid-write); return the files reported indexed."""
    from tests.load.client import ChatClient

    client = ChatClient(url)
    await client.connect()
    refs = [await client.upload(path) for path in files]
    await client.send("", refs)
    reported: dict[str, int] = {}
    deadline = time.monotonic() + 300
    while len(reported) < kill_after and time.monotonic() < deadline:
        event, data = await asyncio.wait_for(client.events.get(), 300)
        progress = isinstance(data, dict) and (data.get("metadata") or {}).get(UPLOAD_MARK)
        if event in ("update_message", "new_message") and progress:  # the upload's progress message
            for line in str(data.get("output") or "").splitlines():
                if ": indexed (" in line:
                    name, _, rest = line.removeprefix("- ").partition(": indexed (")
                    reported[name.strip()] = int(rest.split()[0])
    await asyncio.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(proc.wait)
    with contextlib.suppress(Exception):
        await client.close()
    return list(reported.items())


async def reupload(url: str, files: list[Path]) -> str:
    from tests.load.client import ChatClient

    client = ChatClient(url)
    await client.connect()
    refs = [await client.upload(path) for path in files]
    reply = await client.ask("", refs)
    await client.close()
    return reply.text


def test_sigkill_of_the_app_during_a_chat_upload_loses_nothing_reported(tmp_path: Path, embeddings: Embeddings) -> None:
    """SIGKILL `chainlit run app.py` mid-upload; the next start recovers by itself, with nothing lost or doubled."""
    from tests.servers import chainlit_process

    corpus = tmp_path / "corpus"
    make_corpus(corpus)
    files = sorted(corpus.iterdir())[:APP_FILES]
    rng = random.Random(11)
    figures = {"trials": 0, "reported_indexed": 0, "lost": 0, "duplicates": 0, "incomplete": 0, "pending_left": 0}
    figures |= {"pending_at_kill": 0, "settled_at_restart": 0}
    for trial in range(APP_TRIALS):
        data = tmp_path / f"app-trial-{trial}"
        data.mkdir()
        with chainlit_process(data) as (url, proc):
            kill_after, delay = rng.randint(2, APP_FILES - 2), rng.random() * 0.8  # a file takes ~0.4 s here
            reported = asyncio.run(upload_and_kill(url, proc, files, kill_after, delay))
        with contextlib.closing(sqlite3.connect(data / "app.db")) as db:  # what the kill left behind
            figures["pending_at_kill"] += db.execute(
                "SELECT count(*) FROM kb_documents WHERE state = 'pending'"
            ).fetchone()[0]
        # The next start settles what the kill interrupted, before it serves anyone.
        with chainlit_process(data) as (url, _):
            if trial == APP_TRIALS - 1:  # and the same upload again completes the set, each file once
                text = asyncio.run(reupload(url, files))
                assert text.count(": indexed (") + text.count(": unchanged (") == len(files), text
        log = (data / "server.log").read_text(errors="replace")
        assert "Traceback" not in log, log
        figures["settled_at_restart"] += log.count("after an interruption:")
        env = app_env(data)
        settings = load_settings(
            milvus_uri=env["RAG_MILVUS_URI"], files_dir=env["RAG_FILES_DIR"], database_url=env["RAG_DATABASE_URL"]
        )

        async def check(reported: list[tuple[str, int]] = reported, settings: Settings = settings) -> None:
            async with open_knowledge_base(settings, embeddings) as kb:
                for name, chunks in reported:
                    if await kb.count(field_eq("source", name)) != chunks:
                        figures["lost"] += 1
                found = await audit(kb)
                figures["duplicates"] += found["duplicates"]
                figures["incomplete"] += found["incomplete"]
                figures["pending_left"] += len(await Ingestor(kb).registry.entries("pending"))

        asyncio.run(check())
        figures["trials"] += 1
        figures["reported_indexed"] += len(reported)
    print("\napp crash trials:", json.dumps(figures))
    Path(os.environ.get("APP_CRASH_REPORT", "app-crash-report.json")).write_text(json.dumps(figures, indent=2))
    assert figures["lost"] == 0 and figures["duplicates"] == 0 and figures["incomplete"] == 0
    assert figures["pending_left"] == 0 and figures["reported_indexed"] >= APP_TRIALS * 2
