"""Several processes writing one knowledge base (app replicas, the command line): a write in flight
elsewhere is never touched, a dead writer's is settled, and two processes never write one document at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from langchain_core.embeddings import Embeddings
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.database import open_database
from core.filters import field_eq, field_in
from core.runtime import open_knowledge_base
from core.settings import Settings, load_settings
from core.store import KnowledgeBase
from ingest import FileInput, Ingestor, Recovery, collect_files
from ingest.documents import delete_document, list_documents
from ingest.files import document_key
from ingest.recovery import REINDEXED
from ingest.registry import WRITE_LEASE, DocumentBusy, DocumentVersion, Entry, Registry, Writer
from tests.integration.test_crash import audit, make_corpus
from tests.servers import ROOT, app_env

ELSEWHERE = Writer("another-machine/pid:[4026531836]", 4242, "123456")  # a replica on another host


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres")
    )
    async with open_database(url) as eng:
        yield eng
        async with eng.begin() as conn:
            await conn.execute(text("DELETE FROM kb_documents"))


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """Another process on this machine, alive until the test kills it."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


async def age(engine: AsyncEngine, doc_key: str, by: float) -> None:
    """Make a row look written `by` seconds ago (as a replica that died then would have left it)."""
    then = datetime.fromtimestamp(time.time() - by, UTC).isoformat(timespec="microseconds")
    async with engine.begin() as conn:
        await conn.execute(
            text('UPDATE kb_documents SET "updated_at" = :t WHERE "doc_key" = :k'), {"t": then, "k": doc_key}
        )


async def test_two_processes_never_claim_one_document_at_once(engine: AsyncEngine) -> None:
    here = Registry(engine, "kb")
    there = Registry(engine, "kb", ELSEWHERE)
    for i in range(20):  # both at the same moment, on a new row and on an indexed one
        key = f"doc-{i}"
        if i % 2:
            await here.mark(key, key, "team", "", "h0", "v0", "indexed", 3)
        outcomes = await asyncio.gather(
            here.claim(DocumentVersion(key, key, "team", "", "h1", "v1", 3)),
            there.claim(DocumentVersion(key, key, "team", "", "h2", "v2", 3)),
            return_exceptions=True,
        )
        assert sum(isinstance(o, DocumentBusy) for o in outcomes) == 1, outcomes
        row = await here.get(key)
        assert row is not None and row.state == "pending"
        winner = here if row.writer == str(here.writer) else there
        assert row.writer == str(winner.writer)
    # While a live writer holds it, nobody else may; once it is done, anyone may.
    await there.claim(DocumentVersion("mine", "mine", "team", "", "h", "v", 1))
    with pytest.raises(DocumentBusy):
        await here.claim(DocumentVersion("mine", "mine", "team", "", "h", "v", 1))
    held = await here.get("mine")
    assert held is not None and here.held_elsewhere(held)
    await there.settle(held, "indexed")
    await here.claim(DocumentVersion("mine", "mine", "team", "", "h", "v", 1))
    # A row another machine left pending longer ago than the lease: its writer is taken to be gone.
    await there.claim(DocumentVersion("stale", "stale", "team", "", "h", "v", 1))
    await age(engine, "stale", WRITE_LEASE.total_seconds() + 60)
    stale = await here.get("stale")
    assert stale is not None and not here.held_elsewhere(stale)
    await here.claim(DocumentVersion("stale", "stale", "team", "", "h", "v", 1))


async def test_a_process_on_this_machine_holds_its_rows_until_it_exits(
    engine: AsyncEngine, sleeper: subprocess.Popen[bytes]
) -> None:
    here = Registry(engine, "kb")
    other = Registry(engine, "kb", Writer.of_process(sleeper.pid))
    await other.claim(DocumentVersion("doc", "doc", "team", "", "h", "v", 1))
    await age(engine, "doc", WRITE_LEASE.total_seconds() * 2)  # on this machine, age does not matter
    row = await here.get("doc")
    assert row is not None and here.held_elsewhere(row)
    sleeper.kill()
    sleeper.wait()
    assert not here.held_elsewhere(row)  # its PID may be reused: the start time tells them apart
    await here.claim(DocumentVersion("doc", "doc", "team", "", "h", "v", 1))


