"""The document registry: each document's last known state, written before and after its chunks.

A document is `pending` while its chunks are being written, `indexed` once they are complete and flushed,
`failed` when the last attempt failed. After a crash, `pending` rows name exactly the documents that may
be half-written; `Ingestor.recover` settles them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

State = Literal["pending", "indexed", "failed"]

UPSERT = """
INSERT INTO kb_documents ("store", "doc_key", "source", "scope", "owner", "doc_hash", "version", "state",
                          "chunks", "reason", "updated_at")
VALUES (:store, :doc_key, :source, :scope, :owner, :doc_hash, :version, :state, :chunks, :reason, :updated_at)
ON CONFLICT ("store", "doc_key") DO UPDATE SET
  "source" = EXCLUDED."source", "scope" = EXCLUDED."scope", "owner" = EXCLUDED."owner",
  "doc_hash" = EXCLUDED."doc_hash", "version" = EXCLUDED."version", "state" = EXCLUDED."state",
  "chunks" = EXCLUDED."chunks", "reason" = EXCLUDED."reason", "updated_at" = EXCLUDED."updated_at"
"""
COLUMNS = '"doc_key", "source", "scope", "owner", "doc_hash", "version", "state", "chunks", "reason", "updated_at"'


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


class Registry:
    """Rows of one knowledge base (`store`: the Milvus URI and collection) in the app's SQL database."""

    def __init__(self, engine: AsyncEngine, store: str) -> None:
        self.engine = engine
        self.store = store

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
        row: dict[str, object] = {
            "store": self.store,
            "doc_key": doc_key,
            "source": source,
            "scope": scope,
            "owner": owner,
            "doc_hash": doc_hash,
            "version": version,
            "state": state,
            "chunks": chunks,
            "reason": reason[:500],
            "updated_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        row = {k: v.replace("\0", "") if isinstance(v, str) else v for k, v in row.items()}  # PostgreSQL text
        async with self.engine.begin() as conn:
            await conn.execute(text(UPSERT), row)

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
