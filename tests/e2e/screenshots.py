"""Retake the README's screenshots from a real session: `python -m tests.e2e.screenshots [FOLDER]`.

Starts the app with sign-in on a fresh data folder, then drives Debian's Chromium through what a person does:
sign in, attach files, ask, open a source, reopen the conversation from the history, list the documents and
share the conversation.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.e2e.conftest import ARGS, CHROMIUM, Chat
from tests.e2e.test_chat_polish import big_text
from tests.e2e.test_team import PASSWORDS, team_env, thread_ids
from tests.fixtures.documents import make_good_set
from tests.servers import add_users, chainlit_server

VIEWPORT: Any = {"width": 1400, "height": 900}


def prepare(out: Path) -> tuple[Path, dict[str, Path], Path]:
    """A fresh data folder with one user, the documents to attach, and a handbook big enough to watch."""
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="screenshots-"))
    data = work / "server"
    data.mkdir()
    add_users(f"sqlite+aiosqlite:///{data / 'app.db'}", [("alice", PASSWORDS["alice"], "member")])
    return data, make_good_set(work / "docs"), big_text(work / "records-handbook.txt", 3000)


async def take(out: Path) -> None:
    from playwright.async_api import async_playwright

    data, good, handbook = prepare(out)
    with chainlit_server(data, **team_env(data)) as url:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            context = await browser.new_context(viewport=VIEWPORT)
            page = await context.new_page()
            chat = Chat(page)
            await page.goto(url)
            await page.wait_for_selector("#email", timeout=60_000)
            await page.fill("#email", "alice")
            await page.screenshot(path=str(out / "4-sign-in.png"))
            await page.fill("#password", PASSWORDS["alice"])
            await page.get_by_role("button", name="Sign In").click()
            await page.wait_for_selector("text=knowledge base", timeout=90_000)

            await chat.send(files=[good["pdf"], good["md"], good["csv"], handbook])
            await page.get_by_text("turbine-manual.pdf: indexed").first.wait_for(timeout=120_000)
            await page.screenshot(path=str(out / "1-upload.png"))  # the handbook is still being indexed
            await page.get_by_text("records-handbook.txt: indexed").first.wait_for(timeout=600_000)

            await chat.ask("Who handles warranty claims for the Zephyr turbine?")
            await page.get_by_text("Used Rewrite").last.click()
            await page.wait_for_timeout(500)
            await page.screenshot(path=str(out / "2-answer-with-steps.png"))
            last = page.locator("[data-step-type='assistant_message']").last
            await page.wait_for_timeout(1000)
            await last.locator(".element-link").first.click()
            await page.locator("#side-view-content canvas").first.wait_for(timeout=30_000)
            await page.wait_for_timeout(1000)
            await page.screenshot(path=str(out / "3-source-panel.png"))

            await chat.ask("When are production deployments frozen?")
            thread = (await thread_ids(chat, url))[0]
            await page.goto(f"{url}/thread/{thread}")
            await page.get_by_text("Orion support desk").first.wait_for(timeout=60_000)
            await page.wait_for_timeout(2000)
            await chat.open_source("release.md", expect_text="frozen every Friday")
            await page.wait_for_timeout(1000)  # the panel slides in
            await page.screenshot(path=str(out / "7-reopened.png"))

            await chat.send("/docs")
            await page.get_by_text("Buttons are shown").first.wait_for(timeout=30_000)
            await page.screenshot(path=str(out / "5-documents.png"))

            await page.locator("#thread-history #thread-options").first.click()
            await page.get_by_role("menuitem", name="Share").click()
            await page.get_by_role("dialog").wait_for(timeout=10_000)
            await page.screenshot(path=str(out / "6-share.png"))
            await browser.close()


if __name__ == "__main__":
    asyncio.run(take(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/screenshots")))