OLD_DOCUMENTS_TABLE = """CREATE TABLE kb_documents ("store" TEXT NOT NULL, "doc_key" TEXT NOT NULL,
    "source" TEXT NOT NULL, "scope" TEXT NOT NULL, "owner" TEXT NOT NULL, "doc_hash" TEXT NOT NULL,
    "version" TEXT NOT NULL, "state" TEXT NOT NULL, "chunks" INT NOT NULL, "reason" TEXT NOT NULL,
    "updated_at" TEXT NOT NULL, PRIMARY KEY ("store", "doc_key"))"""


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_a_database_from_before_writers_gets_the_column(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}" if database == "sqlite" else request.getfixturevalue("postgres")
    async with open_database(url) as engine, engine.begin() as conn:  # as a release before writers left it
        await conn.execute(text("DROP TABLE kb_documents"))
        await conn.execute(text(OLD_DOCUMENTS_TABLE))
        row = "('kb', 'a', 'a.md', 'team', '', 'h', 'v', 'pending', 2, '', 'x')"
        await conn.execute(text(f"INSERT INTO kb_documents VALUES {row}"))
    async with open_database(url) as engine:
        registry = Registry(engine, "kb")
        [entry] = await registry.entries("pending")
        assert entry.writer == "" and entry.source == "a.md"  # written before writers: settled as before
        await registry.claim(DocumentVersion.of(entry))
    async with open_database(url) as engine:  # started again: the column is there already
        [entry] = await Registry(engine, "kb").entries("pending")
        assert entry.writer == str(registry.writer)
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM kb_documents"))


