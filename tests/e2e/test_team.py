"""A team on one deployment: sign-in, private and team documents, history after a restart, management."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ARGS, Chat
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
    # Pages, API and file endpoints refuse anonymous requests.
    for path in ("/user", "/project/threads", "/project/file/x?session_id=y"):
        method = "POST" if path == "/project/threads" else "GET"
        request = urllib.request.Request(team_server + path, method=method, data=b"{}" if method == "POST" else None)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=10)
        assert err.value.code in (401, 403, 422), path

    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(team_server)
    await page.wait_for_selector("#email", timeout=60_000)
    await page.fill("#email", "alice")
    await page.fill("#password", "not her password")
    await page.get_by_role("button", name="Sign In").click()
    await page.get_by_text("credentials", exact=False).first.wait_for(timeout=10_000)
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


async def test_a_thread_reopened_after_a_restart_continues_with_its_settings_and_memory(
    browser: Any, tmp_path: Path
) -> None:
    data = tmp_path / "server"
    data.mkdir()
    add_users(f"sqlite+aiosqlite:///{data / 'app.db'}", [("alice", PASSWORDS["alice"], "member")])
    good = make_good_set(tmp_path / "docs")
    with chainlit_server(data, **team_env(data)) as url:
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

    with chainlit_server(data, **team_env(data)) as url:  # a new process on the same data
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
