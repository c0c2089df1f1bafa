"""The default local model on ONNX Runtime gives the reference model's vectors (cosine >= 0.999)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.models import local_model_path, make_embeddings
from core.onnx_embeddings import OnnxEmbeddings
from core.settings import load_settings

TEXTS = [
    "hello",
    "Who handles warranty claims for the turbine?",
    "Wer ist für Garantieansprüche zuständig? Ça dépend du contrat — 保修由服务团队处理。",
    "| Region | Owner |\n|---|---|\n| EMEA | Dana |",
    "word " * 700,  # longer than the model's 256 tokens: both truncate the same way
    "",
    "Rule 7 of site 3: visitors sign in at gate 28 before 15:00.",
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    torch_model = make_embeddings(load_settings(), backend="torch")
    return np.array(torch_model.embed_documents(TEXTS))


def test_onnx_vectors_match_the_pytorch_reference(reference: np.ndarray) -> None:
    model = make_embeddings(load_settings())
    assert isinstance(model, OnnxEmbeddings)
    ours = np.array(model.embed_documents(TEXTS))
    assert ours.shape == reference.shape
    assert (ours * reference).sum(axis=1).min() >= 0.999
    # A query alone gives the vector it gets inside a batch (padding does not leak in).
    single = np.array(model.embed_query(TEXTS[1]))
    assert float(single @ ours[1]) >= 0.99999


async def test_async_calls_give_the_same_vectors() -> None:
    model = make_embeddings(load_settings())
    assert await model.aembed_documents(TEXTS[:3]) == model.embed_documents(TEXTS[:3])
    assert np.allclose(await model.aembed_query(TEXTS[0]), model.embed_query(TEXTS[0]), atol=1e-6)


def test_the_export_is_cached_and_a_damaged_cache_is_rebuilt(tmp_path: Path, reference: np.ndarray) -> None:
    folder = local_model_path("all-MiniLM-L6-v2")
    first = OnnxEmbeddings(folder, tmp_path)
    stamp = first.path.stat().st_mtime_ns
    again = OnnxEmbeddings(folder, tmp_path)
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp  # loaded, not exported
    first.path.write_bytes(b"not a model")  # e.g. a disk that filled up mid-write
    repaired = OnnxEmbeddings(folder, tmp_path)
    assert (np.array(repaired.embed_documents(TEXTS)) * reference).sum(axis=1).min() >= 0.999
    assert [p.name for p in tmp_path.iterdir()] == [first.path.name]  # no temp files left behind
