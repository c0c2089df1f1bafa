"""The chat with a real (local) OpenAI-compatible model server: generated answers stream, Stop works."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Chat
from tests.fixtures.documents import make_good_set
from tests.integration.openai_server import ScriptedModel, serve
from tests.servers import chainlit_server


@pytest.fixture(scope="module")
def model() -> ScriptedModel:
    return ScriptedModel(token_delay=0.05, answer_repeats=12)  # ~20 tokens/s, ~200 tokens


CANARY = "sk-canary-must-never-be-logged-1234567890"


@pytest.fixture(scope="module")
def server_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("llm-server")


@pytest.fixture(scope="module")
def model_server(server_data: Path, model: ScriptedModel) -> Iterator[str]:
    env = {"OPENAI_BASE_URL": "", "RAG_CHAT_MODEL": "local-test", "OPENAI_API_KEY": CANARY, "RAG_REQUEST_TIMEOUT": "20"}
    with serve(model) as base_url, chainlit_server(server_data, **(env | {"OPENAI_BASE_URL": base_url})) as url:
        yield url


async def test_generated_answer_streams_and_stop_cancels_it(
    model_server: str, model: ScriptedModel, server_data: Path, browser: Any, tmp_path: Path
) -> None:
    good = make_good_set(tmp_path / "docs")
    chat = await Chat.open(browser, model_server)
    # A first message with files only: Chainlit 2.12 alone would then never show Stop in this session
    # (its `first_interaction` is empty); the app re-announces the interaction after the upload.
    await chat.send(files=[good["pdf"]])
    await chat.page.get_by_text("turbine-manual.pdf: indexed").first.wait_for(timeout=120_000)
    await chat.send("Who handles warranty claims for the turbine?")
    await chat.page.get_by_text("Warranty claims go to the Orion").first.wait_for(timeout=60_000)
    stop = chat.page.locator("#stop-button")
    await stop.wait_for(timeout=10_000)
    await stop.click()
    await chat.page.locator("#chat-submit").wait_for(timeout=10_000)  # the composer is usable again
    tokens_at_stop = chat.stream_tokens()
    await chat.page.wait_for_timeout(1500)
    assert chat.stream_tokens() - tokens_at_stop <= 2  # nothing more streams after Stop
    text = await chat.page.locator("[data-step-type='assistant_message']").last.inner_text()
    assert text.count("Orion support desk") < model.answer_repeats  # cut short

    # The session still works: the next question gets a full generated answer with its sources.
    model.answer_repeats = 1
    await chat.send("And the service interval?")
    # The stopped answer holds the same opening (and, if Stop landed late, "Service is every ..."), so
    # the full answer is the second message with that opening, not the first with any later phrase.
    answer = await chat.wait_answers(2, marker="Warranty claims go to the Orion")
    assert "Service is every 1200 hours [2]" in answer
    assert "turbine-manual.pdf" in answer.lower()
    assert model.requests[-1]["stream"] is True
    # A quiet log: Stop closed the stream (no "ignored GeneratorExit"), no keepalive GOAWAYs from Milvus
    # Lite, no faiss loader lines.
    log = (server_data / "server.log").read_text(encoding="utf-8", errors="replace")
    for noise in ("GeneratorExit", "too_many_pings", "swigfaiss", "Traceback"):
        assert noise not in log, f"{noise!r} in the server log"


async def test_a_failing_model_server_gives_a_plain_answer_and_no_secret_reaches_the_log(
    model_server: str, model: ScriptedModel, server_data: Path, browser: Any, tmp_path: Path
) -> None:
    good = make_good_set(tmp_path / "docs")
    chat = await Chat.open(browser, model_server)
    await chat.send(files=[good["pdf"]])
    await chat.page.get_by_text("turbine-manual.pdf:").first.wait_for(timeout=120_000)
    model.always, model.answer_repeats = "500", 1
    try:
        answer = await chat.ask("Who handles warranty claims for the turbine?")
    finally:
        model.always = None
    assert answer.startswith("The model server returned an error (HTTP 500).")
    assert "Orion support desk" in answer and "turbine-manual.pdf" in answer.lower()
    assert "Traceback" not in answer
    # The key was sent to the model server (it is how it authenticates) but never written to the log.
    assert model.requests and CANARY not in (server_data / "server.log").read_text()
