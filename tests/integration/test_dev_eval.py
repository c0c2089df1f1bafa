"""The development datasets on Debian's git documentation: the pipeline must not lose to the baseline."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.embeddings import Embeddings

from chains import RagChain
from chains.evaluate import evaluate
from chains.scoring import load_dataset
from core.runtime import open_knowledge_base
from core.settings import load_settings
from ingest import FileInput, Ingestor

CORPUS = Path("/usr/share/doc/git/html")
DATASET = Path(__file__).resolve().parents[2] / "eval" / "git-doc-dev.jsonl"
TERMS = DATASET.with_name("git-doc-terms.jsonl")  # questions naming an identifier: config keys, flags
ANSWERS = DATASET.with_name("git-doc-answers.jsonl")  # answers, unanswerable questions, conversations
# Milvus Lite's BM25 scores depend on how the chunks fell into segments, which differs from one ingest of
# the same files to the next: three ingests here gave the hybrid pipeline an MRR of 0.612, 0.628 and 0.637
# against one dense search's 0.615 every time (dense search is the same each time). Per question, it ranked
# the expected page higher 28-30 times and lower 15-18 times.
MRR_NOISE = 0.01


def inf(rank: int | None) -> int:
    return rank if rank is not None else 1_000


@pytest.mark.slow
@pytest.mark.skipif(not CORPUS.is_dir(), reason="needs Debian's git-doc package (installed by .ci/run)")
async def test_pipeline_never_loses_to_the_single_query_baseline(tmp_path: Path, embeddings: Embeddings) -> None:
    cases = load_dataset(DATASET) + load_dataset(ANSWERS)  # 120 questions with their pages
    assert len(cases) >= 140
    settings = load_settings(milvus_uri=str(tmp_path / "gitdoc.db"), collection="gitdoc")  # shipped defaults
    files = [FileInput(p, p.name) for p in sorted(CORPUS.glob("*.html"))]  # noqa: ASYNC240
    async with open_knowledge_base(settings, embeddings) as kb:
        results = await Ingestor(kb).ingest(files)
        assert all(r.status == "indexed" for r in results), [r.describe() for r in results if r.status != "indexed"]
        expected = {s for c in cases for s in c.sources}
        assert expected <= {f.source for f in files}, "dataset names a page the corpus lacks"
        chain = RagChain(kb, None, settings)
        report = await evaluate(chain, cases, k=5, compare_hybrid=True)
        terms = await evaluate(chain, load_dataset(TERMS), k=5, compare_hybrid=True)
    hybrid, baseline, answers = report["hybrid"], report["baseline"], report["answers"]
    print(f"\nhybrid (default) {hybrid}\ndense-only {report['pipeline']}\nbaseline {baseline}\nanswers {answers}")
    print(f"terms: hybrid {terms['hybrid']}, dense-only {terms['pipeline']}, baseline {terms['baseline']}")
    ranks = [(inf(row["hybrid_rank"]), inf(row["baseline_rank"])) for row in report["per_case"] if "hybrid_rank" in row]
    wins, losses = sum(h < b for h, b in ranks), sum(h > b for h, b in ranks)
    print(f"hybrid ranks the expected page higher than one dense search {wins} times, lower {losses} times")
    # The shipped defaults (hybrid) never lose to one dense search: never a lower recall, better on more
    # questions than worse by a clear margin, and an MRR not lower by more than one ingest differs from the next.
    assert hybrid["recall"] >= baseline["recall"]
    assert wins >= 1.3 * losses, (wins, losses)
    assert hybrid["mrr"] >= baseline["mrr"] - MRR_NOISE
    # On exact terms the full-text list is what wins.
    assert terms["hybrid"]["mrr"] > terms["pipeline"]["mrr"]
    # The answers figures are reported (README, Evaluation); what abstains must be rare on answerable cases.
    assert answers["false_abstention"] <= 0.05
