"""Turn a file's bytes into titled sections of text, by the file's extension (`parse`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.errors import EmptyDocument, UnsupportedFileType
from ingest.office import load_docx, load_pdf, load_pptx
from ingest.text import ParsedDocument, load_csv, load_html, load_markdown, load_text

LOADERS: dict[str, Callable[[bytes, str], ParsedDocument]] = {
    ".pdf": load_pdf,
    ".docx": load_docx,
    ".pptx": load_pptx,
    ".html": load_html,
    ".htm": load_html,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".txt": load_text,
    ".text": load_text,
    ".csv": load_csv,
}
SUPPORTED = sorted(LOADERS)


def parse(data: bytes, name: str) -> ParsedDocument:
    """Parse a file by its extension; raises IngestError with a plain reason."""
    ext = Path(name).suffix.lower()
    loader = LOADERS.get(ext)
    if loader is None:
        raise UnsupportedFileType(
            f"unsupported file type '{ext or 'no extension'}' (supported: {', '.join(SUPPORTED)})"
        )
    if not data.strip():
        raise EmptyDocument("the file is empty")
    doc = loader(data, name)
    doc.sections = [s for s in doc.sections if s.text.strip()]
    if not doc.sections:
        raise EmptyDocument("no text could be found in the file")
    return doc
