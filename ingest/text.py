"""Text formats as titled sections (with page and headings): plain text, Markdown, CSV rows and HTML;
and the types every loader returns (`ingest.office` reads PDF, Word and PowerPoint files)."""

from __future__ import annotations

import csv
import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import EmptyDocument, IngestError

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
