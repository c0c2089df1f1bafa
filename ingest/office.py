"""Packaged document formats as titled sections: PDF (pdfium), Word and PowerPoint (zip packages)."""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from pathlib import Path

from core.errors import EmptyDocument, IngestError
from ingest.text import ParsedDocument, Section, markdown_sections

# PDF text as pdfium gives it: a hyphen it inserted at a line break (U+FFFE) joins the word again, CR LF
# line ends, typographic minus signs and dashes (groff writes every option as "−−name") and ligatures.
_PDF_SOFT_BREAK = re.compile(r"\ufffe\s*")
_PDF_DASHES = str.maketrans({"\u2212": "-", "\u2010": "-", "\u2011": "-", "\u00ad": ""})


def clean_pdf_text(text: str) -> str:
    """Extracted PDF text as words a reader (and a search) expects."""
    text = _PDF_SOFT_BREAK.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return unicodedata.normalize("NFKC", text).translate(_PDF_DASHES)


# A gap wider than this share of the font size between two glyphs of one line is a space the PDF never
# wrote. Ghostscript (ps2pdf of groff's man pages) spaces words by character spacing (`Tc`) or a move
# between text runs, which pdfium joins ("twountrusted", "givenTCP"). Measured on eight groff-made man pages:
# letters sit at most 0.08 em apart, such hidden spaces at least 0.17 em (a space is 0.25 em).
HIDDEN_SPACE_EM = 0.15
_SOFT_HYPHEN_CODES = (0x02, 0xFFFE)  # pdfium's marks for a hyphen it saw at a line break
# A glyph without a Unicode mapping comes back as its code. LaTeX's T1 fonts as bitmaps (no cm-super
# installed) keep their ligatures there: "E\x1eciency" is "Efficiency". Other control codes are dropped.
_CORK_LIGATURES = {0x1B: "ff", 0x1C: "fi", 0x1D: "fl", 0x1E: "ffi", 0x1F: "ffl"}
_LINE_CODES = (0x09, 0x0A, 0x0D)


def page_text(textpage: object) -> str:
    """A page's text in reading order, as pdfium gives it, with the spaces the PDF left out put back."""
    import pypdfium2.raw as pdfium_c

    handle = textpage.raw  # type: ignore[attr-defined]
    box = pdfium_c.FS_RECTF()
    out: list[str] = []
    previous: tuple[float, float, float] | None = None  # the last glyph's right edge, bottom and top
    for index in range(pdfium_c.FPDFText_CountChars(handle)):
        code = pdfium_c.FPDFText_GetUnicode(handle, index)
        if code in _SOFT_HYPHEN_CODES:
            out.append("\ufffe")
            previous = None
            continue
        control = code < 0x20 and code not in _LINE_CODES
        char = _CORK_LIGATURES.get(code, "") if control else chr(code)
        if not char or char.isspace():
            out.append(char)
            previous = None
            continue
        pdfium_c.FPDFText_GetLooseCharBox(handle, index, box)
        if previous is not None:
            size = pdfium_c.FPDFText_GetFontSize(handle, index) or (box.top - box.bottom)
            same_line = box.bottom < previous[2] and box.top > previous[1]
            if same_line and box.left - previous[0] > HIDDEN_SPACE_EM * size:
                out.append(" ")
        out.append(char)
        previous = (box.right, box.bottom, box.top)
    return "".join(out)


def load_pdf(data: bytes, name: str) -> ParsedDocument:
    """PDF text through pdfium (pypdfium2): on groff-made PDFs it broke half as many words as pypdf and read
    them 5-20x faster (benchmarks/pdf_text.py, BENCHMARKS.md part 7); `page_text` puts back the spaces
    pdfium's own text drops."""
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
            text = clean_pdf_text(page_text(textpage)).strip()
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
