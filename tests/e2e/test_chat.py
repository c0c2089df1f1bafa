"""The chat as a person uses it: upload, ask, watch it stream, click a source, follow up."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Chat
from tests.fixtures.documents import make_bad_set, make_good_set


async def test_upload_pdf_and_docx_then_a_streamed_cited_answer(server: str, browser: Any, tmp_path: Path) -> None:
    good = make_good_set(tmp_path / "docs")
    chat = await Chat.open(browser, server)
    await chat.send(files=[good["pdf"], good["docx"]])
    await chat.page.get_by_text("turbine-manual.pdf: indexed").first.wait_for(timeout=120_000)
    await chat.page.get_by_text("remote-work.docx: indexed").first.wait_for(timeout=120_000)

    before = chat.stream_tokens()
    await chat.send("Who handles warranty claims for the Zephyr turbine?")
    answer = await chat.wait_answers(1)
    assert "Orion support desk" in answer
    assert chat.stream_tokens() - before > 5  # streamed token by token, not sent whole
    assert "turbine-manual.pdf p.3" in answer  # chips show names as written

    # The answer's citation is a link; clicking it opens the cited PDF page in the side panel.
    await chat.open_source("turbine-manual.pdf p.3", expect_text="Orion support desk")

    # The steps show how the answer was found.
    for step in ("Rewrite", "Retrieve"):
        await chat.page.get_by_text(f"Used {step}").first.wait_for(timeout=5_000)
    await chat.page.screenshot(path=str(tmp_path / "answer.png"))


async def test_corrupt_file_fails_alone(server: str, browser: Any, tmp_path: Path) -> None:
    bad = make_bad_set(tmp_path / "bad")
    good = make_good_set(tmp_path / "good")
    chat = await Chat.open(browser, server)
    await chat.send(files=[bad["corrupt_pdf"], good["md"]])
    await chat.page.get_by_text("corrupt.pdf: failed: the PDF is damaged").first.wait_for(timeout=120_000)
    await chat.page.get_by_text("release.md: indexed").first.wait_for(timeout=120_000)
    await chat.send("When are production deployments frozen?")
    answer = await chat.wait_answers(1)
    assert "Friday after 14:00" in answer and "release.md" in answer.lower()
    await chat.open_source("release.md", expect_text="frozen every Friday after 14:00")


async def test_one_users_large_upload_does_not_stall_another_users_answer(
    server: str, browser: Any, tmp_path: Path
) -> None:
    big = tmp_path / "handbook.txt"
    paragraphs = [
        f"Section {i}. The archive procedure number {i} moves ledger batch {i} to cold storage "
        f"after review by the records office, which signs form R-{i} and files it."
        for i in range(2500)
    ]
    big.write_text("\n\n".join(paragraphs), encoding="utf-8")
    good = make_good_set(tmp_path / "docs")
    alice, bob = await Chat.open(browser, server), await Chat.open(browser, server)
    await bob.send(files=[good["txt"]])
    await bob.page.get_by_text("facilities.txt:").first.wait_for(timeout=120_000)

    await alice.send(files=[big])
    await alice.page.get_by_text("Indexing 1 file").first.wait_for(timeout=30_000)  # the upload is running
    await bob.send("When is the office kitchen cleaned?")
    answer = await bob.wait_answers(1)
    assert "18:30" in answer
    # Bob's answer came while Alice's upload was still being indexed.
    assert await alice.page.get_by_text("Indexing 1 file").count() == 1
    assert await alice.page.get_by_text("handbook.txt: indexed").count() == 0
    await alice.page.get_by_text("handbook.txt: indexed").first.wait_for(timeout=600_000)


async def test_follow_up_uses_the_previous_turn(server: str, browser: Any, tmp_path: Path) -> None:
    good = make_good_set(tmp_path / "docs")
    chat = await Chat.open(browser, server)
    await chat.send(files=[good["pdf"]])
    await chat.page.get_by_text("turbine-manual.pdf:").first.wait_for(timeout=120_000)
    await chat.send("How often must the Zephyr turbine be serviced?")
    first = await chat.wait_answers(1)
    assert "1200 operating hours" in first
    await asyncio.sleep(0.5)
    await chat.send("and who handles its warranty?")
    second = await chat.wait_answers(2)
    assert "Orion support desk" in second


async def test_welcome_says_what_the_knowledge_base_holds_and_offers_examples(
    server: str, browser: Any, tmp_path: Path
) -> None:
    good = make_good_set(tmp_path / "docs")
    first = await Chat.open(browser, server)
    await first.send(files=[good["html"]])
    await first.page.get_by_text("it-help.html:").first.wait_for(timeout=120_000)

    chat = await Chat.open(browser, server)  # a new session sees the documents
    welcome = chat.page.get_by_text("The knowledge base holds").first
    assert "documents" in await welcome.inner_text()
    example = chat.page.get_by_role("button", name="What does").first
    await example.wait_for(timeout=10_000)
    question = (await example.inner_text()).strip()
    await example.click()
    await chat.page.get_by_text(question).nth(1).wait_for(timeout=30_000)  # shown as the user's message
    answer = await chat.wait_answers(1)
    assert "Sources:" in answer


async def test_hybrid_search_switch_in_the_settings_panel(server: str, browser: Any, tmp_path: Path) -> None:
    """Hybrid search is on by default (Milvus Lite has BM25); the settings panel turns it off for the session."""
    good = make_good_set(tmp_path / "docs")
    chat = await Chat.open(browser, server)
    await chat.send(files=[good["md"]])
    # The module's server is shared: an earlier test may have uploaded this file already.
    await chat.page.get_by_text(re.compile(r"release\.md: (indexed|unchanged)")).first.wait_for(timeout=120_000)

    async def retrieve_report(question: str) -> str:
        await chat.ask(question)
        await chat.page.get_by_text("Used Retrieve").last.click()
        report = chat.page.locator(".step").filter(has_text="searches:").last
        await report.wait_for(timeout=10_000)
        return str(await report.inner_text())

    assert "[full text]" in await retrieve_report("When are production deployments frozen?")
    await chat.page.click("#chat-settings-open-modal")
    switch = chat.page.locator("#hybrid")
    assert await switch.get_attribute("aria-checked") == "true"
    await switch.click()
    await chat.page.get_by_role("button", name="Confirm").click()
    report = await retrieve_report("Who approves a release?")
    assert "[chunks]" in report and "[full text]" not in report
