"""Chainlit handlers: adapt chat events to `ingest/` and `chains/`; no business logic here."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import uuid
from pathlib import Path

import chainlit as cl

from chains import RagChain, Source, to_messages
from core.errors import KnowledgeBaseError
from core.models import make_chat_model
from core.runtime import open_knowledge_base
from core.settings import get_settings
from ingest import FileInput, FileResult, Ingestor

log = logging.getLogger(__name__)


class Resources:
    """Built once per process on first use, shared by every session."""

    # A plain class: Chainlit loads app.py outside sys.modules, which dataclasses cannot handle.
    def __init__(self, chain: RagChain, ingestor: Ingestor) -> None:
        self.chain = chain
        self.ingestor = ingestor
        self.close = asyncio.Event()


_resources: Resources | None = None
_resources_lock = asyncio.Lock()


async def resources() -> Resources:
    """The shared knowledge base, chain and ingestor (bound to Chainlit's event loop)."""
    global _resources
    async with _resources_lock:
        if _resources is None:
            settings = get_settings()
            ready: asyncio.Future[Resources] = asyncio.get_running_loop().create_future()

            async def hold() -> None:
                # Keep the knowledge base open until shutdown so it is flushed and closed cleanly.
                try:
                    async with open_knowledge_base(settings) as kb:
                        res = Resources(RagChain(kb, make_chat_model(settings), settings), Ingestor(kb))
                        ready.set_result(res)
                        await res.close.wait()
                except BaseException as exc:
                    if not ready.done():
                        ready.set_exception(exc)
                    raise

            _holder.append(asyncio.create_task(hold()))
            _resources = await ready
        return _resources


_holder: list[asyncio.Task[None]] = []


@cl.on_app_startup
async def startup() -> None:
    """Fail fast: bad settings or a mismatched collection stop the server with a plain message."""
    try:
        await resources()
    except KnowledgeBaseError as exc:
        print(f"Cannot start: {exc}", file=sys.stderr, flush=True)
        os._exit(2)  # Chainlit swallows exceptions raised here; a half-started server helps nobody


@cl.on_app_shutdown
async def shutdown() -> None:
    if _resources is not None:
        _resources.close.set()
        await asyncio.gather(*_holder, return_exceptions=True)


async def report_error(exc: BaseException) -> None:
    if isinstance(exc, KnowledgeBaseError):
        text = str(exc)
    else:
        log.exception("unexpected error", exc_info=exc)
        text = "Something went wrong on our side while handling this message. Please try again."
    await cl.ErrorMessage(content=text).send()


@cl.on_chat_start
async def start() -> None:
    cl.user_session.set("history", [])
    try:
        res = await resources()
        chunks = await res.chain.kb.count()
    except Exception as exc:
        await report_error(exc)
        return
    holds = f"The knowledge base holds {chunks} chunks." if chunks else "The knowledge base is empty."
    await cl.Message(
        content=f"{holds} Attach PDF, Word, PowerPoint, HTML, Markdown, text or CSV files to a message "
        "to add them, then ask a question."
    ).send()


async def ingest_files(res: Resources, elements: list[cl.Element]) -> None:
    files = [FileInput(Path(e.path), e.name) for e in elements if getattr(e, "path", None)]
    if not files:
        return
    async with cl.Step(name="Ingest", type="tool") as step:
        step.input = ", ".join(f.source for f in files)
        lines: list[str] = []

        async def progress(result: FileResult) -> None:
            lines.append(result.describe())
            step.output = "\n".join(lines)
            await step.update()

        results = await res.ingestor.ingest(files, on_result=progress)
    await cl.Message(content="\n".join(f"- {r.describe()}" for r in results)).send()


def source_elements(sources: list[Source], answer_id: str) -> tuple[list[cl.Text], dict[int, str]]:
    names = {
        s.number: f"[{s.number}] {s.source}" + (f" p.{s.page}" if s.page else "") + f" ·{answer_id}" for s in sources
    }
    elements = [cl.Text(name=names[s.number], content=s.text, display="side") for s in sources]
    return elements, names


async def answer(res: Resources, question: str) -> None:
    history: list[tuple[str, str]] = cl.user_session.get("history") or []
    msg = cl.Message(content="")
    sources: list[Source] = []
    async for event in res.chain.astream(question, to_messages(history)):
        if "token" in event:
            await msg.stream_token(event["token"])
        else:
            sources = event["sources"]
            trace = event["trace"]
            async with cl.Step(name="Rewrite", type="tool") as step:
                step.input = trace.standalone
                step.output = "\n".join(trace.rewrites)
            async with cl.Step(name="Retrieve", type="retrieval") as step:
                step.output = (
                    "\n".join(
                        f"{s.query!r}: " + ", ".join(f"{h['source']} ({h['score']})" for h in s.hits[:5])
                        for s in trace.searches
                    )
                    + "\n\nFused: "
                    + ", ".join(f"[{s.number}] {s.source} ({s.rrf})" for s in sources)
                )
    answer_id = uuid.uuid4().hex[:4]
    elements, names = source_elements(sources, answer_id)
    if sources:
        msg.content += "\n\nSources: " + ", ".join(names[s.number] for s in sources)
    msg.elements = elements  # type: ignore[assignment]
    await msg.send()
    history += [("user", question), ("assistant", msg.content)]
    cl.user_session.set("history", history[-2 * get_settings().history_turns :])


@cl.on_message
async def on_message(message: cl.Message) -> None:
    try:
        res = await resources()
        if message.elements:
            await ingest_files(res, message.elements)
        if message.content.strip():
            await answer(res, message.content.strip())
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        await report_error(exc)
