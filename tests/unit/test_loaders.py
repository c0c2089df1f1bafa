"""Parsing real generated files of every format (no database needed)."""

from pathlib import Path

import pytest

from core.errors import EmptyDocument, IngestError, UnsupportedFileType
from ingest.loaders import parse
from ingest.text import decode_text, markdown_sections
from tests.fixtures.documents import FACTS, make_bad_set, make_good_set


@pytest.fixture
def good(tmp_path: Path) -> dict[str, Path]:
    return make_good_set(tmp_path / "good")


def _parse(path: Path):
    return parse(path.read_bytes(), path.name)


def test_pdf_keeps_pages_and_title(good) -> None:
    doc = _parse(good["pdf"])
    assert doc.title == "Zephyr Turbine Service Manual"
    assert [s.page for s in doc.sections] == [1, 2, 3]
    assert "1200 operating hours" in doc.sections[1].text


def test_pdf_words_spaced_by_position_not_by_a_space_character_stay_apart(tmp_path: Path) -> None:
    # Ghostscript (ps2pdf of groff's man pages) spaces some words by character spacing (`Tc`) or a move
    # between text runs, with no space character: pdfium's own text runs them together ("twountrusted").
    from reportlab.pdfgen import canvas

    path = tmp_path / "groff-like.pdf"
    pdf = canvas.Canvas(str(path))
    pdf.setFont("Times-Roman", 10)
    pdf.drawString(72, 720, "SSH(1)")
    pdf._code.append(
        "BT /F1 10 Tf 72 700 Td (between tw)Tj 2.574 Tc 45 0 Td (ou)Tj 0 Tc 12.57 0 Td (ntrusted hosts)Tj "
        "0 -12 Td (connections to the given)Tj 92 0 Td (TCP port; rec)Tj ET"
    )
    pdf.save()
    text = _parse(path).sections[0].text
    assert "between two untrusted hosts" in text
    assert "the given TCP port" in text
    assert "SSH(1)" in text and "tw o" not in text  # letters of one word stay together


def test_pdf_ligatures_without_a_unicode_mapping_are_spelled_out(tmp_path: Path) -> None:
    # LaTeX's T1 fonts as bitmaps keep ff/fi/fl/ffi/ffl at codes 0x1b-0x1f with no Unicode mapping.
    from reportlab.pdfgen import canvas

    path = tmp_path / "latex-like.pdf"
    pdf = canvas.Canvas(str(path))
    pdf.setFont("Courier", 10)
    pdf._code.append("BT /F1 10 Tf 72 700 Td (E\\036ciency of the con\\034guration work\\035ow) Tj ET")
    pdf.save()
    assert "Efficiency of the configuration workflow" in _parse(path).sections[0].text


def test_docx_headings_and_tables(good) -> None:
    doc = _parse(good["docx"])
    assert doc.title == "Remote Work Policy"
    section = next(s for s in doc.sections if "three days" in s.text)
    assert section.headings[-1] == "Eligibility"
    assert any("400 EUR per year" in s.text for s in doc.sections)


def test_pptx_slides_are_pages(good) -> None:
    doc = _parse(good["pptx"])
    roadmap = next(s for s in doc.sections if "Falcon" in s.text)
    assert roadmap.page == 2 and roadmap.headings == ["Q3 Roadmap"]


def test_html_drops_scripts_and_keeps_headings(good) -> None:
    doc = _parse(good["html"])
    assert doc.title == "IT Help Centre"
    text = " ".join(s.text for s in doc.sections)
    assert "Helix portal" in text and "secret" not in text and "Home | About" not in text
    vpn = next(s for s in doc.sections if "Helix" in s.text)
    assert vpn.headings == ["IT Help Centre", "VPN access"]


def test_markdown_headings_in_metadata(good) -> None:
    doc = _parse(good["md"])
    frozen = next(s for s in doc.sections if "frozen" in s.text)
    assert frozen.headings == ["Release Process", "Deployment windows"]


def test_markdown_fences_are_not_headings() -> None:
    sections = markdown_sections("# A\n```\n# not a heading\n```\ntext")
    assert len(sections) == 1 and sections[0].headings == ["A"]


def test_text_and_csv(good) -> None:
    assert FACTS["txt"] in _parse(good["txt"]).sections[0].text
    rows = _parse(good["csv"]).sections[0].text
    assert "name: Marta Kowalski; role: Head of Security" in rows


def test_decode_text_handles_legacy_encodings() -> None:
    assert decode_text("Café déjà vu".encode("latin-1")) == "Café déjà vu"
    assert decode_text("naïve ✓".encode("utf-16")) == "naïve ✓"
    with pytest.raises(IngestError):
        decode_text(bytes(range(256)))


@pytest.mark.parametrize(
    ("key", "error", "phrase"),
    [
        ("empty", EmptyDocument, "empty"),
        ("corrupt_pdf", IngestError, "damaged"),
        ("unsupported", UnsupportedFileType, "unsupported file type"),
        ("binary_txt", IngestError, "binary"),
        ("fake_docx", IngestError, "not a valid DOCX"),
        ("scanned_pdf", EmptyDocument, "no text layer"),
        ("encrypted_pdf", IngestError, "password"),
        ("zip_docx", IngestError, "damaged"),
    ],
)
def test_bad_files_get_plain_reasons(tmp_path: Path, key: str, error: type, phrase: str) -> None:
    path = make_bad_set(tmp_path / "bad")[key]
    with pytest.raises(error) as exc:
        _parse(path)
    assert phrase in str(exc.value)
