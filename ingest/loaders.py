"""Turn a file's bytes into titled sections of text (with page and headings)."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import EmptyDocument, IngestError, UnsupportedFileType

MARKDOWN_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


@dataclass
class Section:
    """A run of text with where it sits in the document."""

    text: str
    headings: list[str] = field(default_factory=list)
    page: int | None = None


@dataclass
class ParsedDocument:
    """A file's text, ready to be split."""

    title: str
    file_type: str
    sections: list[Section]


def decode_text(data: bytes) -> str:
    """Decode text files: UTF-8, UTF-16 (with BOM), else Latin-1; refuse binary data."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    sample = data[:8192]
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13))
    if b"\0" in sample or controls > len(sample) * 0.05:
        raise IngestError("this looks like binary data, not text")
    return data.decode("cp1252", errors="replace")


def _check_binary_text(text: str) -> str:
    if "\0" in text[:8192]:
        raise IngestError("this looks like binary data, not text")
    return text


def markdown_sections(text: str, page: int | None = None) -> list[Section]:
    """Split Markdown-like text on headings, keeping the heading path of each part."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    buf: list[str] = []
    in_fence = False

    def flush() -> None:
        body = "\n".join(buf).strip()
        if body:
            sections.append(Section(body, [h for _, h in path], page))
        buf.clear()

    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        m = None if in_fence else MARKDOWN_HEADING.match(line)
        if m:
            flush()
            level = len(m.group(1))
            path = [(lv, h) for lv, h in path if lv < level] + [(level, m.group(2).strip())]
        else:
            buf.append(line)
    flush()
    return sections


def load_markdown(data: bytes, name: str) -> ParsedDocument:
    text = _check_binary_text(decode_text(data))
    sections = markdown_sections(text)
    first = next((s.headings[0] for s in sections if s.headings), None)
    return ParsedDocument(first or Path(name).stem, "markdown", sections)


def load_text(data: bytes, name: str) -> ParsedDocument:
    text = _check_binary_text(decode_text(data))
    return ParsedDocument(Path(name).stem, "text", [Section(text.strip())])


def load_csv(data: bytes, name: str) -> ParsedDocument:
    text = decode_text(data)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel  # type: ignore[assignment]
    try:
        rows = list(csv.reader(io.StringIO(text), dialect))
    except csv.Error as exc:
        raise IngestError(f"the CSV could not be read ({exc})") from exc
    if not rows:
        raise EmptyDocument("the CSV has no rows")
    header, body = rows[0], rows[1:] or [rows[0]]
    lines = []
    for row in body:
        cells = [f"{h.strip()}: {v.strip()}" for h, v in zip(header, row, strict=False) if v.strip()]
        if cells:
            lines.append("; ".join(cells))
    return ParsedDocument(Path(name).stem, "csv", [Section("\n".join(lines))])


# PDF text as pdfium gives it: a hyphen it inserted at a line break (U+FFFE) joins the word again, CR LF
# line ends, typographic minus signs and dashes (groff writes every option as "−−name") and ligatures.
_PDF_SOFT_BREAK = re.compile(r"\ufffe\s*")
_PDF_DASHES = str.maketrans({"\u2212": "-", "\u2010": "-", "\u2011": "-", "\u00ad": ""})


def clean_pdf_text(text: str) -> str:
    """Extracted PDF text as words a reader (and a search) expects."""
    text = _PDF_SOFT_BREAK.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return unicodedata.normalize("NFKC", text).translate(_PDF_DASHES)


def load_pdf(data: bytes, name: str) -> ParsedDocument:
    """PDF text through pdfium (pypdfium2): on groff-made PDFs it broke half as many words as pypdf and read
    them 5-20x faster (benchmarks/pdf_text.py, BENCHMARKS.md part 7)."""
    import pypdfium2 as pdfium

    if not data.lstrip()[:1024].startswith(b"%PDF") and b"%PDF" not in data[:1024]:
        raise IngestError("this is not a PDF (no PDF header); the file may be damaged or misnamed")
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise IngestError("the PDF is password-protected; remove the password and upload it again") from exc
        raise IngestError(f"the PDF is damaged and could not be read ({exc})") from exc
    try:
        sections = []
        for number in range(1, len(document) + 1):
            page = document[number - 1]
            textpage = page.get_textpage()
            text = clean_pdf_text(textpage.get_text_range()).strip()
            textpage.close()
            page.close()
            if text:
                sections.append(Section(text, [], number))
        meta_title = str(document.get_metadata_dict().get("Title") or "")
    except Exception as exc:
        raise IngestError(f"the PDF is damaged and could not be read ({type(exc).__name__})") from exc
    finally:
        document.close()
    if not sections:
        raise EmptyDocument("the PDF has no text layer (a scan?); run it through OCR first")
    return ParsedDocument(str(meta_title).strip() or Path(name).stem, "pdf", sections)


