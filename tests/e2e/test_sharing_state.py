"""Sharing state survives a reload: Chainlit's own Share dialog knows a thread is shared (issue 15, item 6).

The dialog decides between "Share" alone and "Share" + "Unshare" from `metadata.is_shared` of the thread in
the list `POST /project/threads` returns, so that metadata must arrive as a JSON object, on SQLite (a TEXT
column) as on PostgreSQL (JSONB).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.conftest import Chat
from tests.e2e.test_team import PASSWORDS, signed_in, team_env
from tests.fixtures.documents import make_good_set
from tests.servers import add_users, chainlit_server

QUESTION = "When are production deployments frozen?"


async def listed_metadata(chat: Chat, url: str, thread: str) -> Any:
    """The thread's `metadata` exactly as the history list sends it to the browser."""
    resp = await chat.page.context.request.post(
        url + "/project/threads", data={"pagination": {"first": 20}, "filter": {}}
    )
    assert resp.ok, await resp.text()
    return next(t for t in (await resp.json())["data"] if t["id"] == thread)["metadata"]


async def open_share_dialog(chat: Chat) -> Any:
    """The Share dialog of the newest thread, from its menu in the history sidebar."""
    await chat.page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await chat.page.locator("#thread-history #thread-options").first.click()
    await chat.page.get_by_role("menuitem", name="Share").click()
    dialog = chat.page.get_by_role("dialog")
    await dialog.get_by_role("button", name="Share", exact=True).wait_for(timeout=10_000)
    return dialog


async def shows_unshare(dialog: Any, timeout_ms: int = 5_000) -> bool:
    try:
        await dialog.get_by_role("button", name="Unshare", exact=True).wait_for(timeout=timeout_ms)
    except Exception:
        return False
    return True


async def in_sidebar(chat: Chat, name: str = QUESTION) -> None:
    """Wait until the history sidebar lists a new thread. Chainlit's frontend fetches the list when the first
    message is sent, and sometimes before the thread is stored ("No threads found"): a reload fetches again."""
    try:
        await chat.page.locator("#thread-history").get_by_text(name).first.wait_for(timeout=10_000)
    except Exception:
        await reloaded(chat)


async def reloaded(chat: Chat) -> None:
    await chat.page.reload()
    await chat.page.wait_for_selector("text=knowledge base", timeout=90_000)
    await chat.page.locator("#thread-history").get_by_text(QUESTION).first.wait_for(timeout=30_000)


async def test_the_share_dialog_knows_a_shared_thread_after_a_reload(
    browser: Any, tmp_path: Path, history_database: str
) -> None:
    data = tmp_path / "server"
    data.mkdir()
    add_users(history_database, [("alice", PASSWORDS["alice"], "member")])
    good = make_good_set(tmp_path / "docs")
    with chainlit_server(data, **(team_env(data) | {"RAG_DATABASE_URL": history_database})) as url:
        alice = await signed_in(browser, url, "alice")
        await alice.send(files=[good["md"]])
        await alice.page.get_by_text("release.md: indexed").first.wait_for(timeout=120_000)
        answer = await alice.ask(QUESTION)
        assert "Friday after 14:00" in answer
        resp = await alice.page.context.request.post(
            url + "/project/threads", data={"pagination": {"first": 20}, "filter": {}}
        )
        thread = (await resp.json())["data"][0]["id"]
        await in_sidebar(alice)

        dialog = await open_share_dialog(alice)
        assert not await shows_unshare(dialog, 1_000)  # not shared yet
        await dialog.get_by_role("button", name="Share", exact=True).click()
        await alice.page.get_by_text("Share link created").first.wait_for(timeout=10_000)
        await alice.page.keyboard.press("Escape")

        # After a reload the dialog still knows, and the list sends the metadata as an object.
        await reloaded(alice)
        dialog = await open_share_dialog(alice)
        assert await shows_unshare(dialog), "after a reload the Share dialog does not offer Unshare"
        await alice.page.keyboard.press("Escape")
        metadata = await listed_metadata(alice, url, thread)
        assert isinstance(metadata, dict), f"metadata is sent as {type(metadata).__name__}: {metadata!r}"
        assert metadata["is_shared"] is True and metadata.get("shared_at")
        assert set(metadata) <= {"chat_settings", "chat_profile", "is_shared", "shared_at"}

        # Reopened (resumed) the thread: still shared. Unsharing it there sticks, even though the resumed
        # session held the old sharing state and Chainlit writes the session back when the tab goes away.
        await alice.page.locator("#thread-history").get_by_text(QUESTION).first.click()
        await alice.page.get_by_text("Friday after 14:00").first.wait_for(timeout=30_000)
        dialog = await open_share_dialog(alice)
        assert await shows_unshare(dialog), "in a reopened thread the Share dialog does not offer Unshare"
        await dialog.get_by_role("button", name="Unshare", exact=True).click()
        await alice.page.get_by_text("Sharing disabled").first.wait_for(timeout=10_000)
        await reloaded(alice)  # the resumed session ends and is persisted
        await alice.page.wait_for_timeout(1_000)
        metadata = await listed_metadata(alice, url, thread)
        assert isinstance(metadata, dict) and not metadata.get("is_shared"), metadata
        dialog = await open_share_dialog(alice)
        assert not await shows_unshare(dialog, 2_000)
        await alice.page.context.close()
