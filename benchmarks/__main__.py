"""Run every benchmark side by side and write BENCHMARKS.md.

    .venv/bin/python -m benchmarks            # everything (about 20 minutes on 2 cores; first run longer)
    .venv/bin/python -m benchmarks --quick    # smaller sizes, to check the suite itself

Large collections are built once under data/bench/ and reused.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import app_load, corpus, ingest, looplag, memory, retrieval, tutorial
from benchmarks.common import ROOT, machine


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the suite, not the machine")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--only", nargs="*", default=None, help="run these parts only (1-5, lag)")
    parser.add_argument("--from-results", action="store_true", help="re-render from data/bench/results.json")
    args = parser.parse_args()
    if args.from_results:
        rerender(args.out)
        return
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # HTTP clients closed after their loop ended
    quick = args.quick
    big = 5_000 if quick else 100_000
    small = 1_000 if quick else 10_000
    data = ROOT / "data" / "bench"
    data.mkdir(parents=True, exist_ok=True)
    results = data / ("results-quick.json" if quick else "results.json")  # a quick check never replaces a run
    parts = set(args.only or ["1", "2", "3", "4", "5", "lag"])
    notes: list[str] = []
    sections: dict[str, str] = {}
    raw: dict[str, object] = {}
    started = time.perf_counter()

    def step(name: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {name}", flush=True)
        results.write_text(json.dumps(raw, indent=2, default=str))  # what is done so far

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        scratch = Path(tmp)
        if "1" in parts:
            step("1. tutorial reproduction")
            r1 = tutorial.run(scratch / "tutorial", sizes=(10, 100))
            sections["1"], raw["tutorial"] = tutorial.report(r1), r1
        if parts & {"2", "5"}:
            step(f"building the {small:,} and {big:,}-chunk collections (once; each in its own process)")
            for size in (small, big):
                notes += build_collection(data, size)
        if "5" in parts:  # before this process opens a collection: Milvus Lite lets one process hold a file
            step("5. memory")
            r5 = memory.run(data, (small, big))
            sections["5"], raw["memory"] = memory.report(r5), r5
        if "2" in parts:
            step("2. retrieval under concurrency")
            r2 = retrieval.run(corpus.bench_settings(data, big), levels=(1, 10, 50), rounds=2 if quick else 4)
            sections["2"], raw["retrieval"] = retrieval.report(r2, big), r2
        if "3" in parts:
            step("3. ingest throughput")
            r3 = ingest.run(scratch / "ingest", megabytes=0.5 if quick else 3.0, sample_size=200 if quick else 600)
            sections["3"], raw["ingest"] = ingest.report(r3), r3
        if "lag" in parts:
            step("event-loop lag")
            rl = looplag.run(scratch / "lag", users=10, seconds=8 if quick else 20)
            sections["lag"], raw["loop_lag"] = looplag.report(rl), rl
        if "4" in parts:
            step("4. the app over Chainlit's socket protocol")
            (scratch / "app").mkdir()
            notes += build_collection(data, small)  # the offline run's knowledge base (reused when built)
            r4 = app_load.run(scratch / "app", data, levels=(1, 20), rounds=2 if quick else 5, offline_size=small)
            sections["4"], raw["app"] = app_load.report(r4), r4
    step("done")
    seconds, when = time.perf_counter() - started, f"{datetime.now(UTC):%Y-%m-%d %H:%M}"
    raw["meta"] = {"notes": notes, "quick": quick, "seconds": seconds, "when": when, "machine": machine(), "big": big}
    results.write_text(json.dumps(raw, indent=2, default=str))
    write(args.out, sections, notes, quick, seconds, when, machine())
    print(f"wrote {args.out}")


def build_collection(data: Path, size: int) -> list[str]:
    """A benchmark collection of `size` chunks, built once (in its own process: Milvus Lite lets one process
    hold a file); returns what the build said for the notes."""
    built = subprocess.run(
        [sys.executable, "-m", "benchmarks.corpus", str(data), str(size)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    notes: list[str] = json.loads(built.stdout.strip().splitlines()[-1])
    return notes


def _int_keys(value: Any) -> Any:
    """JSON turned the user counts and sizes into strings: turn them back."""
    if isinstance(value, dict):
        return {int(k) if isinstance(k, str) and k.isdigit() else k: _int_keys(v) for k, v in value.items()}
    return value


def rerender(out: Path) -> None:
    """Write BENCHMARKS.md again from the last run's figures (e.g. after editing NOTES.md)."""
    data = ROOT / "data" / "bench"
    raw = _int_keys(json.loads((data / "results.json").read_text()))
    meta = raw.pop("meta")
    sections = {}
    if "tutorial" in raw:
        sections["1"] = tutorial.report(raw["tutorial"])
    if "retrieval" in raw:
        sections["2"] = retrieval.report(raw["retrieval"], meta["big"])
    if "ingest" in raw:
        sections["3"] = ingest.report(raw["ingest"])
    if "loop_lag" in raw:
        sections["lag"] = looplag.report(raw["loop_lag"])
    if "app" in raw:
        sections["4"] = app_load.report(raw["app"])
    if "memory" in raw:
        sections["5"] = memory.report(raw["memory"])
    write(out, sections, meta["notes"], meta["quick"], meta["seconds"], meta["when"], meta["machine"])


TITLES = {
    "1": "1. The tutorial's experiment, reproduced",
    "2": "2. Retrieval under concurrency",
    "3": "3. Ingest throughput and the local model",
    "lag": "Event-loop lag while ingesting and answering",
    "4": "4. The app itself",
    "5": "5. Memory",
}
DOCS = {
    "1": tutorial.__doc__,
    "2": retrieval.__doc__,
    "3": ingest.__doc__,
    "lag": looplag.__doc__,
    "4": app_load.__doc__,
    "5": memory.__doc__,
}


def write(
    out: Path, sections: dict[str, str], notes: list[str], quick: bool, seconds: float, when: str, where: str
) -> None:
    head = [
        "# Benchmarks",
        "",
        "Produced by one command, `.venv/bin/python -m benchmarks` (or `make bench`), every comparison side by "
        "side in the same run on the same machine. Timings are never asserted in tests; the targets are "
        "checked here.",
        "",
        f"- Machine: {where}",
        f"- Run: {when} UTC, {seconds / 60:.0f} minutes" + (" (**--quick**: small sizes)" if quick else ""),
    ]
    head += [f"- {n}" for n in notes]
    body = []
    for key, title in TITLES.items():
        if key in sections:
            doc = (DOCS[key] or "").strip().split("\n\n", 1)
            body += ["", f"## {title}", "", doc[-1].strip() if len(doc) > 1 else "", "", sections[key]]
    notes_file = Path(__file__).with_name("NOTES.md")  # hand-written reading of the figures, kept with the code
    tail = ["", notes_file.read_text().strip()] if notes_file.exists() and not quick else []
    out.write_text("\n".join(head + body + tail) + "\n")


if __name__ == "__main__":
    main()
