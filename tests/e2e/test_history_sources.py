"""Sources stay clickable after the live answer: in a reopened conversation and in a shared one, on SQLite
and on PostgreSQL, served only to people who may read that conversation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Chat
from tests.e2e.test_team import PASSWORDS, signed_in, team_env, thread_ids
from tests.fixtures.documents import make_good_set
from tests.servers import add_users, chainlit_server


async def source_urls(chat: Chat, url: str, thread: str) -> list[str]:
    resp = await chat.page.context.request.get(f"{url}/project/thread/{thread}")
    assert resp.ok, await resp.text()
    return [str(e["url"]) for e in (await resp.json())["elements"] if e.get("display") == "side"]


async def test_reopened_and_shared_conversations_keep_clickable_sources(
    browser: Any, tmp_path: Path, history_database: str
) -> None:
    data = tmp_path / "server"
    data.mkdir()
    add_users(history_database, [("alice", PASSWORDS["alice"], "member"), ("bob", PASSWORDS["bob"], "member")])
    good = make_good_set(tmp_path / "docs")
    env = team_env(data) | {"RAG_DATABASE_URL": history_database}
    with chainlit_server(data, **env) as url:
        alice = await signed_in(browser, url, "alice")
        await alice.send(files=[good["pdf"], good["md"]])
        await alice.page.get_by_text("release.md: indexed").first.wait_for(timeout=120_000)
        await alice.page.get_by_text("turbine-manual.pdf: indexed").first.wait_for(timeout=120_000)
        assert "release.md" in (await alice.ask("When are production deployments frozen?")).lower()
        assert "turbine-manual.pdf" in (await alice.ask("Who handles warranty claims for the Zephyr turbine?")).lower()
        thread = (await thread_ids(alice, url))[0]

        # Reopened from the history: the same chips, and they open the passage and the PDF page.
        await alice.page.goto(f"{url}/thread/{thread}")
        await alice.page.get_by_text("Orion support desk").first.wait_for(timeout=60_000)
        await alice.page.wait_for_timeout(1500)
        assert await alice.page.locator("#side-view-content").count() == 0  # not opened by itself
        await alice.open_source("release.md", expect_text="frozen every Friday after 14:00")
        chip = alice.page.locator(".element-link").filter(has_text=re.compile(r"turbine-manual\.pdf p\.\d"))
        await chip.first.click()
        await alice.page.locator("#side-view-content canvas").first.wait_for(timeout=30_000)  # the PDF renders
        await alice.page.screenshot(path=str(tmp_path / "reopened.png"))

        # Stored once, served to the thread's author; not to a teammate while it is not shared.
        urls = await source_urls(alice, url, thread)
        assert urls and all(u.startswith("/sources/") for u in urls)
        pdf = await alice.page.context.request.get(url + next(u for u in urls))
        assert pdf.ok
        bob = await signed_in(browser, url, "bob")
        assert (await bob.page.context.request.get(url + urls[0])).status == 404
        anonymous = (await browser.new_context()).request
        assert (await anonymous.get(url + urls[0])).status == 401

        # Shared: a teammate sees the conversation with the same clickable sources.
        shared = await alice.page.context.request.put(
            url + "/project/thread/share", data={"threadId": thread, "isShared": True}
        )
        assert shared.ok, await shared.text()
        await bob.page.goto(f"{url}/share/{thread}")
        await bob.page.get_by_text("Orion support desk").first.wait_for(timeout=60_000)
        await bob.open_source("release.md", expect_text="frozen every Friday after 14:00")
        assert (await bob.page.context.request.get(url + urls[0])).ok
    # What the person attached is indexed, not stored again as a source of the conversation.
    blobs = [p.read_bytes() for p in (data / "sources" / "blobs").iterdir()]
    assert good["md"].read_bytes() not in blobs and any(b.startswith(b"%PDF") for b in blobs)
    log = (data / "server.log").read_text(encoding="utf-8", errors="replace")
    assert "No blob_storage_client" not in log and "create_element error" not in log
