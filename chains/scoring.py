"""How an answer is judged, the same for `chains eval` and for a replay through the running app.

An evaluation line is one of four shapes:
- `{"question", "sources"}`: retrieval only (recall@k, MRR);
- `{"question", "sources", "answer_contains": [...]}`: retrieval, plus the answer must contain every fact
  (case-insensitive, whitespace collapsed) and should cite an expected source;
- `{"question", "unanswerable": true}`: the answer must abstain: say so plainly and cite nothing;
- `{"turns": [...], "sources", "answer_contains"}`: a conversation, judged on its last turn.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.errors import KnowledgeBaseError
from core.markdown import JOINER

Kind = Literal["retrieval", "answer", "unanswerable", "conversation"]
CITATION = re.compile(r"\[(\d{1,3})\]")
_DASHES = str.maketrans({"\u2212": "-", "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-"})
SHAPES = (
    '{"question": str, "sources": [str, ...]} (retrieval), the same with "answer_contains": [str, ...], '
    '{"question": str, "unanswerable": true}, or {"turns": [str, ...], "sources": [...], "answer_contains": [...]}'
)


@dataclass(frozen=True)
class Case:
    """One evaluation line, checked."""

    kind: Kind
    turns: tuple[str, ...]  # one question, or a conversation's questions in order
    sources: tuple[str, ...] = ()
    facts: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def question(self) -> str:
        """The question that is judged (a conversation's last turn)."""
        return self.turns[-1]


def _strings(value: object) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
        return tuple(value)
    return None


def parse_case(line: dict[str, Any]) -> Case:
    """A dataset line as a Case (ValueError when it fits no shape)."""
    if not isinstance(line, dict):
        raise ValueError("not an object")
    extra = {k: v for k, v in line.items() if k not in ("question", "turns", "sources", "answer_contains")}
    if line.get("unanswerable") is True:
        if not isinstance(line.get("question"), str) or not line["question"].strip():
            raise ValueError("an unanswerable case needs a question")
        return Case("unanswerable", (line["question"],), extra=extra)
    sources, facts = _strings(line.get("sources")), _strings(line.get("answer_contains"))
    if sources is None:
        raise ValueError('"sources" must be a list of file names')
    if "turns" in line:
        turns = _strings(line["turns"])
        if not turns or len(turns) < 2 or not facts:
            raise ValueError('a conversation needs "turns" (two or more questions) and "answer_contains"')
        return Case("conversation", turns, sources, facts, extra)
    if not isinstance(line.get("question"), str) or not line["question"].strip():
        raise ValueError('"question" must be a non-empty string')
    if "answer_contains" in line and facts is None:
        raise ValueError('"answer_contains" must be a list of non-empty strings')
    return Case("answer" if facts else "retrieval", (line["question"],), sources, facts or (), extra)


def load_dataset(path: Path) -> list[Case]:
    """Every line of a JSONL dataset as a Case; a malformed line stops with its number and what is expected."""
    cases = []
    for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            cases.append(parse_case(json.loads(text)))
        except (json.JSONDecodeError, ValueError) as exc:
            raise KnowledgeBaseError(f"{path}:{n}: {exc}; expected one of {SHAPES}") from exc
    if not cases:
        raise KnowledgeBaseError(f"{path} holds no questions")
    return cases


def matches(retrieved: str, expected: tuple[str, ...] | list[str]) -> bool:
    """A retrieved source counts when it equals an expected one or ends with its path."""
    return any(retrieved == e or retrieved.endswith("/" + e.lstrip("/")) for e in expected)


def first_hit_rank(retrieved: list[str], expected: tuple[str, ...] | list[str]) -> int | None:
    """1-based rank of the first retrieved chunk from an expected source."""
    return next((i for i, src in enumerate(retrieved, start=1) if matches(src, expected)), None)


def plain(text: str) -> str:
    """Text as a reader sees it, for matching facts: escapes and invisible joiners gone, dashes plain,
    whitespace collapsed, lower case."""
    text = unicodedata.normalize("NFKC", text).translate(_DASHES).replace(JOINER, "")
    text = re.sub(r"\\([\\\[\]<>`*_#|~-])", r"\1", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def contains_facts(answer: str, facts: tuple[str, ...]) -> bool:
    shown = plain(answer)
    return all(plain(f) in shown for f in facts)


def cited(answer: str, sources: list[str]) -> list[str]:
    """The sources an answer cites with [n] (sources[n-1])."""
    numbers = {int(n) for n in CITATION.findall(answer)}
    return [s for i, s in enumerate(sources, start=1) if i in numbers]


@dataclass(frozen=True)
class Judgement:
    """What one answer got right."""

    abstained: bool
    hit: bool  # every fact is in the answer (never, when it abstained)
    cited_expected: bool  # an expected source is among the cited ones

    def to_dict(self) -> dict[str, bool]:
        return {"abstained": self.abstained, "hit": self.hit, "cited_expected": self.cited_expected}


def judge(case: Case, answer: str, sources: list[str]) -> Judgement:
    """Judge an answer and the sources it was given (in their numbered order)."""
    citations = cited(answer, sources)
    abstained = not sources or not citations
    hit = not abstained and contains_facts(answer, case.facts) if case.facts else False
    expected = any(matches(s, case.sources) for s in citations) if case.sources else False
    return Judgement(abstained, hit, expected)


def summarize(kinds: list[Kind], judgements: list[Judgement]) -> dict[str, Any]:
    """Answer hit rate, citation rate and false abstention on answerable cases; abstention on unanswerable
    ones; accuracy of conversations (their last turn's facts)."""

    def rate(values: list[bool]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    answerable = [j for k, j in zip(kinds, judgements, strict=True) if k == "answer"]
    unanswerable = [j for k, j in zip(kinds, judgements, strict=True) if k == "unanswerable"]
    conversations = [j for k, j in zip(kinds, judgements, strict=True) if k == "conversation"]
    return {
        "answerable": len(answerable),
        "answer_hit": rate([j.hit for j in answerable]),
        "cited_expected": rate([j.cited_expected for j in answerable]),
        "false_abstention": rate([j.abstained for j in answerable]),
        "unanswerable": len(unanswerable),
        "abstention": rate([j.abstained for j in unanswerable]),
        "conversations": len(conversations),
        "conversation_accuracy": rate([j.hit for j in conversations]),
    }
