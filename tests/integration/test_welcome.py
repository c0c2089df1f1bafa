"""A new conversation's welcome: read from Milvus once, and again as soon as the documents change."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from core.access import TEAM_ONLY
from core.filters import field_eq
from core.store import KnowledgeBase
from ingest import FileInput, Ingestor
from ui import start_chat
from ui.resources import Resources


async def test_the_welcome_is_kept_until_the_documents_change(
    filled: KnowledgeBase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = cast(Resources, SimpleNamespace(kb=filled))
    reads: list[Any] = []
    summary = filled.summary

    async def counted(expr: str | None = None) -> tuple[int, int]:
        reads.append(expr)
        return await summary(expr)

    monkeypatch.setattr(filled, "summary", counted)
    first = await start_chat.welcome_content(res, TEAM_ONLY)
    again = await start_chat.welcome_content(res, TEAM_ONLY)
    assert again is first and len(reads) == 1 and first.documents > 0 and first.questions

    note = tmp_path / "late-note.md"
    note.write_text("# Late note\n\nThe turbine room closes at nine in the evening on Fridays.\n")
    [result] = await Ingestor(filled).ingest([FileInput(note, note.name)])
    assert result.status == "indexed"
    added = await start_chat.welcome_content(res, TEAM_ONLY)
    assert added.documents == first.documents + 1 and added.chunks > first.chunks  # read again at once

    await filled.delete(field_eq("source", note.name))
    assert (await start_chat.welcome_content(res, TEAM_ONLY)).documents == first.documents

    monkeypatch.setattr(start_chat, "WELCOME_TTL_S", 0.0)  # another replica's writes: shown after the TTL
    before = len(reads)
    await start_chat.welcome_content(res, TEAM_ONLY)
    assert len(reads) == before + 1
