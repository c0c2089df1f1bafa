"""What goes into an ingest and what comes out: a file and the name it is known by, its per-file result,
and the keys that identify a document, its chunks and its kept original."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from core.access import Scope
from core.settings import Settings


@dataclass
class FileResult:
    """What happened to one file."""

    source: str
    status: Literal["indexed", "unchanged", "failed"]
    chunks: int = 0
    reason: str = ""
    seconds: float = 0.0
    doc_hash: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def describe(self) -> str:
        """One line for people."""
        if self.status == "indexed":
            return f"{self.source}: indexed ({self.chunks} chunks)" + (f"; {self.reason}" if self.reason else "")
        if self.status == "unchanged":
            return f"{self.source}: unchanged ({self.chunks} chunks already indexed)"
        return f"{self.source}: failed: {self.reason}"


@dataclass(frozen=True)
class FileInput:
    """A file to ingest, the name it is known by (`source`), who may see it and who added it."""

    path: Path
    source: str
    scope: Scope = "team"
    owner: str = ""


ProgressCallback = Callable[[FileResult], Awaitable[None] | None]


def document_key(source: str, scope: str, owner: str) -> str:
    """What identifies a document: a team document by its name, a private one by name and owner.

    JSON, so the parts cannot run into each other and no NUL byte reaches PostgreSQL.
    """
    return json.dumps(["team", source] if scope == "team" else ["private", owner, source], ensure_ascii=False)


def chunk_id(item: FileInput, version: str, index: int) -> str:
    """Deterministic id: the same file under the same name and settings always gives the same ids."""
    key = document_key(item.source, item.scope, item.owner)
    return hashlib.sha256(f"{key}\0{version}\0{index}".encode()).hexdigest()[:32]


def kept_file(settings: Settings, doc_hash: str) -> Path:
    """Where the original of an indexed file is kept, by the hash of its content."""
    return Path(settings.files_dir) / doc_hash


def collect_files(paths: list[Path]) -> list[FileInput]:
    """Expand files and folders (recursively); a folder's files are named relative to it."""
    items: list[FileInput] = []
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                rel = file.relative_to(path)
                if any(part.startswith(".") for part in rel.parts):
                    continue
                items.append(FileInput(file, rel.as_posix()))
        else:
            items.append(FileInput(path, path.name))
    return items
