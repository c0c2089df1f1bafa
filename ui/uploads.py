"""Files attached in the chat but never sent are removed promptly (Chainlit keeps them until the session ends)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from pathlib import Path

from chainlit.session import ws_sessions_id

log = logging.getLogger(__name__)
SWEEP_EVERY_S = 5.0
MAX_PENDING = 100_000


class UploadLedger:
    """Uploads the browser made for a message that has not been sent yet: (session id, file id) -> when."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], float] = {}

    def uploaded(self, session_id: str, file_id: str, at: float) -> None:
        if len(self._pending) >= MAX_PENDING:  # forget the oldest notes; their sessions' ends clean up
            self._pending.pop(next(iter(self._pending)))
        self._pending[(session_id, file_id)] = at

    def sent(self, session_id: str, file_ids: Iterable[str]) -> None:
        """A message took these files: they stay for the rest of the session (their chips keep opening)."""
        for file_id in file_ids:
            self._pending.pop((session_id, file_id), None)

    def sweep(self, ttl_s: float, now: float | None = None) -> int:
        """Delete uploads no message took within `ttl_s` seconds; returns how many."""
        now = time.time() if now is None else now
        removed = 0
        for key, at in list(self._pending.items()):
            if now - at <= ttl_s:
                continue
            del self._pending[key]
            session = ws_sessions_id.get(key[0])
            info = session.files.pop(key[1], None) if session is not None else None
            if session is not None and info is not None:
                path = Path(info["path"])
                if path.parent == session.files_dir:  # only in this session's own folder
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                removed += 1
        return removed


async def sweep_forever(ledger: UploadLedger, ttl_s: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            if removed := ledger.sweep(ttl_s):
                log.info("removed %d uploads that were never sent", removed)
        except Exception:  # a sweep must never take the app down
            log.exception("sweeping unsent uploads failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SWEEP_EVERY_S)
