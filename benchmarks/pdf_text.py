"""PDF text extraction: pypdf (before) vs pdfium through pypdfium2 (now), on the same files in one run.

    bash eval/make_mixed_corpus.sh /tmp/mixed      # man pages typeset by groff, as PDFs
    .venv/bin/python -m benchmarks.pdf_text /tmp/mixed/*.pdf [more.pdf ...]

Broken-word fragments: letters-only tokens of one or two letters that are not words of their own
("interacti ve s hell" has "ve" and "s"), per 1,000 tokens; fewer is better. Glued: lower-case runs of 18+
letters ("anyofthe..."), per 1,000 tokens. Both on the text after the loader's cleanup.
"""

from __future__ import annotations

import io
import re
import sys
import time
from pathlib import Path

from benchmarks.common import machine, table
from ingest.office import clean_pdf_text

SHORT_WORDS = {
    "a", "i", "an", "as", "at", "be", "by", "do", "go", "if", "in", "is", "it", "me", "my", "no", "of", "on", "or",
    "so", "to", "up", "us", "we", "id", "ok", "cd", "ls", "cp", "mv", "rm", "ln", "vi", "ps", "sh", "ed", "ex",
}  # fmt: skip


def rates(text: str) -> tuple[float, float]:
    tokens = re.findall(r"[A-Za-z]+", text)
    n = len(tokens) or 1
    fragments = sum(1 for t in tokens if len(t) <= 2 and t.lower() not in SHORT_WORDS)
    glued = sum(1 for t in tokens if len(t) >= 18 and t.islower())
    return fragments * 1000 / n, glued * 1000 / n


def with_pypdf(data: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


def with_pdfium(data: bytes) -> str:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(data)
    try:
        return "\n".join(document[i].get_textpage().get_text_range() for i in range(len(document)))
    finally:
        document.close()


def main(paths: list[str]) -> None:
    rows = []
    for path in map(Path, paths):
        data = path.read_bytes()
        row: list[object] = [path.name]
        for extract in (with_pypdf, with_pdfium):
            started = time.perf_counter()
            text = clean_pdf_text(extract(data))
            seconds = time.perf_counter() - started
            fragments, glued = rates(text)
            row += [f"{seconds:.2f}", f"{fragments:.1f}", f"{glued:.1f}"]
        rows.append(row)
    header = ["file", "pypdf s", "pypdf fragments/1k", "pypdf glued/1k", "pdfium s", "pdfium fragments/1k",
              "pdfium glued/1k"]  # fmt: skip
    print(f"Machine: {machine()}\n\n{table(header, rows)}")


if __name__ == "__main__":
    main(sys.argv[1:])
