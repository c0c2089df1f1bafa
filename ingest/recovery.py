"""Settle what a crash left half-written: finish complete documents, re-index the rest from the kept original.

Recovery uses the ingestor (its registry, its write lock, its `ingest`); the ingestor never calls recovery.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from core.access import Scope, document_expr
from core.errors import KnowledgeBaseError
from core.filters import all_of, field_eq, quote
from ingest.files import FileInput, FileResult, kept_file
from ingest.pipeline import Ingestor
from ingest.registry import DocumentBusy, DocumentVersion, Entry

log = logging.getLogger(__name__)
COMPLETED = "written in full before the interruption; completed"
REINDEXED = "interrupted while being written; indexed again from the kept original"
RECHECK_PENDING_S = 60.0  # how often a running app looks for writes a dead process left pending


class Recovery:
    """Settles the pending rows of one ingestor's knowledge base."""

    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor
        self.kb = ingestor.kb
        self.registry = ingestor.registry
        self._recovering = asyncio.Lock()

    async def recover(self) -> list[FileResult]:
        """Settle documents a crash left `pending`: finish complete ones, re-index the rest from the kept
        original (or report them failed), so nothing is half-written and nothing is duplicated.

        A document another running process is writing (a replica, the command line) is left to it.
        """
        async with self._recovering:
            results: list[FileResult] = []
            for seen in await self.registry.entries("pending"):
                if self.registry.held_elsewhere(seen):
                    log.info("%s is being written by another process; leaving it to it", seen.source)
                    continue
                settled = await self._settle(seen)
                if settled is not None:
                    results += settled
            return results

    async def _settle(self, seen: Entry) -> list[FileResult] | None:
        """Settle one pending row, unless someone else took it meanwhile (None)."""
        async with self.kb.write_lock:  # no write of this process is in flight: our own pending rows are stale
            entry = await self.registry.get(seen.doc_key)  # as it is now, not as it was listed
            if entry is None or entry.state != "pending":
                return None
            try:  # refused while a live process holds it, or if one took it since we read it
                await self.registry.claim(DocumentVersion.of(entry))
            except DocumentBusy:
                return None
            scope: Scope = "private" if entry.scope == "private" else "team"
            document = document_expr(entry.source, scope, entry.owner)
            this_version = all_of(document, field_eq("version", entry.version))
            assert this_version is not None
            present = await self.kb.count(this_version)
            if entry.chunks and present == entry.chunks:  # written in full; the crash came just after
                await self.kb.delete(all_of(document, f"version != {quote(entry.version)}") or "")
                await self.kb.flush()
                await self.registry.settle(entry, "indexed")
                return [FileResult(entry.source, "indexed", entry.chunks, COMPLETED, doc_hash=entry.doc_hash)]
            if present:
                await self.kb.delete(this_version)
                await self.kb.flush()
        original = kept_file(self.kb.settings, entry.doc_hash)
        kept: bool = await asyncio.to_thread(original.exists)
        if entry.doc_hash and kept:
            item = FileInput(original, entry.source, scope, entry.owner)
            return [replace(r, reason=r.reason or REINDEXED) for r in await self.ingestor.ingest([item])]
        reason = "indexing was interrupted and the file was not kept; upload it again"
        await self.registry.settle(entry, "failed", reason)
        return [FileResult(entry.source, "failed", reason=reason)]

    async def watch(self, stop: asyncio.Event, every: float = RECHECK_PENDING_S) -> None:
        """Until `stop` is set, settle now and then what a process that died mid-write left pending (another
        replica's crash is noticed here, not only at this process's next start), and at once when a write of
        this process could not be rolled back."""
        while not stop.is_set():
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.ingestor.unsettled.wait())]
            try:
                await asyncio.wait(waits, timeout=every, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
            if stop.is_set():
                return
            self.ingestor.unsettled.clear()  # a recovery that fails now is tried again at the next round
            try:
                for result in await self.recover():
                    log.warning("after an interruption: %s", result.describe())
            except KnowledgeBaseError as exc:
                log.warning("could not check for interrupted writes: %s", exc)
            except Exception:
                log.exception("could not check for interrupted writes")
