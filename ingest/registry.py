"""The document registry: each document's last known state, written before and after its chunks.

A document is `pending` while its chunks are being written, `indexed` once they are complete and flushed,
`failed` when the last attempt failed. After a crash, `pending` rows name exactly the documents that may
be half-written; `Ingestor.recover` settles them.

Several processes may write one knowledge base (app replicas, the command line). A pending row names its
writer; a row is claimed with a compare-and-set on what was read, so two processes never write one
document at once, and a pending row is settled by someone else only once its writer is gone: on the same
machine, when that process no longer runs; from another machine, when the row is older than WRITE_LEASE.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, NamedTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import KnowledgeBaseError

State = Literal["pending", "indexed", "failed"]
# How long a pending row written on another machine is taken to be in flight. One document's Milvus
# write takes seconds (its chunks are embedded before the row is claimed); this is generous on purpose.
WRITE_LEASE = timedelta(minutes=15)

UPSERT = """
INSERT INTO kb_documents ("store", "doc_key", "source", "scope", "owner", "doc_hash", "version", "state",
                          "chunks", "reason", "updated_at", "writer")
VALUES (:store, :doc_key, :source, :scope, :owner, :doc_hash, :version, :state, :chunks, :reason, :updated_at,
        :writer)
ON CONFLICT ("store", "doc_key") DO UPDATE SET
  "source" = EXCLUDED."source", "scope" = EXCLUDED."scope", "owner" = EXCLUDED."owner",
  "doc_hash" = EXCLUDED."doc_hash", "version" = EXCLUDED."version", "state" = EXCLUDED."state",
  "chunks" = EXCLUDED."chunks", "reason" = EXCLUDED."reason", "updated_at" = EXCLUDED."updated_at",
  "writer" = EXCLUDED."writer"
"""
# Only if the row is still what the claimer read (a row that did not exist must still not exist).
CLAIM = (
    UPSERT
    + """WHERE kb_documents."state" = :seen_state AND kb_documents."writer" = :seen_writer
  AND kb_documents."updated_at" = :seen_updated_at
"""
)
COLUMNS = (
    '"doc_key", "source", "scope", "owner", "doc_hash", "version", "state", "chunks", "reason", "updated_at", "writer"'
)


class DocumentBusy(KnowledgeBaseError):
    """Another live process is writing this document."""


def _host() -> str:
    """This machine, as far as process ids go: the host name and the PID namespace (containers differ)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{namespace}"


def _started(pid: int) -> str:
    """When the process started (clock ticks since boot, Linux), so a reused PID is not mistaken for it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[1].split()  # from field 3 on; the name in parentheses may hold spaces
    return "" if fields[0] in ("Z", "X") else fields[19]  # a zombie has stopped; field 22 is the start time


@dataclass(frozen=True)
class Writer:
    """A process that writes documents: where it runs, its PID and its start time."""

    host: str
    pid: int
    started: str

    @classmethod
    def of_process(cls, pid: int) -> Writer:
        """A process on this machine."""
        return cls(_host(), pid, _started(pid))

    @classmethod
    def this_process(cls) -> Writer:
        return cls.of_process(os.getpid())

    @classmethod
    def parse(cls, value: str) -> Writer | None:
        host, _, rest = value.rpartition("|")
        host, _, pid = host.rpartition("|")
        return cls(host, int(pid), rest) if host and pid.isdigit() else None

    def __str__(self) -> str:
        return f"{self.host}|{self.pid}|{self.started}"

    def running(self) -> bool | None:
        """Whether it still runs; None when that cannot be told from here (another machine)."""
        if self.host != _host():
            return None
        started = _started(self.pid)
        if started or self.started:
            return started == self.started
        try:  # no /proc: the PID alone
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@dataclass(frozen=True)
class Entry:
    """One document's row."""

    doc_key: str
    source: str
    scope: str
    owner: str
    doc_hash: str
    version: str
    state: State
    chunks: int
    reason: str
    updated_at: str
    writer: str = ""  # of a pending row: the process writing it


