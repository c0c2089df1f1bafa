"""The data folder is its user's alone: folders 0700 and files 0600, whatever the umask of whoever starts us."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import ROOT, app_env, chainlit_process

SECRET = "a-test-secret-that-is-long-enough-for-chainlit-0123456789"


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The common default (0022) for this process and the servers and commands it starts."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def data_env(data: Path) -> dict[str, str]:
    """The app's own data in a folder of its own (the test's logs and app root stay beside it)."""
    return {
        "RAG_MILVUS_URI": str(data / "kb.db"),
        "RAG_FILES_DIR": str(data / "files"),
        "RAG_DATABASE_URL": f"sqlite:///{data / 'app.db'}",
    }


def not_private(data: Path) -> list[str]:
    """Every folder (the data folder too) and file under `data` that others could read or enter."""
    wrong = []
    for folder, _, files in os.walk(data):
        for path in [Path(folder), *(Path(folder) / name for name in files)]:
            try:
                info = path.lstat()
            except FileNotFoundError:  # removed while we looked (the app is running)
                continue
            want = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
            if not stat.S_ISLNK(info.st_mode) and stat.S_IMODE(info.st_mode) != want:
                wrong.append(f"{path.relative_to(data.parent)} {oct(stat.S_IMODE(info.st_mode))}")
    return wrong


def loosen(data: Path) -> None:
    """What a deployment from before looks like: 0755 folders and 0644 files."""
    for folder, _, files in os.walk(data):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(Path(folder) / name, 0o644)


def run_cli(tmp_path: Path, data: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = app_env(tmp_path, **data_env(data), CHAINLIT_AUTH_SECRET=SECRET)
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_the_app_and_the_user_command_create_private_data(tmp_path: Path, loose_umask: None) -> None:
    data = tmp_path / "data"
    with chainlit_process(tmp_path, **data_env(data)):
        assert (data / "kb.db").exists() and (data / "app.db").exists()  # opened at start-up
        assert not_private(data) == []
    assert not_private(data) == []  # after a clean stop too

    run_cli(tmp_path, data, "core", "users", "add", "alice", "--password-stdin", stdin="correct horse\n")
    assert stat.S_IMODE((data / "app.db").stat().st_mode) == 0o600
    assert not_private(data) == []


def test_ingest_keeps_data_private_and_a_loose_deployment_is_tightened_at_start(
    tmp_path: Path, loose_umask: None
) -> None:
    data = tmp_path / "data"
    doc = tmp_path / "docs" / "notes.md"
    doc.parent.mkdir()
    doc.write_text("# Deploying\n\nThe release train leaves every Tuesday at noon.\n")

    run_cli(tmp_path, data, "core", "users", "add", "alice", "--password-stdin", stdin="correct horse\n")
    run_cli(tmp_path, data, "ingest", str(doc))
    assert any((data / "files").iterdir()) and any((data / "kb.db").iterdir())
    assert not_private(data) == []

    loosen(data)  # as an older version (or a hand-made copy) left it
    assert not_private(data) != []
    with chainlit_process(tmp_path, **data_env(data), CHAINLIT_AUTH_SECRET=SECRET):
        assert not_private(data) == []


def test_only_the_apps_own_paths_are_touched(tmp_path: Path) -> None:
    from core.privacy import data_paths, keep_private
    from core.settings import load_settings

    shared = tmp_path / "shared"  # a folder that holds other things besides the database: left as it is
    outside = tmp_path / "elsewhere.txt"
    for folder in (shared, shared / "kb.db", shared / "files"):
        folder.mkdir()
    for path in (shared / "app.db", shared / "app.db-wal", shared / "kb.db" / "seg", shared / "notes.txt", outside):
        path.write_text("x")
    (shared / "files" / "link").symlink_to(outside)  # never followed
    loosen(shared)
    os.chmod(outside, 0o644)
    settings = load_settings(
        milvus_uri=str(shared / "kb.db"), files_dir=str(shared / "files"), database_url=f"sqlite:///{shared}/app.db"
    )
    before = os.umask(0o022)
    try:
        keep_private(data_paths(settings))
        assert os.umask(0o022) == 0o077  # what the process creates from now on is private
    finally:
        os.umask(before)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in shared.rglob("*") if not p.is_symlink()}
    ours = {"kb.db": 0o700, "files": 0o700, "seg": 0o600, "app.db": 0o600, "app.db-wal": 0o600}
    assert modes == ours | {"notes.txt": 0o644}  # ours tightened, the stranger beside them left as it was
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755  # it holds notes.txt: not the app's folder
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644
