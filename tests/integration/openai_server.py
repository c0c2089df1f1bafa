"""A local OpenAI-compatible chat server (real HTTP, real SSE streaming) for the generative path."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from tests.servers import free_port


class ScriptedModel:
    """Answers by the kind of prompt it receives and records every request."""

    def __init__(self, token_delay: float = 0.0, answer_repeats: int = 1) -> None:
        self.requests: list[dict[str, Any]] = []
        self.token_delay = token_delay  # seconds between streamed tokens (a slow model)
        self.answer_repeats = answer_repeats
        # How the next requests fail, in order: "429", "500", "hang" or "cut" (stream a few words, then drop).
        self.failures: list[str | None] = []
        self.always: str | None = None  # fail every request this way

    def next_failure(self) -> str | None:
        return self.failures.pop(0) if self.failures else self.always

    def reply(self, messages: list[dict[str, Any]]) -> str:
        system = str(messages[0].get("content", "")) if messages else ""
        if "standalone question" in system:
            return "What is the warranty process for the Zephyr turbine?"
        if "search queries" in system:
            return "1. Zephyr turbine warranty claims\n2. turbine support desk\n3. Zephyr turbine warranty claims"
        if "numbered sources" in system:
            answer = "Warranty claims go to the Orion support desk in Oslo [1]. Service is every 1200 hours [2]."
            return " ".join([answer] * self.answer_repeats)
        return "ok"


def make_app(model: ScriptedModel) -> Starlette:
    async def chat(request: Request) -> Any:
        body = await request.json()
        model.requests.append(body)
        text = model.reply(body["messages"])
        base = {"id": "chatcmpl-1", "created": int(time.time()), "model": body.get("model", "stub")}
        failure = model.next_failure()
        if failure in ("429", "500") or (failure == "cut" and not body.get("stream")):
            status = 429 if failure == "429" else 500
            error = {"error": {"message": "scripted failure", "type": "server_error", "code": status}}
            return JSONResponse(error, status_code=status, headers={"retry-after-ms": "10"})
        if failure == "hang":
            await asyncio.sleep(3600)
        if not body.get("stream"):
            return JSONResponse(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            )

        async def events() -> AsyncIterator[str]:
            words = text.split(" ")
            for i, w in enumerate(words):
                delta = {"content": w if i == 0 else " " + w}
                if i == 0:
                    delta["role"] = "assistant"
                chunk = {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                }
                yield f"data: {json.dumps(chunk)}\n\n"
                if failure == "cut" and i == 3:
                    raise ConnectionResetError("scripted: the stream is cut")  # uvicorn drops the connection
                if model.token_delay:
                    await asyncio.sleep(model.token_delay)
            end = {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            yield f"data: {json.dumps(end)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


@contextmanager
def serve(model: ScriptedModel) -> Iterator[str]:
    """Run the server on a free loopback port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(make_app(model), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
