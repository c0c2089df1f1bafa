"""In a real browser: hostile document names and passages are shown as text, and nothing is fetched from
another origin because of them (SECURITY.md, item 5)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.conftest import Chat
from tests.load.client import ChatClient
from tests.servers import chainlit_server


@pytest.fixture(scope="module")
def beacon() -> Iterator[tuple[str, list[str]]]:
    """Another origin that counts every request a browser sends it."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()


async def test_hostile_names_and_passages_render_as_text(
    browser: Any, beacon: tuple[str, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    origin, hits = beacon
    data = tmp_path_factory.mktemp("names")
    phish = f"[Session expired - sign in again]({origin}/phish).md"
    tracker = f"![b]({origin}/beacon.png).md"
    text = (
        "# Vault\n\nThe Kestrel vault door code is rotated every 45 days by the Halcyon security desk. "
        f'![chart]({origin}/inline.png) See [the policy]({origin}/policy) or <img src="{origin}/html.png"> '
        f"and {origin}/bare for details.\n"
    )
    with chainlit_server(data) as url:
        uploader = ChatClient(url, headers={"Origin": url})
        await uploader.connect()
        refs = []
        for i, name in enumerate([phish, tracker]):  # names a script can send (a file picker cannot)
            path = data / f"doc{i}.md"
            path.write_text(text if i == 0 else "# Tracker\n\nThe cafeteria opens at 07:30 on weekdays.\n")
            refs.append(await uploader.upload(path, name=name))
        reply = await uploader.ask("", file_ids=refs)
        await uploader.close()
        assert reply.text.count("indexed") >= 2, reply.text

        chat = await Chat.open(browser, url)
        await chat.send("/docs")
        listing = chat.page.locator("[data-step-type='assistant_message']").filter(has_text="Session expired")
        await listing.first.wait_for(timeout=60_000)
        answer = await chat.ask("Who rotates the Kestrel vault door code?")
        assert "Halcyon" in answer
        await chat.page.locator(".element-link").first.click()
        await chat.page.locator("#side-view-content").get_by_text("Halcyon", exact=False).first.wait_for(timeout=15_000)
        await chat.page.wait_for_timeout(1000)
        links = await chat.page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        images = await chat.page.eval_on_selector_all("img[src]", "els => els.map(e => e.src)")
        assert not [h for h in links if h.startswith(origin)], links
        assert not [s for s in images if s.startswith(origin)], images
        assert hits == [], hits
        body = await chat.page.locator("body").inner_text()
        assert "[Session expired - sign in again]" in body  # the name, shown as the text it is
