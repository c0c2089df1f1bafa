"""The README's run command: the real Chainlit server starts on embedded defaults, or refuses plainly."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

from tests.servers import app_env, chainlit_server, free_port, start_app


def test_app_serves_on_embedded_defaults(tmp_path: Path) -> None:
    with chainlit_server(tmp_path) as url, urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert "<html" in resp.read().decode().lower()
        assert (tmp_path / "kb.db").exists()  # the knowledge base was opened at start-up


def test_app_refuses_invalid_settings_with_a_plain_message(tmp_path: Path) -> None:
    env = app_env(tmp_path, RAG_CHUNK_SIZE="200", RAG_CHUNK_OVERLAP="300")
    proc = start_app(free_port(), env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "Cannot start: Invalid settings: RAG_CHUNK_OVERLAP" in out
    assert "Traceback" not in out
