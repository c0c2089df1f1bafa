"""PDF text extraction: pypdf, pdfium's own text, and pdfium with the spaces it drops put back (the loader
now, `ingest.office.page_text`), on the same files in one run.

    bash eval/make_mixed_corpus.sh /tmp/mixed      # man pages typeset by groff, as PDFs
    .venv/bin/python -m benchmarks.pdf_text /tmp/mixed/*.pdf [more.pdf ...]

Broken-word fragments: letters-only tokens of one or two letters that are not words of their own
("interacti ve s hell" has "ve" and "s"), per 1,000 tokens; fewer is better. Glued: a lower-case token that
is no word of the same text but splits into two that are ("twountrusted", "anyextraneous"), per 1,000
tokens; fewer is better. Both on the text after the loader's cleanup. (A possessive split off by the
apostrophe counts as a fragment: "sender's" is "sender" and "s".)
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


def is_glued(token: str, vocabulary: set[str]) -> bool:
    """Two words of the text run together: `token` is none of them, its two halves are."""
    return token not in vocabulary and any(
        token[:i] in vocabulary and token[i:] in vocabulary for i in range(2, len(token) - 1)
    )


def rates(text: str) -> tuple[float, float]:
    tokens = re.findall(r"[A-Za-z]+", text)
    n = len(tokens) or 1
    fragments = sum(1 for t in tokens if len(t) <= 2 and t.lower() not in SHORT_WORDS)
    counts: dict[str, int] = {}
    for t in tokens:
        if t.islower():
            counts[t] = counts.get(t, 0) + 1
    vocabulary = {t for t, c in counts.items() if c >= 2 and (len(t) > 2 or t in SHORT_WORDS)}
    glued = sum(c for t, c in counts.items() if len(t) >= 5 and c == 1 and is_glued(t, vocabulary))
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


def with_spaces(data: bytes) -> str:
    import pypdfium2 as pdfium

    from ingest.office import page_text

    document = pdfium.PdfDocument(data)
    try:
        return "\n".join(page_text(document[i].get_textpage()) for i in range(len(document)))
    finally:
        document.close()


def main(paths: list[str]) -> None:
    rows = []
    for path in map(Path, paths):
        data = path.read_bytes()
        row: list[object] = [path.name]
        for extract in (with_pypdf, with_pdfium, with_spaces):
            started = time.perf_counter()
            text = clean_pdf_text(extract(data))
            seconds = time.perf_counter() - started
            fragments, glued = rates(text)
            row += [f"{seconds:.2f}", f"{fragments:.1f}", f"{glued:.1f}"]
        rows.append(row)
    header = ["file"] + [f"{name} {what}" for name in ("pypdf", "pdfium", "pdfium+spaces")
                         for what in ("s", "fragments/1k", "glued/1k")]  # fmt: skip
    print(f"Machine: {machine()}\n\n{table(header, rows)}")


if __name__ == "__main__":
    main(sys.argv[1:])
