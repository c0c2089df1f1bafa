"""The sign-in page in plain words: a user name (not an e-mail address), a wrong password said as such, the
app's own logo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.test_team import team_data, team_server  # noqa: F401 (fixtures)


async def test_the_sign_in_page_speaks_plainly(team_server: str, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(team_server)
    await page.wait_for_selector("#email", timeout=60_000)
    form = str(await page.locator("form").first.inner_text())
    assert "User name" in form and "Email" not in form
    assert await page.locator("#email").get_attribute("placeholder") == "your user name"
    logo = page.locator("img[alt='logo']").first
    source = await logo.get_attribute("src") if await logo.count() else None
    assert source is not None and "/logo" in source
    assert await page.locator("img[src$='/public/sign-in.svg']").count() == 1  # not Chainlit's artwork
    served = await context.request.get(team_server + "/logo?theme=light")
    assert b"Team Knowledge Assistant" in await served.body()  # not Chainlit's logo

    await page.fill("#email", "alice")
    await page.fill("#password", "not her password")
    await page.get_by_role("button", name="Sign In").click()
    await page.get_by_text("Wrong user name or password").first.wait_for(timeout=10_000)
    await page.wait_for_timeout(1000)  # a toast would have appeared by now
    visible = str(await page.locator("body").inner_text())
    assert "Unauthorized" not in visible and "credentialssignin" not in visible
    await page.screenshot(path=str(tmp_path / "sign-in.png"))
    await context.close()
