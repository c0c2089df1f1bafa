"""Large collections for the benchmarks: real text (the Python sources installed here), embedded once.

Chunks are short (about 120-240 characters) so that 100k of them can be embedded by the real local model
on 2 cores in about 15 minutes. They are written through the app's own write path and kept under
data/bench/, so later runs reuse them.

    .venv/bin/python -m benchmarks.corpus data/bench 100000
"""

from __future__ import annotations

import asyncio
import re
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

from langchain_core.documents import Document

from core.runtime import open_knowledge_base
from core.settings import Settings, load_settings

CHUNK_CHARS = 120


def chunks(limit: int) -> Iterator[tuple[str, int, str]]:
    """(source, position, text) of 120-240 characters each, in a fixed order."""
    n = 0
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    files = [(root, path) for root in dict.fromkeys(roots) for path in sorted(root.rglob("*.py"))]
    for stdlib, path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        buffer, position = "", 0
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            buffer = f"{buffer} {line}" if buffer else line
            if len(buffer) >= CHUNK_CHARS:
                yield str(path.relative_to(stdlib)), position, buffer[: CHUNK_CHARS * 2]
                position += 1
                n += 1
                buffer = ""
                if n >= limit:
                    return


def questions(count: int, seed_offset: int = 7) -> list[list[str]]:
    """`count` questions, each as 4 distinct search queries (the question and 3 rewrites)."""
    words: list[str] = []
    for _, _, text in chunks(4000):
        words += [w for w in re.findall(r"[a-z]{5,}", text.lower())]
    vocab = sorted(set(words))
    out = []
    for i in range(count):
        a, b, c = (vocab[(i * 7919 + j * 104729 + seed_offset) % len(vocab)] for j in range(3))
        out.append([f"How does {a} handle {b}?", f"{a} {b}", f"what is {a} used for with {c}", f"{b} {c} example"])
    return out


def bench_settings(data: Path, size: int) -> Settings:
    folder = data / f"kb-{size}"
    return load_settings(
        milvus_uri=str(folder / "kb.db"),
        database_url=f"sqlite:///{folder}/app.db",
        files_dir=str(folder / "files"),
        collection=f"bench_{size}",
    )


async def ensure_collection(data: Path, size: int, log: list[str]) -> Settings:
    """A collection of exactly `size` chunks (built once, in batches through the store's write path)."""
    settings = bench_settings(data, size)
    async with open_knowledge_base(settings) as kb:
        have = await kb.count()
        if have == size:
            return settings
        if have:
            await kb.delete("chunk >= 0")
        started, batch, written = time.perf_counter(), 2048, 0
        pending: list[Document] = []
        ids: list[str] = []
        for source, position, text in chunks(size):
            meta = {"source": source, "chunk": position, "scope": "team", "owner": "", "title": source}
            pending.append(Document(page_content=text, metadata=meta))
            ids.append(f"{source}#{position}")
            if len(pending) == batch:
                await kb.prepare(pending)
                async with kb.write_lock:
                    await kb.add(pending, ids)
                written += len(pending)
                pending, ids = [], []
        if pending:
            await kb.prepare(pending)
            async with kb.write_lock:
                await kb.add(pending, ids)
            written += len(pending)
        await kb.flush()
        log.append(f"built a {written:,}-chunk collection in {time.perf_counter() - started:.0f} s")
        assert await kb.count() == size, "the corpus is smaller than asked"
    return settings


if __name__ == "__main__":
    import json
    import sys

    notes: list[str] = []
    asyncio.run(ensure_collection(Path(sys.argv[1]), int(sys.argv[2]), notes))
    print(json.dumps(notes))
