"""Files in, chunks in Milvus out: parse, split, replace a source's chunks, report per file."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Literal, TypeVar

from langchain_core.documents import Document

from core.access import Viewer, document_expr
from core.errors import IngestError, KnowledgeBaseError
from core.files import written_aside
from core.filters import all_of, field_eq, quote
from core.store import KnowledgeBase
from ingest.chunks import ChunkSpec
from ingest.files import FileInput, FileResult, ProgressCallback, chunk_id, document_key, kept_file
from ingest.registry import DocumentBusy, DocumentVersion, Entry, Registry, State
from ingest.sandbox import shared_pool

log = logging.getLogger(__name__)
T = TypeVar("T")
# While another process writes the same document: wait this long (seconds) between tries, then give up.
CLAIM_WAITS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
MAX_PARALLEL_FILES = 4  # files parsed at once, each in a worker process
MAX_PARALLEL_EMBEDS = 2  # files embedded at once (outside the single writer)
PARSE_TIMEOUT_S = 120.0  # a worker still reading a file after this long is stopped and the file reported
PARSE_MEMORY_MB = 2048  # address-space limit of each reading worker: a decompression bomb fails alone


class UnsettledWrite(IngestError):
    """A write failed and its partial chunks could not be removed yet; recovery will."""


class Ingestor:
    """Ingests files into one knowledge base with bounded parallel parsing and a single writer."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        self.settings = kb.settings
        self._parse_slots = asyncio.Semaphore(MAX_PARALLEL_FILES)
        self._parsers = shared_pool(MAX_PARALLEL_FILES, PARSE_TIMEOUT_S, PARSE_MEMORY_MB)
        self._embed_slots = asyncio.Semaphore(MAX_PARALLEL_EMBEDS)
        self.registry = Registry(kb.engine, kb.identity)
        # Set when a failed write could not be rolled back: its row stays pending for recovery (ingest.recovery).
        self.unsettled = asyncio.Event()

    async def ingest(
        self, files: list[FileInput], on_result: ProgressCallback | None = None, viewer: Viewer | None = None
    ) -> list[FileResult]:
        """Ingest every file; one failure never stops the others. A file reported `indexed` is flushed.

        `viewer` is who uploads (None: the operator at the command line, who may replace anything).
        """

        async def one(item: FileInput) -> FileResult:
            result = await self._ingest_one(item, viewer)
            if on_result is not None:
                maybe = on_result(result)
                if maybe is not None:
                    await maybe
            return result

        return list(await asyncio.gather(*(one(f) for f in files)))

    async def _ingest_one(self, item: FileInput, viewer: Viewer | None) -> FileResult:
        started = time.perf_counter()
        unsettled = False
        try:
            await self._check_may_replace(item, viewer)
            chunks, doc_hash = await self._prepare(item)
            # Kept before writing: after a crash, recovery re-indexes from this copy.
            await asyncio.to_thread(self._keep, item.path, doc_hash)
            try:
                status = await self._write(item, viewer, chunks)
            finally:
                self.kb.discard(chunks)
            result = FileResult(item.source, status, len(chunks), doc_hash=doc_hash)
        except KnowledgeBaseError as exc:
            unsettled = isinstance(exc, UnsettledWrite)
            result = FileResult(item.source, "failed", reason=str(exc))
        except Exception as exc:  # a bug or an outage: report it for this file, keep going
            log.exception("ingest of %s failed", item.source)
            result = FileResult(item.source, "failed", reason=f"unexpected error ({type(exc).__name__}: {exc})")
        if result.status == "failed" and not unsettled:
            await self._record_failure(item, result.reason)
        result.seconds = round(time.perf_counter() - started, 3)
        return result

    async def _record_failure(self, item: FileInput, reason: str) -> None:
        """Record a failed new document; an indexed one keeps its row (its last version is still there), and
        a pending one keeps it for recovery."""
        key = document_key(item.source, item.scope, item.owner)
        try:
            existing = await self.registry.get(key)
            if existing is None or existing.state == "failed":
                await self.registry.mark(key, item.source, item.scope, item.owner, "", "", "failed", reason=reason)
        except Exception:  # the file already failed; the registry row is only a record of it
            log.exception("could not record the failure of %s", item.source)

    async def _prepare(self, item: FileInput) -> tuple[list[Document], str]:
        limit = int(self.settings.max_file_mb * 1024 * 1024)
        async with self._parse_slots:
            try:
                size = item.path.stat().st_size
            except OSError as exc:
                raise IngestError(f"the file could not be read ({exc.strerror})") from exc
            if size > limit:
                raise IngestError(
                    f"the file is {size / 1_048_576:.1f} MB, over the {self.settings.max_file_mb:g} MB limit"
                )
            data = await asyncio.to_thread(item.path.read_bytes)
            doc_hash = hashlib.sha256(data).hexdigest()[:32]
            request = {
                "source": item.source,
                "scope": item.scope,
                "owner": item.owner,
                "doc_hash": doc_hash,
                "spec": asdict(ChunkSpec.from_settings(self.settings)),
            }
            # Parsers run in worker processes with a time and memory limit: a hostile file costs a worker.
            reply = await asyncio.to_thread(self._parsers.run, request, data)
            del data
        if not reply["ok"]:
            raise IngestError(str(reply["reason"]))
        chunks = [Document(page_content=text, metadata=meta) for text, meta in reply["chunks"]]
        if not chunks:
            raise IngestError("no text could be found in the file")
        return chunks, doc_hash

    async def _check_may_replace(self, item: FileInput, viewer: Viewer | None) -> None:
        """A team document may be replaced only by whoever added it, or an admin."""
        if item.scope != "team" or viewer is None or viewer.is_admin:
            return
        rows = await self.kb.query(document_expr(item.source, "team", ""), ["owner"], limit=1)
        if rows and rows[0].get("owner") != item.owner:
            raise IngestError(
                f"a team document with this name was added by {rows[0].get('owner') or 'someone else'}; "
                "only they or an admin can replace it (rename your file to add it alongside)"
            )

    async def _write(
        self, item: FileInput, viewer: Viewer | None, chunks: list[Document]
    ) -> Literal["indexed", "unchanged"]:
        document = document_expr(item.source, item.scope, item.owner)
        version = str(chunks[0].metadata["version"])
        this_version = all_of(document, field_eq("version", version))
        older_versions = all_of(document, f"version != {quote(version)}")
        assert this_version and older_versions
        ids = [chunk_id(item, version, i) for i in range(len(chunks))]
        if await self.kb.count(this_version) != len(chunks):
            # Embed before taking the lock: only the Milvus writes are serialized.
            try:
                async with self._embed_slots:
                    await self.kb.prepare(chunks)
            except Exception as exc:
                raise IngestError(f"the chunks could not be embedded ({type(exc).__name__}: {exc})") from exc
        key = document_key(item.source, item.scope, item.owner)
        doc_hash = str(chunks[0].metadata["doc_hash"])

        async def mark(state: State) -> None:
            await self.registry.mark(key, item.source, item.scope, item.owner, doc_hash, version, state, len(chunks))

        async def write(previous: Entry | None) -> Literal["indexed", "unchanged"]:
            # From here until "indexed", a crash leaves a pending row that recovery settles.
            present = await self.kb.count(this_version)
            if present == len(chunks):
                await self.kb.delete(older_versions)
                await mark("indexed")
                return "unchanged"
            if present:  # an earlier run stopped half-way: start this version afresh
                await self.kb.delete(this_version)
            try:
                await self.kb.add(chunks, ids)
            except Exception as exc:
                reason = str(exc) if isinstance(exc, KnowledgeBaseError) else f"{type(exc).__name__}: {exc}"
                if await self._rollback(this_version):
                    await self._restore(previous, version, mark)
                    raise IngestError(f"the chunks could not be stored ({reason})") from exc
                # Not even the partial chunks could be removed: the row stays pending for recovery.
                self.unsettled.set()
                later = "what was written is removed automatically once the knowledge base is reachable"
                raise UnsettledWrite(f"the chunks could not be stored ({reason}); {later}") from exc
            # The new version is complete: only now drop what it replaces.
            await self.kb.delete(older_versions)
            await self.kb.flush()  # durable before anyone is told "indexed"
            await mark("indexed")
            return "indexed"

        claim = DocumentVersion(key, item.source, item.scope, item.owner, doc_hash, version, len(chunks))
        # The uploader's right to replace is checked again once no one else can write.
        return await self.exclusively(claim, write, before=lambda: self._check_may_replace(item, viewer))

    async def exclusively(
        self,
        claim: DocumentVersion,
        body: Callable[[Entry | None], Awaitable[T]],
        before: Callable[[], Awaitable[None]] | None = None,
    ) -> T:
        """Run `body` holding this process's write lock and the document's claim in the registry, so no
        other process writes the document meanwhile; `body` gets the row the claim replaced.

        While another process holds the claim: wait (without the lock, so this process's other files go
        on) and try again, then give up with a plain message.
        """
        for wait in (*CLAIM_WAITS, None):
            async with self.kb.write_lock:
                if before is not None:
                    await before()
                try:
                    previous = await self.registry.claim(claim)
                except DocumentBusy:
                    pass
                else:
                    return await body(previous)
            if wait is None:
                raise IngestError(
                    "another app process is writing a document with this name right now; try again in a moment"
                )
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _restore(self, previous: Entry | None, version: str, mark: Callable[[State], Awaitable[None]]) -> None:
        """After a write was rolled back: the row says again what is stored (an older version, a write a crash
        left for recovery to settle, or nothing)."""
        if previous is not None and previous.state == "indexed" and previous.version != version:
            await self.registry.settle(previous, "indexed", previous.reason)
        elif previous is not None and previous.state == "pending":
            await self.registry.settle(previous, "pending")
        else:
            await mark("failed")

    def _keep(self, path: Path, doc_hash: str) -> None:
        """Keep the original, so citations can open it and the document can be re-indexed."""
        target = kept_file(self.settings, doc_hash)
        if target.exists() or path.resolve() == target.resolve():
            return
        with written_aside(target) as partial:  # identical files in one upload are kept concurrently
            shutil.copyfile(path, partial)

    async def _rollback(self, expr: str) -> bool:
        try:
            await self.kb.delete(expr)
            return True
        except Exception:
            log.exception("could not remove the partial chunks of a failed file")
            return False
