"""Check an evaluation dataset against its corpus: shapes, counts, sources that exist, facts that are there.

    .venv/bin/python eval/verify.py eval/postgresql-dev.jsonl /usr/share/doc/postgresql-doc-15/html
    .venv/bin/python eval/verify.py eval/git-doc-answers.jsonl /usr/share/doc/git/html
    bash eval/make_mixed_corpus.sh /tmp/mixed && .venv/bin/python eval/verify.py eval/mixed-dev.jsonl /tmp/mixed

Every `answer_contains` string must appear in the first source's text as the product extracts it
(ingest.loaders.parse; case-insensitive, whitespace collapsed). Exit 1 with each problem on a line.
"""

from __future__ import annotations

import json
import re
import sys
from functools import cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.loaders import parse

MINIMUM = {"answerable": 40, "unanswerable": 10, "conversation": 10}


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


@cache
def text_of(path: Path) -> str:
    doc = parse(path.read_bytes(), path.name)
    return squash(" ".join(s.text for s in doc.sections))


def check(case: dict[str, object], corpus: Path) -> tuple[str, list[str]]:
    """The case's shape and what is wrong with it."""
    if case.get("unanswerable") is True:
        return "unanswerable", [] if isinstance(case.get("question"), str) else ["no question"]
    turns = case.get("turns")
    shape = "conversation" if turns is not None else "answerable"
    problems = []
    if shape == "conversation" and not (isinstance(turns, list) and len(turns) >= 2):
        problems.append("turns must be a list of two or more questions")
    if shape == "answerable" and not isinstance(case.get("question"), str):
        problems.append("no question")
    sources, facts = case.get("sources"), case.get("answer_contains")
    if not (isinstance(sources, list) and sources and all(isinstance(s, str) for s in sources)):
        return shape, [*problems, "sources must be a non-empty list of file names"]
    if not (isinstance(facts, list) and facts and all(isinstance(f, str) and f.strip() for f in facts)):
        return shape, [*problems, "answer_contains must be a non-empty list of strings"]
    missing = [s for s in sources if not (corpus / s).is_file()]
    if missing:
        return shape, [*problems, f"no such source file: {', '.join(missing)}"]
    text = text_of(corpus / sources[0])
    problems += [f"{fact!r} is not in {sources[0]}" for fact in facts if squash(fact) not in text]
    return shape, problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    dataset, corpus = Path(argv[0]), Path(argv[1])
    counts = dict.fromkeys(MINIMUM, 0)
    failures = 0
    for number, line in enumerate(dataset.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
        except json.JSONDecodeError as exc:
            print(f"line {number}: not JSON ({exc})")
            failures += 1
            continue
        shape, problems = check(case, corpus)
        counts[shape] += 1
        for problem in problems:
            print(f"line {number}: {problem}")
        failures += len(problems)
    for shape, least in MINIMUM.items():
        if counts[shape] < least:
            print(f"only {counts[shape]} {shape} cases (at least {least})")
            failures += 1
    print(f"{dataset.name}: {counts}; {failures} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
