"""The chat's work: answering a question, indexing a message's files, and errors in plain words."""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from pathlib import Path
from typing import Any

import chainlit as cl

from chains import Source, SourcesReady, Token, Trace, to_messages
from core.access import Scope, Viewer
from core.errors import KnowledgeBaseError
from core.markdown import escape_markdown
from ingest import FileInput, FileResult
from ingest.files import kept_file
from ui import render
from ui.auth import current_viewer
from ui.render import Chip, chip_text, chips, retrieve_report, rewrite_report
from ui.resources import Resources
from ui.session import UPLOAD_MARK, ChatSession, upload_scope

log = logging.getLogger(__name__)


async def report_error(exc: BaseException) -> None:
    """A failure as one plain sentence in the chat, never a traceback."""
    if isinstance(exc, KnowledgeBaseError):
        text = escape_markdown(str(exc))  # it may name a document
    else:
        log.exception("unexpected error", exc_info=exc)
        text = "Something went wrong on our side while handling this message. Please try again."
    await cl.ErrorMessage(content=text).send()


def source_element(res: Resources, chip: Chip) -> Any:
    """A chip's side panel: the PDF at its page, or the cited passages as text."""
    source = chip.first
    pdf = kept_file(res.settings, source.doc_hash) if source.doc_hash else None
    if source.file_type == "pdf" and pdf is not None and pdf.exists():
        return cl.Pdf(name=chip.label, path=str(pdf), page=source.page or 1, display="side", mime="application/pdf")
    return cl.Text(name=chip.label, content=chip_text(chip), display="side")


AFTER_ANSWER_S = (0.3,)  # a person cannot read an answer and click its source this fast
AFTER_RESUME_S = (0.3, 1.5)  # a reopened thread can take the client a while to render


async def close_side_panel(again_after_s: tuple[float, ...] = AFTER_ANSWER_S) -> None:
    """Chainlit 2.12 opens the side panel by itself whenever side elements arrive (with an answer, or with a
    reopened conversation), stacking every source under the last one's title. Sources open when a person
    clicks one: close it now, and again once the client has caught up (it renders, then opens). Not later
    than that: a close would then shut a panel the person opened."""
    await cl.ElementSidebar.set_elements([])

    async def later() -> None:
        waited = 0.0
        for at in again_after_s:
            await asyncio.sleep(at - waited)
            waited = at
            await cl.ElementSidebar.set_elements([])

    task = asyncio.create_task(later())  # in this session's context; it must not hold up the handler
    _closing.add(task)
    task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[None]] = set()


async def show_steps(trace: Trace, sources: list[Source]) -> None:
    """How the answer was found, as two steps above it."""
    async with cl.Step(name="Rewrite", type="llm", show_input=False) as step:
        step.output = rewrite_report(trace)
    async with cl.Step(name="Retrieve", type="retrieval", show_input=False) as step:
        step.output = retrieve_report(trace, sources)


async def answer(res: Resources, session: ChatSession, question: str) -> None:
    viewer = await current_viewer(res, cl.user_session.get("user"))
    msg = cl.Message(content="")
    sources: list[Source] = []
    standalone = question
    stream = res.chain.astream(question, to_messages(session.history), session.options, viewer)
    async with aclosing(stream) as events:  # Stop cancels us mid-stream: close it now, not when collected
        async for event in events:
            if isinstance(event, Token):
                await msg.stream_token(event.text)
            elif isinstance(event, SourcesReady):
                sources, standalone = event.sources, event.trace.standalone
                await show_steps(event.trace, sources)
    # Chainlit links a name in the text to the element of that name in the same message only, so the chips
    # of one answer need distinct names (chips() groups by document and page), not names unique per thread.
    shown = chips(sources, msg.content)
    if shown:
        msg.content += "\n\nSources: " + ", ".join(chip.label for chip in shown)
    msg.elements = [source_element(res, chip) for chip in shown]
    # Kept with the message: a thumbs-down can later be exported as an evaluation case.
    msg.metadata = {"question": standalone, "sources": [s.source for s in sources]}
    await msg.send()
    if shown:
        await close_side_panel()
    session.add_turn(question, msg.content)
    await session.remember(question, final=True)


