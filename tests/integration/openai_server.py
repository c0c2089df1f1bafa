"""A local OpenAI-compatible server (real HTTP, real SSE streaming): chat for the generative path, and
embeddings with a fixed latency per request, for benchmarks that stand in for a remote provider.

    python -m tests.integration.openai_server --port 8100 --first-token-s 0.2 --embed-latency-s 0.1
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import zlib
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

    def __init__(
        self,
        token_delay: float = 0.0,
        answer_repeats: int = 1,
        first_token_delay: float = 0.0,
        embed_latency: float = 0.0,
        embed_dim: int = 384,
    ) -> None:
        self.requests: list[dict[str, Any]] = []
        self.token_delay = token_delay  # seconds between streamed tokens (a slow model)
        self.first_token_delay = first_token_delay  # seconds before the first token (or a whole reply)
        self.embed_latency = embed_latency  # seconds per embeddings request, however many inputs
        self.embed_dim = embed_dim
        self.embed_requests = 0
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
        if model.first_token_delay:
            await asyncio.sleep(model.first_token_delay)
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

    async def embeddings(request: Request) -> Any:
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        model.embed_requests += 1
        if model.embed_latency:
            await asyncio.sleep(model.embed_latency)
        data = [
            {"object": "embedding", "index": i, "embedding": hashed_vector(str(t), model.embed_dim)}
            for i, t in enumerate(texts)
        ]
        usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
        return JSONResponse({"object": "list", "data": data, "model": body.get("model", "stub"), "usage": usage})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
        ]
    )


def hashed_vector(text: str, dim: int) -> list[float]:
    """A deterministic bag-of-words vector: texts sharing words are near each other."""
    vector = [0.0] * dim
    for word in text.lower().split():
        vector[zlib.crc32(word.encode()) % dim] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


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


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.integration.openai_server", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--first-token-s", type=float, default=0.0)
    parser.add_argument("--token-s", type=float, default=0.0)
    parser.add_argument("--embed-latency-s", type=float, default=0.0)
    args = parser.parse_args()
    model = ScriptedModel(
        token_delay=args.token_s, first_token_delay=args.first_token_s, embed_latency=args.embed_latency_s
    )
    uvicorn.run(make_app(model), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
