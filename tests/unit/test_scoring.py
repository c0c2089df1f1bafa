"""How answers are judged: dataset shapes, facts as a reader sees them, citations, abstention."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chains.__main__ import main
from chains.scoring import judge, load_dataset, parse_case, plain, summarize
from core.errors import KnowledgeBaseError


def test_every_shape_is_read_and_a_bad_line_names_its_number(tmp_path: Path) -> None:
    lines = [
        {"question": "q1", "sources": ["a.html"]},
        {"question": "q2", "sources": ["a.html"], "answer_contains": ["5432"]},
        {"question": "q3", "unanswerable": True},
        {"turns": ["q4", "and q5?"], "sources": ["b.pdf"], "answer_contains": ["-n"]},
    ]
    dataset = tmp_path / "ok.jsonl"
    dataset.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n", encoding="utf-8")
    cases = load_dataset(dataset)
    assert [c.kind for c in cases] == ["retrieval", "answer", "unanswerable", "conversation"]
    assert cases[3].question == "and q5?" and cases[3].turns == ("q4", "and q5?")
    for bad in (
        {"question": "q", "sources": "a.html"},
        {"turns": ["only one"], "sources": ["a"], "answer_contains": ["x"]},
        {"question": "q", "sources": ["a"], "answer_contains": [""]},
        {"question": "", "unanswerable": True},
    ):
        with pytest.raises(ValueError):
            parse_case(bad)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(lines[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(KnowledgeBaseError, match=r"broken.jsonl:2: .*expected one of"):
        load_dataset(broken)


def test_a_malformed_dataset_exits_non_zero_with_a_plain_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": 3}\n', encoding="utf-8")
    assert main(["eval", str(broken)]) != 0
    out = capsys.readouterr()
    assert "broken.jsonl:1" in out.err + out.out and "Traceback" not in out.err + out.out


def test_facts_are_matched_as_shown_and_citations_decide_abstention() -> None:
    case = parse_case({"question": "q", "sources": ["rsync.pdf"], "answer_contains": ["--delete", "Debian 11"]})
    answer = "- Use \\-\\-delete to remove extra files, as in debian\u00a011 [2]\n- Other text [1]"
    assert plain("A\u2212\u2212b \\[x\\]") == "a--b [x]"
    good = judge(case, answer, ["ssh.pdf", "rsync.pdf"])
    assert good.hit and good.cited_expected and not good.abstained
    assert not judge(case, answer, ["ssh.pdf", "tar.pdf"]).cited_expected
    # Nothing cited, or nothing shown: an abstention, never a hit even if the words appear.
    assert judge(case, "--delete Debian 11, but I am not sure", ["rsync.pdf"]).abstained
    assert judge(case, "I could not find anything about this.", []).abstained
    unanswerable = parse_case({"question": "vacation policy?", "unanswerable": True})
    report = summarize(
        ["answer", "unanswerable", "conversation"],
        [good, judge(unanswerable, "Nothing found.", []), judge(case, "no", [])],
    )
    assert report["answer_hit"] == 1.0 and report["false_abstention"] == 0.0
    assert report["abstention"] == 1.0 and report["conversation_accuracy"] == 0.0