async def ingest_files(res: Resources, session: ChatSession, message: cl.Message) -> None:
    viewer = await current_viewer(res, cl.user_session.get("user"))
    scope = upload_scope(session.panel, res.settings.default_scope, res.sign_in)
    elements: list[Any] = list(message.elements or [])
    files = [FileInput(Path(e.path), e.name, scope, viewer.identifier) for e in elements if getattr(e, "path", None)]
    await label_upload(message, [f.source for f in files])
    limit = res.settings.max_files_per_message
    if len(files) > limit:  # the browser enforces Chainlit's max_files, a script does not have to
        skipped = escape_markdown(", ".join(f.source for f in files[limit:]))
        await cl.ErrorMessage(content=f"Only {limit} files per message are indexed; not indexed: {skipped}").send()
        files = files[:limit]
    if files:
        await index_files(res, session, files, scope, viewer)


async def label_upload(message: cl.Message, names: list[str]) -> None:
    """The person's message names what they attached, instead of showing each file inline (a PDF would be
    a page-high preview above the progress) or an empty bubble for a message without text."""
    for element in message.elements or []:
        await _sent(element)  # Chainlit sends them in a task of its own: remove after, not before
        await element.remove()  # the file on disk stays until the session ends: indexing reads it
    message.elements = []  # or update() below sends them again
    if names and not message.content.strip():
        message.content = render.attached(names)
        message.metadata = {**(message.metadata or {}), UPLOAD_MARK: True}  # not a question
    elif names:
        message.content += "\n\n" + render.attached(names)
    await message.update()


async def _sent(element: Any, wait_s: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while not (element.for_id and element.persisted) and loop.time() < deadline:  # noqa: ASYNC110 (no event to wait on)
        await asyncio.sleep(0.02)
    await asyncio.sleep(0)  # let that task's send go out first


async def index_files(
    res: Resources, session: ChatSession, files: list[FileInput], scope: Scope, viewer: Viewer
) -> None:
    """Per-file progress in a message at the bottom of the chat, which becomes the per-file summary."""
    line_of: dict[str, int] = {}
    for i, f in enumerate(files):
        line_of.setdefault(f.source, i)
    lines: list[str] = [f"{f.source}: waiting…" for f in files]
    report = cl.Message(content=render.upload_progress(lines), metadata={UPLOAD_MARK: True})
    await report.send()

    async def progress(result: FileResult) -> None:
        lines[line_of[result.source]] = result.describe()
        report.content = render.upload_progress(lines)
        await report.update()

    try:
        results = await res.ingestor.ingest(files, on_result=progress, viewer=viewer)
    except BaseException:
        report.content = render.upload_progress(lines, stopped=True)
        await report.update()
        raise
    report.content = render.upload_summary([r.describe() for r in results], scope == "private")
    await report.update()
    await session.remember("Uploaded " + ", ".join(f.source for f in files), final=False)


async def mark_first_interaction(text: str, attached: list[str]) -> None:
    """Work around Chainlit 2.12: a first message with files but no text leaves the browser thinking the
    conversation has not started, which disables Stop and the feedback buttons for the whole session.

    Called after the upload: Chainlit's own (empty) first_interaction event must have gone out first.
    """
    if cl.user_session.get("first_interaction_seen"):
        return
    cl.user_session.set("first_interaction_seen", True)
    if not text.strip() and attached:
        names = ", ".join(attached)
        interaction = {"interaction": f"Uploaded {names}"[:200], "thread_id": cl.context.session.thread_id}
        await cl.context.emitter.emit("first_interaction", interaction)
