"""Install every guard at our edge of Chainlit: HTTP middleware, our own routes, the socket's connect check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from chainlit.config import FILES_DIRECTORY, config
from chainlit.server import get_html_template
from fastapi import FastAPI
from socketio import AsyncServer

from core.throttle import SignInThrottle
from ui.edge import LiveIdentity, SameOriginWrites, SecurityHeaders, TrustedHosts, script_hashes
from ui.limits import BoundedUploads, LedgerUploads, ThrottledSignIn
from ui.origins import allowed_hosts
from ui.routes import make_router, put_first
from ui.sockets import guard_connect
from ui.tokens import http_identity, socket_identity
from ui.uploads import UploadLedger

MULTIPART_SLACK = 1 << 20  # the form around the file


def install(app: FastAPI, sio: AsyncServer, sign_in: bool, known: Callable[[str], Awaitable[bool]]) -> UploadLedger:
    """Call once, when app.py is loaded (before the server starts: middleware cannot be added later).
    Returns the ledger of uploads not sent yet, which the app sweeps."""
    ledger: UploadLedger | None = getattr(app.state, "kb_upload_ledger", None)
    if ledger is not None:  # `chainlit run -w` reloads app.py into the running server
        return ledger
    ledger = app.state.kb_upload_ledger = UploadLedger()
    root = config.run.root_path or ""
    origins = list(config.project.allow_origins or [])
    hosts = allowed_hosts(origins, config.run.host)
    upload = config.features.spontaneous_file_upload
    limit_mb = upload.max_size_mb if upload and upload.max_size_mb else 50
    put_first(app, make_router(root, known))
    if sign_in:
        app.add_middleware(LiveIdentity, known=known, identity=http_identity, root=root)
    app.add_middleware(LedgerUploads, ledger=ledger, root=root)
    app.add_middleware(BoundedUploads, limit_bytes=int(limit_mb * 2**20) + MULTIPART_SLACK, root=root)
    app.add_middleware(ThrottledSignIn, throttle=SignInThrottle(), root=root)
    app.add_middleware(SameOriginWrites, allowed=origins, root=root)
    app.add_middleware(TrustedHosts, allowed=hosts)
    # Added last, so outermost: every response carries the headers.
    app.add_middleware(SecurityHeaders, hashes=script_hashes(get_html_template(root)), root=root)
    guard_connect(sio, Path(FILES_DIRECTORY), origins, hosts, socket_identity if sign_in else None, known)
    return ledger
