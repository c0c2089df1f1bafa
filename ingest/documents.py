"""Document management: list, delete and re-index documents, with access enforced inside each query."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from typing import Any

from core.access import Scope, Viewer, document_expr, manageable_by, visible_to
from core.errors import IngestError
from core.filters import all_of, field_eq
from ingest.files import FileInput, FileResult, document_key, kept_file
from ingest.pipeline import Ingestor
from ingest.registry import DocumentVersion, Entry

log = logging.getLogger(__name__)
FIELDS = ["source", "scope", "owner", "chunk_count", "ingested_at", "doc_hash", "file_type"]


@dataclass(frozen=True)
class DocumentInfo:
    """One document as people see it in a listing."""

    source: str
    scope: Scope
    owner: str
    chunks: int
    ingested_at: str
    doc_hash: str
    file_type: str

    @property
    def ref(self) -> dict[str, str]:
        """What names this document in an action payload (checked again on use)."""
        return {"source": self.source, "scope": self.scope, "owner": self.owner}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _info(row: dict[str, Any]) -> DocumentInfo:
    scope: Scope = "private" if row.get("scope") == "private" else "team"
    return DocumentInfo(
        source=str(row.get("source", "")),
        scope=scope,
        owner=str(row.get("owner", "")),
        chunks=int(row.get("chunk_count") or 0),
        ingested_at=str(row.get("ingested_at", "")),
        doc_hash=str(row.get("doc_hash", "")),
        file_type=str(row.get("file_type", "")),
    )


async def list_documents(
    ingestor: Ingestor, viewer: Viewer | None, manageable: bool = False, source: str | None = None
) -> list[DocumentInfo]:
    """Documents the viewer can see (or manage), by name; None lists every document (the operator)."""
    access = None if viewer is None else manageable_by(viewer) if manageable else visible_to(viewer)
    named = field_eq("source", source) if source is not None else None
    expr = all_of(field_eq("chunk", 0), access, named)
    assert expr is not None
    rows = await ingestor.kb.query(expr, FIELDS)
    docs = {(d.scope, d.owner if d.scope == "private" else "", d.source): d for d in map(_info, rows)}
    return sorted(docs.values(), key=lambda d: (d.source.lower(), d.scope, d.owner))


async def find_manageable(ingestor: Ingestor, viewer: Viewer | None, ref: dict[str, Any]) -> DocumentInfo:
    """The document a (client-supplied) reference names, if the viewer may manage it."""
    source, scope, owner = str(ref.get("source", "")), str(ref.get("scope", "")), str(ref.get("owner", ""))
    if scope not in ("team", "private") or not source:
        raise IngestError("that is not a document reference")
    candidates = await list_documents(ingestor, viewer, manageable=True, source=source)
    for doc in candidates:
        if doc.scope == scope and (scope == "team" or doc.owner == owner):
            return doc
    raise IngestError(f"no document named '{source}' that you can manage")


async def delete_document(ingestor: Ingestor, viewer: Viewer | None, doc: DocumentInfo) -> int:
    """Delete every chunk of the document (access checked in the delete expression); returns chunks removed.

    The document is claimed in the registry first: a replica writing it meanwhile is waited for, not raced.
    Cut short (a crash, an outage), the claim stays pending and recovery restores the document whole.
    """
    expr = all_of(document_expr(doc.source, doc.scope, doc.owner), None if viewer is None else manageable_by(viewer))
    assert expr is not None
    kb = ingestor.kb
    key = document_key(doc.source, doc.scope, doc.owner)
    row = await ingestor.registry.get(key)
    claim = (
        DocumentVersion.of(row)
        if row
        else DocumentVersion(key, doc.source, doc.scope, doc.owner, doc.doc_hash, "", doc.chunks)
    )

    async def delete(_: Entry | None) -> int:
        present = await kb.count(expr)
        if present:
            await kb.delete(expr)
            await kb.flush()
        remaining = await kb.count(expr)
        if remaining:
            raise IngestError(f"'{doc.source}' could not be deleted completely ({remaining} chunks remain); try again")
        await ingestor.registry.forget(key)
        return present

    present = await ingestor.exclusively(claim, delete)
    if doc.doc_hash and not await kb.count(field_eq("doc_hash", doc.doc_hash)):
        await asyncio.to_thread(kept_file(ingestor.settings, doc.doc_hash).unlink, missing_ok=True)
    return present


async def reindex_document(ingestor: Ingestor, viewer: Viewer | None, doc: DocumentInfo) -> FileResult:
    """Index the kept original again with the current settings (unchanged when nothing would change)."""
    original = kept_file(ingestor.settings, doc.doc_hash)
    if not doc.doc_hash or not await asyncio.to_thread(original.exists):
        raise IngestError(f"the original of '{doc.source}' is not kept on the server; upload it again")
    item = FileInput(original, doc.source, doc.scope, doc.owner)
    [result] = await ingestor.ingest([item], viewer=viewer)
    return result


def describe(doc: DocumentInfo) -> str:
    """One line for people."""
    who = f"private to {doc.owner}" if doc.scope == "private" else f"team, added by {doc.owner or 'the operator'}"
    chunks = f"{doc.chunks} chunk" + ("" if doc.chunks == 1 else "s")
    return f"{doc.source} ({who}; {chunks}; {doc.ingested_at.replace('T', ' ')[:16]})"
