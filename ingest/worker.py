"""A parsing worker process: file bytes in, chunks out, as length-prefixed JSON frames on stdin/stdout.

Parsers run here, never in the app: a file that hangs a parser, exhausts memory or crashes it costs one
worker, which the pool kills or replaces. Replies are JSON (not pickle), so even a compromised parser
cannot make the app run code.
"""

from __future__ import annotations

import json
import resource
import struct
import sys
from typing import Any, BinaryIO

from core.errors import IngestError
from ingest.chunks import ChunkSpec, Owner, split
from ingest.loaders import parse

HEADER = struct.Struct(">Q")


def read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return data


def write_frame(stream: BinaryIO, payload: bytes) -> None:
    stream.write(HEADER.pack(len(payload)) + payload)
    stream.flush()


def handle(request: dict[str, Any], data: bytes) -> dict[str, Any]:
    """Parse and split one file; failures become a plain reason."""
    try:
        doc = parse(data, request["source"])
        spec = ChunkSpec(**request["spec"])
        owner = Owner(request["source"], request["scope"], request["owner"])
        chunks = split(doc, owner, request["doc_hash"], spec)
        return {"ok": True, "chunks": [[c.page_content, c.metadata] for c in chunks]}
    except IngestError as exc:
        return {"ok": False, "reason": str(exc)}
    except RecursionError:
        return {"ok": False, "reason": "the file is nested too deeply to read"}
    except MemoryError:
        return {"ok": False, "reason": "reading the file needs more memory than one file may use"}
    except Exception as exc:  # a parser bug on a strange file: that file fails, plainly
        return {"ok": False, "reason": f"the file could not be read ({type(exc).__name__})"}


def main() -> None:
    memory_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    if memory_mb:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.setrecursionlimit(5000)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a chatty library must not corrupt the frames
    while True:
        header = read_frame(stdin)
        data = read_frame(stdin) if header is not None else None
        if header is None or data is None:
            return  # the app closed the pipe: exit
        reply = handle(json.loads(header), data)
        try:
            payload = json.dumps(reply, ensure_ascii=False).encode()
        except (TypeError, ValueError):
            payload = json.dumps({"ok": False, "reason": "the file's text could not be passed on"}).encode()
        write_frame(stdout, payload)


if __name__ == "__main__":
    main()
