"""A pool of parsing worker processes with a time limit and a memory limit per file."""

from __future__ import annotations

import atexit
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from core.errors import IngestError
from ingest.worker import HEADER

ROOT = Path(__file__).resolve().parents[1]


class _Worker:
    def __init__(self, memory_mb: int) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ingest.worker", str(memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
        )

    def send(self, header: bytes, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(HEADER.pack(len(header)) + header)
        self.proc.stdin.write(HEADER.pack(len(data)))
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def receive(self, deadline: float) -> bytes:
        """One reply frame; TimeoutError past the deadline, EOFError if the worker died."""
        head = self._read(HEADER.size, deadline)
        (size,) = HEADER.unpack(head)
        return self._read(size, deadline)

    def _read(self, n: int, deadline: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        chunks, left = [], n
        while left:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


class ParserPool:
    """Runs `ingest.worker` jobs in at most `size` processes, started on demand and reused.

    Blocking by design: call `run` through `asyncio.to_thread`. A job past `timeout_s`, or one that kills
    its worker, fails with a plain reason; the worker is replaced and the other jobs carry on.
    """

    def __init__(self, size: int, timeout_s: float, memory_mb: int) -> None:
        self.size, self.timeout_s, self.memory_mb = size, timeout_s, memory_mb
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._lock = threading.Lock()
        self._started = 0
        self._all: set[_Worker] = set()

    def _take(self) -> _Worker:
        while True:
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                pass
            with self._lock:
                if self._started < self.size:
                    self._started += 1
                    worker = _Worker(self.memory_mb)
                    self._all.add(worker)
                    return worker
            try:  # all busy: wait for one (a retired worker frees a slot, hence the timeout)
                return self._idle.get(timeout=0.2)
            except queue.Empty:
                continue

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._started -= 1
            self._all.discard(worker)

    def run(self, request: dict[str, Any], data: bytes) -> dict[str, Any]:
        worker = self._take()
        try:
            worker.send(json.dumps(request).encode(), data)
            reply = worker.receive(time.monotonic() + self.timeout_s)
        except TimeoutError:
            self._retire(worker)
            raise IngestError(f"reading the file took longer than {self.timeout_s:g} s; it was stopped") from None
        except (EOFError, BrokenPipeError, OSError):
            self._retire(worker)
            raise IngestError("the file crashed the reader (it may be damaged or built to exhaust memory)") from None
        except BaseException:
            self._retire(worker)  # the caller went away mid-job: the worker's state is unknown
            raise
        self._idle.put(worker)
        result: dict[str, Any] = json.loads(reply)
        return result

    def close(self) -> None:
        with self._lock:
            workers, self._all = list(self._all), set()
            self._started = 0
        for worker in workers:
            worker.kill()


_pools: dict[tuple[int, float, int], ParserPool] = {}
_pools_lock = threading.Lock()


def shared_pool(size: int, timeout_s: float, memory_mb: int) -> ParserPool:
    """One pool per configuration for the whole process (ingestors come and go, workers stay)."""
    key = (size, timeout_s, memory_mb)
    with _pools_lock:
        if key not in _pools:
            _pools[key] = ParserPool(size, timeout_s, memory_mb)
        return _pools[key]


@atexit.register
def _close_pools() -> None:
    for pool in list(_pools.values()):
        pool.close()
