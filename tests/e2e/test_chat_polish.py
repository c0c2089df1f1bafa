"""What a person sees around an answer: progress while files are indexed, readable source chips, a side
panel that opens on a click only, and plain words on every screen."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Chat
from tests.fixtures.documents import make_good_set

CHIP = re.compile(r"^\[\d+(, \d+)*\] [\w.-]+( p\.\d+)?$")  # `[1] debian.csv`, `[2, 4] bash.pdf p.57`


def big_text(path: Path, paragraphs: int = 1500) -> Path:
    path.write_text(
        "\n\n".join(f"Section {i}. Ledger batch {i} moves to cold storage after review." for i in range(paragraphs)),
        encoding="utf-8",
    )
    return path


async def in_view(page: Any, locator: Any) -> bool:
    box = await locator.bounding_box()
    height = (page.viewport_size or {}).get("height", 1000)
    return box is not None and box["y"] >= 0 and box["y"] + min(box["height"], 40) <= height


async def test_upload_progress_is_shown_open_at_the_bottom_then_becomes_the_summary(
    server: str, browser: Any, tmp_path: Path
) -> None:
    good = make_good_set(tmp_path / "docs")
    big = big_text(tmp_path / "ledger-handbook.txt")
    chat = await Chat.open(browser, server)
    await chat.send(files=[good["pdf"], big])  # a files-only message
    progress = chat.page.locator("[data-step-type='assistant_message']").filter(has_text="Indexing 2 files")
    await progress.first.wait_for(timeout=30_000)
    # While it runs: one line per file, in the last message, on screen near the input; no page-high preview.
    assert "ledger-handbook.txt:" in await progress.first.inner_text()
    assert await in_view(chat.page, progress.first)
    assert await chat.page.locator(".inline-pdf").count() == 0
    # The person's message says what they attached instead of being an empty bubble.
    mine = chat.page.locator("[data-step-type='user_message']").last
    assert "Attached: turbine-manual.pdf, ledger-handbook.txt" in await mine.inner_text()
    # Then the same message is the per-file summary.
    summary = chat.page.locator("[data-step-type='assistant_message']").filter(has_text="shared with the team")
    await summary.get_by_text("ledger-handbook.txt: indexed").first.wait_for(timeout=600_000)
    text = await summary.first.inner_text()
    assert "turbine-manual.pdf: indexed" in text and "Indexing 2 files" not in text
    await chat.page.screenshot(path=str(tmp_path / "upload.png"))


async def answered(browser: Any, server: str, tmp_path: Path) -> Chat:
    """A chat with the turbine manual and a CSV indexed and two questions answered."""
    good = make_good_set(tmp_path / "docs")
    chat = await Chat.open(browser, server)
    await chat.send(files=[good["pdf"], good["csv"]])
    for name in ("people.csv", "turbine-manual.pdf"):
        await chat.page.get_by_text(re.compile(re.escape(name) + ": (indexed|unchanged)")).first.wait_for(
            timeout=120_000
        )
    for question in ("Who handles warranty claims for the Zephyr turbine?", "Which city is Marta Kowalski in?"):
        await chat.ask(question)
    return chat


async def test_source_chips_read_as_file_names_one_per_source(server: str, browser: Any, tmp_path: Path) -> None:
    chat = await answered(browser, server, tmp_path)
    for answer in await chat.page.locator("[data-step-type='assistant_message']").filter(has_text="Sources:").all():
        labels = [str(t).strip() for t in await answer.locator(".element-link").all_inner_texts()]
        assert labels and all(CHIP.match(label) for label in labels), labels  # as written: no suffix, no capitals
        names = [re.sub(r"^\[[\d, ]+\] ", "", label) for label in labels]
        assert len(set(names)) == len(names), labels  # one chip per document and page


async def test_the_side_panel_opens_on_a_click_with_that_one_source(server: str, browser: Any, tmp_path: Path) -> None:
    chat = await answered(browser, server, tmp_path)
    await chat.page.wait_for_timeout(2000)  # Chainlit would have opened it by itself by now
    assert await chat.page.locator("#side-view-content").count() == 0

    # A click opens that one source under its own title; a PDF fits the panel's width.
    first = chat.page.locator("[data-step-type='assistant_message']").filter(has_text="Orion").last
    chip = first.locator(".element-link").filter(has_text="turbine-manual.pdf")
    label = str(await chip.first.inner_text()).strip()
    await chip.first.click()
    title = chat.page.locator("#side-view-title")
    await title.get_by_text(label, exact=True).wait_for(timeout=10_000)
    side = chat.page.locator("#side-view-content")
    assert await side.locator(":scope > *").count() == 1
    canvas = side.locator("canvas").first
    await canvas.wait_for(timeout=30_000)
    page_box = panel_box = None
    deadline = time.time() + 10
    while time.time() < deadline:  # pdf.js renders, then our CSS scales the page to the panel
        page_box, panel_box = await canvas.bounding_box(), await side.bounding_box()
        if page_box and panel_box and page_box["x"] + page_box["width"] <= panel_box["x"] + panel_box["width"] + 1:
            break
        await chat.page.wait_for_timeout(200)
    else:
        raise AssertionError(f"the PDF is wider than the panel: {page_box} in {panel_box}")
    await chat.page.screenshot(path=str(tmp_path / "source.png"))


async def test_plain_words_on_the_chat_screen(server: str, browser: Any, tmp_path: Path) -> None:
    good = make_good_set(tmp_path / "docs")
    first = await Chat.open(browser, server)
    await first.send(files=[good["md"]])
    await first.page.get_by_text(re.compile(r"release\.md: (indexed|unchanged)")).first.wait_for(timeout=120_000)

    chat = await Chat.open(browser, server)
    # Example questions are questions a person would ask, from a document's title and headings.
    example = chat.page.get_by_role("button", name=re.compile(r"^What does .+ (say about .+|cover)\?$"))
    await example.first.wait_for(timeout=10_000)
    names = [str(n) for n in await example.all_inner_texts()]
    assert any("say about" in n for n in names), names
    welcome = str(await chat.page.locator("[data-step-type='assistant_message']").first.inner_text())
    assert "Or try one of these" not in welcome  # it would dangle in a reopened conversation
    # No chat model is configured: the footer does not talk about LLMs.
    body = str(await chat.page.locator("body").inner_text())
    assert "LLMs can make mistakes" not in body and "check the cited sources" in body
    # The logo is the app's own.
    logo = await chat.page.context.request.get(server + "/logo?theme=light")
    assert logo.ok and b"Team Knowledge Assistant" in await logo.body()

    await chat.ask("When are production deployments frozen?")
    await chat.page.get_by_text("Used Rewrite").last.click()
    rewrite = chat.page.locator(".step").filter(has_text="Searched for").last
    await rewrite.wait_for(timeout=10_000)
    text = str(await rewrite.inner_text())
    assert "json" not in text.lower() and "production deployments frozen" in text.lower()