class DocumentVersion(NamedTuple):
    """A document and one version of it: what a row records, and what a claim is for."""

    doc_key: str
    source: str
    scope: str
    owner: str
    doc_hash: str
    version: str
    chunks: int

    @classmethod
    def of(cls, entry: Entry) -> DocumentVersion:
        """What an existing row records (to take it over as it is)."""
        return cls(entry.doc_key, entry.source, entry.scope, entry.owner, entry.doc_hash, entry.version, entry.chunks)


class Registry:
    """Rows of one knowledge base (`store`: the Milvus URI and collection) in the app's SQL database.

    `writer` is who this registry writes as: this process, unless a test plays another one.
    """

    def __init__(self, engine: AsyncEngine, store: str, writer: Writer | None = None) -> None:
        self.engine = engine
        self.store = store
        self.writer = writer or Writer.this_process()

    def held_elsewhere(self, entry: Entry) -> bool:
        """Whether another process that still runs is writing this document."""
        if entry.state != "pending" or not entry.writer or entry.writer == str(self.writer):
            return False
        writer = Writer.parse(entry.writer)
        running = writer.running() if writer is not None else None
        if running is not None:
            return running
        try:
            age = datetime.now(UTC) - datetime.fromisoformat(entry.updated_at)
        except ValueError:
            return False
        return age < WRITE_LEASE

    async def claim(self, what: DocumentVersion) -> Entry | None:
        """Mark the document pending, written by us; returns the row it replaced.

        Raises DocumentBusy while another running process writes it, or when another process changed the
        row between our read and our write (the caller waits and tries again).
        """
        seen = await self.get(what.doc_key)
        if seen is not None and self.held_elsewhere(seen):
            raise DocumentBusy(f"{what.source} is being written by another process ({seen.writer})")
        row = self._row(what, "pending", "")
        row |= {
            "seen_state": seen.state if seen else "",  # no row has an empty state: an insert must stay one
            "seen_writer": seen.writer if seen else "",
            "seen_updated_at": seen.updated_at if seen else "",
        }
        async with self.engine.begin() as conn:
            changed = (await conn.execute(text(CLAIM), row)).rowcount
        if changed != 1:
            raise DocumentBusy(f"{what.source} was claimed by another process just now")
        return seen

    async def mark(
        self,
        doc_key: str,
        source: str,
        scope: str,
        owner: str,
        doc_hash: str,
        version: str,
        state: State,
        chunks: int = 0,
        reason: str = "",
    ) -> None:
        row = self._row(DocumentVersion(doc_key, source, scope, owner, doc_hash, version, chunks), state, reason)
        async with self.engine.begin() as conn:
            await conn.execute(text(UPSERT), row)

    def _row(self, what: DocumentVersion, state: State, reason: str) -> dict[str, object]:
        row: dict[str, object] = {
            "store": self.store,
            **what._asdict(),
            "state": state,
            "reason": reason[:500],
            "updated_at": datetime.now(UTC).isoformat(timespec="microseconds"),
            "writer": str(self.writer) if state == "pending" else "",
        }
        return {k: v.replace("\0", "") if isinstance(v, str) else v for k, v in row.items()}  # PostgreSQL text

    async def settle(self, entry: Entry, state: State, reason: str = "") -> None:
        """Move an existing row to `state`."""
        await self.mark(
            entry.doc_key, entry.source, entry.scope, entry.owner, entry.doc_hash, entry.version, state,
            entry.chunks, reason,
        )  # fmt: skip

    async def get(self, doc_key: str) -> Entry | None:
        query = f'SELECT {COLUMNS} FROM kb_documents WHERE "store" = :store AND "doc_key" = :key'
        async with self.engine.connect() as conn:
            row = (await conn.execute(text(query), {"store": self.store, "key": doc_key})).first()
        return Entry(*row) if row else None

    async def entries(self, state: State | None = None) -> list[Entry]:
        query = f'SELECT {COLUMNS} FROM kb_documents WHERE "store" = :store'
        params = {"store": self.store}
        if state is not None:
            query += ' AND "state" = :state'
            params["state"] = state
        async with self.engine.connect() as conn:
            rows = (await conn.execute(text(query + ' ORDER BY "updated_at"'), params)).all()
        return [Entry(*row) for row in rows]

    async def forget(self, doc_key: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text('DELETE FROM kb_documents WHERE "store" = :store AND "doc_key" = :key'),
                {"store": self.store, "key": doc_key},
            )
