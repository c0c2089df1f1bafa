"""Limits in front of Chainlit: upload bodies bounded before they are read, uploads never sent forgotten,
sign-in attempts throttled."""

from __future__ import annotations

import contextlib
import json
import time
from urllib.parse import parse_qs

from starlette.requests import Request

from core.throttle import SignInThrottle
from core.users import UserError, normalize_identifier
from ui.edge import ASGIApp, Message, Receive, Scope, Send, header, reply
from ui.uploads import UploadLedger

MAX_FORM_BYTES = 64 * 1024


class BoundedUploads:
    """Refuse an upload body over the limit before it is read into memory, whether or not it says its length."""

    def __init__(self, app: ASGIApp, limit_bytes: int, root: str = "") -> None:
        self.app, self.limit, self.path = app, limit_bytes, root + "/project/file"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            return await self.app(scope, receive, send)
        too_big = f"Files larger than {self.limit // 2**20} MB cannot be uploaded."
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await reply(send, 413, too_big, [(b"connection", b"close")])
        seen = 0
        over = replied = False

        async def counted() -> Message:
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:  # stop reading: the rest stays in the client's socket, not in memory
                over = True
                return {"type": "http.disconnect"}
            return message

        async def answered(message: Message) -> None:
            nonlocal replied
            if not over:
                await send(message)
            elif message["type"] == "http.response.start" and not replied:  # whatever the parser made of it
                replied = True
                await reply(send, 413, too_big, [(b"connection", b"close")])

        try:
            await self.app(scope, counted, answered)
        except Exception:
            if not over:
                raise
        if over and not replied:
            await reply(send, 413, too_big, [(b"connection", b"close")])


class LedgerUploads:
    """Note every file the browser uploads (session, file id, time), so the ones never sent can be removed."""

    def __init__(self, app: ASGIApp, ledger: UploadLedger, root: str = "") -> None:
        self.app, self.ledger, self.path = app, ledger, root + "/project/file"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            return await self.app(scope, receive, send)
        session = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_id") or [""])[0]
        status, body = 0, b""

        async def noted(message: Message) -> None:
            nonlocal status, body
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status == 200:
                body += message.get("body", b"")
                if not message.get("more_body"):
                    with contextlib.suppress(ValueError, KeyError, TypeError):  # not the answer we know
                        self.ledger.uploaded(session, str(json.loads(body)["id"]), time.time())
            await send(message)

        await self.app(scope, receive, noted)


class ThrottledSignIn:
    """Password sign-ins slowed per client address and name (core.throttle); a wait is answered with 429
    before the password is even checked. The address is the proxy's X-Forwarded-For when uvicorn trusts it."""

    def __init__(self, app: ASGIApp, throttle: SignInThrottle, root: str = "") -> None:
        self.app, self.throttle, self.path = app, throttle, root + "/login"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more and len(body) <= MAX_FORM_BYTES:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if more:
            return await reply(send, 413, "The sign-in form is too large.")
        name = await _form_username(scope, body)
        client = scope.get("client")
        address = str(client[0]) if client else ""
        if wait := self.throttle.wait_s(address, name):
            detail = f"Too many failed sign-ins from here. Try again in {wait} seconds."
            return await reply(send, 429, detail, [(b"retry-after", str(wait).encode())])
        attempt = self.throttle.failed(address, name)  # counted now: parallel guesses all count

        async def observed(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                self.throttle.succeeded(address, name, attempt)
            await send(message)

        await self.app(scope, _replay(body, receive), observed)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


async def _form_username(scope: Scope, body: bytes) -> str:
    """The user name in a sign-in form, url-encoded or multipart (the browser sends FormData), as the user
    list spells names; the last value when repeated, as FastAPI reads it."""
    try:
        form = await Request(scope, _replay(body, _no_more)).form()
        raw = str(form.getlist("username")[-1]) if form.getlist("username") else ""
    except Exception:  # an unreadable form: the route will refuse it too
        raw = ""
    try:
        return normalize_identifier(raw)
    except UserError:
        return raw.strip().lower()[:128]


async def _no_more() -> Message:
    return {"type": "http.disconnect"}
