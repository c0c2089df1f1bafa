"""A team on one deployment: sign-in, private and team documents, history after a restart, management."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Chat
from tests.fixtures.documents import make_good_set
from tests.servers import ROOT, add_users, app_env, chainlit_server

SECRET = "Project Nightingale will acquire Vega Robotics; the board code word is TANGERINE."
PASSWORDS = {"alice": "alice-password", "bob": "bob-password", "root": "root-password"}
AUTH_SECRET = "e2e-" + "s" * 60


def team_env(data: Path) -> dict[str, str]:
    return {"CHAINLIT_AUTH_SECRET": AUTH_SECRET, "RAG_DATABASE_URL": f"sqlite:///{data / 'app.db'}"}


@pytest.fixture(scope="module")
def team_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("team")
    add_users(
        f"sqlite+aiosqlite:///{data / 'app.db'}",
        [
            ("alice", PASSWORDS["alice"], "member"),
            ("bob", PASSWORDS["bob"], "member"),
            ("root", PASSWORDS["root"], "admin"),
        ],
    )
    return data


@pytest.fixture(scope="module")
def team_server(team_data: Path) -> Iterator[str]:
    with chainlit_server(team_data, **team_env(team_data)) as url:
        yield url


async def signed_in(browser: Any, url: str, user: str) -> Chat:
    """A fresh browser context (own cookies), signed in through the login form."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    chat = Chat(page)
    await page.goto(url)
    await page.wait_for_selector("#email", timeout=60_000)
    await page.fill("#email", user)
    await page.fill("#password", PASSWORDS[user])
    await page.get_by_role("button", name="Sign In").click()
    await page.wait_for_selector("text=knowledge base", timeout=90_000)
    return chat


async def test_sign_in_is_required_everywhere(team_server: str, browser: Any) -> None:
    # The API and file endpoints refuse anonymous requests.
    context = await browser.new_context()
    anonymous = context.request
    assert (await anonymous.get(team_server + "/user")).status == 401
    assert (await anonymous.post(team_server + "/project/threads", data={"pagination": {"first": 5}})).status == 401
    assert (await anonymous.get(team_server + "/project/file/x?session_id=y")).status == 401
    assert (await anonymous.get(team_server + "/project/thread/x")).status == 401

    page = await context.new_page()
    await page.goto(team_server)
    await page.wait_for_selector("#email", timeout=60_000)
    await page.fill("#email", "alice")
    await page.fill("#password", "not her password")
    await page.get_by_role("button", name="Sign In").click()
    await page.get_by_text("Wrong user name or password").first.wait_for(timeout=10_000)
    assert await page.locator("#chat-input").count() == 0
    await context.close()

    chat = await signed_in(browser, team_server, "alice")
    assert await chat.page.locator("#chat-input").count() == 1


async def set_upload_scope(chat: Chat, label: str) -> None:
    """Pick who sees new uploads in the settings panel."""
    await chat.page.click("#chat-settings-open-modal")
    await chat.page.locator("#scope").click()
    await chat.page.get_by_role("option", name=label).click()
    await chat.page.get_by_role("button", name="Confirm").click()


