"""The README's run command: the real Chainlit server starts on embedded defaults, or refuses plainly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_")) and k != "CI"}
    return env | {"RAG_MILVUS_URI": str(tmp_path / "app.db")} | extra


def _chainlit(port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "chainlit", "run", "app.py", "--headless", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_app_serves_on_embedded_defaults(tmp_path: Path) -> None:
    port = _free_port()
    proc = _chainlit(port, _env(tmp_path))
    try:
        deadline = time.time() + 120
        status = None
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    status = resp.status
                    page = resp.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert status == 200, proc.stdout.read() if proc.poll() is not None and proc.stdout else "no answer"
        assert "<html" in page.lower()
        assert (tmp_path / "app.db").exists()  # the knowledge base was opened at start-up
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_app_refuses_invalid_settings_with_a_plain_message(tmp_path: Path) -> None:
    proc = _chainlit(_free_port(), _env(tmp_path, RAG_CHUNK_SIZE="200", RAG_CHUNK_OVERLAP="300"))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "Cannot start: Invalid settings: RAG_CHUNK_OVERLAP" in out
    assert "Traceback" not in out
