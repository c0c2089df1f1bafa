"""A real Chainlit server and a real browser (Playwright driving Debian's Chromium)."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import chainlit_server, postgres_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
ARGS = [
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app on its embedded defaults (no chat model: extractive answers)."""
    with chainlit_server(tmp_path_factory.mktemp("server")) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def history_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Chat history on the default SQLite file, and on a real PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    else:
        with postgres_server() as url:
            yield url


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not HAVE_CHROMIUM:
        pytest.skip("needs Debian's chromium (`make test` installs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        await b.close()


class Chat:
    """One person's browser tab on the app."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.frames: list[str] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda f: self.frames.append(str(f))))

    @classmethod
    async def open(cls, browser: Any, url: str) -> Chat:
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        chat = cls(page)
        await page.goto(url)
        await page.wait_for_selector("text=knowledge base", timeout=90_000)
        return chat

    def stream_tokens(self) -> int:
        return sum(1 for f in self.frames if "stream_token" in f)

    async def send(self, text: str = "", files: list[Path] | None = None) -> None:
        if files:
            await self.page.set_input_files("#upload-button-input", [str(f) for f in files])
            for f in files:  # attachments uploaded before sending
                await self.page.locator("#attachments").get_by_text(f.name).first.wait_for(timeout=30_000)
        if text:
            await self.page.fill("#chat-input", text)
        submit = self.page.locator("#chat-submit")
        deadline = time.time() + 60
        while not await submit.is_enabled() and time.time() < deadline:
            await self.page.wait_for_timeout(100)
        if not await submit.is_enabled():  # say what held it: an empty input, or a task still running
            typed = await self.page.locator("#chat-input").input_value()
            running = await self.page.locator("#stop-button").count() > 0
            events = [f.split(",")[0][-40:] for f in self.frames[-8:]]
            raise AssertionError(
                f"Send stayed disabled for 60 s: input {typed!r}, a task running (Stop shown): {running}, "
                f"last socket frames: {events}"
            )
        await submit.click()

    async def open_source(self, label: str, expect_text: str) -> None:
        """Click the citation link named `label`; the side panel must show that one source."""
        await self.page.wait_for_timeout(1600)  # as a person would: the app closes what Chainlit opens by itself
        await self.page.locator(".element-link").filter(has_text=label).first.click()
        title = self.page.locator("#side-view-title")
        await title.filter(has_text=label).wait_for(timeout=10_000)
        side = self.page.locator("#side-view-content")
        await side.get_by_text(expect_text).first.wait_for(timeout=15_000)
        assert await side.locator(":scope > *").count() == 1  # just the clicked source, not all of them

    async def ask(self, question: str, timeout_s: float = 120) -> str:
        """Send a question and return the complete answer (with its Sources line, or the nothing-found text)."""
        messages = self.page.locator("[data-step-type='assistant_message']")
        before = await messages.count()
        await self.send(question)
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if await messages.count() > before:
                text = str(await messages.last.inner_text())
                if "Sources:" in text or "could not find anything" in text:
                    return text
            await self.page.wait_for_timeout(200)
        raise AssertionError(f"no answer to {question!r} within {timeout_s} s")

    async def wait_answers(self, n: int, timeout_ms: int = 120_000, marker: str = "extracted, not generated") -> str:
        """Wait until the n-th answer (an assistant message containing `marker`) has its Sources line."""
        every = self.page.locator("[data-step-type='assistant_message']")
        answers = every.filter(has_text=marker)
        try:
            await answers.nth(n - 1).get_by_text("Sources:").wait_for(timeout=timeout_ms)
        except Exception as error:  # say what the chat showed instead
            shown = [str(t)[:300] for t in (await every.all_inner_texts())[-3:]]
            raise AssertionError(
                f"answer {n} with {marker!r} and its Sources line not shown in {timeout_ms / 1000:.0f} s; "
                f"the last messages: {shown}; last socket frames: {[f[:120] for f in self.frames[-6:]]}"
            ) from error
        return str(await answers.nth(n - 1).inner_text())