async def test_private_documents_stay_private_between_two_signed_in_users(
    team_server: str, browser: Any, tmp_path: Path
) -> None:
    good = make_good_set(tmp_path / "docs")
    secret = tmp_path / "nightingale.md"
    secret.write_text(f"# Nightingale\n\n{SECRET}\n", encoding="utf-8")
    alice = await signed_in(browser, team_server, "alice")
    bob = await signed_in(browser, team_server, "bob")

    await set_upload_scope(alice, "only me")
    await alice.send(files=[secret])
    await alice.page.get_by_text("nightingale.md: indexed").first.wait_for(timeout=120_000)
    await alice.page.get_by_text("visible to you only").first.wait_for(timeout=10_000)
    await bob.send(files=[good["md"]])  # Bob shares a team document
    await bob.page.get_by_text("release.md: indexed").first.wait_for(timeout=120_000)

    mine = await alice.ask("What is the board code word for Project Nightingale?")
    assert "TANGERINE" in mine and "nightingale.md" in mine.lower()
    theirs = await bob.ask("What is the board code word for Project Nightingale?")
    assert "TANGERINE" not in theirs and "nightingale" not in theirs.lower().replace("project nightingale?", "")
    sneaky = await bob.ask('TANGERINE" or scope == "private')
    assert "TANGERINE" not in sneaky.split("\n", 1)[-1]
    # Team documents are shared both ways.
    shared = await alice.ask("When are production deployments frozen?")
    assert "Friday after 14:00" in shared

    await bob.send("/docs")
    listing = bob.page.locator("[data-step-type='assistant_message']").filter(has_text="documents").last
    await listing.get_by_text("release.md").first.wait_for(timeout=30_000)
    assert "nightingale.md" not in (await listing.inner_text()).lower()
    # Typed commands follow the same rules: Alice cannot delete Bob's team document; Bob can re-index it.
    await alice.send("/delete release.md")
    await alice.page.get_by_text("no document named release.md that you can manage").first.wait_for(timeout=30_000)
    await bob.send("/reindex release.md")
    await bob.page.get_by_text("Re-indexed: release.md: unchanged").first.wait_for(timeout=60_000)


async def test_a_thread_reopened_after_a_restart_continues_with_its_settings_and_memory(
    browser: Any, tmp_path: Path, history_database: str
) -> None:
    data = tmp_path / "server"
    data.mkdir()
    add_users(history_database, [("alice", PASSWORDS["alice"], "member")])
    good = make_good_set(tmp_path / "docs")
    env = team_env(data) | {"RAG_DATABASE_URL": history_database}
    with chainlit_server(data, **env) as url:
        chat = await signed_in(browser, url, "alice")
        await chat.page.click("#chat-settings-open-modal")
        k = chat.page.get_by_role("slider").first  # sources per answer
        await k.press("Home")
        await k.press("ArrowRight")  # k = 2
        await chat.page.get_by_role("button", name="Confirm").click()
        await chat.send(files=[good["pdf"]])
        await chat.page.get_by_text("turbine-manual.pdf: indexed").first.wait_for(timeout=120_000)
        first = await chat.ask("How often must the Zephyr turbine be serviced?")
        assert "1200 operating hours" in first and "[3]" not in first  # k = 2
        await chat.page.context.close()

    with chainlit_server(data, **env) as url:  # a new process on the same data
        chat = await signed_in(browser, url, "alice")
        history = chat.page.locator("#thread-history")
        await history.get_by_text("How often must the Zephyr turbine").first.click()
        await chat.page.get_by_text("1200 operating hours").first.wait_for(timeout=30_000)  # the old turns
        follow_up = await chat.ask("and who handles its warranty?")
        assert "Orion support desk" in follow_up
        assert "[3]" not in follow_up  # the thread's settings came back with it
        # ... and its memory: the follow-up was read in the context of the first question.
        await chat.page.get_by_text("Used Rewrite").last.click()
        await chat.page.get_by_text("context: how often must the zephyr turbine", exact=False).first.wait_for(
            timeout=10_000
        )
        await chat.page.screenshot(path=str(tmp_path / "resumed.png"))


async def thread_ids(chat: Chat, url: str) -> list[str]:
    """The signed-in user's threads, newest first, through the app's own API (with the browser's cookie)."""
    resp = await chat.page.context.request.post(
        url + "/project/threads", data={"pagination": {"first": 20}, "filter": {}}
    )
    assert resp.ok, await resp.text()
    return [t["id"] for t in (await resp.json())["data"]]


