"""Replay an evaluation dataset through the running app, over Chainlit's socket protocol as the browser
speaks it, and score each answer exactly as `chains eval` does (chains.scoring): what a person sees,
condensing, thresholds, chips and all.

    python -m tests.load.replay DATASET [--url http://127.0.0.1:8000] [--json] [--limit N]

Each case gets a fresh conversation; a conversation case sends its turns in order in one session.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

from chains.scoring import Case, Judgement, judge, load_dataset, summarize
from tests.load.client import ChatClient

SOURCES = "\n\nSources: "
_CHIP = re.compile(r"\[(\d+(?:, \d+)*)\] (.+?)(?: p\.\d+)?(?=, \[\d|$)")


def read_answer(text: str) -> tuple[str, list[str]]:
    """An answer as the chat shows it, split into its text and its sources by number (sources[n-1] is what
    [n] cites; numbers no chip shows are empty)."""
    body, _, chips = text.rpartition(SOURCES) if SOURCES in text else (text, "", "")
    by_number: dict[int, str] = {}
    for match in _CHIP.finditer(chips.strip()):
        for number in match.group(1).split(", "):
            by_number[int(number)] = match.group(2).strip()
    sources = [by_number.get(n, "") for n in range(1, max(by_number, default=0) + 1)]
    return body, sources


async def replay_case(url: str, case: Case, headers: dict[str, str] | None = None) -> tuple[Judgement, dict[str, Any]]:
    client = ChatClient(url, headers=headers)
    await client.connect()
    try:
        reply = None
        for turn in case.turns:
            reply = await client.ask(turn, wait_s=300)
        assert reply is not None
    finally:
        await client.close()
    body, sources = read_answer(reply.text)
    judgement = judge(case, body, sources)
    row = {"kind": case.kind, "question": case.question, "answer": reply.text, "shown": sources}
    return judgement, row | {"errors": reply.errors, "seconds": round(reply.seconds, 3), **judgement.to_dict()}


async def replay(url: str, cases: list[Case], headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Every answer, conversation and unanswerable case of `cases` through the app; the same summary as
    `chains eval` prints under "answers"."""
    judged = [c for c in cases if c.kind != "retrieval"]
    results = [await replay_case(url, case, headers) for case in judged]
    rows = [row for _, row in results]
    summary = summarize([c.kind for c in judged], [judgement for judgement, _ in results])
    return {"answers": summary, "errors": sum(bool(r["errors"]) for r in rows), "per_case": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.load.replay", description=__doc__)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--json", action="store_true", help="print the whole report, per case")
    parser.add_argument("--limit", type=int, default=0, help="only the first N answer cases")
    args = parser.parse_args(argv)
    cases = load_dataset(args.dataset)
    if args.limit:
        cases = [c for c in cases if c.kind != "retrieval"][: args.limit]
    report = asyncio.run(replay(args.url, cases))
    print(json.dumps(report if args.json else report["answers"] | {"errors": report["errors"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
