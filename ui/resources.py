"""Everything the app opens once per process, built and closed in one place."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from chains import RagChain
from core.models import make_chat_model
from core.runtime import open_knowledge_base
from core.settings import Settings
from core.store import KnowledgeBase
from core.users import UserStore
from ingest import Ingestor, Recovery

log = logging.getLogger(__name__)


@dataclass
class Resources:
    """The knowledge base (with its database engine), the answer chain and its chat model, the ingestor
    (with its parser pool) and its crash recovery, and the user list; `sign_in` says whether people sign in at all."""

    settings: Settings
    kb: KnowledgeBase
    chain: RagChain
    ingestor: Ingestor
    recovery: Recovery
    users: UserStore
    sign_in: bool
    closing: asyncio.Event = field(default_factory=asyncio.Event)


@asynccontextmanager
async def open_resources(settings: Settings, sign_in: bool) -> AsyncIterator[Resources]:
    """Open everything; on the way out close it in reverse order (the knowledge base is flushed)."""
    async with AsyncExitStack() as stack:
        kb = await stack.enter_async_context(open_knowledge_base(settings))
        chain = RagChain(kb, make_chat_model(settings), settings)
        ingestor = Ingestor(kb)
        yield Resources(settings, kb, chain, ingestor, Recovery(ingestor), UserStore(kb.engine), sign_in)


Background = Callable[[Resources], Awaitable[object]]


class Lifetime:
    """The resources, opened in Chainlit's event loop on first use and held open until `close`, with
    background work (recovery, sweeps) running beside them."""

    def __init__(self, settings: Callable[[], Settings], sign_in: bool, background: list[Background]) -> None:
        self._settings, self._sign_in, self._background = settings, sign_in, background
        self._resources: Resources | None = None
        self._lock = asyncio.Lock()
        self._holder: asyncio.Task[None] | None = None

    async def get(self) -> Resources:
        async with self._lock:
            if self._resources is None:
                ready: asyncio.Future[Resources] = asyncio.get_running_loop().create_future()
                self._holder = asyncio.create_task(self._hold(ready))
                self._resources = await ready
            return self._resources

    async def _hold(self, ready: asyncio.Future[Resources]) -> None:
        try:
            async with open_resources(self._settings(), self._sign_in) as res:
                for recovered in await res.recovery.recover():  # after a crash: settle half-written documents
                    log.warning("after an interruption: %s", recovered.describe())
                ready.set_result(res)
                await asyncio.gather(*(work(res) for work in self._background))  # until `close`
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    async def close(self) -> None:
        if self._resources is not None and self._holder is not None:
            self._resources.closing.set()
            await asyncio.gather(self._holder, return_exceptions=True)
