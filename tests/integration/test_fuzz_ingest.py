"""Fuzz the ingest entry point (bytes + a name -> chunks or a plain reason) with hypothesis, time-boxed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import IngestError
from ingest.loaders import SUPPORTED
from ingest.sandbox import ParserPool
from tests.fixtures.documents import make_good_set

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "600"))
SPEC = {"chunk_size": 400, "chunk_overlap": 40, "max_chunks": 2000}


@pytest.fixture(scope="module")
def pool() -> Iterator[ParserPool]:
    parsers = ParserPool(size=2, timeout_s=20, memory_mb=1024)
    yield parsers
    parsers.close()


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, bytes]]:
    """Valid files of every format, to be mutated."""
    good = make_good_set(tmp_path_factory.mktemp("seeds"))
    return [(p.suffix, p.read_bytes()) for p in good.values()]


def mutate(data: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for position, value in flips:
        if out:
            out[position % len(out)] = value
    return bytes(out[:cut] if cut is not None else out)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pick=st.integers(min_value=0),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=30),
    cut=st.none() | st.integers(min_value=0, max_value=50_000),
    random_bytes=st.none() | st.binary(max_size=4096),
    ext=st.sampled_from(SUPPORTED),
    stem=st.text(min_size=1, max_size=30).filter(lambda s: "/" not in s and "\0" not in s),
)
def test_any_bytes_under_any_name_give_chunks_or_a_plain_reason(
    pool: ParserPool,
    seeds: list[tuple[str, bytes]],
    pick: int,
    flips: list[tuple[int, int]],
    cut: int | None,
    random_bytes: bytes | None,
    ext: str,
    stem: str,
) -> None:
    suffix, seed = seeds[pick % len(seeds)]
    data = random_bytes if random_bytes is not None else mutate(seed, flips, cut)
    name = stem + (suffix if random_bytes is None and pick % 2 else ext)
    request = {"source": name, "scope": "team", "owner": "", "doc_hash": "fuzz", "spec": SPEC}
    try:
        reply = pool.run(request, data)
    except IngestError as exc:  # the worker was stopped (time) or died (memory): also a plain reason
        reply = {"ok": False, "reason": str(exc)}
    if reply["ok"]:
        assert reply["chunks"] and all(text.strip() and meta["source"] == name for text, meta in reply["chunks"])
    else:
        reason = reply["reason"]
        assert isinstance(reason, str) and 0 < len(reason) < 300 and "Traceback" not in reason


def test_the_fuzz_seeds_are_valid(pool: ParserPool, seeds: list[tuple[str, bytes]], tmp_path: Path) -> None:
    """Without mutation every seed parses, so the mutations start from real documents."""
    for suffix, data in seeds:
        request = {"source": "seed" + suffix, "scope": "team", "owner": "", "doc_hash": "s", "spec": SPEC}
        assert pool.run(request, data)["ok"], suffix
