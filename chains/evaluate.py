"""Evaluation: retrieval (recall@k, MRR) beside single-query baselines, and the answers themselves."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from chains.pipeline import RagChain, SearchOptions
from chains.scoring import Case, Judgement, first_hit_rank, judge, summarize
from core.access import TEAM_ONLY, visible_to
from core.errors import KnowledgeBaseError
from core.models import EmbeddingCache


def metrics(ranks: list[int | None]) -> dict[str, float]:
    """Recall (any hit in the top k) and mean reciprocal rank."""
    n = len(ranks) or 1
    return {
        "recall": round(sum(r is not None for r in ranks) / n, 4),
        "mrr": round(sum(1.0 / r for r in ranks if r is not None) / n, 4),
    }


Search = Callable[[str], Awaitable[list[str]]]  # a question -> the sources of the top k, in order

LABELS = {
    "pipeline": "pipeline (rewrites + RRF)",
    "hybrid": "pipeline, hybrid (+ BM25 index)",
    "no_rewrites": "  without rewrites",
    "no_openings": "  without document openings",
    "no_keyword_rank": "  without keyword ranking",
    "no_hybrid": "  without the full-text list",
    "with_openings": "  with document openings",
    "with_keyword_rank": "  with keyword ranking",
    "with_hybrid": "  with the full-text list",
    "with_rewrites": "  with rewrites",
    "baseline": "baseline (single-query similarity)",
    "full_text": "baseline (single-query BM25)",
}


def signal_variants(options: SearchOptions, has_full_text: bool) -> dict[str, SearchOptions]:
    """The pipeline with each signal switched the other way (off where it is on, on where it is off)."""
    variants = {
        "no_rewrites" if options.rewrites else "with_rewrites": replace(options, rewrites=0 if options.rewrites else 3)
    }
    for signal in ("openings", "keyword_rank", "hybrid"):
        if signal == "hybrid" and not has_full_text:
            continue
        on = bool(getattr(options, signal))
        switched: dict[str, Any] = {signal: not on}
        variants[("no_" if on else "with_") + signal] = replace(options, **switched)
    return variants


def systems(chain: RagChain, options: SearchOptions, compare_hybrid: bool, signals: bool = False) -> dict[str, Search]:
    """What is evaluated: the pipeline as configured and a single-query dense search; with
    `compare_hybrid` (on a collection with the full-text index), the pipeline dense-only and hybrid,
    and a single BM25 search too."""
    k, kb = options.k, chain.kb
    expr = visible_to(TEAM_ONLY)
    # Retrieval is judged on its ranking, as the baselines are: without the score floor, whose cost (answers
    # it refuses) the answer figures show as false abstention.
    options = replace(options, threshold=None)

    def pipeline(opts: SearchOptions) -> Search:
        async def run(question: str) -> list[str]:
            return [s.source for s in await chain.aretrieve(question, opts)]

        return run

    async def baseline(question: str) -> list[str]:
        return [str(d.metadata.get("source")) for d, _ in await kb.search_dense(question, k, expr)]

    async def bm25(question: str) -> list[str]:
        return [str(d.metadata.get("source")) for d, _ in await kb.search_full_text(question, k, expr)]

    ablations = {n: pipeline(o) for n, o in signal_variants(options, kb.has_full_text).items()} if signals else {}
    if not compare_hybrid or not kb.has_full_text:
        plain = {"pipeline": pipeline(options), **ablations, "baseline": baseline}
        return plain | ({"full_text": bm25} if kb.has_full_text else {})

    return {
        "pipeline": pipeline(replace(options, hybrid=False)),
        "hybrid": pipeline(replace(options, hybrid=True)),
        "baseline": baseline,
        "full_text": bm25,
    }


async def answer(chain: RagChain, case: Case, options: SearchOptions) -> tuple[str, list[str]]:
    """The pipeline's answer to a case (a conversation's earlier turns answered first, as in the chat)."""
    history: list[BaseMessage] = []
    for question in case.turns[:-1]:
        earlier = await chain.ainvoke(question, history, options)
        history += [HumanMessage(question), AIMessage(earlier.answer)]
    result = await chain.ainvoke(case.question, history, options)
    return result.answer, [s.source for s in result.sources]


async def evaluate(
    chain: RagChain, cases: list[Case], k: int, compare_hybrid: bool = False, signals: bool = False
) -> dict[str, Any]:
    """Run every case through each retrieval system (`systems`) and, where it has answer facts or is
    unanswerable or a conversation, through the whole pipeline; all on the same collection."""
    options = replace(SearchOptions.from_settings(chain.settings), k=k)
    runs = systems(chain, options, compare_hybrid, signals)
    rows = []
    times = dict.fromkeys(runs, 0.0)
    cache = chain.kb.embeddings if isinstance(chain.kb.embeddings, EmbeddingCache) else None
    judged: list[tuple[Case, Judgement]] = []
    unlabelled = 0
    for case in cases:
        row: dict[str, Any] = {"kind": case.kind, "question": case.question, "expected": list(case.sources)}
        if case.kind in ("retrieval", "answer") and case.sources:
            for name, search in runs.items():
                if cache is not None:  # each system pays for its own query embeddings
                    cache.clear()
                started = time.perf_counter()
                retrieved = await search(case.question)
                times[name] += time.perf_counter() - started
                row[f"{name}_rank"] = first_hit_rank(retrieved, case.sources)
        elif case.kind == "retrieval":  # exported thumbs-down cases wait for their sources
            unlabelled += 1
            continue
        if case.kind != "retrieval":
            text, shown = await answer(chain, case, options)
            judgement = judge(case, text, shown)
            judged.append((case, judgement))
            row |= {"turns": list(case.turns)} if case.kind == "conversation" else {}
            row |= {"facts": list(case.facts), "answer": text, "shown": shown, **judgement.to_dict()}
        rows.append(row)
    ranked = [r for r in rows if "pipeline_rank" in r]
    if not rows:
        raise KnowledgeBaseError('no case names its expected "sources" yet: fill them in, then run again')
    report: dict[str, Any] = {
        "k": k,
        "questions": len(ranked),
        "cases": len(rows),
        "unlabelled": unlabelled,
        "collection": chain.settings.collection,
        "options": {
            "rewrites": options.rewrites,
            "mode": options.mode,
            "threshold": options.threshold,
            "hybrid": options.hybrid if "hybrid" not in runs else "compared",
            "openings": options.openings,
            "keyword_rank": options.keyword_rank,
            "chat_model": chain.chat_model is not None,
        },
    }
    if compare_hybrid and not chain.kb.has_full_text:
        report["full_text_missing"] = getattr(chain.kb, "full_text_note", None) or "no full-text index"
    for name in runs:
        if ranked:
            report[name] = {
                **metrics([r[f"{name}_rank"] for r in ranked]),
                "ms_per_question": round(times[name] * 1000 / len(ranked), 1),
            }
    if judged:
        report["answers"] = summarize([c.kind for c, _ in judged], [j for _, j in judged])
    report["per_case"] = rows
    return report


def format_report(report: dict[str, Any]) -> str:
    """A side-by-side table for people."""
    k = report["k"]
    lines = [
        f"{report['cases']} cases, collection '{report['collection']}', k={k}, options {report['options']}",
    ]
    if report["questions"]:
        lines += [
            "",
            f"{'retrieval, ' + str(report['questions']) + ' questions':<34}{'recall@' + str(k):>10}"
            f"{'MRR':>8}{'ms/question':>13}",
        ]
    for name, label in LABELS.items():
        if name in report:
            r = report[name]
            lines.append(f"{label:<34}{r['recall']:>10.3f}{r['mrr']:>8.3f}{r['ms_per_question']:>13.1f}")
    if answers := report.get("answers"):

        def show(value: float | None) -> str:
            return "–" if value is None else f"{value:.3f}"

        lines += [
            "",
            f"answers ({answers['answerable']} answerable): hit {show(answers['answer_hit'])}, cites an expected "
            f"source {show(answers['cited_expected'])}, false abstention {show(answers['false_abstention'])}",
            f"unanswerable ({answers['unanswerable']}): abstained {show(answers['abstention'])}",
            f"conversations ({answers['conversations']}): right {show(answers['conversation_accuracy'])}",
        ]
    if report.get("full_text_missing"):
        lines += ["", f"No hybrid comparison: {report['full_text_missing']}."]
    if report.get("unlabelled"):
        lines += ["", f'{report["unlabelled"]} cases without expected sources were skipped: fill in their "sources".']
    cases = report["per_case"]
    missed = [r["question"] for r in cases if "pipeline_rank" in r and r["pipeline_rank"] is None]
    if missed:
        lines += ["", f"Retrieval misses ({len(missed)}):", *(f"  - {q}" for q in missed)]
    wrong = [r for r in cases if r["kind"] in ("answer", "conversation") and not r["hit"]]
    if wrong:
        lines += ["", f"Answers without the fact ({len(wrong)}):", *(f"  - {r['question']}" for r in wrong)]
    spoke = [r["question"] for r in cases if r["kind"] == "unanswerable" and not r["abstained"]]
    if spoke:
        lines += ["", f"Answered what the documents do not say ({len(spoke)}):", *(f"  - {q}" for q in spoke)]
    return "\n".join(lines)
