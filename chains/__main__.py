"""CLI: python -m chains ask "QUESTION" | eval DATASET.jsonl [--compare-hybrid] | feedback OUT.jsonl."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chains.evaluate import evaluate, format_report
from chains.feedback import feedback_cases
from chains.pipeline import RagChain
from chains.scoring import load_dataset
from chains.state import SourcesReady, Token
from core.access import TEAM_ONLY, Viewer
from core.cli import run_plainly
from core.database import open_database
from core.models import make_chat_model
from core.runtime import open_knowledge_base
from core.settings import Settings, load_settings
from core.users import registered_viewer


async def viewer_named(settings: Settings, user: str | None) -> Viewer:
    """--as USER: ask with that user's access (their private documents too); default: team documents only."""
    return await registered_viewer(settings.database, user) if user else TEAM_ONLY


async def ask(settings: Settings, question: str, as_json: bool, user: str | None) -> int:
    viewer = await viewer_named(settings, user)
    async with open_knowledge_base(settings) as kb:
        chain = RagChain(kb, make_chat_model(settings), settings)
        if as_json:
            result = await chain.ainvoke(question, viewer=viewer)
            print(json.dumps(result.to_dict(), ensure_ascii=False, default=str))
            return 0
        sources = []
        async for event in chain.astream(question, viewer=viewer):
            if isinstance(event, Token):
                print(event.text, end="", flush=True)
            elif isinstance(event, SourcesReady):
                sources = event.sources
        print("\n\nSources:")
        for s in sources:
            score = f"  (similarity {s.score:.2f})" if s.score is not None else ""
            print(f"  {s.label}{score}")
        if not sources:
            print("  (none)")
    return 0


async def run_eval(
    settings: Settings, dataset: Path, k: int, as_json: bool, compare_hybrid: bool, signals: bool
) -> int:
    cases = load_dataset(dataset)
    async with open_knowledge_base(settings) as kb:
        chain = RagChain(kb, make_chat_model(settings), settings)
        report = await evaluate(chain, cases, k, compare_hybrid, signals)
    print(json.dumps(report, indent=2) if as_json else format_report(report))
    return 0


async def export_feedback(settings: Settings, out: Path, include_positive: bool) -> int:
    async with open_database(settings.database) as engine:
        cases = await feedback_cases(engine, include_positive)
    with out.open("w", encoding="utf-8") as f:
        for case in cases:
            f.write(json.dumps(case, ensure_ascii=False) + "\n")
    down = sum(c["feedback"] == "down" for c in cases)
    print(f'Wrote {len(cases)} cases to {out} ({down} from thumbs-down: add their expected "sources").')
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chains", description="Ask the knowledge base, or evaluate retrieval."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_ask = sub.add_parser("ask", help="answer a question with cited sources")
    p_ask.add_argument("question")
    p_eval = sub.add_parser("eval", help="retrieval (vs single-query baselines) and answers, from a dataset")
    p_eval.add_argument("dataset", type=Path, help="JSONL, one case per line (see chains/scoring.py)")
    p_eval.add_argument("--k", type=int, default=5)
    p_eval.add_argument(
        "--compare-hybrid", action="store_true", help="also the pipeline with hybrid search, and a BM25-only baseline"
    )
    p_eval.add_argument(
        "--signals", action="store_true", help="also the pipeline with each signal switched (rewrites, openings, ...)"
    )
    p_ask.add_argument("--as", dest="as_user", help="ask as this user (sees their private documents)")
    for p in (p_ask, p_eval):
        p.add_argument("--collection", help="Milvus collection (default: RAG_COLLECTION)")
        p.add_argument("--json", action="store_true", help="print JSON")
    p_fb = sub.add_parser("feedback", help="export rated answers as evaluation cases (JSONL)")
    p_fb.add_argument("out", type=Path)
    p_fb.add_argument("--include-positive", action="store_true", help="thumbs-up answers too, as regression cases")
    args = parser.parse_args(argv)
    return run_plainly(lambda: command(args))


async def command(args: argparse.Namespace) -> int:
    """The chosen subcommand (settings are read here, so their errors are reported plainly too)."""
    if args.command == "feedback":
        return await export_feedback(load_settings(), args.out, args.include_positive)
    settings = load_settings(**({"collection": args.collection} if args.collection else {}))
    if args.command == "ask":
        return await ask(settings, args.question, args.json, args.as_user)
    return await run_eval(settings, args.dataset, args.k, args.json, args.compare_hybrid, args.signals)


if __name__ == "__main__":
    sys.exit(main())
