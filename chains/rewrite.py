"""Step 2, rewrite: parse a chat model's search queries, or make deterministic variants offline."""

from __future__ import annotations

import re
import time

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import Runnable, RunnableLambda

from chains.prompts import REWRITE
from chains.state import Rewritten, State, elapsed_ms, model_warning
from chains.text import asked_words, declarative, keywords

BULLET = re.compile(r"^\s*(?:[-*•]+|\d+[.)]|\(\d+\)|[Qq]uery\s*\d*:)\s*")


def normalise(query: str) -> str:
    """Key used to de-duplicate queries."""
    return re.sub(r"[^\w]+", " ", query.lower()).strip()


def dedupe(queries: list[str], limit: int) -> list[str]:
    """Keep the first of each equivalent query, at most `limit`."""
    seen: set[str] = set()
    kept: list[str] = []
    for q in queries:
        key = normalise(q)
        if key and key not in seen:
            seen.add(key)
            kept.append(q)
    return kept[:limit]


def parse_rewrites(question: str, output: str, n: int) -> list[str]:
    """Original question first, then up to n parsed rewrites (numbering, bullets and quotes removed)."""
    rewrites = []
    for line in output.splitlines():
        line = BULLET.sub("", line).strip().strip("\"'`").strip()
        if not line or line.endswith(":") or len(line) > 300:
            continue
        rewrites.append(line)
    return dedupe([question.strip(), *rewrites], n + 1)


def offline_rewrites(question: str, n: int) -> list[str]:
    """Deterministic variants without a model: the statement form, the keyword form, each clause."""
    statement = declarative(question)
    variants = [statement, " ".join(keywords(asked_words(question)))]
    clauses = re.split(r"\s*(?:,|;|\band\b|\bor\b|\bvs\.?\b|\bversus\b)\s*", statement)
    if len(clauses) > 1:
        variants += [" ".join(keywords(c)) for c in clauses if len(keywords(c)) >= 2]
    return dedupe([question.strip(), *variants], n + 1)


def make_rewrite(chat_model: BaseChatModel | None, timeout: float) -> Runnable[State, Rewritten]:
    """Step 2, rewrite: the standalone question plus up to n search queries."""
    prompt = None if chat_model is None else REWRITE | chat_model.with_config(tags=["rewrite"]) | StrOutputParser()

    async def rewrite(state: State) -> Rewritten:
        started = time.perf_counter()
        condensed = state["condensed"]
        question, n = condensed.standalone, state["options"].rewrites
        warning = None
        if n == 0:
            queries = [question]
        elif prompt is not None and condensed.warning is None:  # a model that just failed is not asked again
            try:
                queries = parse_rewrites(question, await prompt.ainvoke({"question": question, "n": n}), n)
            except Exception as exc:
                warning = model_warning("rewrite", exc, timeout)
                queries = offline_rewrites(question, n)
        else:
            queries = offline_rewrites(question, n)
        return Rewritten(queries, elapsed_ms(started), warning)

    return RunnableLambda(rewrite).with_config(run_name="rewrite")
