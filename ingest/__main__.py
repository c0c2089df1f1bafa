"""CLI: python -m ingest PATH [PATH ...] [--scope team|private --owner USER] [--collection NAME] [--json]."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import signal
import sys
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.access import Scope
from core.cli import run_plainly
from core.runtime import open_knowledge_base
from core.settings import load_settings
from ingest.files import FileResult, collect_files
from ingest.pipeline import Ingestor
from ingest.recovery import Recovery


async def run(paths: list[Path], collection: str | None, as_json: bool, scope: Scope, owner: str) -> int:
    settings = load_settings(**({"collection": collection} if collection else {}))
    files = [replace(f, scope=scope, owner=owner) for f in collect_files(paths)]
    if not files:
        print("No files found.", file=sys.stderr)
        return 1
    from tqdm import tqdm

    bar = tqdm(total=len(files), unit="file", file=sys.stderr, disable=None)

    def progress(result: FileResult) -> None:
        bar.update(1)
        bar.set_postfix_str(result.source[-40:])
        if not as_json:  # as it happens: a line saying "indexed" means the file is safely stored
            bar.write(result.describe(), file=sys.stdout)
            sys.stdout.flush()

    async with open_knowledge_base(settings) as kb:
        ingestor = Ingestor(kb)
        for recovered in await Recovery(ingestor).recover():
            if not as_json:
                print(f"after an interruption: {recovered.describe()}", flush=True)
        results = await ingestor.ingest(files, on_result=progress)
        total = await kb.count()
    bar.close()
    if as_json:
        print(
            json.dumps(
                {"collection": settings.collection, "files": [r.to_dict() for r in results], "total_chunks": total}
            )
        )
    else:
        counts = {s: sum(r.status == s for r in results) for s in ("indexed", "unchanged", "failed")}
        print(
            f"\n{counts['indexed']} indexed, {counts['unchanged']} unchanged, {counts['failed']} failed; "
            f"{total} chunks in collection '{settings.collection}'."
        )
    return 0 if all(r.status != "failed" for r in results) else 2


STOP_GRACE_S = 60.0
"""After SIGTERM or Ctrl-C the process exits within this long. Past it, every thread's stack is printed to
stderr and the process exits anyway: what is stored stays stored (the next start settles a cut write), and a
stop that hung says where."""


async def graceful(work: Coroutine[Any, Any, int]) -> int:
    """Run `work`; SIGTERM or Ctrl-C cancel it, so the knowledge base is flushed and closed on the way out."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()

    def stop() -> None:
        # The way out also joins threads we do not own (Milvus Lite's background tasks, gRPC) at interpreter
        # exit. faulthandler's watchdog is a C thread: it fires even if a stuck native call holds the GIL.
        faulthandler.dump_traceback_later(STOP_GRACE_S, exit=True, file=sys.__stderr__ or sys.stderr)
        task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    try:
        return await task
    except asyncio.CancelledError:
        print("Stopped; everything reported indexed above is stored.", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ingest", description="Index files and folders into the knowledge base."
    )
    parser.add_argument("paths", nargs="+", type=Path, help="files or folders (folders are read recursively)")
    parser.add_argument("--collection", help="Milvus collection (default: RAG_COLLECTION)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with a 'files' list")
    parser.add_argument("--scope", choices=["team", "private"], default="team", help="who may see them (default: team)")
    parser.add_argument("--owner", default="", help="the user they belong to (required with --scope private)")
    args = parser.parse_args(argv)
    if args.scope == "private" and not args.owner:
        parser.error("--scope private needs --owner USER")
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"Not found: {', '.join(missing)}", file=sys.stderr)
        return 1
    return run_plainly(lambda: graceful(run(args.paths, args.collection, args.json, args.scope, args.owner)))


if __name__ == "__main__":
    sys.exit(main())
