"""Checks on every socket connection before Chainlit sees it: the session id, the page's origin, the user.

Chainlit 2.12 uses the client's `sessionId` as a folder name under `.files/` (written to, and deleted
recursively when the session ends) and accepts sockets from any origin.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from socketio import AsyncServer

from ui.origins import host_allowed, origin_allowed

log = logging.getLogger(__name__)


def is_session_id(value: Any) -> bool:
    """A canonical UUID, nothing else (no path, no other spelling of one)."""
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


def inside(folder: Path, name: str) -> bool:
    """Whether `folder/name` is a direct child of `folder` once resolved."""
    return (folder / name).resolve().parent == folder.resolve()


def guard_connect(
    sio: AsyncServer,
    files_dir: Path,
    allowed_origins: list[str],
    hosts: set[str] | None,
    identity: Callable[[dict[str, Any]], str | None] | None,
    known: Callable[[str], Awaitable[bool]],
) -> None:
    """Wrap Chainlit's connect handler; `identity` (when sign-in is on) reads the user from the cookie."""
    chainlit_connect = sio.handlers["/"]["connect"]

    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> Any:
        session_id = auth.get("sessionId") if isinstance(auth, dict) else None
        if not is_session_id(session_id) or not inside(files_dir, str(session_id)):
            log.warning("refused a socket: its session id is not a UUID")
            raise ConnectionRefusedError("invalid session id")
        host_ok = host_allowed(environ.get("HTTP_HOST"), hosts)
        if not host_ok or not origin_allowed(environ.get("HTTP_ORIGIN"), environ.get("HTTP_HOST"), allowed_origins):
            log.warning("refused a socket from origin %r", str(environ.get("HTTP_ORIGIN"))[:100])
            raise ConnectionRefusedError("origin not allowed")
        if identity is not None:
            who = identity(environ)
            if who is not None and not await known(who):
                raise ConnectionRefusedError("this account is no longer on the user list")
        return await chainlit_connect(sid, environ, auth)

    sio.handlers["/"]["connect"] = connect
