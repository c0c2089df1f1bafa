"""A clean session's log stays quiet at the source (issue 15, item 7): no keepalive pings to Milvus Lite (its
gRPC server answers them with GOAWAY "too_many_pings"), no faiss loader chatter."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core.connection import NO_KEEPALIVE, connection_args
from core.runtime import quiet_libraries
from core.settings import load_settings


@pytest.mark.parametrize(
    "uri", ["kb.db", "http://127.0.0.1:19530", "http://localhost:19530", "tcp://127.0.0.2:19530", "http://[::1]:1"]
)
def test_milvus_lite_and_loopback_get_no_keepalive_pings(uri: str, tmp_path: Path) -> None:
    settings = load_settings(milvus_uri=str(tmp_path / uri) if uri.endswith(".db") else uri)
    assert connection_args(settings)["grpc_options"] == NO_KEEPALIVE == {"grpc.keepalive_time_ms": 2**31 - 1}


@pytest.mark.parametrize("uri", ["https://milvus.example.com:19530", "http://10.0.0.7:19530"])
def test_a_milvus_across_a_network_keeps_pymilvus_keepalive(uri: str) -> None:
    assert "grpc_options" not in connection_args(load_settings(milvus_uri=uri))


def test_faiss_loader_keeps_only_its_warnings() -> None:
    quiet_libraries()
    loader = logging.getLogger("faiss.loader")
    assert not loader.isEnabledFor(logging.INFO) and loader.isEnabledFor(logging.WARNING)
    assert not logging.getLogger("httpx2").isEnabledFor(logging.INFO)
    assert logging.getLogger("faiss").level == logging.NOTSET  # only the loader, not faiss as a whole
