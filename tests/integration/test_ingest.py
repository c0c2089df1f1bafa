"""Ingest into a real Milvus Lite with the real local embedding model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.embeddings import Embeddings

from core.filters import field_eq
from core.settings import Settings
from core.store import KnowledgeBase
from ingest import FileInput, Ingestor, collect_files
from tests.fixtures.documents import make_bad_set, make_good_set

EVERY_MILVUS = True  # tests using the knowledge base run on each Milvus backend (conftest)

ROOT = Path(__file__).resolve().parents[2]


async def test_every_format_is_indexed_with_metadata(kb: KnowledgeBase, tmp_path: Path) -> None:
    good = make_good_set(tmp_path / "docs")
    seen: list[str] = []
    results = await Ingestor(kb).ingest(collect_files([tmp_path / "docs"]), on_result=lambda r: seen.append(r.source))
    assert {r.status for r in results} == {"indexed"}, [r.describe() for r in results]
    assert sorted(seen) == sorted(p.name for p in good.values())
    assert await kb.count() == sum(r.chunks for r in results)

    rows = await kb.query(
        field_eq("source", "turbine-manual.pdf"),
        ["source", "page", "chunk", "content_hash", "doc_hash", "ingested_at", "title"],
    )
    assert sorted(r["page"] for r in rows) == [1, 2, 3]
    assert all(r["title"] == "Zephyr Turbine Service Manual" and r["doc_hash"] and r["ingested_at"] for r in rows)
    md = await kb.query(field_eq("source", "release.md"), ["headings", "text"])
    assert any(r["headings"] == "Deployment windows" and "frozen" in r["text"] for r in md)
    assert all(r["text"].startswith("Release Process") for r in md)


async def test_reingest_is_unchanged_and_changes_replace_old_chunks(kb: KnowledgeBase, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    good = make_good_set(folder)
    ingestor = Ingestor(kb)
    await ingestor.ingest(collect_files([folder]))
    total = await kb.count()

    again = await ingestor.ingest(collect_files([folder]))
    assert {r.status for r in again} == {"unchanged"}
    assert await kb.count() == total

    good["txt"].write_text("Completely new facilities notes. The gym opens at 06:00 on weekdays.\n", encoding="utf-8")
    results = {r.source: r for r in await ingestor.ingest(collect_files([folder]))}
    assert results["facilities.txt"].status == "indexed"
    texts = [r["text"] for r in await kb.query(field_eq("source", "facilities.txt"), ["text"])]
    assert texts and all("gym" in t for t in texts) and not any("kitchen" in t for t in texts)


async def test_identical_files_under_two_names_do_not_collide(kb: KnowledgeBase, tmp_path: Path) -> None:
    a = tmp_path / "a.md"
    a.write_text("# Same\n\nIdentical content in two files about the Quasar budget.", encoding="utf-8")
    b = tmp_path / "copy-of-a.md"
    b.write_bytes(a.read_bytes())
    results = await Ingestor(kb).ingest([FileInput(a, "a.md"), FileInput(b, "copy-of-a.md")])
    assert [r.status for r in results] == ["indexed", "indexed"]
    assert await kb.count(field_eq("source", "a.md")) == 1
    assert await kb.count(field_eq("source", "copy-of-a.md")) == 1


async def test_bad_files_fail_alone_and_leave_nothing(kb: KnowledgeBase, tmp_path: Path) -> None:
    make_good_set(tmp_path / "mixed")
    bad = make_bad_set(tmp_path / "mixed")
    big = tmp_path / "mixed" / "huge.txt"
    kb.settings.max_file_mb = 1
    big.write_bytes(b"word " * (1024 * 1024 // 5 + 10))
    results = {r.source: r for r in await Ingestor(kb).ingest(collect_files([tmp_path / "mixed"]))}
    failed = {s for s, r in results.items() if r.status == "failed"}
    assert failed == {p.name for p in bad.values()} | {"huge.txt"}
    assert "over the" in results["huge.txt"].reason
    assert all(r.reason and "Traceback" not in r.reason for s, r in results.items() if s in failed)
    assert sum(r.status == "indexed" for r in results.values()) == 7
    for name in failed:
        assert await kb.count(field_eq("source", name)) == 0


async def test_embedding_failure_rolls_back_the_file(kb: KnowledgeBase, tmp_path: Path) -> None:
    """A model that dies mid-file: the file fails and no chunk of it stays."""
    from langchain_core.embeddings import Embeddings

    class Failing(Embeddings):
        def __init__(self, inner: Embeddings) -> None:
            self.inner, self.calls = inner, 0

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            self.calls += 1
            if self.calls > 1:
                raise ConnectionError("model server went away")
            return self.inner.embed_documents(texts)

        def embed_query(self, text: str) -> list[float]:
            return self.inner.embed_query(text)

    kb.store.embedding_func = Failing(kb.embeddings)
    long = tmp_path / "long.txt"
    long.write_text(
        "\n\n".join(f"Paragraph {i} about topic {i} with enough words to fill a chunk. " * 6 for i in range(30)),
        encoding="utf-8",
    )
    kb.add_batch = 4
    [result] = await Ingestor(kb).ingest([FileInput(long, "long.txt")])
    assert result.status == "failed" and "went away" in result.reason
    assert await kb.count(field_eq("source", "long.txt")) == 0


def _cli(args: list[str], env_extra: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))} | env_extra
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


@pytest.mark.slow  # several command-line processes, each loading the model
def test_cli_folder_rerun_and_exit_codes(tmp_path: Path, settings: Settings) -> None:
    docs = tmp_path / "docs"
    make_good_set(docs / "team")
    (docs / "notes.md").write_text("# Notes\n\nThe Atlas project uses PostgreSQL 16 for storage.\n", encoding="utf-8")
    env = {"RAG_MILVUS_URI": settings.milvus_uri, "RAG_COLLECTION": settings.collection}

    first = _cli(["-m", "ingest", str(docs), "--json"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert {f["status"] for f in report["files"]} == {"indexed"}
    assert "team/turbine-manual.pdf" in {f["source"] for f in report["files"]}

    second = _cli(["-m", "ingest", str(docs), "--json"], env, tmp_path)
    again = json.loads(second.stdout)
    assert second.returncode == 0 and {f["status"] for f in again["files"]} == {"unchanged"}
    assert again["total_chunks"] == report["total_chunks"]

    make_bad_set(docs / "bad")
    third = _cli(["-m", "ingest", str(docs)], env, tmp_path)
    assert third.returncode != 0
    assert "bad/corrupt.pdf: failed:" in third.stdout and "Traceback" not in third.stdout + third.stderr
    assert "unchanged" in third.stdout


def test_cli_reports_invalid_settings_plainly(tmp_path: Path) -> None:
    out = _cli(["-m", "ingest", str(tmp_path)], {"RAG_K": "0"}, tmp_path)
    assert out.returncode == 1 and "RAG_K" in out.stderr and "Traceback" not in out.stderr


async def test_model_outage_before_writing_fails_the_file_and_keeps_the_rest(kb: KnowledgeBase, tmp_path: Path) -> None:
    """Chunks are embedded before the write lock: a model error there writes nothing for that file."""
    from langchain_core.embeddings import Embeddings

    from core.models import EmbeddingCache

    real = kb.embeddings.inner  # type: ignore[attr-defined]

    class DownForOneFile(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            if any("Nimbus" in t for t in texts):
                raise TimeoutError("embedding server timed out")
            return real.embed_documents(texts)

        def embed_query(self, text: str) -> list[float]:
            return real.embed_query(text)

    assert isinstance(kb.embeddings, EmbeddingCache)
    kb.embeddings.inner = DownForOneFile()
    bad = tmp_path / "nimbus.md"
    bad.write_text("# Nimbus\n\nThe Nimbus project ships in May.", encoding="utf-8")
    good = tmp_path / "atlas.md"
    good.write_text("# Atlas\n\nThe Atlas project ships in June.", encoding="utf-8")
    results = {
        r.source: r for r in await Ingestor(kb).ingest([FileInput(bad, "nimbus.md"), FileInput(good, "atlas.md")])
    }
    assert results["nimbus.md"].status == "failed" and "timed out" in results["nimbus.md"].reason
    assert results["atlas.md"].status == "indexed"
    assert await kb.count(field_eq("source", "nimbus.md")) == 0
    assert not kb.embeddings._prepared  # nothing left behind


@pytest.mark.slow  # several command-line processes, each loading the model
async def test_copy_moves_every_document_with_its_scope_to_another_milvus(
    tmp_path: Path, settings: Settings, embeddings: Embeddings
) -> None:
    """The way from Milvus Lite to a server (or to a collection with the full-text index): the CLI reads
    the kept originals and indexes each document into the target with its scope and owner."""
    from core.access import Viewer, visible_to
    from core.runtime import open_knowledge_base
    from ingest.documents import list_documents

    make_good_set(tmp_path / "docs")
    (tmp_path / "mine.md").write_text("# Mine\n\nThe Quokka budget is 12 kilo-euros.\n", encoding="utf-8")
    env = {"RAG_MILVUS_URI": str(tmp_path / "laptop.db"), "RAG_COLLECTION": "knowledge"}
    assert _cli(["-m", "ingest", str(tmp_path / "docs")], env, tmp_path).returncode == 0
    mine = ["-m", "ingest", str(tmp_path / "mine.md"), "--scope", "private", "--owner", "alice"]
    assert _cli(mine, env, tmp_path).returncode == 0
    listed = json.loads(_cli(["-m", "ingest.manage", "list", "--json"], env, tmp_path).stdout)
    before = sorted((d["source"], d["scope"], d["owner"], d["chunks"]) for d in listed)
    assert len(before) == 8

    copy = ["-m", "ingest.manage", "copy", "--to-uri", settings.milvus_uri, "--to-collection", settings.collection]
    out = _cli(copy, env, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Copied 8 of 8 documents" in out.stdout

    async with open_knowledge_base(settings, embeddings) as kb:
        after = sorted((d.source, d.scope, d.owner, d.chunks) for d in await list_documents(Ingestor(kb), None))
        assert after == before
        assert await kb.count(visible_to(Viewer("bob"))) < await kb.count(visible_to(Viewer("alice")))
    same = _cli(["-m", "ingest.manage", "copy", "--collection", "knowledge"], env, tmp_path)
    assert same.returncode == 1 and "--to-uri" in same.stderr
