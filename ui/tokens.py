"""Chainlit's session tokens, read the one way every guard reads them."""

from __future__ import annotations

from typing import Any

import jwt as pyjwt
from chainlit.auth.cookie import _auth_cookie_name, get_token_from_cookies
from chainlit.auth.jwt import get_jwt_secret
from starlette.requests import cookie_parser

COOKIE = _auth_cookie_name  # CHAINLIT_AUTH_COOKIE_NAME, "access_token" by default


def claims(token: str | None) -> dict[str, Any] | None:
    """The claims of a validly signed, unexpired token (None: no token, or Chainlit will refuse it)."""
    secret = get_jwt_secret()
    if not token or not secret:
        return None
    try:
        found = pyjwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp"]})
    except pyjwt.InvalidTokenError:
        return None
    return found if isinstance(found, dict) and found.get("identifier") else None


def _from_cookies(header: str | None) -> str | None:
    return get_token_from_cookies(cookie_parser(header)) if header else None


def bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def http_identity(scope: dict[str, Any]) -> str | None:
    """Who an HTTP request's cookie (or bearer token) says it is."""
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
    found = claims(_from_cookies(headers.get("cookie")) or bearer(headers.get("authorization")))
    return str(found["identifier"]) if found else None


def socket_identity(environ: dict[str, Any]) -> str | None:
    """Who a socket connection's cookie says it is."""
    found = claims(_from_cookies(environ.get("HTTP_COOKIE")))
    return str(found["identifier"]) if found else None


def expired_cookies(scope: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """Set-Cookie headers that clear the session cookie (and its chunks) a request carried."""
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
    names = [n for n in cookie_parser(headers.get("cookie", "")) if n == COOKIE or n.startswith(COOKIE + "_")]
    return [(b"set-cookie", f"{n}=; Max-Age=0; Path=/; HttpOnly; SameSite=lax".encode()) for n in names or [COOKIE]]
