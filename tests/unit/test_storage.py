"""Stored answers' sources on the local disk: one copy per content, gone with the last element showing it."""

from __future__ import annotations

from pathlib import Path

from ui.storage import LocalStorage


async def test_files_are_stored_once_and_removed_with_their_last_element(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "sources", "/kb")
    pdf = b"%PDF-1.4 the same manual, cited by two answers"
    first = await storage.upload_file("user/e1/[1] manual.pdf p.3", pdf, "application/pdf")
    second = await storage.upload_file("user/e2/[2] manual.pdf p.9", pdf, "application/pdf")
    text = await storage.upload_file("user/e3/[1] notes.md", "a passage", "text/plain")
    assert first["url"].startswith("/kb/sources/") and first["url"] != second["url"]
    assert first["object_key"] == "user/e1/[1] manual.pdf p.3"
    assert len(list((tmp_path / "sources" / "blobs").iterdir())) == 2  # the PDF once, the passage once

    token = first["url"].rsplit("/", 1)[1]
    found = await storage.find(token)
    assert found is not None and found.path.read_bytes() == pdf and found.mime == "application/pdf"
    assert await storage.get_read_url("user/e1/[1] manual.pdf p.3") == first["url"]

    assert await storage.delete_file("user/e1/[1] manual.pdf p.3")
    assert await storage.find(token) is None
    other = await storage.find(second["url"].rsplit("/", 1)[1])
    assert other is not None and other.path.exists()  # still shown by the second answer
    assert await storage.delete_file("user/e2/[2] manual.pdf p.9")
    assert not other.path.exists()
    assert not await storage.delete_file("user/e2/[2] manual.pdf p.9")  # already gone
    assert (await storage.find(text["url"].rsplit("/", 1)[1])) is not None


async def test_only_well_formed_tokens_are_looked_up(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "sources")
    await storage.upload_file("k", b"x", "text/plain")
    for token in ("../../etc/passwd", "", "A" * 64, "0" * 63, "..%2F" + "0" * 60):
        assert await storage.find(token) is None


async def test_overwriting_an_element_releases_its_old_content(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "sources")
    await storage.upload_file("k", b"old", "text/plain")
    await storage.upload_file("k", b"new", "text/plain")
    blobs = list((tmp_path / "sources" / "blobs").iterdir())
    assert [b.read_bytes() for b in blobs] == [b"new"]
