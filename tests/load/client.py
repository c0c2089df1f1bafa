"""A chat client that speaks Chainlit's socket protocol, as the browser does (no browser needed)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import socketio

MIME = {
    ".md": "text/markdown",
    ".txt": "text/plain",
    ".csv": "text/csv",
    ".html": "text/html",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}


@dataclass
class Reply:
    """What one message produced, once the server said the task ended."""

    text: str
    seconds: float
    first_token_s: float | None
    errors: list[str] = field(default_factory=list)
    tokens: int = 0  # stream_token events received
    ids: list[str] = field(default_factory=list)  # the assistant messages' step ids, in order


QUIET_S = 0.5


class ChatClient:
    """One user: a socket session, messages in, streamed steps out."""

    def __init__(
        self,
        url: str,
        session_id: str | None = None,
        headers: dict[str, str] | None = None,
        thread_id: str | None = None,
    ) -> None:
        self.url = url
        self.session_id = session_id or str(uuid.uuid4())
        self.headers = headers or {}  # e.g. the sign-in cookie, or an Origin
        self.thread_id = thread_id  # set by the server's first_interaction event, or a thread to resume
        self.element_keys: list[str] = []  # files the server made for the answers' elements (sources)
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.sio.on("*", self._record)

    async def _record(self, event: str, data: Any = None) -> None:
        if event == "first_interaction" and isinstance(data, dict) and data.get("thread_id"):
            self.thread_id = str(data["thread_id"])
        if event == "element" and isinstance(data, dict) and data.get("chainlitKey"):
            self.element_keys.append(str(data["chainlitKey"]))
        self.events.put_nowait((event, data))

    async def connect(self, wait_s: float = 120) -> str:
        """Open the session and return the welcome message."""
        auth = {"clientType": "webapp", "sessionId": self.session_id, "threadId": self.thread_id, "userEnv": "{}"}
        await self.sio.connect(
            self.url, socketio_path="/ws/socket.io", transports=["websocket"], auth=auth, headers=dict(self.headers)
        )  # a copy: the socket client takes the Cookie header out of the dict it is given
        await self.sio.emit("connection_successful")
        reply = await self._collect(time.monotonic(), wait_s, until_message=True)
        return reply.text

    async def close(self) -> None:
        await self.sio.disconnect()

    async def ask(self, text: str, file_ids: list[dict[str, str]] | None = None, wait_s: float = 300) -> Reply:
        """Send a message (with uploaded files) and wait until the server's task ends."""
        started = await self.send(text, file_ids)
        return await self._collect(started, wait_s)

    async def send(self, text: str, file_ids: list[dict[str, str]] | None = None) -> float:
        """Send a message without waiting; what the server sends back arrives in `events`."""
        while not self.events.empty():
            self.events.get_nowait()
        message = {
            "id": str(uuid.uuid4()),
            "threadId": "",
            "name": "User",
            "type": "user_message",
            "output": text,
            "createdAt": "",
        }
        started = time.monotonic()
        await self.sio.emit("client_message", {"message": message, "fileReferences": file_ids or []})
        return started

    async def upload(self, path: Path, name: str | None = None) -> dict[str, str]:
        """Upload a file for the next message, as the paperclip does (under `name`, if given)."""
        async with httpx.AsyncClient(base_url=self.url, timeout=120) as web:
            data = await asyncio.to_thread(path.read_bytes)
            files = {"file": (name or path.name, data, MIME.get(path.suffix, "text/plain"))}
            resp = await web.post(
                "/project/file", params={"session_id": self.session_id}, files=files, headers=self.headers
            )
            resp.raise_for_status()
            return {"id": str(resp.json()["id"])}

    async def _collect(self, started: float, wait_s: float, until_message: bool = False) -> Reply:
        outputs: dict[str, str] = {}
        order: list[str] = []
        errors: list[str] = []
        first_token: float | None = None
        tokens = 0
        deadline = started + wait_s
        ended = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                errors.append("timed out waiting for the answer")
                break
            try:
                # python-socketio dispatches each event in its own task, so "task_end" can overtake the
                # last message: after it, keep listening until the socket has been quiet for a moment.
                event, data = await asyncio.wait_for(self.events.get(), QUIET_S if ended else remaining)
            except TimeoutError:
                if ended:
                    break
                continue
            if event == "stream_token" and isinstance(data, dict):
                first_token = first_token or time.monotonic() - started
                tokens += 1
                outputs[data["id"]] = outputs.get(data["id"], "") + data.get("token", "")
            elif event in ("new_message", "update_message", "stream_start") and isinstance(data, dict):
                if data.get("type") == "assistant_message":
                    if data["id"] not in outputs:
                        order.append(data["id"])
                    outputs[data["id"]] = data.get("output") or outputs.get(data["id"], "")
                    if data.get("isError"):
                        errors.append(str(data.get("output")))
                    if until_message and event == "new_message":
                        break
            elif event == "task_end" and not until_message and order:  # a stray task_end answers nothing
                ended = True
        text = "\n\n".join(outputs[i] for i in order)
        return Reply(text, time.monotonic() - started, first_token, errors, tokens, order)
