"""Parsed sections to chunks: what a file turns into, decided only by its content and the chunk spec."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter

from core.errors import IngestError
from core.settings import Settings
from ingest.text import ParsedDocument

# Bump when parsing or splitting changes what a file turns into: re-indexing then rewrites every file.
PIPELINE_VERSION = "4"  # 3: identical chunks once per document, PDF text through pdfium; 4: PDF spaces put back


@dataclass(frozen=True)
class ChunkSpec:
    """How files are cut into chunks, and how many chunks one file may make."""

    chunk_size: int
    chunk_overlap: int
    max_chunks: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ChunkSpec:
        return cls(settings.chunk_size, settings.chunk_overlap, settings.max_chunks_per_file)


@dataclass(frozen=True)
class Owner:
    """Whose document the chunks belong to, and who may see them."""

    source: str
    scope: str
    owner: str


def index_version(doc_hash: str, spec: ChunkSpec) -> str:
    """The file's content plus everything that decides its chunks."""
    key = f"{doc_hash}\0{spec.chunk_size}\0{spec.chunk_overlap}\0{PIPELINE_VERSION}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def check_size(doc: ParsedDocument, spec: ChunkSpec) -> None:
    """Refuse, before splitting, a file that would make more chunks than one file may."""
    chars = sum(len(s.text) for s in doc.sections)
    estimate = chars // max(spec.chunk_size - spec.chunk_overlap, 1)
    if estimate > spec.max_chunks:
        raise IngestError(
            f"the file holds {chars:,} characters of text, about {estimate:,} chunks, over the limit of "
            f"{spec.max_chunks:,} chunks per file (RAG_MAX_CHUNKS_PER_FILE); split it into smaller files"
        )


def split(doc: ParsedDocument, owner: Owner, doc_hash: str, spec: ChunkSpec) -> list[Document]:
    """Split sections into chunks that carry the title and headings they sit under.

    A text repeated within the document (a page header, boilerplate, identical rows, a file of one repeated
    line) is stored once: many identical vectors crowd every other chunk out of the HNSW search.
    """
    check_size(doc, spec)
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=spec.chunk_size, chunk_overlap=spec.chunk_overlap, add_start_index=False
    )
    now = datetime.now(UTC).isoformat(timespec="seconds")
    version = index_version(doc_hash, spec)
    chunks: list[Document] = []
    seen: set[str] = set()
    for section in doc.sections:
        path = [h for h in section.headings if h and h != doc.title]
        header = " > ".join([doc.title, *path])
        for piece in splitter.split_text(section.text):
            same_text = " ".join(piece.split()).lower()
            if same_text in seen:
                continue
            seen.add(same_text)
            index = len(chunks)
            metadata: dict[str, object] = {
                "source": owner.source,
                "scope": owner.scope,
                "owner": owner.owner,
                "title": doc.title,
                "headings": " > ".join(path),
                "file_type": doc.file_type,
                "chunk": index,
                "content_hash": hashlib.sha256(piece.encode()).hexdigest()[:16],
                "doc_hash": doc_hash,
                "version": version,
                "ingested_at": now,
            }
            if section.page is not None:
                metadata["page"] = section.page
            chunks.append(Document(page_content=f"{header}\n\n{piece}", metadata=metadata))
            if len(chunks) > spec.max_chunks:  # the estimate can be beaten by tiny lines
                raise IngestError(f"the file makes more than {spec.max_chunks:,} chunks (RAG_MAX_CHUNKS_PER_FILE)")
    for chunk in chunks:
        chunk.metadata["chunk_count"] = len(chunks)
    return chunks