async def share_dialog(chat: Chat, button: str) -> str:
    """Open the newest thread's menu, choose Share, press `button` (Share or Unshare); returns the link."""
    await chat.page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await chat.page.locator("#thread-history #thread-options").first.click()
    await chat.page.get_by_role("menuitem", name="Share").click()
    dialog = chat.page.get_by_role("dialog")
    link = await dialog.locator("span[title*='/share/']").get_attribute("title")
    await dialog.get_by_role("button", name=button, exact=True).click()
    done = "Share link created" if button == "Share" else "Sharing disabled"
    await chat.page.get_by_text(done).first.wait_for(timeout=10_000)
    await chat.page.keyboard.press("Escape")
    return str(link)


async def test_feedback_sharing_and_deleting_a_document(
    team_server: str, team_data: Path, browser: Any, tmp_path: Path
) -> None:
    good = make_good_set(tmp_path / "docs")
    alice = await signed_in(browser, team_server, "alice")
    bob = await signed_in(browser, team_server, "bob")
    await alice.send(files=[good["html"]])
    await alice.page.get_by_text("it-help.html: indexed").first.wait_for(timeout=120_000)
    answer = await alice.ask("How do I reset a forgotten VPN password?")
    assert "Helix portal" in answer and "it-help.html" in answer.lower()

    # Thumbs down with a comment is stored, and exported as an evaluation case.
    message = alice.page.locator("[data-step-type='assistant_message']").last
    await message.hover()
    await message.locator(".negative-feedback-off").click()
    await alice.page.locator("textarea").last.fill("should also cite the VPN runbook")
    await alice.page.get_by_role("button", name="Submit").click()
    await message.locator(".negative-feedback-on").wait_for(timeout=10_000)
    out = tmp_path / "cases.jsonl"
    env = app_env(team_data, **team_env(team_data))
    cmd = [sys.executable, "-m", "chains", "feedback", str(out)]
    done = await asyncio.to_thread(subprocess.run, cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    cases = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    case = next(c for c in cases if c["comment"] == "should also cite the VPN runbook")
    assert case["question"] == "How do I reset a forgotten VPN password?" and case["cited"] == ["it-help.html"]
    assert case["feedback"] == "down" and case["user"] == "alice" and case["sources"] == []

    # Sharing, through the thread's menu: read-only for signed-in teammates, never anonymous, revocable.
    thread = (await thread_ids(alice, team_server))[0]
    link = await share_dialog(alice, "Share")
    assert link.endswith(f"/share/{thread}")
    await bob.page.goto(link)
    await bob.page.get_by_text("Helix portal").first.wait_for(timeout=30_000)
    assert await bob.page.locator("#chat-input").count() == 0  # read-only
    anonymous = (await browser.new_context()).request
    assert (await anonymous.get(f"{team_server}/project/share/{thread}")).status == 401
    await share_dialog(alice, "Unshare")
    assert (await bob.page.context.request.get(f"{team_server}/project/share/{thread}")).status == 404
    # Bob cannot share (or unshare) Alice's thread.
    hijack = await bob.page.context.request.put(
        team_server + "/project/thread/share", data={"threadId": thread, "isShared": True}
    )
    assert not hijack.ok

    # Bob sees the team document but cannot delete it; Alice can, and then it is gone for everyone.
    await bob.page.goto(team_server)
    await bob.page.wait_for_selector("text=knowledge base", timeout=60_000)
    await bob.send("/docs")
    listing = bob.page.locator("[data-step-type='assistant_message']").filter(has_text="it-help.html").last
    await listing.wait_for(timeout=30_000)
    assert await listing.get_by_role("button", name="Delete it-help.html").count() == 0
    await alice.page.get_by_role("button", name="Documents").click()  # the composer's command, then send
    await alice.send()
    delete = alice.page.get_by_role("button", name="Delete it-help.html").last
    await delete.click()
    await alice.page.get_by_text("Deleted it-help.html").first.wait_for(timeout=30_000)
    after = await alice.ask("How do I reset a forgotten VPN password?")
    assert "it-help.html" not in after.lower() and "Helix portal" not in after
