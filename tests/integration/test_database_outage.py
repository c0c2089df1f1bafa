"""The database goes away and comes back: plain messages meanwhile, recovery without a restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from langchain_core.embeddings import Embeddings

from chains import RagChain
from core.errors import StoreUnavailable
from core.filters import field_eq
from core.runtime import open_knowledge_base
from core.settings import load_settings
from ingest import FileInput, Ingestor
from tests.fixtures.documents import make_good_set
from tests.servers import milvus_lite_server


async def test_an_outage_is_reported_plainly_and_healed_without_a_restart(
    tmp_path: Path, embeddings: Embeddings
) -> None:
    good = make_good_set(tmp_path / "docs")
    with milvus_lite_server(tmp_path / "milvus") as server:
        settings = load_settings(milvus_uri=server.uri, collection="outage", chunk_size=400, chunk_overlap=40)
        async with open_knowledge_base(settings, embeddings) as kb:
            ingestor, chain = Ingestor(kb), RagChain(kb, None, settings)
            [first] = await ingestor.ingest([FileInput(good["pdf"], "turbine-manual.pdf")])
            assert first.status == "indexed"

            server.stop()
            with pytest.raises(StoreUnavailable) as err:
                await chain.ainvoke("Who handles warranty claims for the turbine?")
            message = str(err.value)
            assert "not reachable right now" in message and server.uri in message and "Traceback" not in message
            [during] = await ingestor.ingest([FileInput(good["md"], "release.md")])
            assert during.status == "failed" and "not reachable right now" in during.reason

            server.start()  # the same app objects, no restart: the next questions heal the connection
            started, answers = time.monotonic(), 0
            while time.monotonic() - started < 60:
                try:
                    result = await chain.ainvoke("Who handles warranty claims for the turbine?")
                    answers += 1
                    break
                except StoreUnavailable as exc:  # while the client reconnects: still a plain message
                    assert "not reachable right now" in str(exc)
            assert answers == 1 and "Orion support desk" in result.answer
            print(f"\nanswering again {time.monotonic() - started:.1f} s after the database came back")
            [after] = await ingestor.ingest([FileInput(good["md"], "release.md")])
            assert after.status == "indexed"
            assert await kb.count(field_eq("source", "release.md")) == after.chunks
            assert await ingestor.registry.entries("pending") == []
