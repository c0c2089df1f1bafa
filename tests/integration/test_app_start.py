"""The README's run command: the real Chainlit server starts on embedded defaults, or refuses plainly."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

import httpx

from tests.servers import app_env, chainlit_server, free_port, start_app


def test_app_serves_on_embedded_defaults_with_restrictive_cors(tmp_path: Path) -> None:
    with chainlit_server(tmp_path) as url:
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200
            assert "<html" in resp.read().decode().lower()
        assert (tmp_path / "kb.db").exists()  # the knowledge base was opened at start-up
        # A clean start logs no traceback (Milvus Lite's server used to log one for pymilvus's probe).
        assert "Traceback" not in (tmp_path / "server.log").read_text()
        # The shipped config allows only the local origin: another site's page cannot call the API.
        with httpx.Client(base_url=url) as web:
            evil = web.get("/project/settings", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in evil.headers
            local = web.get("/project/settings", headers={"Origin": "http://localhost:8000"})
            assert local.headers.get("access-control-allow-origin") == "http://localhost:8000"


def test_app_refuses_invalid_settings_with_a_plain_message(tmp_path: Path) -> None:
    env = app_env(tmp_path, RAG_CHUNK_SIZE="200", RAG_CHUNK_OVERLAP="300")
    proc = start_app(free_port(), env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "Cannot start: Invalid settings: RAG_CHUNK_OVERLAP" in out
    assert "Traceback" not in out
