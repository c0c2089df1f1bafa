"""The answer evaluation, reachable through the running app: a dataset replayed over the socket protocol is
scored as `chains eval` scores it, and gets the same verdicts as the chain on the same knowledge base."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from chains.scoring import load_dataset
from tests.fixtures.documents import make_good_set
from tests.load.client import ChatClient
from tests.load.replay import read_answer, replay
from tests.servers import ROOT, app_env, chainlit_server

CASES = [
    {"question": "Who handles Zephyr turbine warranty claims?", "sources": ["turbine-manual.pdf"],
     "answer_contains": ["Orion support desk"]},
    {"question": "When is the production deployment freeze?", "sources": ["release.md"],
     "answer_contains": ["Friday after 14:00"]},
    {"question": "What time does the office kitchen get cleaned?", "sources": ["facilities.txt"],
     "answer_contains": ["18:30"]},
    {"question": "I forgot my VPN password, how do I reset it?", "sources": ["it-help.html"],
     "answer_contains": ["Helix portal"]},
    {"question": "What is the recipe for a lemon drizzle cake?", "unanswerable": True},
    {"question": "How many vacation days do new employees get?", "unanswerable": True},
    {"turns": ["How often must the Zephyr turbine be serviced?", "and who handles its warranty?"],
     "sources": ["turbine-manual.pdf"], "answer_contains": ["Orion support desk"]},
    {"turns": ["When are production deployments frozen?", "What time is the kitchen cleaned?"],
     "sources": ["facilities.txt"], "answer_contains": ["18:30"]},
]  # fmt: skip


def test_chips_are_read_back_into_numbered_sources() -> None:
    body, sources = read_answer("Ann signs [1] and [3].\n\nSources: [1, 3] people.csv, [2] bash.pdf p.57")
    assert body == "Ann signs [1] and [3]." and sources == ["people.csv", "bash.pdf", "people.csv"]
    assert read_answer("I could not find anything about that.") == ("I could not find anything about that.", [])


async def upload_all(url: str, files: list[Path]) -> None:
    client = ChatClient(url)
    await client.connect()
    refs = [await client.upload(path) for path in files]
    reply = await client.ask("", refs, wait_s=300)
    assert reply.text.count(": indexed") == len(files), reply.text
    await client.close()


async def test_a_dataset_replayed_through_the_app_is_judged_as_the_chain_judges_it(tmp_path: Path) -> None:
    dataset = tmp_path / "cases.jsonl"
    dataset.write_text("".join(json.dumps(c) + "\n" for c in CASES), encoding="utf-8")
    good = make_good_set(tmp_path / "docs")
    data = tmp_path / "server"
    data.mkdir()
    with chainlit_server(data) as url:
        await upload_all(url, [good["pdf"], good["md"], good["txt"], good["html"]])
        through_app = await replay(url, load_dataset(dataset))
    assert through_app["errors"] == 0
    summary = through_app["answers"]
    assert (summary["answerable"], summary["unanswerable"], summary["conversations"]) == (4, 2, 2)
    assert summary["answer_hit"] == 1.0 and summary["false_abstention"] == 0.0  # these facts are easy

    # The chain alone, on the same knowledge base (the app has stopped: Milvus Lite is one process's).
    cmd = [sys.executable, "-m", "chains", "eval", str(dataset), "--k", "5", "--json"]
    done = await asyncio.to_thread(
        subprocess.run, cmd, env=app_env(data), cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    by_chain = json.loads(done.stdout)
    assert by_chain["answers"] == summary
    verdicts = ("abstained", "hit", "cited_expected")
    chain_cases = [r for r in by_chain["per_case"] if r["kind"] != "retrieval"]
    for app_row, chain_row in zip(through_app["per_case"], chain_cases, strict=True):
        assert {v: app_row[v] for v in verdicts} == {v: chain_row[v] for v in verdicts}, (app_row, chain_row)