def _open_zip(data: bytes, kind: str) -> None:
    if not data.startswith(b"PK"):
        raise IngestError(f"this is not a valid {kind} file (not a zip package); the file may be damaged or misnamed")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            total = sum(i.file_size for i in zf.infolist())
    except zipfile.BadZipFile as exc:
        raise IngestError(f"the {kind} file is damaged ({exc})") from exc
    if total > 500 * 1024 * 1024:
        raise IngestError(f"the {kind} file expands to more than 500 MB; refusing to open it")


def load_docx(data: bytes, name: str) -> ParsedDocument:
    import docx

    _open_zip(data, "DOCX")
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:
        raise IngestError(f"the DOCX file is damaged and could not be read ({type(exc).__name__})") from exc
    lines: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, docx.table.Table):
            for row in block.rows:
                cells = [c.text.strip() for c in row.cells]
                if any(cells):
                    lines.append(" | ".join(cells))
            continue
        text = block.text.strip()
        style = (block.style.name if block.style is not None else "") or ""
        if not text:
            continue
        if style == "Title":
            lines.append(f"# {text}")
        elif style.startswith("Heading"):
            level = int(style.split()[-1]) if style.split()[-1].isdigit() else 1
            lines.append(f"{'#' * min(level + 1, 6)} {text}")
        else:
            lines.append(text)
    title = (document.core_properties.title or "").strip()
    sections = markdown_sections("\n".join(lines))
    if not title:
        title = next((s.headings[0] for s in sections if s.headings), Path(name).stem)
    return ParsedDocument(title, "docx", sections)


def load_pptx(data: bytes, name: str) -> ParsedDocument:
    from pptx import Presentation

    _open_zip(data, "PPTX")
    try:
        deck = Presentation(io.BytesIO(data))
    except Exception as exc:
        raise IngestError(f"the PPTX file is damaged and could not be read ({type(exc).__name__})") from exc
    sections = []
    for number, slide in enumerate(deck.slides, start=1):
        title_shape = slide.shapes.title
        slide_title = (
            title_shape.text_frame.text.strip() if title_shape is not None and title_shape.has_text_frame else ""
        )
        texts = []
        for shape in slide.shapes:
            if shape is title_shape:
                continue
            if shape.has_text_frame:
                texts.append(shape.text_frame.text.strip())
            if getattr(shape, "has_table", False) and shape.has_table:
                for row in shape.table.rows:
                    texts.append(" | ".join(c.text.strip() for c in row.cells))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            texts.append(slide.notes_slide.notes_text_frame.text.strip())
        body = "\n".join(t for t in texts if t)
        if body or slide_title:
            sections.append(Section(body or slide_title, [slide_title] if slide_title else [], number))
    title = (deck.core_properties.title or "").strip() or Path(name).stem
    return ParsedDocument(title, "pptx", sections)


def load_html(data: bytes, name: str) -> ParsedDocument:
    from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning

    warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)
    text = _check_binary_text(decode_text(data))
    soup = BeautifulSoup(text, "lxml")
    for tag in soup(["script", "style", "noscript", "nav", "header", "footer", "svg", "form"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    body = soup.body or soup
    lines: list[str] = []
    for el in body.find_all(
        ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "dt", "dd", "td", "th", "blockquote"]
    ):
        if el.find_parent(["p", "li", "pre", "dd", "td", "th", "blockquote"]) is not None and el.name not in ("pre",):
            continue
        content = el.get_text("\n" if el.name == "pre" else " ", strip=el.name != "pre")
        if el.name != "pre":
            content = re.sub(r"\s+", " ", content).strip()
        if not content:
            continue
        if el.name[0] == "h" and el.name[1:].isdigit():
            lines.append(f"{'#' * int(el.name[1:])} {content}")
        else:
            lines.append(content)
    if not lines:  # pages without block markup
        lines = [body.get_text("\n", strip=True)]
    sections = markdown_sections("\n".join(lines))
    if not title:
        title = next((s.headings[0] for s in sections if s.headings), Path(name).stem)
    return ParsedDocument(title, "html", sections)


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