async def test_recovery_leaves_a_write_in_flight_elsewhere_and_settles_a_dead_writers(
    kb: KnowledgeBase, tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    corpus = tmp_path / "corpus"
    make_corpus(corpus)
    files = collect_files([corpus])[:3]
    ingestor = Ingestor(kb)
    assert {r.status for r in await ingestor.ingest(files)} == {"indexed"}
    a, b, c = [await ingestor.registry.get(document_key(f.source, "team", "")) for f in files]
    assert a and b and c

    async def in_flight(entry: Entry, writer: Writer) -> None:
        """As `writer` would leave it mid-write: pending, half of the chunks stored."""
        await Registry(kb.engine, kb.identity, writer).claim(DocumentVersion.of(entry))
        rows = await kb.query(field_eq("source", entry.source), ["pk", "chunk"])
        await kb.delete(field_in("pk", [r["pk"] for r in rows if r["chunk"] % 2]))

    await in_flight(a, ELSEWHERE)
    await in_flight(b, Writer.of_process(sleeper.pid))
    await in_flight(c, ELSEWHERE)
    await age(kb.engine, c.doc_key, WRITE_LEASE.total_seconds() + 60)  # that replica died long ago
    half = {e.source: await kb.count(field_eq("source", e.source)) for e in (a, b, c)}

    recovered = {r.source: r for r in await Recovery(ingestor).recover()}
    assert set(recovered) == {c.source} and recovered[c.source].reason == REINDEXED
    assert await kb.count(field_eq("source", a.source)) == half[a.source]  # not a chunk touched
    assert await kb.count(field_eq("source", b.source)) == half[b.source]

    sleeper.kill()  # the writer on this machine dies
    sleeper.wait()
    recovered = {r.source: r for r in await Recovery(ingestor).recover()}
    assert set(recovered) == {b.source} and recovered[b.source].status == "indexed"
    pending = await ingestor.registry.entries("pending")
    assert [e.source for e in pending] == [a.source]
    for entry in (b, c):
        assert await kb.count(field_eq("source", entry.source)) == entry.chunks

    # The replica on the other machine finishes; recovery then has nothing left to do.
    rows = await kb.query(field_eq("source", a.source), ["pk"])
    assert len(rows) == half[a.source]
    await Registry(kb.engine, kb.identity, ELSEWHERE).settle(pending[0], "failed", "cancelled there")
    assert await Recovery(ingestor).recover() == []
    assert (await audit(kb))["duplicates"] == 0


async def test_an_upload_waits_for_the_same_document_being_written_elsewhere(kb: KnowledgeBase, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    make_corpus(corpus)
    first, second = collect_files([corpus])[:2]
    ingestor = Ingestor(kb)
    there = Registry(kb.engine, kb.identity, ELSEWHERE)
    for item in (first, second):
        key = document_key(item.source, "team", "")
        await there.claim(DocumentVersion(key, item.source, "team", "", "h", "v", 1))
    released: list[str] = []

    async def finish_there() -> None:  # the other replica finishes the first document a moment later
        await asyncio.sleep(1.5)
        entry = await there.get(document_key(first.source, "team", ""))
        assert entry is not None
        assert await kb.count(field_eq("source", first.source)) == 0  # nothing written while it was held
        released.append(first.source)
        await there.settle(entry, "failed", "cancelled there")

    results, _ = await asyncio.gather(ingestor.ingest([first, second]), finish_there())
    outcome = {r.source: r for r in results}
    assert outcome[first.source].status == "indexed" and released == [first.source]
    assert outcome[second.source].status == "failed"
    assert "another app process is writing a document with this name" in outcome[second.source].reason
    # The other process's row is left as it was, and nothing of ours was written for it.
    row = await ingestor.registry.get(document_key(second.source, "team", ""))
    assert row is not None and row.writer == str(ELSEWHERE) and row.state == "pending"
    assert await kb.count(field_eq("source", second.source)) == 0
    assert await kb.count(field_eq("source", first.source)) == outcome[first.source].chunks


@pytest.mark.parametrize("backend", ["milvus-2.3"], indirect=True)
def test_two_command_line_ingests_of_one_folder_at_once(
    settings: Settings, tmp_path: Path, embeddings: Embeddings
) -> None:
    """Two real processes on a real Milvus server and one registry, the second started mid-way through
    the first (its start-up recovery runs while the first is writing): every file once, in full."""
    corpus = tmp_path / "corpus"
    make_corpus(corpus)
    env = app_env(
        tmp_path,
        RAG_MILVUS_URI=settings.milvus_uri,
        RAG_COLLECTION=settings.collection,
        RAG_CHUNK_SIZE="400",
        RAG_CHUNK_OVERLAP="40",
    )
    cmd = [sys.executable, "-m", "ingest", str(corpus)]
    first = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert first.stdout is not None
    indexed = 0
    for line in first.stdout:
        indexed += ": indexed (" in line
        if indexed == 3:
            break
    second = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    rest = first.communicate(timeout=600)[0]
    assert first.returncode == 0, rest
    assert second.returncode == 0, second.stdout + second.stderr
    print("\nfirst:", rest.strip().splitlines()[-1], "\nsecond:", second.stdout.strip().splitlines()[-1])
    assert "after an interruption" not in second.stdout  # the first process's writes were left to it

    async def check() -> None:
        mine = load_settings(
            milvus_uri=settings.milvus_uri,
            collection=settings.collection,
            files_dir=env["RAG_FILES_DIR"],
            database_url=env["RAG_DATABASE_URL"],
            chunk_size=400,
            chunk_overlap=40,
        )
        async with open_knowledge_base(mine, embeddings) as kb:
            found = await audit(kb)
            registry = Ingestor(kb).registry
            entries = await registry.entries()
            assert found["duplicates"] == 0 and found["incomplete"] == 0
            assert {e.state for e in entries} == {"indexed"} and len(entries) == len(list(corpus.iterdir()))
            assert found["rows"] == sum(e.chunks for e in entries)
            versions = await kb.query("chunk >= 0", ["source", "version"])
            assert len({(r["source"], r["version"]) for r in versions}) == len(entries)

    asyncio.run(check())


async def test_a_running_app_settles_what_a_replica_left_when_it_died(
    kb: KnowledgeBase, tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """Not only at start-up: the app's watch notices a writer that died after it started."""
    corpus = tmp_path / "corpus"
    make_corpus(corpus)
    [item] = collect_files([corpus])[:1]
    ingestor = Ingestor(kb)
    [result] = await ingestor.ingest([item])
    entry = await ingestor.registry.get(document_key(item.source, "team", ""))
    assert entry is not None
    await Registry(kb.engine, kb.identity, Writer.of_process(sleeper.pid)).claim(DocumentVersion.of(entry))
    stop = asyncio.Event()
    watching = asyncio.create_task(Recovery(ingestor).watch(stop, every=0.2))
    await asyncio.sleep(1)
    assert (await ingestor.registry.get(entry.doc_key)).state == "pending"  # type: ignore[union-attr]
    sleeper.kill()
    sleeper.wait()
    for _ in range(100):
        await asyncio.sleep(0.1)
        if (await ingestor.registry.get(entry.doc_key)).state == "indexed":  # type: ignore[union-attr]
            break
    stop.set()
    await asyncio.wait_for(watching, 5)
    assert (await ingestor.registry.get(entry.doc_key)).state == "indexed"  # type: ignore[union-attr]
    assert await kb.count(field_eq("source", item.source)) == result.chunks


async def test_a_write_the_database_refuses_is_rolled_back_and_leaves_no_claim(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    """Milvus refuses the chunks (an owner name longer than the collection's field): the row says failed,
    not pending, so no process tries it again and again."""
    corpus = tmp_path / "corpus"
    make_corpus(corpus)
    [item] = collect_files([corpus])[:1]
    ingestor = Ingestor(kb)
    owner = "x" * 300
    [result] = await ingestor.ingest([FileInput(item.path, item.source, "private", owner)])
    assert result.status == "failed" and "could not be stored" in result.reason, result.reason
    assert "refused the data" in result.reason and "max_length" in result.reason  # not "unreachable"
    row = await ingestor.registry.get(document_key(item.source, "private", owner))
    assert row is not None and row.state == "failed" and row.writer == ""
    assert await ingestor.registry.entries("pending") == [] and await kb.count() == 0


async def test_a_delete_waits_for_a_write_elsewhere_instead_of_racing_it(kb: KnowledgeBase, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    make_corpus(corpus)
    [item] = collect_files([corpus])[:1]
    ingestor = Ingestor(kb)
    [result] = await ingestor.ingest([item])
    [doc] = await list_documents(ingestor, None)
    entry = await ingestor.registry.get(document_key(item.source, "team", ""))
    assert entry is not None
    there = Registry(kb.engine, kb.identity, ELSEWHERE)
    await there.claim(DocumentVersion.of(entry))
    finished_there: list[bool] = []

    async def finish_there() -> None:
        await asyncio.sleep(1.5)
        finished_there.append(await kb.count() == result.chunks)  # the delete has not run meanwhile
        await there.settle(entry, "indexed")

    removed, _ = await asyncio.gather(delete_document(ingestor, None, doc), finish_there())
    assert finished_there == [True] and removed == result.chunks
    assert await kb.count() == 0 and await ingestor.registry.entries() == []


def test_a_killed_process_not_yet_reaped_counts_as_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    writer = Writer.of_process(proc.pid)
    assert writer.running() is True and Writer.parse(str(writer)) == writer
    proc.kill()
    deadline = time.time() + 10
    while writer.running() and time.time() < deadline:  # a zombie until waited for
        time.sleep(0.05)
    assert writer.running() is False
    proc.wait()
    assert writer.running() is False and ELSEWHERE.running() is None
