"""CLI: python -m chains ask "QUESTION" | python -m chains eval DATASET.jsonl."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from chains.evaluate import evaluate, format_report, load_dataset
from chains.pipeline import RagChain
from core.errors import KnowledgeBaseError
from core.models import make_chat_model
from core.runtime import open_knowledge_base
from core.settings import Settings, load_settings


async def ask(settings: Settings, question: str, as_json: bool) -> int:
    async with open_knowledge_base(settings) as kb:
        chain = RagChain(kb, make_chat_model(settings), settings)
        if as_json:
            result = await chain.ainvoke(question)
            print(json.dumps(result.to_dict(), ensure_ascii=False, default=str))
            return 0
        sources = []
        async for event in chain.astream(question):
            if "token" in event:
                print(event["token"], end="", flush=True)
            else:
                sources = event["sources"]
        print("\n\nSources:")
        for s in sources:
            score = f"  (similarity {s.score:.2f})" if s.score is not None else ""
            print(f"  {s.label}{score}")
        if not sources:
            print("  (none)")
    return 0


async def run_eval(settings: Settings, dataset: Path, k: int, as_json: bool) -> int:
    cases = load_dataset(dataset)
    async with open_knowledge_base(settings) as kb:
        chain = RagChain(kb, make_chat_model(settings), settings)
        report = await evaluate(chain, cases, k)
    print(json.dumps(report, indent=2) if as_json else format_report(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chains", description="Ask the knowledge base, or evaluate retrieval."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_ask = sub.add_parser("ask", help="answer a question with cited sources")
    p_ask.add_argument("question")
    p_eval = sub.add_parser("eval", help="recall@k and MRR of the pipeline vs a single-query baseline")
    p_eval.add_argument("dataset", type=Path, help='JSONL: {"question": ..., "sources": [...]} per line')
    p_eval.add_argument("--k", type=int, default=5)
    for p in (p_ask, p_eval):
        p.add_argument("--collection", help="Milvus collection (default: RAG_COLLECTION)")
        p.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(**({"collection": args.collection} if args.collection else {}))
        if args.command == "ask":
            return asyncio.run(ask(settings, args.question, args.json))
        return asyncio.run(run_eval(settings, args.dataset, args.k, args.json))
    except KnowledgeBaseError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
