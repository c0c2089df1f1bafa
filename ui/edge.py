"""HTTP guards in front of Chainlit: headers on every response, safe file downloads, trusted hosts,
same-origin writes, removed users out. (Request sizes and sign-in rates: ui/limits.py.)

Each is a small ASGI middleware; `ui.guards.install` puts them around Chainlit's FastAPI app in one order.
"""

from __future__ import annotations

import hashlib
import json
import re
from base64 import b64encode
from collections.abc import Awaitable, Callable
from typing import Any

from ui.origins import host_allowed, origin_allowed
from ui.tokens import expired_cookies

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Chainlit's page needs inline styles and its one inline boot script (allowed by hash); everything else is
# the app's own origin. Images only from the app or data: URLs, so no passage or name can make a browser
# fetch from elsewhere; no framing by other sites.
POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' blob: {hashes}; "
    "style-src 'self' 'unsafe-inline' https://fonts.googleapis.com https://cdn.jsdelivr.net; "
    "font-src 'self' data: https://fonts.gstatic.com https://cdn.jsdelivr.net; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
)
# A file a session uploaded is served only as one of these; anything else (HTML, SVG, scripts) is a download.
INLINE_TYPES = ("application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp", "text/plain", "text/csv")
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def reply(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    extra = headers or []
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


def script_hashes(page: str) -> str:
    """CSP sources for the inline scripts of Chainlit's page (computed once, from the page as it is served)."""
    scripts = _INLINE_SCRIPT.findall(page.encode())
    return " ".join(f"'sha256-{b64encode(hashlib.sha256(s).digest()).decode()}'" for s in scripts)


class SecurityHeaders:
    """CSP, nosniff and framing rules on every response; uploaded files never served as active content;
    the sign-in cookie marked Secure when the request came over HTTPS (directly or through the proxy)."""

    def __init__(self, app: ASGIApp, hashes: str, root: str = "") -> None:
        self.app, self.policy, self.files = app, POLICY.format(hashes=hashes).encode(), root + "/project/file/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        is_file = scope["path"].startswith(self.files)
        https = scope.get("scheme") == "https"

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": self._headers(message["headers"], is_file, https)}
            await send(message)

        await self.app(scope, receive, secured)

    def _headers(self, headers: list[tuple[bytes, bytes]], is_file: bool, https: bool) -> list[tuple[bytes, bytes]]:
        headers = [(k, v) for k, v in headers if k not in (b"content-security-policy", b"x-frame-options")]
        policy = self.policy
        if is_file:
            kind = next((v.decode("latin-1") for k, v in headers if k == b"content-type"), "")
            if kind.split(";")[0].strip().lower() not in INLINE_TYPES:
                headers = [(k, v) for k, v in headers if k not in (b"content-type", b"content-disposition")]
                headers += [(b"content-type", b"application/octet-stream"), (b"content-disposition", b"attachment")]
                policy = b"sandbox; default-src 'none'"
        if https:
            headers = [(k, _secure_cookie(v) if k == b"set-cookie" else v) for k, v in headers]
        return [
            *headers,
            (b"content-security-policy", policy),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"SAMEORIGIN"),
            (b"referrer-policy", b"same-origin"),
        ]


def _secure_cookie(value: bytes) -> bytes:
    return value if b"secure" in value.lower() else value + b"; Secure"


class TrustedHosts:
    """Only requests addressed to a host this app serves (allow_origins, loopback): a page on another site
    whose name was re-pointed at this machine (DNS rebinding) gets nothing, sign-in or not."""

    def __init__(self, app: ASGIApp, allowed: set[str] | None) -> None:
        self.app, self.allowed = app, allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not host_allowed(header(scope, b"host"), self.allowed):
            why = "This app does not serve this address; add its URL to allow_origins in .chainlit/config.toml."
            return await reply(send, 400, why)
        await self.app(scope, receive, send)


class SameOriginWrites:
    """A request that changes something, sent by a page of another origin with the member's cookie, is refused."""

    def __init__(self, app: ASGIApp, allowed: list[str], root: str = "") -> None:
        # Azure AD's hybrid flow posts its answer from Microsoft's page (checked by its own state cookie).
        self.app, self.allowed, self.exempt = app, allowed, (root + "/auth/oauth/azure-ad-hybrid/callback",)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        writes = scope["type"] == "http" and scope["method"] not in SAFE_METHODS and scope["path"] not in self.exempt
        if writes and not origin_allowed(header(scope, b"origin"), header(scope, b"host"), self.allowed):
            return await reply(send, 403, "Requests from other sites are not accepted.")
        await self.app(scope, receive, send)


class LiveIdentity:
    """Every request with a session token is checked against the current user list (removed users are out).
    The page itself is let through, with the cookie cleared, so the browser lands on the sign-in form."""

    def __init__(
        self,
        app: ASGIApp,
        known: Callable[[str], Awaitable[bool]],
        identity: Callable[[Scope], str | None],
        root: str = "",
    ) -> None:
        self.app, self.known, self.identity = app, known, identity
        self.open = tuple(root + p for p in ("/assets/", "/public/", "/login", "/logout", "/auth/config", "/favicon"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.open):
            return await self.app(scope, receive, send)
        who = self.identity(scope)
        if who is None or await self.known(who):
            return await self.app(scope, receive, send)
        expire = expired_cookies(scope)
        if scope["method"] == "GET" and "text/html" in (header(scope, b"accept") or ""):

            async def cleared(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message["headers"], *expire]}
                await send(message)

            return await self.app(scope, receive, cleared)
        await reply(send, 401, "This account is no longer on this deployment's user list.", expire)
